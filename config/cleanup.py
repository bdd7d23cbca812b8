"""Clean-up (`manage.py cleanup`): retention, expired log-in sessions, stale streams, upkeep.

What goes: chats inactive (`ChatSession.updated_at`) for longer than
`SystemSetting.chat_retention_days`, with their messages; audit events older than
`audit_retention_days` (0 keeps either forever); expired rows of Django's session table.
Answers left `streaming` by a killed worker are marked `interrupted`. One `cleanup` audit
event records the counts of every real run (a dry run changes nothing and records nothing).

Deletes run in short transactions of at most `batch_size` rows, walking the primary key
upwards (keyset), so a delete of a million rows never holds SQLite's single write lock for
more than a moment: live requests wait on the busy timeout between batches instead of
failing. Each batch re-applies its criteria inside its transaction, so a chat that got a new
message after its id was read is not deleted.

Reclaiming disk space on SQLite. Deleted rows leave free pages inside the file; later inserts
reuse them but the file never shrinks by itself. We run a plain `VACUUM` when the free pages
are worth it (at least VACUUM_MIN_FREE_BYTES, and VACUUM_FREE_RATIO of the file or
VACUUM_ALWAYS_BYTES) rather than switching to `auto_vacuum=INCREMENTAL`: that mode must be
chosen before the first table exists (an existing file needs one full VACUUM to switch),
adds pointer-map pages that every write maintains, and only truncates the file without
defragmenting it. Retention frees pages in bulk, rarely: one VACUUM is the right tool. A file
whose operator did switch it to incremental mode gets `PRAGMA incremental_vacuum` instead.

VACUUM rewrites the whole database. It holds the write lock while it runs (writers wait on the
busy timeout: run clean-up at a quiet hour, or pass --no-vacuum), cannot run inside a
transaction, and needs free disk of about twice the live data: the rebuilt copy in SQLite's
temporary directory, then every page again in the WAL (in WAL mode the new content goes
through the WAL before a checkpoint copies it into the file). We check both with
`shutil.disk_usage` first and skip with a message when there is not enough. The copy is
forced to a file (`temp_store=FILE` for the VACUUM): the connections' `temp_store=MEMORY`
would hold the whole database in RAM. Afterwards `PRAGMA wal_checkpoint(TRUNCATE)` shrinks
the WAL to nothing (unless a reader still holds it; then the next checkpoint trims it to
`journal_size_limit`). `PRAGMA optimize` refreshes the planner's statistics on every run.

PostgreSQL: autovacuum reclaims deleted rows by itself, so we run no VACUUM (a plain VACUUM
would not shrink the files either, and VACUUM FULL locks the tables); the report says so.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.sessions.models import Session
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditAction, AuditEvent
from chat import search
from chat.models import ChatSession, Message, MessageStatus
from chat.streaming import STALE_AFTER_SECONDS, sweep_stale_streams
from config.models import SINGLETON_PK, SystemSetting

BATCH_SIZE = 1000
# A chat batch is also cut when its chats hold this many messages together, so one batch of
# very long chats stays a short transaction.
MESSAGES_PER_BATCH = 20_000
VACUUM_MIN_FREE_BYTES = 1024 * 1024
VACUUM_FREE_RATIO = 0.10
VACUUM_ALWAYS_BYTES = 64 * 1024 * 1024
# Head-room on top of the estimated space VACUUM needs, for the file system's own needs.
DISK_MARGIN_RATIO = 0.10

Progress = Callable[[str], None]


@dataclass
class CleanupReport:
    """What a run did (or, with dry_run, would do); `lines()` is the command's output."""

    dry_run: bool
    started_at: datetime
    chat_retention_days: int
    audit_retention_days: int
    chats: int = 0
    messages: int = 0
    audit_events: int = 0
    sessions: int = 0
    interrupted: int = 0
    bytes_before: int | None = None
    bytes_after: int | None = None
    pages_before: int | None = None
    pages_after: int | None = None
    free_pages_before: int | None = None
    vacuum: str = "not run"
    notes: list[str] = field(default_factory=list)
    completed: bool = False
    seconds: float = 0.0

    @property
    def freed_pages(self) -> int:
        if self.pages_before is None or self.pages_after is None:
            return 0
        return max(0, self.pages_before - self.pages_after)

    def counts(self) -> dict[str, Any]:
        return {
            "chats": self.chats,
            "messages": self.messages,
            "audit_events": self.audit_events,
            "sessions": self.sessions,
            "interrupted": self.interrupted,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "freed_pages": self.freed_pages,
        }

    def audit_detail(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "chat_retention_days": self.chat_retention_days,
            "audit_retention_days": self.audit_retention_days,
            "vacuum": self.vacuum,
            "completed": self.completed,
        }

    def header(self) -> str:
        if self.dry_run:
            return _("Clean-up, dry run: nothing is changed.")
        return _("Clean-up at %(time)s.") % {"time": f"{self.started_at:%Y-%m-%d %H:%M:%S %Z}"}

    def lines(self) -> list[str]:
        """What was done (the header comes first, through `progress`, before the work), in
        the operator's language; the last line, `Summary: key=value ...`, is for scripts."""
        dry = self.dry_run
        lines: list[str] = []
        if self.chat_retention_days:
            counts = {
                "days": self.chat_retention_days,
                "chats": f"{self.chats:,}",
                "messages": f"{self.messages:,}",
            }
            if dry:
                line = _(
                    "Chats inactive for more than %(days)s days: would delete %(chats)s chats "
                    "with %(messages)s messages."
                )
            else:
                line = _(
                    "Chats inactive for more than %(days)s days: deleted %(chats)s chats with "
                    "%(messages)s messages."
                )
            lines.append(line % counts)
        else:
            lines.append(_("Chats: kept forever (chat retention is 0 days)."))
        if self.audit_retention_days:
            counts = {"days": self.audit_retention_days, "events": f"{self.audit_events:,}"}
            if dry:
                line = _("Audit events older than %(days)s days: would delete %(events)s.")
            else:
                line = _("Audit events older than %(days)s days: deleted %(events)s.")
            lines.append(line % counts)
        else:
            lines.append(_("Audit events: kept forever (audit retention is 0 days)."))
        sessions = {"sessions": f"{self.sessions:,}"}
        if dry:
            lines.append(_("Expired log-in sessions: would delete %(sessions)s.") % sessions)
        else:
            lines.append(_("Expired log-in sessions: deleted %(sessions)s.") % sessions)
        answers = {"answers": f"{self.interrupted:,}"}
        if dry:
            lines.append(
                _("Stale streaming answers: would mark %(answers)s interrupted.") % answers
            )
        else:
            lines.append(_("Stale streaming answers: marked %(answers)s interrupted.") % answers)
        lines.extend(str(note) for note in self.notes)
        if self.bytes_before is not None:
            if self.dry_run or self.bytes_after is None:
                lines.append(
                    _("Database size: %(bytes)s bytes (file + WAL).")
                    % {"bytes": f"{self.bytes_before:,}"}
                )
            else:
                change = self.bytes_after - self.bytes_before
                lines.append(
                    _("Database size: %(before)s -> %(after)s bytes (file + WAL; %(change)s).")
                    % {
                        "before": f"{self.bytes_before:,}",
                        "after": f"{self.bytes_after:,}",
                        "change": f"{change:+,}",
                    }
                )
        if not self.dry_run:
            summary = " ".join(f"{key}={value}" for key, value in self.counts().items())
            lines.append(f"Summary: {summary} seconds={self.seconds:.1f}")
        return lines


