"""The chat pages count their tokens, against the mock model over real HTTP, and the daily
quota refuses every send path once it is reached."""

from __future__ import annotations

import pytest

from accounts.models import TokenUsage, UsageSource
from accounts.usage import record_usage
from chat.context import build_context
from chat.models import ChatSession, Message, MessageStatus
from chat.tests.test_send import iter_events, parse_events
from config.services import get_system_setting
from models_registry.models import ModelConfig

QUOTA_MESSAGE = (
    "You have used today&#x27;s allowance of 1,000 tokens. It resets at midnight (server time)."
)


def make_model(base_url: str, model: str = "mock-model") -> ModelConfig:
    config = ModelConfig(name="Mock", api_url=base_url, model=model, context_window=4096)
    config.set_api_key("sk-mock-0000")
    config.save()
    return config


@pytest.fixture
def mock_model(mock_llm) -> ModelConfig:
    return make_model(mock_llm.base_url)


@pytest.fixture
def chat(bob, mock_model) -> ChatSession:
    return ChatSession.objects.create(user=bob, model_config=mock_model)


def stream_post(client, url: str, **data):
    return client.post(url, data, HTTP_ACCEPT="text/event-stream")


def set_quota(tokens: int) -> None:
    setting = get_system_setting()
    setting.daily_token_quota = tokens
    setting.save()


def answers(chat: ChatSession) -> list[Message]:
    return list(chat.messages.filter(role="assistant").order_by("id"))


@pytest.mark.django_db
def test_a_streamed_answer_records_the_tokens_the_upstream_reported(bob, bob_client, chat):
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="Hi").streaming_content
    )
    name, done = events[-1]
    assert name == "done"
    reported = done["usage"]
    assert reported["prompt_tokens"] and reported["completion_tokens"]
    row = TokenUsage.objects.get()
    assert row.user == bob
    assert row.model_config == chat.model_config
    assert row.model_name == "Mock"
    assert row.source == UsageSource.CHAT
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (
        1,
        reported["prompt_tokens"],
        reported["completion_tokens"],
    )


@pytest.mark.django_db
def test_every_answer_adds_to_the_same_row(bob_client, chat, mock_model):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "one"})
    bob_client.post(f"/chats/{chat.pk}/regenerate/")
    new_chat = stream_post(bob_client, "/chats/new/", model=mock_model.pk, content="a new chat")
    assert parse_events(new_chat.streaming_content)[-1][0] == "done"  # the stream runs when read
    saved = Message.objects.filter(role="assistant", status=MessageStatus.COMPLETE)
    row = TokenUsage.objects.get()
    assert row.requests == 3
    # The regenerated answer replaced the first one, but its tokens were spent all the same.
    assert row.completion_tokens > sum(m.completion_tokens for m in saved)


@pytest.mark.django_db
def test_without_reported_usage_the_sent_context_and_the_answer_are_counted(
    bob_client, bob, start_mock_llm
):
    server = start_mock_llm()
    model = make_model(server.base_url, "mock-reject_stream_options")  # so: no usage
    chat = ChatSession.objects.create(user=bob, model_config=model)
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="count me").streaming_content
    )
    start, done = events[0][1], events[-1][1]
    assert done["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    answer = answers(chat)[-1]
    row = TokenUsage.objects.get()
    assert (row.prompt_tokens, row.completion_tokens) == (
        start["context_tokens"],
        answer.token_count,
    )

    # The no-JavaScript path builds its context itself: counted the same way.
    response = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "and me"})
    assert response.status_code == 302
    answer = answers(chat)[-1]
    context = build_context(chat, model, before_id=answer.pk)
    row.refresh_from_db()
    assert row.requests == 2
    assert row.prompt_tokens == start["context_tokens"] + context.tokens
    assert row.completion_tokens == answers(chat)[0].token_count + answer.token_count


@pytest.mark.django_db
def test_an_upstream_that_fails_before_answering_costs_nothing(bob_client, bob, start_mock_llm):
    model = make_model(start_mock_llm().base_url, "mock-http_500")
    chat = ChatSession.objects.create(user=bob, model_config=model)
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert events[-1][0] == "error"
    assert not TokenUsage.objects.exists()


@pytest.mark.django_db
def test_an_answer_broken_off_midway_still_counts_its_text(bob_client, bob, start_mock_llm):
    model = make_model(start_mock_llm().base_url, "mock-error_mid_stream")
    chat = ChatSession.objects.create(user=bob, model_config=model)
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert events[-1][0] == "error"
    answer = answers(chat)[-1]
    assert answer.content
    row = TokenUsage.objects.get()
    assert row.completion_tokens == answer.token_count > 0
    assert row.prompt_tokens == events[0][1]["context_tokens"]


