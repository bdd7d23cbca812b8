"""Search over chat titles and message text: what it finds, for whom, and the index
following every write (send, answer, edit, regenerate, delete, clean-up, rebuild)."""

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import importlib
import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import search, services
from chat.fields import ZLIB, stored_kind
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from chat.selectors import MESSAGE_PAGE_SIZE
from chat.streaming import run_to_completion, sweep_stale_streams
from config.cleanup import run_cleanup
from config.services import get_system_setting
from models_registry.models import ModelConfig

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's FTS5 tables")

CHINESE_LONG = (
    "我们今天讨论数据库的备份和恢复。首先需要检查配置文件，然后运行迁移。"
    "在这种情况下，连接池的大小非常重要，超时时间也需要调整。"
) * 40  # ~7 KB of UTF-8: far above the compression threshold
HIDDEN_WORD = "雪豹"  # "snow leopard": once, in the middle of the long text
SPECIAL_QUERIES = [
    '"',
    '""',
    '"unbalanced',
    "AND",
    "a AND b OR NOT c",
    "*",
    "abc*",
    "NEAR(abc def)",
    "body:abc",
    "^abc",
    "-abc",
    "(abc",
    "%",
    "_",
    "\\",
    "'; DROP TABLE chat_message; --",
    "x\x00y",
    "\x00",
    "\x00\x00\x00",
    "\ufffd\u200b",
    "a" * 5000,
]


@pytest.fixture(autouse=True)
def _no_purge_left_over(request):
    """Start with an empty purge queue: a transactional test elsewhere may have left one
    (Django's flush deletes messages, and so fills it; the queue is not a model table)."""
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
        search.purge_all_deleted()


@pytest.fixture
def model(mock_llm) -> ModelConfig:
    model = ModelConfig(
        name="Mock", api_url=mock_llm.base_url, model="mock-model", context_window=8192
    )
    model.set_api_key("sk-mock-0000")
    model.save()
    return model


def new_chat(user, model, title: str = "") -> ChatSession:
    return ChatSession.objects.create(user=user, model_config=model, title=title)


def send(chat: ChatSession, text: str, *, answer: bool = False) -> services.Turn:
    """The real path: commit_turn saves (and indexes) the user's message."""
    turn = services.begin_turn(session=chat, text=text)
    if answer:
        run_to_completion(turn)
    else:  # leave no streaming placeholder behind, so the next turn may start
        Message.objects.filter(pk=turn.placeholder.pk).update(status=MessageStatus.STOPPED)
    return turn


def stored_messages(chat: ChatSession, texts: list[str], role: str = "user") -> list[Message]:
    """Messages written directly, then indexed as stored (a rebuild reads them this way)."""
    rows = Message.objects.bulk_create(
        Message(session=chat, role=role, content=text) for text in texts
    )
    search.index_stored(Message.objects.filter(pk__in=[m.pk for m in rows]))
    return rows


def found(user, query: str) -> list[int]:
    return [
        hit.message_id
        for hit in search.find_messages(user.pk, query, page_size=MESSAGE_PAGE_SIZE).hits
    ]


