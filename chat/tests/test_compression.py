"""Message text compressed at rest: transparent to every reader, smaller on disk, reversible."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.template.defaultfilters import linebreaksbr

from bench.corpus import build_corpus
from chat import compression
from chat.context import build_context
from chat.fields import PLAIN, ZLIB, pinned_threshold
from chat.markdown import render_markdown
from chat.models import ChatSession, Message, MessageStatus
from chat.tokens import count_message_tokens
from config.services import get_system_setting
from models_registry.models import ModelConfig

THRESHOLD = 1024  # SystemSetting's default
PREVIOUS_MIGRATION = "0002_send_path_fields"
LATEST_MIGRATION = "0003_message_text_compressed"

CORPUS = [sample.text for sample in build_corpus(40)]
FIVE_MB = ("\n\n".join(CORPUS) * 200)[: 5 * 1024 * 1024]  # characters: more bytes than that
EDGE_CASES = {
    "empty": "",
    "whitespace": " \n\t ",
    "at threshold": "a" * THRESHOLD,
    "one byte over": "a" * (THRESHOLD + 1),
    "2-byte chars at threshold": "é" * (THRESHOLD // 2),
    "4-byte chars one byte over": "😀" * (THRESHOLD // 4) + "x",
    "CJK and emoji": "你好世界。🌏👩‍💻 " * 200,
    "NUL inside": "before\x00after " * 200,
    "only NULs": "\x00" * 3000,
    "5 MB": FIVE_MB,
}
TEXTS = [*CORPUS, *EDGE_CASES.values()]


def raw_column(pk: int, column: str = "content") -> bytes:
    """The stored bytes, read past the ORM."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(column)} FROM chat_message WHERE id = %s",  # noqa: S608
            [pk],
        )
        return bytes(cursor.fetchone()[0])


def set_threshold(value: int) -> None:
    setting = get_system_setting()
    setting.compression_threshold_bytes = value
    setting.save()


@pytest.fixture
def model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="Team GPT",
        api_url="https://93.184.216.34/v1",
        model="gpt",
        context_window=200_000,
        max_output_tokens=1024,
    )


@pytest.fixture
def chat(bob, model) -> ChatSession:
    return ChatSession.objects.create(user=bob, model_config=model, title="Compression")


def add(chat: ChatSession, role: str, text: str, **fields) -> Message:
    message = Message.objects.create(
        session=chat,
        role=role,
        content=text,
        token_count=count_message_tokens(role, text),
        **fields,
    )
    ChatSession.objects.filter(pk=chat.pk).update(message_count=chat.messages.count())
    chat.refresh_from_db()
    return message


# -- round trips through the ORM ------------------------------------------------------------


@pytest.mark.django_db
def test_the_corpus_has_what_the_round_trips_claim_to_cover():
    """Otherwise the round trips below could pass on ASCII alone."""
    text = "".join(CORPUS)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert "```python" in text and "| --- |" in text
    assert sum(len(t.encode()) > THRESHOLD for t in CORPUS) >= 10


@pytest.mark.django_db
def test_save_and_refresh_round_trip(chat):
    for text in TEXTS:
        message = Message.objects.create(session=chat, role="user", content=text, reasoning=text)
        assert isinstance(message.content, str)
        message.refresh_from_db()
        assert message.content == text and message.reasoning == text
        assert type(message.content) is str


@pytest.mark.django_db
def test_bulk_create_values_list_and_update_round_trip(chat):
    created = Message.objects.bulk_create(
        Message(session=chat, role="assistant", content=text) for text in TEXTS
    )
    ids = [m.pk for m in created]
    assert (
        list(Message.objects.filter(pk__in=ids).order_by("id").values_list("content", flat=True))
        == TEXTS
    )
    assert [m["content"] for m in Message.objects.filter(pk__in=ids).values("content")] == TEXTS

    reversed_texts = TEXTS[::-1]
    for pk, text in zip(ids, reversed_texts, strict=True):
        assert Message.objects.filter(pk=pk).update(content=text, reasoning=text) == 1
    rows = Message.objects.filter(pk__in=ids).order_by("id").values_list("content", "reasoning")
    assert list(rows) == [(t, t) for t in reversed_texts]


@pytest.mark.django_db
def test_lone_surrogates_are_refused_as_the_drivers_refused_them_for_text(chat):
    with pytest.raises(UnicodeEncodeError), transaction.atomic():
        Message.objects.create(session=chat, role="assistant", content="broken \ud83d half")
    assert not Message.objects.exists()


# -- what is stored ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_long_values_are_stored_compressed_and_short_ones_plain(chat, name):
    text = EDGE_CASES[name]
    pk = Message.objects.create(session=chat, role="user", content=text).pk
    raw, utf8 = raw_column(pk), text.encode()
    if not text:
        assert raw == b""
    elif len(utf8) > THRESHOLD:
        assert raw[0] == ZLIB
        assert len(raw) < len(utf8)
    else:
        assert raw == bytes((PLAIN,)) + utf8


