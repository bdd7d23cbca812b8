"""`manage.py cleanup`: retention deletes exactly what expired, a dry run changes nothing,
and the SQLite file really shrinks after a large delete."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent, User
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from config import cleanup
from config.services import get_system_setting
from config.tests.test_settings_env import run_manage

DAY = timedelta(days=1)
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite file upkeep; the subprocess runs SQLite anyway"
)


def set_retention(*, chats: int, audit: int) -> None:
    setting = get_system_setting()
    setting.chat_retention_days = chats
    setting.audit_retention_days = audit
    setting.save()


def make_chat(user: User, *, idle: timedelta, messages: int = 2) -> ChatSession:
    chat = ChatSession.objects.create(user=user, title="t", message_count=messages)
    Message.objects.bulk_create(
        Message(session=chat, role=MessageRole.USER, content=f"m{i}") for i in range(messages)
    )
    # update() leaves auto_now alone: this is how long the chat has been idle.
    ChatSession.objects.filter(pk=chat.pk).update(updated_at=timezone.now() - idle)
    return chat


def make_event(age: timedelta, action: AuditAction = AuditAction.LOGIN) -> AuditEvent:
    event = AuditEvent.objects.create(action=action, target="someone")
    # The append-only queryset refuses update(); the plain one backdates a test's own row.
    QuerySet.update(AuditEvent.objects.filter(pk=event.pk), created_at=timezone.now() - age)
    return event


def make_session(key: str, expires_in: timedelta) -> Session:
    return Session.objects.create(
        session_key=key, session_data="", expire_date=timezone.now() + expires_in
    )


def cleanup_output(*args: str) -> str:
    out = io.StringIO()
    call_command("cleanup", *args, stdout=out)
    return out.getvalue()


def table_counts() -> dict[str, int]:
    return {
        "chats": ChatSession.objects.count(),
        "messages": Message.objects.count(),
        "audit": AuditEvent.objects.count(),
        "sessions": Session.objects.count(),
        "streaming": Message.objects.filter(status=MessageStatus.STREAMING).count(),
    }


@pytest.fixture
def expired_world(bob, carol) -> dict[str, object]:
    """Retention 30 days for chats and 90 for audit events, with rows on both sides of it."""
    set_retention(chats=30, audit=90)
    world = {
        "bob_old": make_chat(bob, idle=40 * DAY, messages=3),
        "bob_older": make_chat(bob, idle=400 * DAY, messages=2),
        "bob_recent": make_chat(bob, idle=1 * DAY),
        "bob_just_inside": make_chat(bob, idle=29 * DAY),
        "carol_recent": make_chat(carol, idle=2 * DAY, messages=4),
        "carol_old": make_chat(carol, idle=31 * DAY, messages=1),
        "old_event": make_event(100 * DAY),
        "old_cleanup_event": make_event(200 * DAY, AuditAction.CLEANUP),
        "recent_event": make_event(80 * DAY),
        "expired_session": make_session("e" * 32, -DAY),
        "live_session": make_session("l" * 32, DAY),
    }
    stale = Message.objects.create(
        session=world["bob_recent"], role=MessageRole.ASSISTANT, status=MessageStatus.STREAMING
    )
    Message.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    live = Message.objects.create(
        session=world["carol_recent"], role=MessageRole.ASSISTANT, status=MessageStatus.STREAMING
    )
    world.update(stale=stale, live=live)
    return world


@pytest.mark.django_db
def test_retention_deletes_exactly_the_expired_chats_and_their_messages(expired_world):
    expired = [expired_world[k] for k in ("bob_old", "bob_older", "carol_old")]
    kept = [expired_world[k] for k in ("bob_recent", "bob_just_inside", "carol_recent")]
    kept_messages = set(Message.objects.filter(session__in=kept).values_list("pk", flat=True))

    output = cleanup_output("--batch-size=1")

    assert set(ChatSession.objects.values_list("pk", flat=True)) == {c.pk for c in kept}
    assert not Message.objects.filter(session_id__in=[c.pk for c in expired]).exists()
    assert set(Message.objects.values_list("pk", flat=True)) == kept_messages
    assert "Chats inactive for more than 30 days: deleted 3 chats with 6 messages." in output
    # Three batches of one chat each, with progress lines.
    assert "chats: 3 of 3 deleted" in output


@pytest.mark.django_db
def test_audit_retention_keeps_recent_events_and_this_runs_own(expired_world):
    output = cleanup_output()
    survivors = AuditEvent.objects.filter(created_at__lt=timezone.now() - DAY)
    assert list(survivors) == [expired_world["recent_event"]]
    assert not AuditEvent.objects.filter(pk=expired_world["old_cleanup_event"].pk).exists()
    run = AuditEvent.objects.get(action=AuditAction.CLEANUP)
    assert "Audit events older than 90 days: deleted 2." in output
    assert (run.actor, run.target) == (None, "database")
    assert run.detail["completed"] is True
    assert {k: run.detail[k] for k in ("chats", "messages", "audit_events", "sessions")} == {
        "chats": 3,
        "messages": 6,
        "audit_events": 2,
        "sessions": 1,
    }
    assert run.detail["interrupted"] == 1
    # The next run's retention spares it: it is recent.
    cleanup_output()
    assert AuditEvent.objects.filter(pk=run.pk).exists()
    assert AuditEvent.objects.filter(action=AuditAction.CLEANUP).count() == 2


@pytest.mark.django_db
def test_retention_zero_keeps_everything(bob):
    set_retention(chats=0, audit=0)
    ancient = make_chat(bob, idle=3650 * DAY)
    old_event = make_event(3650 * DAY)
    output = cleanup_output()
    assert ChatSession.objects.filter(pk=ancient.pk).exists()
    assert Message.objects.filter(session=ancient).count() == 2
    assert AuditEvent.objects.filter(pk=old_event.pk).exists()
    assert "Chats: kept forever (chat retention is 0 days)." in output
    assert "Audit events: kept forever (audit retention is 0 days)." in output


@pytest.mark.django_db
def test_expired_sessions_go_and_live_ones_stay(bob_client, expired_world):
    live_login = bob_client.session.session_key
    output = cleanup_output("--batch-size=1")
    keys = set(Session.objects.values_list("session_key", flat=True))
    assert keys == {"l" * 32, live_login}
    assert "Expired log-in sessions: deleted 1." in output
    assert bob_client.get("/").status_code == 200  # still logged in


@pytest.mark.django_db
def test_stale_streaming_answers_are_marked_interrupted(expired_world):
    output = cleanup_output()
    stale, live = expired_world["stale"], expired_world["live"]
    stale.refresh_from_db()
    live.refresh_from_db()
    assert stale.status == MessageStatus.INTERRUPTED
    assert live.status == MessageStatus.STREAMING
    assert "Stale streaming answers: marked 1 interrupted." in output


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_says_what_it_would_do(expired_world):
    before = table_counts()
    output = cleanup_output("--dry-run")
    assert table_counts() == before
    assert not AuditEvent.objects.filter(
        action=AuditAction.CLEANUP, created_at__gte=timezone.now() - DAY
    ).exists()
    assert output.startswith("Clean-up, dry run: nothing is changed.")
    for line in (
        "Chats inactive for more than 30 days: would delete 3 chats with 6 messages.",
        "Audit events older than 90 days: would delete 2.",
        "Expired log-in sessions: would delete 1.",
        "Stale streaming answers: would mark 1 interrupted.",
    ):
        assert line in output
    # And the real run does what the dry run announced.
    assert "deleted 3 chats with 6 messages" in cleanup_output()


@pytest.mark.django_db
def test_output_states_the_database_size(expired_world):
    output = cleanup_output()
    assert re.search(r"^Database size: [\d,]+ -> [\d,]+ bytes", output, re.MULTILINE)
    summary = re.search(r"^Summary: (.*)$", output, re.MULTILINE)
    assert summary
    fields = dict(part.split("=") for part in summary.group(1).split())
    assert (fields["chats"], fields["messages"], fields["audit_events"]) == ("3", "6", "2")
    assert int(fields["bytes_before"]) > 0 and int(fields["bytes_after"]) > 0
    if connection.vendor == "sqlite":
        assert "Database (SQLite): ran PRAGMA optimize; " in output
    else:
        assert "autovacuum reclaims the space of deleted rows" in output


@pytest.mark.django_db
def test_a_run_that_fails_half_way_is_still_audited_once(expired_world, monkeypatch):
    def broken_sweep() -> int:
        raise RuntimeError("the sweep broke")

    monkeypatch.setattr(cleanup, "sweep_stale_streams", broken_sweep)
    with pytest.raises(RuntimeError, match="the sweep broke"):
        cleanup_output()
    run = AuditEvent.objects.get(action=AuditAction.CLEANUP)
    assert (run.detail["completed"], run.detail["chats"], run.detail["messages"]) == (False, 3, 6)


@pytest.mark.parametrize(
    ("rows", "groups"),
    [
        ([], []),
        ([(1, 5), (2, 5), (3, 1)], [[1, 2], [3]]),
        ([(1, 30), (2, 1)], [[1], [2]]),  # a chat longer than the limit goes alone
        ([(1, 1), (2, 30), (3, 0)], [[1], [2], [3]]),
        ([(1, 0)] * 3, [[1, 1, 1]]),
    ],
)
def test_chat_batches_are_also_cut_by_their_message_count(rows, groups):
    assert list(cleanup._groups_by_weight(rows, limit=10)) == groups


@pytest.mark.django_db
def test_a_bad_batch_size_is_refused():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("cleanup", "--batch-size=0", stdout=io.StringIO())


@sqlite_only
@pytest.mark.django_db
def test_vacuum_is_skipped_without_enough_free_disk(bob, monkeypatch):
    """VACUUM needs room for a copy of the file and its WAL; without it, it says so.

    (Inside the test's transaction VACUUM could not run anyway: the disk check comes first.)
    """
    set_retention(chats=30, audit=0)
    chat = make_chat(bob, idle=40 * DAY, messages=0)
    Message.objects.bulk_create(
        Message(
            session=chat,
            role=MessageRole.USER,
            content=base64.b64encode(os.urandom(50_000)).decode(),
        )
        for _ in range(40)
    )
    monkeypatch.setattr(cleanup.shutil, "disk_usage", lambda _path: _Usage(free=1000))
    output = cleanup_output()
    assert "VACUUM skipped: it needs about" in output
    assert "only 1,000 are" in output


class _Usage:
    def __init__(self, free: int) -> None:
        self.free = free


# --- A real file, in a subprocess ------------------------------------------------------------

POPULATE = """
import base64, os
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from chat.models import ChatSession, Message
from config.models import SystemSetting
dora = User.objects.create_user("dora", password="a-long-test-passphrase-1")
old = [ChatSession.objects.create(user=dora, title=f"old {i}", message_count=20) for i in range(19)]
recent = ChatSession.objects.create(user=dora, title="recent", message_count=20)
for chat in [*old, recent]:
    Message.objects.bulk_create(
        Message(session=chat, role="user", content=base64.b64encode(os.urandom(50_000)).decode())
        for _ in range(20)
    )
ChatSession.objects.filter(pk__in=[c.pk for c in old]).update(
    updated_at=timezone.now() - timedelta(days=40)
)
SystemSetting.objects.filter(pk=1).update(chat_retention_days=30)
"""

CHECK = """
from accounts.models import AuditEvent
from chat.models import ChatSession, Message
print(ChatSession.objects.count(), Message.objects.count(), ChatSession.objects.get().title)
print(AuditEvent.objects.get(action="cleanup").detail["chats"])
"""


def _checkpointed_size(db: Path) -> int:
    """The file plus its WAL after a full checkpoint, so both runs are measured alike."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@sqlite_only
@pytest.mark.slow
def test_the_file_shrinks_after_a_large_delete_and_a_dry_run_leaves_it_alone(tmp_path):
    db = tmp_path / "db.sqlite3"
    for args in (("migrate", "-v0"), ("shell", "-c", POPULATE)):
        result = run_manage(tmp_path, *args)
        assert result.returncode == 0, result.stderr
    before = _checkpointed_size(db)
    assert before > 15_000_000  # about 21 MB of text, stored compressed
    digest = _digest(db)

    dry = run_manage(tmp_path, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 19 chats with 380 messages" in dry.stdout
    assert _digest(db) == digest
    assert _checkpointed_size(db) == before

    run = run_manage(tmp_path, "cleanup")
    assert run.returncode == 0, run.stderr
    assert "deleted 19 chats with 380 messages" in run.stdout
    assert "VACUUM rewrote the file" in run.stdout
    after = _checkpointed_size(db)
    reported = re.search(r"^Database size: ([\d,]+) -> ([\d,]+) bytes", run.stdout, re.MULTILINE)
    assert reported
    reported_before, reported_after = (int(n.replace(",", "")) for n in reported.groups())
    print(f"\ndatabase file + WAL: {before:,} -> {after:,} bytes (reported {reported_after:,})")
    assert reported_before == before
    assert after < before / 10
    assert abs(reported_after - after) <= 64 * 1024  # only this run's audit row came since

    check = run_manage(tmp_path, "shell", "-c", CHECK)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["1", "20", "recent", "19"]
