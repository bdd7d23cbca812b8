"""Chat tables: choice constraints and the indexes the hot queries rely on."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from chat.models import ChatSession, Message


@pytest.fixture
def chat(bob) -> ChatSession:
    return ChatSession.objects.create(user=bob, title="Hello")


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [("role", "robot"), ("status", "done-ish")])
def test_choice_fields_are_checked_by_the_database(chat, field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(session=chat, **{"role": "user", field: value})


@pytest.mark.django_db
def test_deleting_a_chat_deletes_its_messages(chat):
    Message.objects.create(session=chat, role="user", content="hi", token_count=3)
    chat.delete()
    assert not Message.objects.exists()


def index_columns(table: str) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {name: c["columns"] for name, c in constraints.items() if c["index"]}


@pytest.mark.django_db
def test_keyset_indexes_exist():
    sessions = index_columns(ChatSession._meta.db_table)
    assert sessions["chat_session_user_recent"] == ["user_id", "updated_at", "id"]
    messages = index_columns(Message._meta.db_table)
    assert messages["chat_message_session_id"] == ["session_id", "id"]


@pytest.mark.django_db
def test_sidebar_query_uses_the_index(bob):
    if connection.vendor != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    query = ChatSession.objects.filter(user=bob).order_by("-updated_at", "-id")[:50]
    plan = query.explain()
    assert "chat_session_user_recent" in plan
    assert "TEMP B-TREE" not in plan
