"""Chat pages: sidebar, paging, rename, delete, export, isolation and query budgets."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent
from chat.models import ChatSession, Message, MessageStatus
from chat.selectors import MESSAGE_PAGE_SIZE, SIDEBAR_PAGE_SIZE
from chat.services import make_title
from models_registry.models import ModelConfig


@pytest.fixture
def model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="Team GPT", api_url="https://93.184.216.34/v1", model="gpt", context_window=8192
    )


def make_chat(
    user, model, title: str = "A chat", messages: int = 0, tokens: int = 8, **fields
) -> ChatSession:
    chat = ChatSession.objects.create(user=user, model_config=model, title=title, **fields)
    Message.objects.bulk_create(
        Message(
            session=chat,
            role="user" if n % 2 == 0 else "assistant",
            content=f"message number {n}",
            token_count=tokens,
        )
        for n in range(messages)
    )
    ChatSession.objects.filter(pk=chat.pk).update(message_count=messages)
    chat.refresh_from_db()
    return chat


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Hello   world\n\n how are you", "Hello world how are you"),
        ("   \n\t ", "New chat"),
        ("x" * 100, "x" * 59 + "…"),
        (
            "Please explain the difference between processes and threads in Python",
            "Please explain the difference between processes and…",
        ),
        ("短标题", "短标题"),
        ("a\x00b\x1bc", "a b c"),  # control characters: PostgreSQL refuses a NUL in text
    ],
)
def test_titles_from_the_first_message(text, title):
    assert make_title(text) == title
    assert len(make_title(text)) <= 60


@pytest.mark.django_db
def test_sidebar_lists_newest_activity_first_with_load_more(bob_client, bob, model):
    now = timezone.now()
    for n in range(SIDEBAR_PAGE_SIZE + 5):
        chat = make_chat(bob, model, title=f"Chat {n:02d}")
        ChatSession.objects.filter(pk=chat.pk).update(updated_at=now - timedelta(minutes=n))
    page = bob_client.get("/").content.decode()
    assert page.index("Chat 00") < page.index("Chat 01")
    assert "Chat 34" not in page
    assert "Load more" in page
    more_url = page.split('class="button load-more" href="')[1].split('"')[0].replace("&amp;", "&")
    second = bob_client.get(more_url).content.decode()
    assert "Chat 34" in second
    assert "Chat 00" not in second
    assert "Load more" not in second


@pytest.mark.django_db
def test_sidebar_pages_walk_every_chat_once_across_equal_activity_times(bob, carol, model):
    """The keyset (updated_at, id) breaks ties by id: no chat is skipped or shown twice."""
    from chat.selectors import sidebar_page

    now = timezone.now()
    for n in range(SIDEBAR_PAGE_SIZE * 2 + 7):
        chat = make_chat(bob, model, title=f"Chat {n}")
        make_chat(carol, model, title=f"Carol {n}")
        # Groups of seven chats share one activity time, across page boundaries.
        ChatSession.objects.filter(pk=chat.pk).update(updated_at=now - timedelta(minutes=n // 7))
    expected = list(
        ChatSession.objects.filter(user=bob)
        .order_by("-updated_at", "-id")
        .values_list("pk", flat=True)
    )
    seen, cursor = [], ""
    while True:
        page = sidebar_page(bob, cursor=cursor)
        seen += [chat.pk for chat in page.sessions]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


@pytest.mark.django_db
def test_search_chats_by_title(bob_client, bob, model):
    make_chat(bob, model, title="Trip to Kyoto")
    make_chat(bob, model, title="Tax return")
    page = bob_client.get("/chats/", {"q": "kyoto"}).content.decode()
    assert "Trip to Kyoto" in page
    assert "Tax return" not in page
    assert 'name="q"' in page and 'aria-label="Search chats"' in page


@pytest.mark.django_db
def test_a_damaged_cursor_is_just_the_first_page(bob_client, bob, model):
    make_chat(bob, model, title="Still here")
    assert "Still here" in bob_client.get("/chats/", {"cursor": "%%%garbage"}).content.decode()


@pytest.mark.django_db
def test_the_chat_page_shows_the_latest_50_and_loads_earlier(bob_client, bob, model):
    chat = make_chat(bob, model, messages=120)
    page = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "message number 119" in page
    assert "message number 70" in page
    assert "message number 69<" not in page
    assert "Load earlier" in page
    first_shown = chat.messages.order_by("id")[70]
    earlier = bob_client.get(f"/chats/{chat.pk}/", {"before": first_shown.pk}).content.decode()
    assert "message number 69" in earlier and "message number 20" in earlier
    assert "message number 70<" not in earlier
    assert page.count('class="msg ') == MESSAGE_PAGE_SIZE


@pytest.mark.django_db
def test_rename_and_delete(bob_client, bob, model):
    chat = make_chat(bob, model, title="Old", messages=4)
    assert (
        bob_client.post(f"/chats/{chat.pk}/rename/", {"title": "  New  name "}).status_code == 302
    )
    chat.refresh_from_db()
    assert chat.title == "New name"
    blank = bob_client.post(f"/chats/{chat.pk}/rename/", {"title": "   "})
    assert blank.status_code == 400
    assert "A chat needs a title." in blank.content.decode()
    confirm = bob_client.get(f"/chats/{chat.pk}/delete/").content.decode()
    assert "Its 4 messages will be deleted." in confirm
    assert bob_client.post(f"/chats/{chat.pk}/delete/").status_code == 302
    assert not ChatSession.objects.filter(pk=chat.pk).exists()
    assert not Message.objects.filter(session_id=chat.pk).exists()
    event = AuditEvent.objects.get(action=AuditAction.CHAT_DELETE)
    assert event.detail == {"messages": 4}
    assert "message number" not in json.dumps(event.detail)


@pytest.mark.django_db
def test_export_as_markdown_and_json(bob_client, bob, model):
    chat = make_chat(bob, model, title="Kyoto plan", messages=2)
    Message.objects.create(
        session=chat, role="assistant", content="half", status=MessageStatus.STOPPED
    )
    md = bob_client.get(f"/chats/{chat.pk}/export.md")
    assert md["Content-Disposition"] == 'attachment; filename="kyoto-plan.md"'
    text = md.content.decode()
    assert text.startswith("# Kyoto plan")
    assert "## You\n\nmessage number 0" in text
    assert "_(Stopped)_" in text
    data = json.loads(bob_client.get(f"/chats/{chat.pk}/export.json").content)
    assert data["title"] == "Kyoto plan"
    assert [m["content"] for m in data["messages"]] == [
        "message number 0",
        "message number 1",
        "half",
    ]
    assert bob_client.get(f"/chats/{chat.pk}/export.pdf").status_code == 404
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("pk", ["0", str(2**63), "9" * 40])
def test_a_chat_id_no_row_can_have_is_a_404(bob_client, pk):
    assert bob_client.get(f"/chats/{pk}/").status_code == 404
    assert bob_client.post(f"/chats/{pk}/send/", {"content": "hi"}).status_code == 404


@pytest.mark.django_db
def test_bob_gets_404_on_every_url_and_action_of_alices_chat(bob_client, alice, model):
    chat = make_chat(alice, model, title="Alice's secret plans", messages=3)
    pk = chat.pk
    for method, url, data in [
        ("get", f"/chats/{pk}/", {}),
        ("get", f"/chats/{pk}/?before=999999", {}),
        ("post", f"/chats/{pk}/send/", {"content": "hi"}),
        ("post", f"/chats/{pk}/stop/", {}),
        ("post", f"/chats/{pk}/regenerate/", {}),
        ("post", f"/chats/{pk}/edit/", {"content": "changed"}),
        ("post", f"/chats/{pk}/rename/", {"title": "mine now"}),
        ("get", f"/chats/{pk}/delete/", {}),
        ("post", f"/chats/{pk}/delete/", {}),
        ("get", f"/chats/{pk}/export.md", {}),
        ("get", f"/chats/{pk}/export.json", {}),
    ]:
        response = getattr(bob_client, method)(url, data)
        assert response.status_code == 404, (method, url)
    streamed = bob_client.post(
        f"/chats/{pk}/send/", {"content": "hi"}, HTTP_ACCEPT="text/event-stream"
    )
    assert streamed.status_code == 404
    chat.refresh_from_db()
    assert chat.title == "Alice's secret plans"
    assert chat.messages.count() == 3
    for url in ("/", "/chats/", "/chats/?q=secret"):
        assert "secret plans" not in bob_client.get(url).content.decode()


@pytest.mark.django_db
def test_post_only_endpoints_refuse_get(bob_client, bob, model):
    chat = make_chat(bob, model)
    for action in ("send", "stop", "regenerate", "edit", "rename"):
        assert bob_client.get(f"/chats/{chat.pk}/{action}/").status_code == 405, action


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client, bob, model):
    chat = make_chat(bob, model)
    for url in ("/", "/chats/", f"/chats/{chat.pk}/", f"/chats/{chat.pk}/export.md"):
        assert client.get(url)["Location"].startswith("/accounts/login/"), url
    assert client.post(f"/chats/{chat.pk}/send/", {"content": "x"})["Location"].startswith(
        "/accounts/login/"
    )


@pytest.mark.django_db
def test_controls_carry_the_names_people_and_tests_look_for(bob_client, bob, model):
    chat = make_chat(bob, model, messages=2)
    html = bob_client.get(f"/chats/{chat.pk}/").content.decode()
    for name in ("Message", "Send", "Stop", "Regenerate", "New chat", "Rename", "Delete"):
        assert f">{name}<" in html or f'aria-label="{name}"' in html, name
    assert 'aria-label="Search chats"' in html
    new_page = bob_client.get("/").content.decode()
    assert '<select id="model-select" name="model"' in new_page


@pytest.mark.django_db
def test_a_chat_whose_model_was_deleted_stays_readable(bob_client, bob, model):
    chat = make_chat(bob, model, messages=2)
    model.delete()
    page = bob_client.get(f"/chats/{chat.pk}/")
    assert page.status_code == 200
    assert "model deleted" in page.content.decode()
    refused = bob_client.post(f"/chats/{chat.pk}/send/", {"content": "still there?"})
    assert refused.status_code == 409
    assert "Start a new chat with another model." in refused.content.decode()


def count_queries(client, method: str, url: str, **data) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, data)
        assert response.status_code in (200, 302), url
    return len(captured.captured_queries)


@pytest.mark.django_db
def test_query_budgets_do_not_grow_with_history(bob_client, bob, model):
    counts = {}
    for history in (10, 600):
        # Long messages: the 8k window holds ~35 of them, so the history beyond is never read.
        chat = make_chat(bob, model, messages=history, tokens=200)
        for n in range(history // 20):
            make_chat(bob, model, title=f"other {n}")
        bob_client.get(f"/chats/{chat.pk}/")  # warm the settings cache
        counts[history] = (
            count_queries(bob_client, "get", f"/chats/{chat.pk}/"),
            count_queries(bob_client, "get", "/chats/"),
            count_queries(bob_client, "get", f"/chats/{chat.pk}/", before=chat.messages.last().pk),
        )
    assert counts[10] == counts[600]
    chat_page, sidebar_page, earlier_page = counts[600]
    assert chat_page <= 10
    assert sidebar_page <= 5
    assert earlier_page <= 10
