"""System models in the admin: write-only key, audited saves, chats kept on delete."""

from __future__ import annotations

import pytest

from accounts.models import AuditAction, AuditEvent
from chat.models import ChatSession
from models_registry.models import ModelConfig

SECRET = "sk-planted-0123456789-abcdef9f2c"


def form_data(**changes) -> dict:
    data = {
        "name": "GPT",
        "api_url": "https://api.example.com/v1",
        "api_key": "",
        "model": "gpt-4o-mini",
        "context_window": "8192",
        "max_output_tokens": "1024",
        "system_prompt": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


@pytest.mark.django_db
def test_adding_a_system_model_stores_the_key_and_never_shows_it(alice_client):
    response = alice_client.post(
        "/admin/models_registry/modelconfig/add/", form_data(api_key=SECRET)
    )
    assert response.status_code == 302
    model = ModelConfig.objects.get()
    assert model.owner is None
    assert model.get_api_key() == SECRET
    assert SECRET not in model.api_key
    for url in (
        "/admin/models_registry/modelconfig/",
        f"/admin/models_registry/modelconfig/{model.pk}/change/",
        "/",
    ):
        html = alice_client.get(url).content.decode()
        assert SECRET not in html, url
    change = alice_client.get(f"/admin/models_registry/modelconfig/{model.pk}/change/")
    assert "sk-…9f2c" in change.content.decode()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {AuditAction.MODEL_CREATE, AuditAction.API_KEY_SET} <= actions
    assert SECRET not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


@pytest.mark.django_db
def test_a_blank_key_keeps_the_stored_one(alice_client):
    alice_client.post("/admin/models_registry/modelconfig/add/", form_data(api_key=SECRET))
    model = ModelConfig.objects.get()
    response = alice_client.post(
        f"/admin/models_registry/modelconfig/{model.pk}/change/",
        form_data(name="GPT-4o", api_key=""),
    )
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.name, model.get_api_key()) == ("GPT-4o", SECRET)
    update = AuditEvent.objects.get(action=AuditAction.MODEL_UPDATE)
    assert update.detail["changed"] == ["name"]


@pytest.mark.django_db
def test_the_key_can_be_replaced_or_removed(alice_client):
    alice_client.post("/admin/models_registry/modelconfig/add/", form_data(api_key=SECRET))
    model = ModelConfig.objects.get()
    url = f"/admin/models_registry/modelconfig/{model.pk}/change/"
    alice_client.post(url, form_data(api_key="sk-replacement-key-0000"))
    model.refresh_from_db()
    assert model.get_api_key() == "sk-replacement-key-0000"
    alice_client.post(url, form_data(clear_api_key="on"))
    model.refresh_from_db()
    assert (model.api_key, model.api_key_hint) == ("", "")
    assert AuditEvent.objects.filter(action=AuditAction.API_KEY_SET).count() == 3


@pytest.mark.django_db
def test_bad_input_gets_messages_and_nothing_is_saved(alice_client):
    response = alice_client.post(
        "/admin/models_registry/modelconfig/add/",
        form_data(api_url="not a url", context_window="100", max_output_tokens="500"),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid URL." in html
    assert "smaller than the context window" in html
    assert not ModelConfig.objects.exists()


@pytest.mark.django_db
def test_personal_models_are_not_listed_in_the_admin(alice_client, bob):
    ModelConfig.objects.create(
        owner=bob, name="Bob's", api_url="https://api.example.com/v1", model="m"
    )
    html = alice_client.get("/admin/models_registry/modelconfig/").content.decode()
    assert "Bob&#x27;s" not in html and "Bob's" not in html


@pytest.mark.django_db
def test_deleting_in_the_admin_keeps_chats_and_is_audited(alice_client, bob):
    alice_client.post("/admin/models_registry/modelconfig/add/", form_data())
    model = ModelConfig.objects.get()
    chat = ChatSession.objects.create(user=bob, model_config=model, title="Old chat")
    response = alice_client.post(
        f"/admin/models_registry/modelconfig/{model.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not ModelConfig.objects.exists()
    chat.refresh_from_db()
    assert chat.model_config is None
    assert AuditEvent.objects.filter(action=AuditAction.MODEL_DELETE).count() == 1


@pytest.mark.django_db
def test_system_models_may_use_localhost_and_have_a_test_connection_action(alice_client, mock_llm):
    response = alice_client.post(
        "/admin/models_registry/modelconfig/add/",
        form_data(api_url=mock_llm.base_url, model="mock-model"),
    )
    assert response.status_code == 302
    model = ModelConfig.objects.get()
    result = alice_client.post(
        "/admin/models_registry/modelconfig/",
        {"action": "test_connection", "_selected_action": [model.pk]},
        follow=True,
    )
    assert "GPT: Connection works" in result.content.decode()
    model.model = "mock-http_401"
    model.save()
    result = alice_client.post(
        "/admin/models_registry/modelconfig/",
        {"action": "test_connection", "_selected_action": [model.pk]},
        follow=True,
    )
    assert "The API key was refused by the provider." in result.content.decode()