@pytest.mark.django_db
def test_corpus_messages_above_the_threshold_take_less_room(chat):
    long_texts = [t for t in CORPUS if len(t.encode()) > THRESHOLD]
    ids = [
        m.pk
        for m in Message.objects.bulk_create(
            Message(session=chat, role="assistant", reasoning=t) for t in long_texts
        )
    ]
    stored = sum(len(raw_column(pk, "reasoning")) for pk in ids)
    assert all(raw_column(pk, "reasoning")[0] == ZLIB for pk in ids)
    assert stored < 0.7 * sum(len(t.encode()) for t in long_texts)


@pytest.mark.django_db
def test_the_threshold_comes_from_the_settings_and_compression_must_pay(chat):
    set_threshold(0)
    tiny = Message.objects.create(session=chat, role="user", content="Hi").pk
    assert raw_column(tiny) == b"\x00Hi"  # zlib would make two bytes longer: kept plain
    repeated = Message.objects.create(session=chat, role="user", content="ab" * 40).pk
    assert raw_column(repeated)[0] == ZLIB

    set_threshold(10_000)
    long = Message.objects.create(session=chat, role="user", content="a" * 5000).pk
    assert raw_column(long)[0] == PLAIN


@pytest.mark.django_db
def test_sql_equality_finds_text_in_either_stored_form_and_nothing_else_is_allowed(chat):
    long = "x" * 3000
    empty = Message.objects.create(session=chat, role="user", content="").pk
    short = Message.objects.create(session=chat, role="user", content="short").pk
    compressed = Message.objects.create(session=chat, role="user", content=long).pk
    with pinned_threshold(2**31):
        plain = Message.objects.create(session=chat, role="user", content=long).pk
    assert raw_column(compressed)[0] == ZLIB and raw_column(plain)[0] == PLAIN

    def ids(**lookup: object) -> set[int]:
        return set(Message.objects.filter(**lookup).values_list("id", flat=True))

    assert ids(content="") == {empty}
    assert ids(content="short") == {short}
    assert ids(content=long) == {compressed, plain}
    assert ids(content="x" * 2999) == set()
    assert set(Message.objects.exclude(content="").values_list("id", flat=True)) == {
        short,
        compressed,
        plain,
    }
    for lookup in ("content__icontains", "content__startswith", "content__gt", "content__in"):
        with pytest.raises(FieldError):
            ids(**{lookup: "x"})
    with pytest.raises(FieldError, match="compressed"):
        ids(content=F("reasoning"))


# -- readers see the same text ----------------------------------------------------------


def readable_texts() -> tuple[str, str]:
    """A long user message and a long markdown answer, both above the threshold."""
    question = next(t for t in CORPUS if len(t.encode()) > 3 * THRESHOLD and "```" in t)
    answer = "## 答案 😀\n\n" + "\n\n".join(t for t in CORPUS if "| --- |" in t)
    return question, answer


@pytest.mark.django_db
def test_chat_page_shows_the_stored_text(bob_client, chat):
    question, answer = readable_texts()
    user = add(chat, "user", question)
    bot = add(chat, "assistant", answer)
    assert raw_column(user.pk)[0] == ZLIB and raw_column(bot.pk)[0] == ZLIB

    html = bob_client.get(f"/chats/{chat.pk}/").content.decode()

    assert str(linebreaksbr(question, autoescape=True)) in html
    assert str(render_markdown(answer)) in html


@pytest.mark.django_db
def test_exports_carry_the_stored_text(bob_client, chat):
    question, answer = readable_texts()
    add(chat, "user", question)
    add(chat, "assistant", answer)

    data = json.loads(bob_client.get(f"/chats/{chat.pk}/export.json").content)
    assert [m["content"] for m in data["messages"]] == [question, answer]
    markdown = bob_client.get(f"/chats/{chat.pk}/export.md").content.decode()
    assert f"## You\n\n{question}\n" in markdown
    assert f"## Assistant\n\n{answer}\n" in markdown


@pytest.mark.django_db
def test_the_context_sends_the_stored_text(chat, model):
    question, answer = readable_texts()
    add(chat, "user", question)
    add(chat, "assistant", answer)
    add(chat, "user", "继续")

    context = build_context(chat, model)

    assert context.messages == [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "继续"},
    ]


@pytest.mark.django_db
def test_the_context_skips_empty_answers_in_sql(chat, model, django_assert_num_queries):
    question, _answer = readable_texts()
    add(chat, "user", question)
    add(chat, "assistant", "")  # failed before its first token
    add(chat, "user", "again?")
    add(chat, "assistant", "", status=MessageStatus.STOPPED)

    with django_assert_num_queries(1) as captured:
        context = build_context(chat, model)

    assert [m["content"] for m in context.messages] == [question, "again?"]
    window_query = captured.captured_queries[0]["sql"]
    assert "content <>" in window_query.split(" WHERE ")[1]  # the empty test is in SQL