def fts_rowids(word: str) -> set[int]:
    """What the SQLite FTS index itself still holds for ``word``, user or not."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rowid FROM chat_message_fts WHERE chat_message_fts MATCH %s",
            [search._fts_expression(word)],
        )
        return {row[0] for row in cursor.fetchall()}


def waiting_purge() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM chat_message_search_purge")
        return cursor.fetchone()[0]


def raw_content(pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM chat_message WHERE id = %s", [pk])
        return bytes(cursor.fetchone()[0])


# -- What it finds ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_chinese_word_inside_a_long_compressed_message_is_found(bob_client, bob, model):
    assert get_system_setting().compression_threshold_bytes < len(CHINESE_LONG.encode())
    middle = len(CHINESE_LONG) // 2
    text = CHINESE_LONG[:middle] + HIDDEN_WORD + CHINESE_LONG[middle:]
    chat = new_chat(bob, model, title="备份计划")
    turn = send(chat, text)
    assert stored_kind(raw_content(turn.user_message.pk)) == ZLIB  # SQL sees only zlib bytes

    assert found(bob, HIDDEN_WORD) == [turn.user_message.pk]
    html = bob_client.get("/chats/", {"q": HIDDEN_WORD}).content.decode()
    assert f"<mark>{HIDDEN_WORD}</mark>" in html
    assert f'href="/chats/{chat.pk}/#message-{turn.user_message.pk}"' in html
    snippet = re.search(r'<span class="search-snippet">(.*?)</span>', html, re.S).group(1)
    assert len(snippet) < 400  # a snippet, not the 7 KB message


@pytest.mark.django_db
def test_an_english_word_in_a_title_is_found(bob_client, bob, model):
    chat = new_chat(bob, model, title="Packing list for Kyoto")
    new_chat(bob, model, title="Tax return")
    html = bob_client.get("/chats/", {"q": "kyoto"}).content.decode()
    assert "In chat titles" in html
    title = '<span class="search-hit-title">Packing list for <mark>Kyoto</mark></span>'
    assert f'<a href="/chats/{chat.pk}/">{title}</a>' in html
    assert "Tax return" not in html


@pytest.mark.django_db
def test_another_users_message_is_never_found(bob_client, alice, bob, model):
    alices = new_chat(alice, model, title="Alice's plans")
    secret = send(alices, "the launch code is zebra-quartz " + CHINESE_LONG)
    bobs = new_chat(bob, model, title="Bob's notes")
    mine = send(bobs, "my own zebra-quartz note")

    assert found(bob, "zebra-quartz") == [mine.user_message.pk]
    assert found(alice, "zebra-quartz") == [secret.user_message.pk]
    assert found(bob, "数据库") == []  # only alice wrote it
    assert found(bob, "库") == []  # the short-query scan is scoped too
    html = bob_client.get("/chats/", {"q": "zebra"}).content.decode()
    assert "launch code" not in html and "Alice" not in html
    assert "my own <mark>zebra</mark>-quartz note" in html
    # A forged cursor cannot reach past the user either.
    html = bob_client.get("/chats/", {"q": "launch", "before": "99999999999999999999"})
    assert html.status_code == 200 and "launch code" not in html.content.decode()


@pytest.mark.django_db
def test_a_hit_shows_an_escaped_snippet_around_the_match(bob_client, bob, model):
    chat = new_chat(bob, model, title="<b>bold</b> title")
    filler = "lorem ipsum dolor " * 20
    send(chat, filler + "<script>alert(1)</script> the NEEDLE is here & there " + filler)
    html = bob_client.get("/chats/", {"q": "needle"}).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; the <mark>NEEDLE</mark> is here &amp; there" in html
    )
    assert "&lt;b&gt;bold&lt;/b&gt; title" in html
    snippet = re.search(r'<span class="search-snippet">(.*?)</span>', html, re.S).group(1)
    assert snippet.startswith("… ") and snippet.endswith(" …")


@pytest.mark.django_db
def test_a_hit_older_than_the_chat_page_links_to_the_page_around_it(bob_client, bob, model):
    chat = new_chat(bob, model, title="Long")
    rows = stored_messages(chat, [f"message {n}" for n in range(120)])
    # (Rewriting indexed text is not something Parley does: the rebuild catches up.)
    Message.objects.filter(pk=rows[60].pk).update(content="the old needle")
    Message.objects.filter(pk=rows[110].pk).update(content="the new needle")
    call_command("rebuild_search_index", stdout=io.StringIO())
    hits = {h.message_id: h.url for h in search.find_messages(bob.pk, "needle", page_size=50).hits}
    assert hits[rows[110].pk] == f"/chats/{chat.pk}/#message-{rows[110].pk}"  # on the newest page
    old_url = hits[rows[60].pk]
    assert old_url == f"/chats/{chat.pk}/?before={rows[85].pk}#message-{rows[60].pk}"
    page = bob_client.get(old_url.split("#")[0]).content.decode()
    # The hit mid-page: 25 older messages before it, 24 newer after it.
    assert f'id="message-{rows[60].pk}"' in page
    assert f'id="message-{rows[35].pk}"' in page and f'id="message-{rows[34].pk}"' not in page
    assert f'id="message-{rows[84].pk}"' in page and f'id="message-{rows[85].pk}"' not in page
    assert page.count('class="msg ') == MESSAGE_PAGE_SIZE


@pytest.mark.django_db
def test_older_matches_page_by_message_cursor(bob_client, bob, model, monkeypatch):
    monkeypatch.setattr(search, "RESULT_LIMIT", 3)
    chat = new_chat(bob, model, title="Many")
    rows = stored_messages(chat, [f"match number {n}" for n in range(5)])
    first = search.find_messages(bob.pk, "match", page_size=50)
    assert [h.message_id for h in first.hits] == [m.pk for m in reversed(rows[2:])]
    assert first.older_cursor == rows[2].pk and not first.budget_spent
    html = bob_client.get("/chats/", {"q": "match"}).content.decode()
    assert "Showing the newest 3 matching messages." in html
    assert f"?q=match&amp;before={rows[2].pk}" in html
    older = bob_client.get("/chats/", {"q": "match", "before": rows[2].pk}).content.decode()
    assert "<mark>match</mark> number 1" in older and "<mark>match</mark> number 0" in older
    assert "<mark>match</mark> number 2" not in older and "Older matches" not in older


@pytest.mark.django_db
def test_one_and_two_character_queries_find_every_message(bob_client, bob, model):
    chat = new_chat(bob, model, title="猫 and Go")
    middle, end, alone, latin = stored_messages(
        chat, ["一只猫在睡觉", "我们去北京", "猫", "say hi"]
    )
    stored_messages(chat, [f"filler {n}" for n in range(30)])
    assert found(bob, "猫") == [alone.pk, middle.pk]
    assert found(bob, "北京") == [end.pk]  # the last two characters of a message
    assert found(bob, "HI") == [latin.pk]
    assert found(bob, "狗") == []
    html = bob_client.get("/chats/", {"q": "猫"}).content.decode()
    assert "<mark>猫</mark> and Go" in html  # the title
    assert html.count('class="search-hit"') == 3
    assert "Too many words start with" not in html


@sqlite_only
@pytest.mark.django_db
def test_a_too_broad_short_query_scans_the_newest_messages(bob_client, bob, model, monkeypatch):
    chat = new_chat(bob, model, title="t")
    (old,) = stored_messages(chat, ["一只猫在睡觉"])
    stored_messages(chat, ["filler 1", "filler 2"])
    monkeypatch.setattr(search, "MAX_PREFIX_TERMS", 0)  # any term is too many now
    assert found(bob, "猫") == [old.pk]  # read the newest MAX_CANDIDATES (1,000) instead
    monkeypatch.setattr(search, "MAX_CANDIDATES", 2)
    matches = search.find_messages(bob.pk, "猫", page_size=50)
    assert matches.hits == [] and matches.scanned and matches.budget_spent
    html = bob_client.get("/chats/", {"q": "猫"}).content.decode()
    assert "Too many words start with “猫” for the index" in html
    assert "your newest 2 messages only" in html
    assert "Looked through your newest 2 messages that might match" in html
    older = bob_client.get("/chats/", {"q": "猫", "before": matches.older_cursor})
    assert "一只<mark>猫</mark>在睡觉" in older.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("query", SPECIAL_QUERIES)
def test_fts_syntax_and_odd_characters_never_break_the_page(bob_client, bob, model, query):
    chat = new_chat(bob, model, title="odd")
    stored_messages(chat, ['he said "quoted AND *star*" (NEAR) 100% \\ done'])
    response = bob_client.get("/chats/", {"q": query})
    assert response.status_code == 200
    assert bob_client.get("/", {"q": query}).status_code == 200


@pytest.mark.django_db
def test_fts_syntax_in_a_query_is_searched_as_text(bob, model):
    chat = new_chat(bob, model, title="odd")
    (message,) = stored_messages(chat, ['he said "quoted AND *star*" (NEAR) 100% \\ done'])
    for query in ['"quoted AND *star*"', "AND *st", "(NEAR)", "100% \\", 'd "quo']:
        assert found(bob, query) == [message.pk], query
    for query in ["quoted star", "100%%", "NEAR quoted"]:
        assert found(bob, query) == [], query


@pytest.mark.django_db
def test_the_search_page_query_count_does_not_grow_with_the_results(bob_client, bob, model):
    get_system_setting()  # a warm settings cache, as on a running server
    counts = {}
    for matches in (3, 40):
        user_marker = f"marker{matches}x"
        for n in range(matches):
            chat = new_chat(bob, model, title=f"{user_marker} chat {n}")
            stored_messages(chat, [f"question {n} with {user_marker}", "answer"])
        with CaptureQueriesContext(connection) as captured:
            response = bob_client.get("/chats/", {"q": user_marker})
        assert response.status_code == 200
        assert response.content.decode().count('class="search-hit"') == 2 * matches
        counts[matches] = len(captured.captured_queries)
    assert counts[3] == counts[40]
    assert counts[40] <= 5  # session, user, sidebar, titles, one read of candidates


# -- The index follows every write ------------------------------------------------------------


@pytest.mark.django_db
def test_the_index_follows_a_send_and_the_final_answer(bob, model):
    chat = new_chat(bob, model)
    turn = send(chat, "tell me about marmalade", answer=True)
    assert search.indexed_message_ids([turn.user_message.pk, turn.placeholder.pk]) == {
        turn.user_message.pk,
        turn.placeholder.pk,
    }
    # The mock model repeats the user's message in its answer.
    assert found(bob, "marmalade") == [turn.placeholder.pk, turn.user_message.pk]


@pytest.mark.django_db
def test_a_streaming_answer_is_indexed_only_when_final(bob, model):
    chat = new_chat(bob, model)
    turn = services.begin_turn(session=chat, text="question")
    Message.objects.filter(pk=turn.placeholder.pk).update(content="partial pelican text")
    assert found(bob, "pelican") == []
    # A worker died: the sweep marks the answer interrupted, and its text is final now.
    Message.objects.filter(pk=turn.placeholder.pk).update(
        updated_at=timezone.now() - timedelta(minutes=5)
    )
    assert sweep_stale_streams(session=chat) == 1
    assert found(bob, "pelican") == [turn.placeholder.pk]


@pytest.mark.django_db
def test_the_index_follows_an_edit(bob, model):
    chat = new_chat(bob, model)
    first = send(chat, "the first draft mentions walrus")
    assert found(bob, "walrus") == [first.user_message.pk]
    edited = services.begin_edit(session=chat, text="the second draft mentions narwhal")
    assert found(bob, "walrus") == []
    assert found(bob, "narwhal") == [edited.user_message.pk]
    assert search.indexed_message_ids([first.user_message.pk]) == set()
    if connection.vendor == "sqlite":
        assert fts_rowids("walrus") == set() and waiting_purge() == 0


@pytest.mark.django_db
def test_the_index_follows_a_regenerate(bob, model):
    chat = new_chat(bob, model)
    turn = send(chat, "question about otters", answer=True)
    assert turn.placeholder.pk in found(bob, "otters")
    services.begin_regenerate(session=chat)
    assert found(bob, "otters") == [turn.user_message.pk]  # the old answer is gone
    if connection.vendor == "sqlite":
        assert fts_rowids("otters") == {turn.user_message.pk} and waiting_purge() == 0


@pytest.mark.django_db
def test_the_index_follows_a_message_delete_whatever_the_path(bob, model):
    chat = new_chat(bob, model)
    (message,) = stored_messages(chat, ["delete me: ocelot"])
    Message.objects.filter(pk=message.pk).delete()  # no service: the trigger still sees it
    assert found(bob, "ocelot") == []
    assert search.indexed_message_ids([message.pk]) == set()
    if connection.vendor == "sqlite":
        assert waiting_purge() == 1 and fts_rowids("ocelot") == {message.pk}
        assert search.purge_deleted() == 1
        assert waiting_purge() == 0 and fts_rowids("ocelot") == set()


@pytest.mark.django_db
def test_the_index_follows_a_chat_delete(bob, model):
    chat = new_chat(bob, model, title="doomed")
    kept = new_chat(bob, model, title="kept")
    gone = send(chat, "a chat about capybaras " + CHINESE_LONG, answer=True)
    stays = send(kept, "another chat about capybaras")
    services.chat_delete(session=chat, actor=bob)
    assert found(bob, "capybaras") == [stays.user_message.pk]
    assert search.indexed_message_ids([gone.user_message.pk, gone.placeholder.pk]) == set()
    if connection.vendor == "sqlite":
        assert fts_rowids("capybaras") == {stays.user_message.pk}
        assert fts_rowids("数据库") == set() and waiting_purge() == 0


@pytest.mark.django_db
def test_the_index_follows_retention_clean_up(bob, model):
    setting = get_system_setting()
    setting.chat_retention_days = 30
    setting.save()
    old = new_chat(bob, model, title="old")
    recent = new_chat(bob, model, title="recent")
    expired = stored_messages(old, ["an idle chat about tapirs"] * 3)
    live = stored_messages(recent, ["a live chat about tapirs"])
    ChatSession.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=40))
    report = run_cleanup(vacuum=False, batch_size=1)
    assert report.chats == 1 and report.messages == 3
    assert found(bob, "tapirs") == [live[0].pk]
    assert search.indexed_message_ids([m.pk for m in expired]) == set()
    if connection.vendor == "sqlite":
        assert fts_rowids("tapirs") == {live[0].pk} and waiting_purge() == 0


@pytest.mark.django_db
def test_an_api_conversation_kept_as_a_chat_is_indexed(bob, model, mock_llm):
    from django.test import Client

    from accounts.api_tokens import create_api_token

    bob.store_api_chats = True
    bob.save(update_fields=["store_api_chats"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user=bob, name='t')[1]}")
    body = {"model": "mock", "messages": [{"role": "user", "content": "What about axolotls?"}]}
    response = client.post("/v1/chat/completions", body, content_type="application/json")
    assert response.status_code == 200
    chat = ChatSession.objects.get(user=bob)
    ids = list(chat.messages.values_list("id", flat=True))
    assert found(bob, "axolotls") == ids[::-1]  # the question and the echoing answer


@pytest.mark.django_db
def test_the_rebuild_command_restores_an_emptied_index(bob, alice, model):
    chat = new_chat(bob, model)
    turn = send(chat, "rebuild me: pangolin " + CHINESE_LONG, answer=True)
    theirs = send(new_chat(alice, model), "alice's pangolin")
    search.reset_index()
    assert found(bob, "pangolin") == [] and found(bob, "数据库") == []

    dry = io.StringIO()
    call_command("rebuild_search_index", "--dry-run", stdout=dry)
    assert "Dry run: would index 3 of 4 messages (1 empty" in dry.getvalue()  # alice's answer
    assert found(bob, "pangolin") == []

    out = io.StringIO()
    call_command("rebuild_search_index", "--batch-size", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("batch 1: up to message ")
    assert len([line for line in lines if line.startswith("batch ")]) == 2
    assert lines[-1].startswith("Indexed 3 of 4 messages (1 empty or still streaming) in ")
    assert found(bob, "pangolin") == [turn.placeholder.pk, turn.user_message.pk]
    assert found(bob, "数据库") == [turn.placeholder.pk, turn.user_message.pk]
    assert found(alice, "pangolin") == [theirs.user_message.pk]
    # Running it again changes nothing.
    call_command("rebuild_search_index", stdout=io.StringIO())
    assert found(bob, "pangolin") == [turn.placeholder.pk, turn.user_message.pk]


@pytest.mark.django_db
def test_the_upgrade_migration_indexes_the_existing_history(bob, alice, model, monkeypatch):
    from types import SimpleNamespace

    from django.apps import apps

    migration = importlib.import_module("chat.migrations.0007_index_existing_messages")
    monkeypatch.setattr(migration, "BATCH", 2)
    mine, theirs = new_chat(bob, model), new_chat(alice, model)
    old = Message.objects.bulk_create(
        [
            Message(session=mine, role="user", content="an old question about herons"),
            Message(session=mine, role="assistant", content="HERONS: " + CHINESE_LONG),
            Message(session=theirs, role="user", content="alice's herons"),
            Message(session=mine, role="assistant", content="", status=MessageStatus.ERROR),
            Message(session=mine, role="assistant", content="herons…", status="streaming"),
        ]
    )
    assert found(bob, "herons") == []  # written before search existed
    migration.index_existing(apps, SimpleNamespace(connection=connection))
    assert found(bob, "herons") == [old[1].pk, old[0].pk]
    assert found(bob, "数据库") == [old[1].pk]
    assert found(alice, "herons") == [old[2].pk]
    assert search.indexed_message_ids([m.pk for m in old]) == {old[0].pk, old[1].pk, old[2].pk}


def test_the_rebuild_command_refuses_a_bad_batch_size():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        call_command("rebuild_search_index", "--batch-size", "0")


@pytest.mark.django_db
def test_indexing_twice_is_harmless(bob, model):
    chat = new_chat(bob, model)
    (message,) = stored_messages(chat, ["twice: quokka"])
    assert search.index_messages([(message.pk, chat.pk, bob.pk, message.content)]) == 1
    assert found(bob, "quokka") == [message.pk]
    message.delete()
    search.purge_deleted()
    assert found(bob, "quokka") == []


@pytest.mark.django_db
def test_nul_characters_are_indexed_as_spaces(bob, model):
    chat = new_chat(bob, model)
    (message,) = stored_messages(chat, ["before\x00after nul"])
    assert found(bob, "after nul") == [message.pk]
    message.delete()
    search.purge_deleted()
    assert found(bob, "after") == []


@pytest.mark.django_db
def test_the_delete_triggers_exist():
    """Django rebuilds a SQLite table for most ALTERs, dropping its triggers: a migration
    that alters chat_message must create chat_message_search_forget again."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                ["chat_message"],
            )
            assert {row[0] for row in cursor.fetchall()} == {"chat_message_search_forget"}
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'chat_message'::regclass "
                "AND NOT tgisinternal"
            )
            assert {row[0] for row in cursor.fetchall()} == {
                "chat_message_search_forget",
                "chat_message_search_truncate",
            }


