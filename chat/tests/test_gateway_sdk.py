"""The official `openai` SDK against a live Parley (gunicorn), as a user's script would use it.

Tokens are made with `manage.py create_api_token`, the way an operator scripts it; the
SDK parses every answer and raises its own exceptions for the errors.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from chat.tests.live import ONLY_IN_SQLITE_PASS, LiveParley
from models_registry.mock_llm import MockLLMServer, make_server

pytestmark = [pytest.mark.slow, ONLY_IN_SQLITE_PASS]

SETUP = """
import json
from accounts.models import Role, User
from config.services import get_system_setting, system_setting_update
from models_registry.models import ModelConfig
from models_registry.services import model_config_save

User.objects.create_user(username="sdk", password="a-long-sdk-passphrase-42", role=Role.USER)
setting = get_system_setting()
setting.messages_per_minute = 0
system_setting_update(setting=setting, changed_fields=["messages_per_minute"], actor=None)
model = ModelConfig(name="Team Mock", api_url={url!r}, model="mock-model",
                    context_window=8192, max_output_tokens=512)
model_config_save(model_config=model, new_api_key="sk-live-upstream-0000", changed_fields=[],
                  actor=None)
print(json.dumps(model.public_id))
"""

USAGE = """
import json
from django.db.models import Sum
from accounts.models import TokenUsage
print(json.dumps(TokenUsage.objects.filter(user__username="sdk", source="api").aggregate(
    p=Sum("prompt_tokens"), c=Sum("completion_tokens"))))
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockLLMServer]:
    server = make_server(delay_ms=5)
    server.serve_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(parley_server: LiveParley, upstream: MockLLMServer) -> LiveParley:
    parley_server.model_id = parley_server.shell(SETUP.format(url=upstream.base_url))
    return parley_server


def new_token(live: LiveParley, *extra: str) -> str:
    return live.manage("create_api_token", "sdk", "--name", "sdk test", *extra).strip()


@pytest.fixture(scope="module")
def sdk(live: LiveParley) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url("/v1"), api_key=new_token(live), max_retries=0)


def test_the_sdk_lists_the_models(sdk, live):
    models = list(sdk.models.list())
    assert [m.id for m in models] == [live.model_id] == ["team-mock"]
    assert sdk.models.retrieve("team-mock").owned_by == "parley"


def test_a_completion_and_a_streamed_one_with_usage_that_matches_the_ledger(sdk, live):
    before = live.shell(USAGE)
    reply = sdk.chat.completions.create(
        model="team-mock",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello from the SDK"},
        ],
        temperature=0.3,
        max_tokens=64,
    )
    assert reply.object == "chat.completion"
    assert "Hello" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"

    chunks = list(
        sdk.chat.completions.create(
            model="team-mock",
            messages=[{"role": "user", "content": "Stream this please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    streamed_usage = chunks[-1].usage
    assert streamed_usage is not None and streamed_usage.completion_tokens > 0

    after = live.shell(USAGE)
    assert after["p"] - (before["p"] or 0) == (
        reply.usage.prompt_tokens + streamed_usage.prompt_tokens
    )
    assert after["c"] - (before["c"] or 0) == (
        reply.usage.completion_tokens + streamed_usage.completion_tokens
    )


def test_an_unknown_model_raises_the_sdks_not_found_error(sdk):
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "model_not_found"


def test_bad_input_raises_the_sdks_bad_request_error(sdk):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(
            model="team-mock", messages=[{"role": "user", "content": "hi"}], temperature=5
        )
    assert raised.value.param == "temperature"


def test_revoked_and_expired_tokens_raise_authentication_errors(live):
    raw = new_token(live)
    client = openai.OpenAI(base_url=live.url("/v1"), api_key=raw, max_retries=0)
    assert list(client.models.list())
    live.shell(
        "import json\n"
        "from accounts.api_tokens import authenticate_api_token, revoke_api_token\n"
        f"token = authenticate_api_token({raw!r})\n"
        "revoke_api_token(token=token, actor=None)\n"
        "print(json.dumps(True))\n"
    )
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    expiring = new_token(live, "--expires-days", "1")
    live.shell(
        "import json\n"
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from accounts.api_tokens import hash_token\n"
        "from accounts.models import ApiToken\n"
        f"ApiToken.objects.filter(token_hash=hash_token({expiring!r})).update(\n"
        "    expires_at=timezone.now() - timedelta(seconds=1))\n"
        "print(json.dumps(True))\n"
    )
    expired = openai.OpenAI(base_url=live.url("/v1"), api_key=expiring, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        expired.chat.completions.create(
            model="team-mock", messages=[{"role": "user", "content": "hi"}]
        )
