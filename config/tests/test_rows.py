"""config.rows: instances read by hand-written SELECTs equal the ORM's, on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from chat.fields import ZLIB, stored_kind
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from chat.selectors import user_chat
from config.rows import MAX_ID, ModelColumns, fetch_one, insert_all
from config.services import get_system_setting
from models_registry.models import ModelConfig


def values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


def read(model, alias, pk):
    columns = ModelColumns(model, alias)
    pk_column = model._meta.pk.column
    row = fetch_one(
        f'SELECT {columns.sql} FROM {columns.table} WHERE {alias}."{pk_column}" = %s',  # noqa: S608
        [pk],
    )
    return columns.instance(row)


@pytest.fixture
def model(db, bob):
    return ModelConfig.objects.create(
        owner=bob,
        name="Mine",
        api_url="https://models.example.com/v1",
        model="m-1",
        context_window=32000,
        system_prompt="Be kind. 友好",
    )


@pytest.fixture
def chat(bob, model):
    return ChatSession.objects.create(user=bob, model_config=model, title="Hello 你好")


def test_a_user_read_by_hand_equals_the_orms(alice, bob):
    User.objects.filter(pk=bob.pk).update(last_login=timezone.now(), is_active=False)
    for user in (alice, bob):
        assert values(read(User, "u", user.pk)) == values(User.objects.get(pk=user.pk))


def test_a_model_and_a_chat_read_by_hand_equal_the_orms(model, chat):
    assert values(read(ModelConfig, "m", model.pk)) == values(ModelConfig.objects.get(pk=model.pk))
    assert values(read(ChatSession, "c", chat.pk)) == values(ChatSession.objects.get(pk=chat.pk))


def test_a_session_read_by_hand_equals_the_orms(db):
    Session.objects.create(
        session_key="k" * 32, session_data="data", expire_date=timezone.now() + timedelta(days=1)
    )
    assert values(read(Session, "s", "k" * 32)) == values(Session.objects.get(pk="k" * 32))


def test_user_chat_loads_the_model_and_knows_the_owner(bob, chat, model, django_assert_num_queries):
    with django_assert_num_queries(1):
        found = user_chat(bob, chat.pk)
        assert found.user is bob
        assert values(found.model_config) == values(model)
    assert values(found) == values(ChatSession.objects.get(pk=chat.pk))


def test_user_chat_without_a_model(bob, chat, django_assert_num_queries):
    ChatSession.objects.filter(pk=chat.pk).update(model_config=None)
    with django_assert_num_queries(1):
        assert user_chat(bob, chat.pk).model_config is None


@pytest.mark.parametrize("pk", [0, -1, MAX_ID + 1, 10**30])
def test_user_chat_finds_nothing_for_an_impossible_id(bob, chat, pk):
    assert user_chat(bob, pk) is None


def test_user_chat_never_finds_another_users_chat(carol, chat):
    assert user_chat(carol, chat.pk) is None


def test_insert_all_saves_what_bulk_create_would(chat):
    setting = get_system_setting()
    long_text = "Long text that compresses well. " * 200
    assert len(long_text) > setting.compression_threshold_bytes
    client_id = uuid.uuid4()
    first = Message(
        session=chat, role=MessageRole.USER, content=long_text, token_count=7, client_id=client_id
    )
    second = Message(session=chat, role=MessageRole.ASSISTANT, status=MessageStatus.STREAMING)
    before = timezone.now()
    insert_all([first, second])
    assert first.pk < second.pk
    assert not first._state.adding
    stored_first, stored_second = Message.objects.filter(session=chat).order_by("id")
    assert (stored_first.pk, stored_second.pk) == (first.pk, second.pk)
    assert stored_first.content == long_text
    assert (
        stored_kind(fetch_one("SELECT content FROM chat_message WHERE id = %s", [first.pk])[0])
        == ZLIB
    )
    assert stored_first.client_id == client_id
    assert stored_first.token_count == 7
    assert stored_second.status == MessageStatus.STREAMING
    assert stored_second.content == ""
    assert stored_first.created_at >= before
    assert stored_first.created_at == first.created_at


def test_insert_all_refuses_a_duplicate_like_the_orm(chat):
    client_id = uuid.uuid4()
    Message.objects.create(session=chat, role=MessageRole.USER, content="a", client_id=client_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_all([Message(session=chat, role=MessageRole.USER, content="b", client_id=client_id)])
    assert Message.objects.filter(session=chat).count() == 1
