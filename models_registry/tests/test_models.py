"""ModelConfig rules at the database level, the key mask and the visible set."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from chat.models import ChatSession
from models_registry.models import ModelConfig, mask_api_key


def system_model(**fields) -> ModelConfig:
    values = {"name": "GPT", "api_url": "https://api.example.com/v1", "model": "gpt-4o-mini"}
    values.update(fields)
    return ModelConfig.objects.create(**values)


@pytest.mark.django_db
def test_system_model_names_are_unique_ignoring_case():
    system_model(name="DeepSeek")
    with pytest.raises(IntegrityError), transaction.atomic():
        system_model(name="deepseek")


@pytest.mark.django_db
def test_personal_names_are_unique_per_owner_only(bob, carol):
    system_model(name="Mine")
    system_model(name="Mine", owner=bob)
    system_model(name="Mine", owner=carol)
    with pytest.raises(IntegrityError), transaction.atomic():
        system_model(name="MINE", owner=bob)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"context_window": 0, "max_output_tokens": 0},
        {"context_window": 4096, "max_output_tokens": 4096},
        {"context_window": 4096, "max_output_tokens": 0},
        {"api_url": "ftp://files.example.com/"},
        {"api_url": "file:///etc/passwd"},
    ],
)
def test_bad_values_are_refused_by_the_database(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        system_model(**fields)


@pytest.mark.django_db
def test_deleting_a_model_keeps_its_chats(bob):
    model = system_model()
    chat = ChatSession.objects.create(user=bob, model_config=model, title="Kept")
    model.delete()
    chat.refresh_from_db()
    assert chat.model_config is None
    assert chat.title == "Kept"


@pytest.mark.django_db
def test_users_see_system_models_and_only_their_own_personal_ones(bob, carol):
    shared = system_model(name="Shared")
    bobs = system_model(name="Bob's", owner=bob)
    system_model(name="Carol's", owner=carol)
    assert set(ModelConfig.objects.visible_to(bob)) == {shared, bobs}


@pytest.mark.parametrize(
    ("key", "mask"),
    [
        ("sk-abcdefgh-ijklmnop9f2c", "sk-…9f2c"),
        ("abcdefghijklmnop1234", "ab…1234"),
        ("short", "…rt"),
        ("", ""),
    ],
)
def test_the_mask_shows_only_a_prefix_and_the_last_characters(key, mask):
    assert mask_api_key(key) == mask


@pytest.mark.django_db
def test_repr_and_str_never_show_the_key():
    model = system_model()
    model.set_api_key("sk-verysecretvalue0000")
    assert "verysecret" not in repr(model)
    assert "verysecret" not in str(model)


@pytest.mark.django_db
def test_the_api_id_comes_from_the_name_and_is_unique_in_its_scope(bob, carol):
    first = system_model(name="GPT-4o (OpenAI)", model="gpt-4o")
    second = system_model(name="GPT 4o   OpenAI!", model="gpt-4o")
    chinese = system_model(name="通义千问", model="qwen2.5:7b")
    bobs = system_model(name="GPT-4o (OpenAI)", owner=bob)
    carols = system_model(name="GPT-4o (OpenAI)", owner=carol)
    assert [m.api_id for m in (first, second, chinese)] == [
        "gpt-4o-openai",
        "gpt-4o-openai-2",
        "qwen2.5-7b",  # no ASCII in the name: from the upstream id
    ]
    # Personal models have their own scope, shown under "personal/".
    assert (bobs.api_id, carols.api_id) == ("gpt-4o-openai", "gpt-4o-openai")
    assert (first.public_id, bobs.public_id) == ("gpt-4o-openai", "personal/gpt-4o-openai")


@pytest.mark.django_db
def test_renaming_a_model_keeps_its_api_id():
    model = system_model(name="DeepSeek Chat", model="deepseek-chat")
    model.name = "DeepSeek V4"
    model.save()
    model.refresh_from_db()
    assert model.api_id == "deepseek-chat"


@pytest.mark.django_db
def test_api_ids_are_unique_ignoring_case_in_the_database():
    system_model(name="One", api_id="Team-Model")
    with pytest.raises(IntegrityError):
        system_model(name="Two", api_id="team-model")