@sqlite_only
@pytest.mark.django_db
def test_a_failed_purge_is_logged_and_does_not_block_the_delete(bob, model, caplog):
    chat = new_chat(bob, model)
    (message,) = stored_messages(chat, ["corrupt me"])
    message.delete()
    with connection.cursor() as cursor:  # a damaged stored value: cannot be decompressed
        cursor.execute("UPDATE chat_message_search_purge SET content = X'01ffff'")
    assert search.purge_deleted() == 1
    assert "could not purge 1 deleted messages" in caplog.text
    assert waiting_purge() == 0


@pytest.mark.django_db
def test_bob_never_sees_search_results_anonymously(client):
    assert client.get("/chats/", {"q": "anything"})["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_send_path_indexes_in_one_statement(bob, model):
    chat = new_chat(bob, model)
    pending = services.prepare_turn(session=chat, text="counted")
    with CaptureQueriesContext(connection) as captured:
        services.commit_turn(pending)
    search_writes = [
        q["sql"] for q in captured.captured_queries if "chat_message_search" in q["sql"]
    ]
    assert len(search_writes) == 1 and search_writes[0].startswith("INSERT")
    assert found(bob, "counted")


@pytest.mark.django_db
def test_roles_are_labelled_in_results(bob_client, bob, model):
    chat = new_chat(bob, model, title="t")
    stored_messages(chat, ["user says gecko"])
    stored_messages(chat, ["assistant says gecko"], role=MessageRole.ASSISTANT)
    html = bob_client.get("/chats/", {"q": "gecko"}).content.decode()
    assert '<span class="search-hit-role muted">You</span>' in html
    assert '<span class="search-hit-role muted">Assistant</span>' in html
