"""Personal models at /models/: the owner's own rows only, safe endpoints, write-only keys."""

from __future__ import annotations

import pytest

from accounts.models import AuditAction, AuditEvent
from chat.models import ChatSession
from config.services import get_system_setting
from models_registry.models import ModelConfig

PUBLIC_URL = "https://93.184.216.34/v1"  # a literal public address: no DNS, never contacted
SECRET = "sk-personal-0123456789abcdef7a1b"


def form_data(**changes) -> dict:
    data = {
        "name": "My DeepSeek",
        "api_url": PUBLIC_URL,
        "api_key": SECRET,
        "model": "deepseek-chat",
        "context_window": "65536",
        "max_output_tokens": "4096",
        "system_prompt": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


def update_setting(**fields) -> None:
    setting = get_system_setting()
    for name, value in fields.items():
        setattr(setting, name, value)
    setting.save()


@pytest.fixture
def alices_model(alice) -> ModelConfig:
    model = ModelConfig(owner=alice, name="Alice's Qwen", api_url=PUBLIC_URL, model="qwen-max")
    model.set_api_key("sk-alice-0000000000000000beef")
    model.save()
    return model


@pytest.mark.django_db
def test_a_user_adds_a_personal_model(bob_client, bob):
    page = bob_client.get("/models/add/")
    assert page.status_code == 200
    response = bob_client.post("/models/add/", form_data())
    assert response.status_code == 302
    assert response["Location"] == "/models/"
    model = ModelConfig.objects.get()
    assert (model.owner, model.name, model.get_api_key()) == (bob, "My DeepSeek", SECRET)
    listing = bob_client.get("/models/").content.decode()
    assert "My DeepSeek" in listing
    assert "sk-…7a1b" in listing
    assert SECRET not in listing
    assert AuditEvent.objects.filter(action=AuditAction.MODEL_CREATE, actor=bob).count() == 1


@pytest.mark.django_db
def test_editing_with_a_blank_key_keeps_it(bob_client, bob):
    bob_client.post("/models/add/", form_data())
    model = ModelConfig.objects.get()
    edit = bob_client.get(f"/models/{model.pk}/edit/").content.decode()
    assert SECRET not in edit
    assert "sk-…7a1b" in edit
    bob_client.post(f"/models/{model.pk}/edit/", form_data(name="Renamed", api_key=""))
    model.refresh_from_db()
    assert (model.name, model.get_api_key()) == ("Renamed", SECRET)


@pytest.mark.django_db
def test_names_are_unique_per_user_with_a_clear_message(bob_client, carol):
    ModelConfig.objects.create(owner=carol, name="My DeepSeek", api_url=PUBLIC_URL, model="m")
    bob_client.post("/models/add/", form_data())
    again = bob_client.post("/models/add/", form_data(name="my deepseek"))
    assert again.status_code == 200
    assert "You already have a model with this name." in again.content.decode()
    assert ModelConfig.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9999/v1", "private network"),
        ("http://169.254.169.254/latest/meta-data", "never allowed"),
        ("http://2852039166/", "Enter a valid URL."),
        ("http://[::ffff:169.254.169.254]/", "never allowed"),
        ("http://localhost:9999/v1", "private network"),
        ("ftp://files.example.com/", ""),
    ],
)
def test_unsafe_endpoints_are_refused_with_the_reason(bob_client, url, message):
    response = bob_client.post("/models/add/", form_data(api_url=url))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ModelConfig.objects.exists()


@pytest.mark.django_db
def test_private_endpoints_when_the_admin_allows_them_but_never_metadata(bob_client):
    update_setting(allow_private_endpoints=True)
    ok = bob_client.post("/models/add/", form_data(api_url="http://127.0.0.1:11434/v1"))
    assert ok.status_code == 302
    metadata = bob_client.post(
        "/models/add/", form_data(name="Meta", api_url="http://169.254.169.254/")
    )
    assert metadata.status_code == 200
    assert ModelConfig.objects.count() == 1


@pytest.mark.django_db
def test_system_models_are_read_only_for_users_and_urls_can_be_hidden(bob_client):
    ModelConfig.objects.create(
        name="Team GPT", api_url="http://10.0.0.5:8000/v1", model="gpt-4o", api_key_hint="sk-…1234"
    )
    page = bob_client.get("/models/").content.decode()
    assert "Team GPT" in page
    assert "http://10.0.0.5:8000/v1" in page
    assert "sk-…1234" not in page
    update_setting(hide_system_model_urls=True)
    assert "http://10.0.0.5:8000/v1" not in bob_client.get("/models/").content.decode()


@pytest.mark.django_db
def test_when_personal_models_are_off_users_cannot_add_or_edit(bob_client, bob):
    bob_client.post("/models/add/", form_data())
    model = ModelConfig.objects.get()
    update_setting(allow_personal_models=False)
    listing = bob_client.get("/models/").content.decode()
    assert "Your administrator has turned off personal models." in listing
    refused = bob_client.get("/models/add/")
    assert refused.status_code == 403
    assert "turned off personal models" in refused.content.decode()
    assert bob_client.post("/models/add/", form_data(name="Other")).status_code == 403
    assert bob_client.post(f"/models/{model.pk}/edit/", form_data()).status_code == 403
    assert bob_client.post(f"/models/{model.pk}/test/").status_code == 403
    assert bob_client.post(f"/models/{model.pk}/delete/").status_code == 302
    assert not ModelConfig.objects.exists()