@pytest.mark.django_db(transaction=True)
def test_a_model_deleted_while_it_answers_keeps_the_answer_and_the_count(
    bob_client, bob, start_mock_llm
):
    model = make_model(start_mock_llm(delay_ms=20).base_url)
    chat = ChatSession.objects.create(user=bob, model_config=model)
    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hello there")
    names = []
    for name, _data in iter_events(response):
        names.append(name)
        if names.count("delta") == 1:
            ModelConfig.objects.filter(pk=model.pk).delete()
    assert names[-1] == "done"
    assert answers(chat)[-1].status == MessageStatus.COMPLETE
    row = TokenUsage.objects.get()
    assert (row.model_config_id, row.model_name, row.requests) == (None, "Mock", 1)


@pytest.mark.django_db
def test_a_failed_usage_write_never_costs_the_answer(bob_client, chat, monkeypatch, caplog):
    from django.db import IntegrityError

    from chat import streaming

    def broken(**kwargs):
        raise IntegrityError("usage table unavailable")

    monkeypatch.setattr(streaming, "record_usage", broken)
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert events[-1][0] == "done"
    assert answers(chat)[-1].status == MessageStatus.COMPLETE
    assert "could not record the token usage" in caplog.text


# --- The daily quota ----------------------------------------------------------------------


@pytest.fixture
def at_the_limit(bob, mock_model) -> None:
    set_quota(1_000)
    record_usage(
        user=bob, model_config=mock_model, source="api", prompt_tokens=900, completion_tokens=100
    )


@pytest.mark.django_db
def test_below_the_quota_sending_works(bob, bob_client, chat, mock_model):
    set_quota(1_000)
    record_usage(
        user=bob, model_config=mock_model, source="api", prompt_tokens=900, completion_tokens=99
    )
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert events[-1][0] == "done"
    assert TokenUsage.objects.get(source=UsageSource.CHAT).requests == 1


@pytest.mark.django_db
def test_at_the_quota_a_send_is_refused_and_nothing_saved(bob_client, chat, at_the_limit):
    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="one more")
    assert response.status_code == 429
    assert response.json()["error"] == QUOTA_MESSAGE.replace("&#x27;", "'")
    page = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "without JavaScript"})
    assert page.status_code == 429
    assert QUOTA_MESSAGE in page.content.decode()
    assert ">without JavaScript</textarea>" in page.content.decode()  # the draft is kept
    assert not chat.messages.exists()
    assert not TokenUsage.objects.filter(source=UsageSource.CHAT).exists()


@pytest.mark.django_db
def test_at_the_quota_no_new_chat_is_started(bob_client, bob, mock_model, at_the_limit):
    response = stream_post(bob_client, "/chats/new/", model=mock_model.pk, content="hello")
    assert response.status_code == 429
    assert "allowance of 1,000 tokens" in response.json()["error"]
    page = bob_client.post("/chats/new/", {"model": mock_model.pk, "content": "hello"})
    assert page.status_code == 429
    assert QUOTA_MESSAGE in page.content.decode()
    assert not ChatSession.objects.filter(user=bob).exists()


@pytest.mark.django_db
def test_at_the_quota_regenerate_and_edit_are_refused(bob_client, bob, chat, mock_model):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "first"})
    used = TokenUsage.objects.get().prompt_tokens + TokenUsage.objects.get().completion_tokens
    set_quota(used)
    before = list(chat.messages.values_list("id", "content"))
    for url, data in (
        (f"/chats/{chat.pk}/regenerate/", {}),
        (f"/chats/{chat.pk}/edit/", {"content": "changed"}),
    ):
        response = bob_client.post(url, data, HTTP_ACCEPT="text/event-stream")
        assert response.status_code == 429, url
        assert "allowance of" in response.json()["error"]
    assert list(chat.messages.values_list("id", "content")) == before
    assert TokenUsage.objects.get().requests == 1


@pytest.mark.django_db
def test_the_quota_is_each_users_own(carol, chat, at_the_limit, mock_model, client):
    client.force_login(carol)
    response = stream_post(client, "/chats/new/", model=mock_model.pk, content="hello")
    assert response.status_code == 200
    assert parse_events(response.streaming_content)[-1][0] == "done"
