"""The Preferences page: language, theme, default model, Enter-to-send, own system prompt."""

from __future__ import annotations

import pytest

from chat.context import build_context
from chat.models import ChatSession
from models_registry.models import ModelConfig


@pytest.fixture
def models(bob, carol):
    def make(name: str, **fields) -> ModelConfig:
        return ModelConfig.objects.create(
            name=name, api_url="https://api.example.com/v1", model="m", **fields
        )

    return {
        "team": make("Team", system_prompt="Answer in English."),
        "other": make("Other"),
        "bobs": make("Bob's own", owner=bob),
        "carols": make("Carol's own", owner=carol),
    }


def preferences(**changes) -> dict:
    data = {
        "language": "",
        "theme": "system",
        "default_model": "",
        "enter_to_send": "on",
        "system_prompt": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.django_db
def test_preferences_are_saved_and_shown_again(bob_client, bob, models):
    response = bob_client.post(
        "/accounts/preferences/",
        preferences(
            language="zh-hans",
            theme="dark",
            default_model=models["bobs"].pk,
            enter_to_send=None,
            system_prompt="I am a data engineer. Be concise.",
        ),
    )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert (bob.language, bob.theme, bob.default_model, bob.enter_to_send) == (
        "zh-hans",
        "dark",
        models["bobs"],
        False,
    )
    assert bob.system_prompt == "I am a data engineer. Be concise."
    assert response.cookies["django_language"].value == "zh-hans"
    page = bob_client.get("/accounts/preferences/").content.decode()
    assert "I am a data engineer. Be concise." in page


@pytest.mark.django_db
def test_the_default_model_can_only_be_one_the_user_may_use(bob_client, bob, models):
    page = bob_client.get("/accounts/preferences/").content.decode()
    assert "Bob&#x27;s own" in page and "Carol&#x27;s own" not in page
    response = bob_client.post(
        "/accounts/preferences/", preferences(default_model=models["carols"].pk)
    )
    assert response.status_code == 400
    bob.refresh_from_db()
    assert bob.default_model is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad", [{"language": "klingon"}, {"theme": "neon"}, {"system_prompt": "x" * 4001}]
)
def test_bad_values_are_refused_with_400_and_nothing_changes(bob_client, bob, bad):
    response = bob_client.post("/accounts/preferences/", preferences(**bad))
    assert response.status_code == 400
    bob.refresh_from_db()
    assert (bob.language, bob.theme, bob.system_prompt) == ("", "system", "")


@pytest.mark.django_db
def test_a_new_chat_starts_with_the_users_default_model(bob_client, bob, models):
    bob.default_model = models["other"]
    bob.save(update_fields=["default_model"])
    page = bob_client.get("/").content.decode()
    assert f'<option value="{models["other"].pk}" selected' in page
    # A default model that was turned off falls back to the administrator's choice.
    ModelConfig.objects.filter(pk=models["other"].pk).update(is_active=False)
    page = bob_client.get("/").content.decode()
    assert f'<option value="{models["other"].pk}"' not in page


@pytest.mark.django_db
def test_enter_to_send_reaches_the_composer(bob_client, bob, models):
    assert 'data-enter-sends="true"' in bob_client.get("/").content.decode()
    bob.enter_to_send = False
    bob.save(update_fields=["enter_to_send"])
    page = bob_client.get("/").content.decode()
    assert 'data-enter-sends="false"' in page
    assert "Ctrl+Enter sends" in page


@pytest.mark.django_db
def test_the_own_system_prompt_goes_first_in_chats_started_after_it_is_set(bob, models):
    from chat.services import chat_create

    before = chat_create(user=bob, model_config=models["team"])
    bob.system_prompt = "Call me Bob."
    bob.save(update_fields=["system_prompt"])
    after = chat_create(user=bob, model_config=models["team"])

    assert build_context(before, models["team"]).messages == [
        {"role": "system", "content": "Answer in English."}
    ]
    assert build_context(after, models["team"]).messages == [
        {"role": "system", "content": "Call me Bob.\n\nAnswer in English."}
    ]
    assert ChatSession.objects.get(pk=after.pk).system_prompt == "Call me Bob."


@pytest.mark.django_db
def test_the_page_needs_a_login(client):
    assert client.get("/accounts/preferences/").status_code == 302


@pytest.mark.django_db
def test_languages_are_named_in_themselves(bob_client):
    page = bob_client.get("/accounts/preferences/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert ">简体中文</option>" in page and ">English</option>" in page