@pytest.mark.django_db
def test_deleting_keeps_chats_and_deactivating_keeps_them_too(bob_client, bob):
    bob_client.post("/models/add/", form_data())
    model = ModelConfig.objects.get()
    chat = ChatSession.objects.create(user=bob, model_config=model, title="Important")
    bob_client.post(f"/models/{model.pk}/edit/", form_data(api_key="", is_active=""))
    chat.refresh_from_db()
    assert chat.model_config == model
    confirm = bob_client.get(f"/models/{model.pk}/delete/")
    assert "Chats that used this model are kept" in confirm.content.decode()
    bob_client.post(f"/models/{model.pk}/delete/")
    chat.refresh_from_db()
    assert chat.model_config is None
    assert ChatSession.objects.filter(title="Important").exists()


@pytest.mark.django_db
def test_bob_gets_404_for_every_url_and_action_on_alices_model(bob_client, alices_model):
    pk = alices_model.pk
    for method, url in [
        ("get", f"/models/{pk}/edit/"),
        ("post", f"/models/{pk}/edit/"),
        ("get", f"/models/{pk}/delete/"),
        ("post", f"/models/{pk}/delete/"),
        ("post", f"/models/{pk}/test/"),
    ]:
        data = form_data(name="Hijacked") if url.endswith("edit/") else {}
        response = getattr(bob_client, method)(url, data)
        assert response.status_code == 404, (method, url)
    fetch = bob_client.post(f"/models/{pk}/edit/", {**form_data(), "fetch_models": "1"})
    assert fetch.status_code == 404
    alices_model.refresh_from_db()
    assert alices_model.name == "Alice's Qwen"
    assert "Alice&#x27;s Qwen" not in bob_client.get("/models/").content.decode()


@pytest.mark.django_db
def test_get_on_post_only_actions_and_anonymous_access(client, bob_client, bob):
    bob_client.post("/models/add/", form_data())
    pk = ModelConfig.objects.get().pk
    assert bob_client.get(f"/models/{pk}/test/").status_code == 405
    for url in ("/models/", "/models/add/", f"/models/{pk}/edit/"):
        assert client.get(url)["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_bad_numbers_get_messages(bob_client):
    response = bob_client.post(
        "/models/add/", form_data(context_window="abc", max_output_tokens="-5")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a whole number." in html
    assert not ModelConfig.objects.exists()


@pytest.fixture
def mock_model(bob, mock_llm) -> ModelConfig:
    update_setting(allow_private_endpoints=True)
    model = ModelConfig(owner=bob, name="Local mock", api_url=mock_llm.base_url, model="mock-model")
    model.set_api_key("sk-mock-key-0000")
    model.save()
    return model


@pytest.mark.django_db
def test_test_connection_reports_success(bob_client, mock_model):
    response = bob_client.post(f"/models/{mock_model.pk}/test/", follow=True)
    assert "Connection works: Local mock answered in" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        ("mock-http_401", "The API key was refused by the provider."),
        ("mock-http_404_model", "The model was not found at the provider."),
        ("mock-http_429", "rate limiting"),
    ],
)
def test_test_connection_reports_the_reason(bob_client, mock_model, model_id, message):
    mock_model.model = model_id
    mock_model.save()
    response = bob_client.post(f"/models/{mock_model.pk}/test/", follow=True)
    assert message in response.content.decode()


@pytest.mark.django_db
def test_test_connection_refuses_an_endpoint_that_became_unsafe(bob_client, mock_model):
    update_setting(allow_private_endpoints=False)
    response = bob_client.post(f"/models/{mock_model.pk}/test/", follow=True)
    assert "private network" in response.content.decode()


@pytest.mark.django_db
def test_fetch_models_offers_the_upstream_ids_without_saving(bob_client, mock_llm):
    update_setting(allow_private_endpoints=True)
    response = bob_client.post(
        "/models/add/",
        {**form_data(api_url=mock_llm.base_url, model=""), "fetch_models": "1"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert '<datalist id="fetched-models">' in html
    assert '<option value="mock-model">' in html
    assert 'list="fetched-models"' in html
    assert not ModelConfig.objects.exists()


@pytest.mark.django_db
def test_fetch_models_uses_the_stored_key_when_the_field_is_blank(bob_client, mock_model, mock_llm):
    bob_client.post(
        f"/models/{mock_model.pk}/edit/",
        {**form_data(api_url=mock_llm.base_url, api_key=""), "fetch_models": "1"},
    )
    assert mock_llm.requests[-1].headers["authorization"] == "Bearer sk-mock-key-0000"


@pytest.mark.django_db
def test_a_model_whose_key_cannot_be_read_says_so_and_the_page_still_works(
    bob_client, mock_model, settings
):
    from models_registry import crypto

    settings.PARLEY_ENCRYPTION_KEYS = crypto.generate_key()
    page = bob_client.get("/models/")
    assert page.status_code == 200
    assert "re-enter the API key" in page.content.decode()
    response = bob_client.post(f"/models/{mock_model.pk}/test/", follow=True)
    assert "Re-enter the API key" in response.content.decode()
    assert bob_client.get("/").status_code == 200


@pytest.mark.django_db
def test_a_user_chooses_the_api_id_of_a_personal_model_and_bad_ones_are_explained(bob_client, bob):
    bad = bob_client.post("/models/add/", form_data(api_id="my model!"))
    assert bad.status_code == 200
    assert "start with a letter or digit" in bad.content.decode()
    assert not ModelConfig.objects.exists()

    bob_client.post("/models/add/", form_data(api_id="ds-chat"))
    assert ModelConfig.objects.get(owner=bob).public_id == "personal/ds-chat"
    again = bob_client.post("/models/add/", form_data(name="Another", api_id="DS-CHAT"))
    assert "You already have a model with this API model id." in again.content.decode()
    assert ModelConfig.objects.count() == 1
