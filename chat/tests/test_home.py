"""The new-chat page: the model picker offers this user's models, and says what to do if none."""

from __future__ import annotations

import pytest

from models_registry.models import ModelConfig


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


@pytest.mark.django_db
def test_home_lists_active_system_and_own_personal_models(bob_client, bob, carol):
    ModelConfig.objects.create(name="Team GPT", api_url="https://a.example/v1", model="gpt")
    ModelConfig.objects.create(
        name="Retired", api_url="https://a.example/v1", model="old", is_active=False
    )
    ModelConfig.objects.create(
        owner=bob, name="Bob Qwen", api_url="https://b.example/v1", model="qwen"
    )
    ModelConfig.objects.create(
        owner=carol, name="Carol Kimi", api_url="https://c.example/v1", model="kimi"
    )
    html = bob_client.get("/").content.decode()
    assert '<label for="model-select">Model</label>' in html
    assert "Team GPT</option>" in html and "Bob Qwen</option>" in html
    assert "Retired" not in html and "Carol Kimi" not in html


@pytest.mark.django_db
def test_home_without_models_tells_an_admin_where_to_add_one(alice_client, bob_client):
    admin_html = alice_client.get("/").content.decode()
    assert "Welcome to Parley: set up a model" in admin_html
    assert "/admin/models_registry/modelconfig/add/" in admin_html
    assert 'action="/models/demo/"' in admin_html
    user_html = bob_client.get("/").content.decode()
    assert "ask your administrator to add one." in user_html
    assert "/models/" in user_html
    assert "/admin/" not in user_html


@pytest.mark.django_db
def test_home_is_a_fixed_number_of_queries(bob_client, bob, django_assert_max_num_queries):
    for n in range(20):
        ModelConfig.objects.create(name=f"M{n}", api_url="https://a.example/v1", model="m")
    bob_client.get("/")
    with django_assert_max_num_queries(4):
        bob_client.get("/")


@pytest.mark.django_db
def test_the_demo_model_is_one_click_for_an_admin_and_answers(
    alice_client, bob_client, mock_llm, settings
):
    from models_registry.models import ModelConfig

    settings.PARLEY_DEMO_MODEL_URL = mock_llm.base_url
    assert bob_client.post("/models/demo/").status_code == 403
    response = alice_client.post("/models/demo/", follow=True)
    assert "The demo model is ready" in response.content.decode()
    (demo,) = ModelConfig.objects.system()
    assert (demo.name, demo.api_url, demo.model) == (
        "Demo (mock model)",
        mock_llm.base_url,
        "mock-model",
    )
    alice_client.post("/models/demo/")  # a second click reuses it
    assert ModelConfig.objects.count() == 1
    page = alice_client.get("/").content.decode()
    assert "Demo (mock model)" in page and 'id="composer-input"' in page


@pytest.mark.django_db
def test_a_demo_model_that_does_not_answer_says_how_to_start_it(alice_client, settings):
    settings.PARLEY_DEMO_MODEL_URL = "http://127.0.0.1:9/v1"
    response = alice_client.post("/models/demo/", follow=True)
    assert "make demo" in response.content.decode()