# -- manage.py compress_messages --------------------------------------------------------


def plain_rows(chat: ChatSession) -> dict[int, tuple[str, str]]:
    """Messages written while compression was effectively off, as a pre-upgrade DB has them."""
    texts = [*CORPUS[:12], "short", "", "a" * (THRESHOLD + 1), "a" * THRESHOLD]
    with pinned_threshold(2**31):
        rows = Message.objects.bulk_create(
            Message(session=chat, role="assistant", content=t, reasoning=t[::-1]) for t in texts
        )
    return {m.pk: (m.content, m.reasoning) for m in rows}


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("compress_messages", *args, stdout=out)
    return out.getvalue()


def stored(ids) -> dict[int, tuple[bytes, bytes]]:
    return {pk: (raw_column(pk), raw_column(pk, "reasoning")) for pk in ids}


@pytest.mark.django_db
def test_command_compresses_long_plain_rows_in_batches(chat):
    rows = plain_rows(chat)
    assert all(raw[0] == PLAIN for pair in stored(rows).values() for raw in pair if raw)

    output = run_command("--batch-size", "3")

    after = stored(rows)
    long_values = 0
    for pk, texts in rows.items():
        for text, raw in zip(texts, after[pk], strict=True):
            if len(text.encode()) > THRESHOLD:
                long_values += 1
                assert raw[0] == ZLIB and len(raw) < len(text.encode())
            else:
                assert raw == (bytes((PLAIN,)) + text.encode() if text else b"")
    assert {pk: (m.content, m.reasoning) for pk, m in Message.objects.in_bulk(rows).items()} == rows
    assert "batch 1: up to message" in output and "batch 2:" in output
    rewritten = sum(any(len(t.encode()) > THRESHOLD for t in texts) for texts in rows.values())
    assert f"Rewrote {rewritten} message(s) ({long_values} value(s))" in output


@pytest.mark.django_db
def test_command_is_idempotent(chat):
    rows = plain_rows(chat)
    run_command()
    before = stored(rows)

    output = run_command()

    assert stored(rows) == before
    assert "Rewrote 0 message(s)" in output


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_says_what_it_would_do(chat):
    rows = plain_rows(chat)
    before = stored(rows)

    output = run_command("--dry-run")

    assert stored(rows) == before
    assert "would compress" in output and "Dry run: would rewrite" in output
    assert "Dry run: would rewrite 0 message(s)" not in output


@pytest.mark.django_db
def test_command_leaves_a_row_edited_meanwhile_alone(chat, monkeypatch):
    """A streaming answer's partial save must not be overwritten with the older text."""
    pk = Message.objects.create(
        session=chat, role="assistant", content="old " * 1000, reasoning=""
    ).pk
    Message.objects.filter(pk=pk).update(content="")  # reset, then store plain:
    with pinned_threshold(2**31):
        Message.objects.filter(pk=pk).update(content="old " * 1000)
    real_unpack = compression.unpack_text

    def unpack_then_edit(stored_value: bytes) -> str:
        text = real_unpack(stored_value)
        Message.objects.filter(pk=pk).update(content="new " * 1000)
        return text

    monkeypatch.setattr(compression, "unpack_text", unpack_then_edit)

    output = run_command()

    assert Message.objects.get(pk=pk).content == "new " * 1000
    assert "changed while this ran" in output


# -- the migration ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_reverses_to_text_and_forward_again_keeping_data(bob):
    chat = ChatSession.objects.create(user=bob, title="Migrated")
    texts = [*CORPUS[:6], "", "short", "a" * 5000, "中文😀" * 400, "NUL\x00inside"]
    ids = [
        Message.objects.create(session=chat, role="user", content=t, reasoning=t[:50]).pk
        for t in texts
    ]
    assert any(raw_column(pk)[0] == ZLIB for pk in ids)
    nul_back = "\ufffd" if connection.vendor == "postgresql" else "\x00"  # text holds no NUL
    expected = [t.replace("\x00", nul_back) for t in texts]
    try:
        call_command("migrate", "chat", PREVIOUS_MIGRATION, verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT content, reasoning FROM chat_message ORDER BY id")
            back = cursor.fetchall()
        assert back == [(t, t[:50]) for t in expected]
        assert all(type(c) is str for c, _r in back)
    finally:
        call_command("migrate", verbosity=0)

    assert list(Message.objects.order_by("id").values_list("content", "reasoning")) == [
        (t, t[:50]) for t in expected
    ]
    assert all(raw_column(pk)[0] == PLAIN for pk, t in zip(ids, texts, strict=True) if t)
    assert raw_column(ids[texts.index("")]) == b""
    assert Message.objects.filter(pk__in=ids).exclude(content="").count() == len(ids) - 1
