"""The OpenAI-compatible /v1 API through Django's test client, against the mock model.

The official SDK against a live server is in test_gateway_sdk.py; the fuzz run against
the OpenAPI description in test_gateway_openapi.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.api_tokens import create_api_token, revoke_api_token
from accounts.models import TokenUsage
from chat.models import ChatSession
from config.services import get_system_setting
from models_registry.models import ModelConfig

UPSTREAM_KEY = "sk-upstream-never-shown-7f3a"


@pytest.fixture
def team_model(mock_llm) -> ModelConfig:
    model = ModelConfig(
        name="Team Mock", api_url=mock_llm.base_url, model="mock-model", context_window=4096
    )
    model.set_api_key(UPSTREAM_KEY)
    model.save()
    return model


@pytest.fixture
def bob_token(bob) -> str:
    return create_api_token(user=bob, name="laptop")[1]


@pytest.fixture
def api(bob_token):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {bob_token}")

    def call(path: str, body: object = None, *, method: str = "post", **extra):
        if method == "get":
            return client.get(f"/v1/{path}", **extra)
        payload = body if isinstance(body, bytes | str) else json.dumps(body)
        return client.post(f"/v1/{path}", payload, content_type="application/json", **extra)

    return call


def ask(text: str = "Hello there", **fields) -> dict:
    return {"model": "team-mock", "messages": [{"role": "user", "content": text}], **fields}


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def sse_payloads(response) -> list:
    text = b"".join(response.streaming_content).decode()
    blocks = [b.removeprefix("data: ") for b in text.split("\n\n") if b.strip()]
    return [b if b == "[DONE]" else json.loads(b) for b in blocks]


# -- tokens -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("", "missing_api_key"),
        ("Basic Ym9iOnNlY3JldA==", "missing_api_key"),
        ("Bearer prly_not-a-real-token", "invalid_api_key"),
        ("Bearer sk-something-else", "invalid_api_key"),
    ],
)
def test_requests_without_a_valid_token_get_401_in_openai_shape(header, code, team_model):
    response = Client().get("/v1/models", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_of(response)["code"] == code


@pytest.mark.django_db
def test_a_signed_in_browser_session_is_not_an_api_token(bob_client, team_model):
    response = bob_client.get("/v1/models")
    assert response.status_code == 401


@pytest.mark.django_db
def test_revocation_and_expiry_take_effect_at_once(bob, team_model):
    token, raw = create_api_token(user=bob, name="short-lived")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/v1/models").status_code == 200
    revoke_api_token(token=token, actor=bob)
    assert client.get("/v1/models").status_code == 401

    expiring, raw = create_api_token(
        user=bob, name="expiring", expires_at=timezone.now() + timedelta(hours=1)
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/v1/models").status_code == 200
    type(expiring).objects.filter(pk=expiring.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/v1/models").status_code == 401


# -- models -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_models_lists_what_the_tokens_owner_may_use_and_nothing_secret(api, bob, carol, team_model):
    ModelConfig.objects.create(
        owner=bob, name="My Ollama", api_url="http://127.0.0.1:11434/v1", model="llama3"
    )
    ModelConfig.objects.create(
        owner=carol, name="Carol's", api_url="https://api.example.com/v1", model="x"
    )
    ModelConfig.objects.create(
        name="Retired", api_url="https://api.example.com/v1", model="y", is_active=False
    )
    response = api("models", method="get")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["team-mock", "personal/my-ollama"]
    assert all(m["object"] == "model" for m in body["data"])
    text = response.content.decode()
    for secret in (UPSTREAM_KEY, team_model.api_url, "11434", "api.example.com"):
        assert secret not in text

    detail = api("models/personal/my-ollama", method="get")
    assert detail.json()["id"] == "personal/my-ollama"
    assert api("models/carol-s", method="get").status_code == 404


# -- completions --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_completion_answers_in_openai_shape_and_counts_the_reported_usage(
    api, bob, team_model, mock_llm
):
    response = api("chat/completions", ask("Say hello to the team", temperature=0.2))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "team-mock"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert "hello" in choice["message"]["content"].lower()
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    sent = mock_llm.requests[-1]
    assert sent.body["model"] == "mock-model"  # the upstream id, never the public one
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == team_model.max_output_tokens
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"

    row = TokenUsage.objects.get(user=bob)
    assert (row.source, row.requests) == ("api", 1)
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert not ChatSession.objects.exists()  # API conversations are not kept by default


@pytest.mark.django_db
def test_a_streamed_completion_ends_with_usage_and_done(api, bob, team_model):
    response = api("chat/completions", ask(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = sse_payloads(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert "Hello" in text
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["stop"]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    row = TokenUsage.objects.get(user=bob)
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


@pytest.mark.django_db
def test_usage_is_summed_over_calls_and_kept_apart_from_chat_pages(api, bob, team_model):
    reported = []
    for text in ("one", "two words", "three little words"):
        reported.append(api("chat/completions", ask(text)).json()["usage"])
    row = TokenUsage.objects.get(user=bob, source="api")
    assert row.requests == 3
    assert row.prompt_tokens == sum(u["prompt_tokens"] for u in reported)
    assert row.completion_tokens == sum(u["completion_tokens"] for u in reported)


@pytest.mark.django_db
def test_conversations_are_kept_only_when_the_user_turned_it_on(api, bob, team_model):
    bob.store_api_chats = True
    bob.save(update_fields=["store_api_chats"])
    body = ask("What is Parley?")
    body["messages"].insert(0, {"role": "system", "content": "Be brief."})
    answer = api("chat/completions", body).json()["choices"][0]["message"]["content"]
    chat = ChatSession.objects.get(user=bob)
    assert chat.title == "What is Parley?"
    assert list(chat.messages.values_list("role", "content")) == [
        ("user", "What is Parley?"),
        ("assistant", answer),
    ]
    assert chat.message_count == 2


@pytest.mark.django_db
def test_history_is_forwarded_as_sent_unless_trimming_is_asked_for(api, team_model, mock_llm):
    team_model.context_window, team_model.max_output_tokens = 300, 50
    team_model.save()
    history = [
        {"role": "system", "content": "You are terse."},
        *[
            {"role": role, "content": f"{role} turn {n} " + "filler " * 40}
            for n in range(6)
            for role in ("user", "assistant")
        ],
        {"role": "user", "content": "And now?"},
    ]
    assert api("chat/completions", {"model": "team-mock", "messages": history}).status_code in (
        200,
        400,  # the mock may refuse a long prompt; either way it received all of it
    )
    assert len(mock_llm.requests[-1].body["messages"]) == len(history)

    trimmed = api(
        "chat/completions",
        {
            "model": "team-mock",
            "messages": history,
            "parley": {"trim_to_context_window": True},
        },
    )
    assert trimmed.status_code == 200
    sent = mock_llm.requests[-1].body["messages"]
    assert sent[0] == history[0]  # the system message stays
    assert sent[-1] == history[-1]  # the newest message stays
    assert 2 <= len(sent) < len(history)
    assert sent[1:] == history[len(history) - len(sent) + 1 :]  # no hole in the middle


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("{not json", None),
        ([], None),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        (ask() | {"messages": []}, "messages"),
        (ask() | {"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        (ask() | {"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        (
            ask() | {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
        ),
        (ask(temperature=3), "temperature"),
        (ask(temperature="hot"), "temperature"),
        (ask(max_tokens=0), "max_tokens"),
        (ask(n=2), "n"),
        (ask(stream="yes"), "stream"),
        (ask(stream_options={"include_usage": True}), "stream_options"),
        (ask(tools=[{"type": "function"}]), "tools"),
        (ask(stop=["a", "b", "c", "d", "e"]), "stop"),
    ],
)
def test_bad_requests_get_400_naming_the_field(api, team_model, body, param):
    response = api("chat/completions", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


@pytest.mark.django_db
def test_an_unknown_model_is_404_model_not_found(api, team_model):
    response = api("chat/completions", ask() | {"model": "gpt-9"})
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


@pytest.mark.django_db
def test_wrong_methods_and_paths_answer_in_json(api, team_model):
    assert error_of(api("chat/completions", method="get"))["code"] == "method_not_allowed"
    assert api("chat/completions", method="get").status_code == 405
    missing = api("embeddings", {"input": "x"})
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "unknown_url"


@pytest.mark.django_db
def test_an_unreachable_upstream_is_a_502_that_names_neither_url_nor_key(api, team_model):
    team_model.api_url = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    team_model.save()
    for stream in (False, True):
        response = api("chat/completions", ask(stream=stream))
        assert response.status_code == 502
        error = error_of(response)
        assert error["code"] == "upstream_unreachable"
        assert "127.0.0.1" not in response.content.decode()
        assert UPSTREAM_KEY not in response.content.decode()


@pytest.mark.django_db
def test_the_chat_pages_rate_limit_counts_api_calls_too(api, team_model):
    setting = get_system_setting()
    setting.messages_per_minute = 1
    setting.save()
    assert api("chat/completions", ask()).status_code == 200
    response = api("chat/completions", ask())
    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limit_exceeded"
    assert response["Retry-After"]


@pytest.mark.django_db
def test_the_daily_token_quota_refuses_with_a_clear_429(api, bob, team_model):
    setting = get_system_setting()
    setting.daily_token_quota = 10
    setting.save()
    assert (
        api("chat/completions", ask("a question long enough to use the quota")).status_code == 200
    )
    response = api("chat/completions", ask())
    assert response.status_code == 429
    error = error_of(response)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "10" in error["message"]


@pytest.mark.django_db
def test_usage_totals_equal_what_the_upstream_reported_across_pages_and_api(
    api, bob, bob_client, team_model
):
    from django.db.models import Sum

    chat = ChatSession.objects.create(user=bob, model_config=team_model)
    page = bob_client.post(
        f"/chats/{chat.pk}/send/", {"content": "From the page"}, HTTP_ACCEPT="text/event-stream"
    )
    done = [
        json.loads(block.split("data: ", 1)[1])
        for block in b"".join(page.streaming_content).decode().split("\n\n")
        if block.startswith("event: done")
    ]
    reported = [done[0]["usage"]]
    reported.append(api("chat/completions", ask("From a script")).json()["usage"])
    streamed = sse_payloads(
        api(
            "chat/completions", ask("Streamed", stream=True, stream_options={"include_usage": True})
        )
    )
    reported.append(streamed[-2]["usage"])

    totals = TokenUsage.objects.filter(user=bob).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), requests=Sum("requests")
    )
    assert totals == {
        "prompt": sum(u["prompt_tokens"] for u in reported),
        "completion": sum(u["completion_tokens"] for u in reported),
        "requests": 3,
    }
    assert set(TokenUsage.objects.filter(user=bob).values_list("source", flat=True)) == {
        "chat",
        "api",
    }