def run_cleanup(
    *,
    dry_run: bool = False,
    vacuum: bool = True,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> CleanupReport:
    """Apply the retention settings and tidy the database; returns what was (or would be) done."""
    started = time.monotonic()
    # Read the row itself, not the cache: a destructive run must not act on a stale copy.
    setting, _created = SystemSetting.objects.get_or_create(pk=SINGLETON_PK)
    now = timezone.now()
    report = CleanupReport(
        dry_run=dry_run,
        started_at=now,
        chat_retention_days=setting.chat_retention_days,
        audit_retention_days=setting.audit_retention_days,
    )
    say = progress or (lambda _line: None)
    say(report.header())
    report.bytes_before = _database_bytes()
    try:
        if dry_run:
            _count_everything(report, now)
        else:
            _delete_expired(report, now, batch_size=batch_size, say=say)
            report.interrupted = sweep_stale_streams()
        _database_upkeep(report, dry_run=dry_run, vacuum=vacuum)
        report.completed = True
    except BaseException:  # an error, or Ctrl-C in a long run
        if not dry_run:
            # Still leave a trace of a run that stopped half-way (if the database lets us).
            with suppress(DatabaseError):
                _record(report, started)
        raise
    if not dry_run:
        _record(report, started)
    report.seconds = time.monotonic() - started
    return report


def _record(report: CleanupReport, started: float) -> None:
    # Written last, after the audit retention ran, so this run's own event is never deleted.
    report.seconds = time.monotonic() - started
    audit_record(AuditAction.CLEANUP, target="database", detail=report.audit_detail())


# --- What goes -----------------------------------------------------------------------


def _expired_chats(report: CleanupReport, now: datetime) -> QuerySet[ChatSession] | None:
    if not report.chat_retention_days:
        return None
    return ChatSession.objects.filter(
        updated_at__lt=now - timedelta(days=report.chat_retention_days)
    )


def _expired_audit_events(report: CleanupReport, now: datetime) -> QuerySet[AuditEvent] | None:
    if not report.audit_retention_days:
        return None
    return AuditEvent.objects.filter(
        created_at__lt=now - timedelta(days=report.audit_retention_days)
    )


def _expired_sessions(now: datetime) -> QuerySet[Session]:
    return Session.objects.filter(expire_date__lt=now)


def _count_everything(report: CleanupReport, now: datetime) -> None:
    chats = _expired_chats(report, now)
    if chats is not None:
        report.chats = chats.count()
        report.messages = Message.objects.filter(session__in=chats).count()
    events = _expired_audit_events(report, now)
    if events is not None:
        report.audit_events = events.count()
    report.sessions = _expired_sessions(now).count()
    stale = Message.objects.filter(
        status=MessageStatus.STREAMING,
        updated_at__lte=now - timedelta(seconds=STALE_AFTER_SECONDS),
    )
    if chats is not None:
        stale = stale.exclude(session__in=chats)  # those go with their chats
    report.interrupted = stale.count()


def _delete_expired(
    report: CleanupReport, now: datetime, *, batch_size: int, say: Progress
) -> None:
    chats = _expired_chats(report, now)
    if chats is not None:
        total = chats.count()
        for done in _delete_chats(chats, batch_size=batch_size):
            report.chats, report.messages = report.chats + done[0], report.messages + done[1]
            if total > batch_size:
                say(f"  chats: {report.chats:,} of {total:,} deleted")
    events = _expired_audit_events(report, now)
    if events is not None:
        total = events.count()
        for deleted in _delete_in_batches(events, batch_size=batch_size):
            report.audit_events += deleted
            if total > batch_size:
                say(f"  audit events: {report.audit_events:,} of {total:,} deleted")
    sessions = _expired_sessions(now)
    total = sessions.count()
    for deleted in _delete_in_batches(sessions, batch_size=batch_size):
        report.sessions += deleted
        if total > batch_size:
            say(f"  log-in sessions: {report.sessions:,} of {total:,} deleted")
    search.purge_all_deleted()  # what other deletes (a deleted user's chats) left waiting


def _delete_in_batches(queryset: QuerySet[Any], *, batch_size: int) -> Iterator[int]:
    """Delete the queryset's rows a batch at a time by ascending primary key; yields counts."""
    model = queryset.model
    last: Any = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        last = ids[-1]
        with transaction.atomic():
            # The queryset's own criteria again, so a row that changed meanwhile stays.
            _total, per_model = queryset.filter(pk__in=ids).delete()
        yield per_model.get(model._meta.label, 0)


def _delete_chats(chats: QuerySet[ChatSession], *, batch_size: int) -> Iterator[tuple[int, int]]:
    """Delete expired chats and their messages in short transactions; yields (chats, messages)."""
    last = 0
    while True:
        page = list(
            chats.filter(pk__gt=last).order_by("pk").values_list("pk", "message_count")[:batch_size]
        )
        if not page:
            return
        last = page[-1][0]
        for ids in _groups_by_weight(page, limit=MESSAGES_PER_BATCH):
            with transaction.atomic():
                still_expired = list(
                    chats.select_for_update().filter(pk__in=ids).values_list("pk", flat=True)
                )
                _total, messages = Message.objects.filter(session_id__in=still_expired).delete()
                _total, chats_deleted = ChatSession.objects.filter(pk__in=still_expired).delete()
            # Their words leave the search index in short transactions of their own.
            search.purge_all_deleted()
            yield (
                chats_deleted.get(ChatSession._meta.label, 0),
                messages.get(Message._meta.label, 0),
            )


def _groups_by_weight(rows: Iterable[tuple[int, int]], *, limit: int) -> Iterator[list[int]]:
    """Split (id, weight) rows into groups whose weights add up to at most `limit` (a row
    heavier than the limit forms its own group)."""
    group: list[int] = []
    weight = 0
    for pk, row_weight in rows:
        if group and weight + row_weight > limit:
            yield group
            group, weight = [], 0
        group.append(pk)
        weight += row_weight
    if group:
        yield group


# --- The database itself -------------------------------------------------------------


def _sqlite_path() -> Path | None:
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return None
    return Path(connection.settings_dict["NAME"])


def _database_bytes() -> int | None:
    """The database's size on disk: the SQLite file plus its WAL, or PostgreSQL's own count."""
    path = _sqlite_path()
    if path is not None:
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    return None


def _pragma(name: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        row = cursor.fetchone()
    return row[0] if row else None


def _database_upkeep(report: CleanupReport, *, dry_run: bool, vacuum: bool) -> None:
    if connection.vendor == "postgresql":
        report.notes.append(
            _(
                "Database (PostgreSQL): no VACUUM here; autovacuum reclaims the space of "
                "deleted rows (run VACUUM (ANALYZE) yourself to do it now)."
            )
        )
        if not dry_run:
            report.bytes_after = _database_bytes()
        return
    if connection.vendor != "sqlite":
        report.notes.append(
            _("Database (%(vendor)s): no upkeep step for this database.")
            % {"vendor": connection.vendor}
        )
        return
    page_size = _pragma("page_size")
    report.pages_before = _pragma("page_count")
    report.free_pages_before = _pragma("freelist_count")
    if dry_run:
        pages = {"free": f"{report.free_pages_before:,}", "pages": f"{report.pages_before:,}"}
        if vacuum:
            note = _(
                "Database (SQLite): %(free)s of %(pages)s pages free now. Would run PRAGMA "
                "optimize, then VACUUM if enough pages are free after the deletes."
            )
        else:
            note = _(
                "Database (SQLite): %(free)s of %(pages)s pages free now. Would run PRAGMA "
                "optimize, then no VACUUM."
            )
        report.notes.append(note % pages)
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA optimize")
    report.vacuum = _reclaim_free_pages(page_size, vacuum=vacuum)
    # report.vacuum stays English: the audit detail records it too.
    report.notes.append(
        _("Database (SQLite): ran PRAGMA optimize; %(vacuum)s.") % {"vacuum": report.vacuum}
    )
    if not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    report.pages_after = _pragma("page_count")
    report.bytes_after = _database_bytes()
    if report.freed_pages:
        report.notes.append(
            _("Pages: %(before)s -> %(after)s (%(freed)s pages of %(size)s bytes given back).")
            % {
                "before": f"{report.pages_before:,}",
                "after": f"{report.pages_after:,}",
                "freed": f"{report.freed_pages:,}",
                "size": f"{page_size:,}",
            }
        )


def _reclaim_free_pages(page_size: int, *, vacuum: bool) -> str:
    """VACUUM (or incremental_vacuum) when worth it and possible; returns what happened."""
    page_count = _pragma("page_count")
    free_pages = _pragma("freelist_count")
    free_bytes = free_pages * page_size
    auto_vacuum = _pragma("auto_vacuum")  # 0 none, 1 full, 2 incremental
    if auto_vacuum == 1:
        return "auto_vacuum=FULL gives free pages back at every commit"
    if not vacuum:
        return f"VACUUM skipped (--no-vacuum; {free_pages:,} pages free)"
    if auto_vacuum == 2:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA incremental_vacuum")
            cursor.fetchall()  # each step frees a page: run it to the end
        return f"incremental_vacuum gave back {free_pages:,} free pages"
    worth_it = free_bytes >= VACUUM_MIN_FREE_BYTES and (
        free_pages >= page_count * VACUUM_FREE_RATIO or free_bytes >= VACUUM_ALWAYS_BYTES
    )
    if not worth_it:
        return f"VACUUM not needed ({free_pages:,} of {page_count:,} pages free)"
    shortage = _vacuum_disk_shortage((page_count - free_pages) * page_size)
    if shortage:
        return f"VACUUM skipped: {shortage}"
    if connection.in_atomic_block:
        return "VACUUM skipped (it cannot run inside a transaction)"
    previous_temp_store = _pragma("temp_store")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA temp_store=FILE")
        try:
            cursor.execute("VACUUM")
        finally:
            cursor.execute(f"PRAGMA temp_store={int(previous_temp_store)}")
    return f"VACUUM rewrote the file ({free_pages:,} pages, {free_bytes:,} bytes, were free)"


def _sqlite_temp_dir() -> Path:
    """Where SQLite puts its temporary files on Unix (its own search order)."""
    candidates = [os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR")]
    candidates += ["/var/tmp", "/usr/tmp", "/tmp"]  # noqa: S108  (SQLite's list, read only)
    for candidate in candidates:
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path.cwd()


def _vacuum_disk_shortage(live_bytes: int) -> str:
    """Why VACUUM cannot run for lack of disk ('' when it can): it needs the rebuilt copy in
    the temporary directory and the same again in the WAL next to the database."""
    path = _sqlite_path()
    if path is None:
        return "not a database file"
    need = int(live_bytes * (1 + DISK_MARGIN_RATIO))
    temp_dir = _sqlite_temp_dir()
    database_dir = path.parent
    same_disk = os.stat(temp_dir).st_dev == os.stat(database_dir).st_dev
    needs = {database_dir: need * 2} if same_disk else {database_dir: need, temp_dir: need}
    for directory, needed in needs.items():
        free = shutil.disk_usage(directory).free
        if free < needed:
            return (
                f"it needs about {needed:,} bytes free in {directory}, only {free:,} are "
                "(free some disk, or move SQLite's temporary files with SQLITE_TMPDIR)"
            )
    return ""
