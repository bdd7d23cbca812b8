"""The send path against the mock model over real HTTP: answers are streamed and never lost."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from chat.models import ChatSession, Message, MessageStatus
from chat.streaming import sweep_stale_streams
from config.services import get_system_setting
from models_registry.models import ModelConfig


def parse_events(chunks) -> list[tuple[str, dict]]:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        name = lines[0].removeprefix("event: ")
        data = json.loads("".join(line.removeprefix("data: ") for line in lines[1:]))
        events.append((name, data))
    return events


def iter_events(response):
    """Events one by one, as the browser would see them arrive."""
    buffer = b""
    for chunk in response.streaming_content:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            parsed = parse_events([block + b"\n\n"])
            yield from parsed


@pytest.fixture
def mock_model(mock_llm) -> ModelConfig:
    model = ModelConfig(
        name="Mock", api_url=mock_llm.base_url, model="mock-model", context_window=4096
    )
    model.set_api_key("sk-mock-0000")
    model.save()
    return model


@pytest.fixture
def chat(bob, mock_model) -> ChatSession:
    return ChatSession.objects.create(user=bob, model_config=mock_model)


def stream_post(client: Client, url: str, **data):
    return client.post(url, data, HTTP_ACCEPT="text/event-stream")


@pytest.mark.django_db
def test_a_new_chat_streams_its_first_answer(bob_client, bob, mock_model):
    response = stream_post(
        bob_client, "/chats/new/", model=mock_model.pk, content="Hello   there,\n world"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    events = parse_events(response.streaming_content)
    names = [name for name, _ in events]
    assert names[0] == "start"
    assert names.count("delta") >= 3  # the answer arrives in several steps
    assert names[-1] == "done"
    session = ChatSession.objects.get(user=bob)
    assert session.title == "Hello there, world"
    user_message, answer = session.messages.order_by("id")
    assert user_message.content == "Hello   there,\n world"
    assert answer.status == MessageStatus.COMPLETE
    streamed = "".join(data["content"] for name, data in events if name == "delta")
    assert answer.content == streamed
    assert "Last user message: Hello there, world" in streamed.replace("\n", " ")
    assert events[-1][1]["html"].startswith("<p>")
    assert answer.prompt_tokens and answer.completion_tokens
    assert answer.token_count > 0
    session.refresh_from_db()
    assert session.message_count == 2


@pytest.mark.django_db
def test_without_javascript_the_form_waits_and_redirects(bob_client, chat):
    response = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "plain form"})
    assert response.status_code == 302
    answer = chat.messages.order_by("id").last()
    assert response["Location"] == f"/chats/{chat.pk}/#message-{answer.pk}"
    assert answer.status == MessageStatus.COMPLETE
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "plain form" in page
    assert "Last user message: plain form" in page


@pytest.mark.django_db
@pytest.mark.parametrize("accept_stream", [True, False])
def test_a_retried_post_never_doubles_the_message(bob_client, chat, accept_stream):
    client_id = str(uuid.uuid4())
    headers = {"HTTP_ACCEPT": "text/event-stream"} if accept_stream else {}
    for _attempt in range(3):
        response = bob_client.post(
            f"/chats/{chat.pk}/send/", {"content": "only once", "client_id": client_id}, **headers
        )
        if accept_stream:
            events = parse_events(response.streaming_content)
            assert events[-1][0] == "done"
    assert chat.messages.filter(content="only once").count() == 1
    assert chat.messages.count() == 2
    chat.refresh_from_db()
    assert chat.message_count == 2


@pytest.mark.django_db
def test_stop_keeps_the_text_so_far(bob_client, chat, start_mock_llm):
    slow = start_mock_llm(delay_ms=40, tokens=200)
    chat.model_config.api_url = slow.base_url
    chat.model_config.save()
    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="tell me a story")
    deltas = 0
    final = None
    for name, data in iter_events(response):
        if name == "delta":
            deltas += 1
            if deltas == 3:
                assert bob_client.post(f"/chats/{chat.pk}/stop/").status_code == 302
        if name in ("done", "error"):
            final = data
    assert final["status"] == "stopped"
    answer = chat.messages.order_by("id").last()
    assert answer.status == MessageStatus.STOPPED
    assert answer.content
    assert len(answer.content.split()) < 200
    assert chat.messages.filter(content="tell me a story").count() == 1


@pytest.mark.django_db(transaction=True)  # closing the response closes the connection
def test_a_closed_tab_keeps_the_text_so_far(bob_client, chat, start_mock_llm):
    slow = start_mock_llm(delay_ms=30, tokens=300)
    chat.model_config.api_url = slow.base_url
    chat.model_config.save()
    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="go")
    for count, (name, _data) in enumerate(iter_events(response)):
        if name == "delta" and count >= 4:
            break
    response.close()  # what the server does when the browser goes away
    answer = chat.messages.order_by("id").last()
    assert answer.status == MessageStatus.STOPPED
    assert answer.content.strip()


@pytest.mark.django_db
def test_an_error_mid_stream_keeps_the_partial_text_and_the_reason(bob_client, chat):
    chat.model_config.model = "mock-error_mid_stream"
    chat.model_config.save()
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    name, data = events[-1]
    assert name == "error"
    assert data["status"] == "error"
    answer = chat.messages.order_by("id").last()
    assert answer.status == MessageStatus.ERROR
    assert answer.content  # the deltas before the failure
    assert answer.error == data["error"]
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert answer.error.replace("'", "&#x27;") in page
    assert "Retry" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("mock-http_401", "The API key was refused by the provider."),
        ("mock-http_429", "The provider is rate limiting requests; try again shortly."),
        ("mock-http_500", "The model's server returned an error."),
    ],
)
def test_upstream_http_errors_become_a_readable_reason(bob_client, chat, model_id, reason):
    chat.model_config.model = model_id
    chat.model_config.save()
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert events[-1] == ("error", {**events[-1][1], "error": reason})
    user_message, answer = chat.messages.order_by("id")
    assert user_message.content == "hi"
    assert (answer.status, answer.error) == (MessageStatus.ERROR, reason)


@pytest.mark.django_db
def test_a_message_over_the_length_limit_is_refused_and_kept_in_the_composer(bob_client, chat):
    setting = get_system_setting()
    setting.max_message_chars = 20
    setting.save()
    text = "this message is far too long for the limit"
    response = bob_client.post(f"/chats/{chat.pk}/send/", {"content": text})
    assert response.status_code == 400
    html = response.content.decode()
    assert "the limit is 20" in html
    assert f">{text}</textarea>" in html
    assert not chat.messages.exists()
    streamed = stream_post(bob_client, f"/chats/{chat.pk}/send/", content=text)
    assert streamed.status_code == 400
    assert "the limit is 20" in streamed.json()["error"]


@pytest.mark.django_db
def test_a_message_that_cannot_fit_the_window_is_refused(bob_client, chat):
    chat.model_config.context_window = 300
    chat.model_config.max_output_tokens = 100
    chat.model_config.save()
    response = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "word " * 400})
    assert response.status_code == 400
    assert "Shorten it or choose a model with a larger window" in response.content.decode()
    assert not chat.messages.exists()


@pytest.mark.django_db
def test_the_rate_limit_answers_429_with_a_friendly_message(bob_client, chat):
    setting = get_system_setting()
    setting.messages_per_minute = 2
    setting.save()
    for n in range(2):
        assert bob_client.post(f"/chats/{chat.pk}/send/", {"content": f"m{n}"}).status_code == 302
    refused = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "third"})
    assert refused.status_code == 429
    assert "You can send 2 messages a minute." in refused.content.decode()
    assert ">third</textarea>" in refused.content.decode()
    assert chat.messages.count() == 4


@pytest.mark.django_db
def test_regenerate_replaces_the_last_answer(bob_client, chat):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "first question"})
    old_answer = chat.messages.order_by("id").last()
    response = bob_client.post(f"/chats/{chat.pk}/regenerate/")
    assert response.status_code == 302
    messages = list(chat.messages.order_by("id"))
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].pk != old_answer.pk
    assert messages[1].status == MessageStatus.COMPLETE
    chat.refresh_from_db()
    assert chat.message_count == 2


@pytest.mark.django_db
def test_edit_and_resend_replaces_the_last_exchange(bob_client, chat):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "one"})
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "tow"})
    response = bob_client.post(f"/chats/{chat.pk}/edit/", {"content": "two"})
    assert response.status_code == 302
    contents = [m.content for m in chat.messages.order_by("id") if m.role == "user"]
    assert contents == ["one", "two"]
    last = chat.messages.order_by("id").last()
    assert "Last user message: two" in last.content
    chat.refresh_from_db()
    assert chat.message_count == 4


@pytest.mark.django_db
def test_the_chat_page_says_what_the_next_context_holds(bob_client, chat):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "hello"})
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "0 earlier messages not sent" in page
    assert "tokens in context" in page


@pytest.mark.django_db
def test_the_sweep_marks_answers_of_a_dead_worker_interrupted(bob_client, chat):
    user = Message.objects.create(session=chat, role="user", content="hi", token_count=5)
    stale = Message.objects.create(
        session=chat, role="assistant", content="partial", status=MessageStatus.STREAMING
    )
    assert sweep_stale_streams() == 0  # still fresh: could be a live stream elsewhere
    call_command("sweep_streams", "--older-than", "0", stdout=open("/dev/null", "w"))  # noqa: SIM115
    stale.refresh_from_db()
    assert stale.status == MessageStatus.INTERRUPTED
    assert stale.content == "partial"
    user.refresh_from_db()
    assert user.status == MessageStatus.COMPLETE
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "interrupted" in page


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_streaming(bob, mock_model, start_mock_llm):
    slow = start_mock_llm(delay_ms=30, tokens=30)
    mock_model.api_url = slow.base_url
    mock_model.save()
    chat = ChatSession.objects.create(user=bob, model_config=mock_model)
    client = Client()
    client.force_login(bob)
    response = stream_post(client, f"/chats/{chat.pk}/send/", content="go")
    writes_done = []
    for name, _data in iter_events(response):
        if name == "delta" and not writes_done:
            assert not connection.in_atomic_block

            def writer() -> None:
                from django.db import connections

                # A concurrent writer with a short busy timeout: it must never wait.
                with connections["default"].cursor() as cursor:
                    if connection.vendor == "sqlite":
                        cursor.execute("PRAGMA busy_timeout = 100")
                ChatSession.objects.create(user=bob, title="written meanwhile")
                connections["default"].close()
                writes_done.append(True)

            thread = threading.Thread(target=writer)
            thread.start()
            thread.join(timeout=10)
    assert writes_done == [True]
    assert chat.messages.order_by("id").last().status == MessageStatus.COMPLETE


@pytest.mark.django_db
def test_sending_uses_the_same_queries_whatever_the_history(bob_client, bob, mock_model):
    from django.test.utils import CaptureQueriesContext

    get_system_setting()  # a warm settings cache, as on a running server
    counts = []
    for history in (4, 400):
        chat = ChatSession.objects.create(user=bob, model_config=mock_model)
        Message.objects.bulk_create(
            Message(
                session=chat,
                role="user" if n % 2 == 0 else "assistant",
                content=f"m{n}",
                token_count=300,
            )
            for n in range(history)
        )
        ChatSession.objects.filter(pk=chat.pk).update(message_count=history)
        with CaptureQueriesContext(connection) as captured:
            response = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "count me"})
        assert response.status_code == 302
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
    assert counts[1] <= 25


def test_a_lone_surrogate_from_the_upstream_cannot_break_the_save():
    from chat.streaming import clean_text

    assert clean_text("ok \ud83d end") == "ok \ufffd end"
    assert clean_text("emoji 😀 kept") == "emoji 😀 kept"


@pytest.mark.django_db
def test_a_failed_final_save_is_logged_and_raised(bob, chat, caplog, monkeypatch):
    from chat import services, streaming

    turn = services.begin_turn(session=chat, text="hello")
    stream = streaming.AnswerStream(turn)

    def broken_atomic(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(streaming.transaction, "atomic", broken_atomic)
    with pytest.raises(RuntimeError, match="disk full"):
        list(stream.events())
    assert f"could not save the answer {turn.placeholder.pk}" in caplog.text


@pytest.mark.django_db
def test_a_final_answer_is_rendered_once_and_the_page_reuses_it(bob_client, chat, monkeypatch):
    bob_client.post(f"/chats/{chat.pk}/send/", {"content": "**bold** please"})
    answer = chat.messages.order_by("id").last()
    assert answer.rendered_html.startswith("<!--parley-md:")
    assert "<strong>bold</strong>" in answer.rendered_html

    def no_rendering(text):
        raise AssertionError("the chat page rendered markdown again")

    monkeypatch.setattr("chat.markdown.render_markdown", no_rendering)
    monkeypatch.setattr("chat.markdown.render_markdown_cached", no_rendering)
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "<strong>bold</strong>" in page


@pytest.mark.django_db
def test_a_message_sent_while_an_answer_streams_is_refused_and_nothing_is_saved(bob_client, chat):
    Message.objects.create(session=chat, role="user", content="first", token_count=5)
    Message.objects.create(session=chat, role="assistant", status=MessageStatus.STREAMING)
    ChatSession.objects.filter(pk=chat.pk).update(message_count=2, title="Kept")

    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="second")

    assert response.status_code == 409
    assert "still being written" in response.json()["error"]
    chat.refresh_from_db()
    assert (chat.message_count, chat.title) == (2, "Kept")
    assert list(chat.messages.values_list("content", flat=True)) == ["first", ""]


@pytest.mark.django_db
def test_the_upstream_is_asked_before_the_message_is_saved(bob_client, chat, mock_llm, monkeypatch):
    from chat import streaming

    real_commit = streaming.commit_turn
    asked_before_save: list[bool] = []

    def asked() -> bool:
        return any(r.path.endswith("/chat/completions") for r in mock_llm.requests)

    def commit_after_the_upstream_is_asked(pending):
        for _ in range(500):
            if asked():
                break
            threading.Event().wait(0.01)
        asked_before_save.append(asked() and not Message.objects.filter(session=chat).exists())
        return real_commit(pending)

    monkeypatch.setattr(streaming, "commit_turn", commit_after_the_upstream_is_asked)
    events = parse_events(
        stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi").streaming_content
    )
    assert asked_before_save == [True]
    assert [name for name, _ in events][-1] == "done"
    assert list(chat.messages.values_list("role", "status")) == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


@pytest.mark.django_db
def test_a_refused_save_cancels_the_upstream_call_and_keeps_nothing(bob_client, chat, monkeypatch):
    from chat import streaming
    from chat.services import ChatRejected

    cancelled: list[bool] = []
    real_cancel = streaming.UpstreamCall.cancel

    def recording_cancel(call):
        cancelled.append(True)
        real_cancel(call)

    def refused(pending):
        raise ChatRejected("An answer is still being written.", status=409)

    monkeypatch.setattr(streaming.UpstreamCall, "cancel", recording_cancel)
    monkeypatch.setattr(streaming, "commit_turn", refused)
    response = stream_post(bob_client, f"/chats/{chat.pk}/send/", content="hi")
    assert response.status_code == 409
    assert cancelled == [True]
    assert not chat.messages.exists()


@pytest.mark.django_db
def test_the_context_sent_before_the_save_is_the_one_the_saved_turn_gives(chat):
    from chat.context import build_context
    from chat.services import commit_turn, prepare_turn

    history = [("user", "q" * 400), ("assistant", "a" * 400)] * 6
    for role, text in history:
        Message.objects.create(session=chat, role=role, content=text, token_count=60)
    ChatSession.objects.filter(pk=chat.pk).update(message_count=len(history))
    chat.refresh_from_db()
    model = chat.model_config
    model.context_window, model.max_output_tokens = 500, 100  # keeps only the newest few
    pending = prepare_turn(session=chat, text="the new question", client_id=None)

    before = build_context(chat, model, pending=("user", pending.text, pending.tokens))
    turn = commit_turn(pending)
    after = build_context(chat, model, before_id=turn.placeholder.pk)

    assert before == after
    assert before.messages[-1] == {"role": "user", "content": "the new question"}
    assert 0 < before.omitted < len(history)
