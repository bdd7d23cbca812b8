"""Taking a SQLite backup while the server writes.

The live database is never copied as a file (a copy taken mid-write is torn, and the
WAL holds the newest commits). The sqlite3 backup API copies it page by page into a
temporary snapshot file, in one step, inside one read transaction: in WAL mode that
never blocks the writers, and the snapshot is exactly the database at one commit.
The snapshot is then hashed page by page and written as a full or incremental backup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from config.backups import chain
from config.backups.manifest import (
    FULL,
    INCREMENTAL,
    SQLITE,
    TEMP_PREFIX,
    BackupError,
    DatabaseInfo,
    FileEntry,
    Manifest,
    backup_name,
    manifest_path,
    next_stamp,
)
from config.backups.pagefile import Progress, Reporter, decode_digests, encode_digests, write_data

BUSY_TIMEOUT_SECONDS = 30
PROGRESS_AFTER_SECONDS = 1.0  # progress lines only on runs that last longer than this


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    chain_dir: Path
    pages_total: int | None
    pages_changed: int | None
    pruned: tuple[str, ...] = ()
    note: str = ""


def sqlite_uri(path: Path, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{path.resolve().as_uri()}?{query}" if query else path.resolve().as_uri()


def has_tables(db_path: Path) -> bool:
    """Whether there is a migrated database to back up (the entrypoint's --skip-empty)."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return False
    with contextlib.closing(sqlite3.connect(sqlite_uri(db_path, mode="ro"), uri=True)) as db:
        return bool(
            db.execute("SELECT 1 FROM sqlite_master WHERE name = 'django_migrations'").fetchone()
        )


def take_snapshot(db_path: Path, snapshot: Path) -> int:
    """Copy the live database into `snapshot` with the backup API; returns the page size."""
    if not db_path.is_file():
        raise BackupError(f"{db_path}: no SQLite database here")
    try:
        # mode=rw: never create an empty database where the live one should be.
        source = sqlite3.connect(
            sqlite_uri(db_path, mode="rw"), uri=True, timeout=BUSY_TIMEOUT_SECONDS
        )
    except sqlite3.Error as error:
        raise BackupError(f"{db_path}: cannot be opened ({error})") from None
    try:
        target = sqlite3.connect(snapshot)
        try:
            # pages=-1: the whole copy in one step, one read transaction, one consistent
            # moment. (Copying in several steps restarts whenever another connection writes.)
            source.backup(target, pages=-1)
        finally:
            target.close()
        return int(source.execute("PRAGMA page_size").fetchone()[0])
    except sqlite3.Error as error:
        raise BackupError(f"{db_path}: the snapshot failed ({error})") from None
    finally:
        source.close()


def applied_migrations(snapshot: Path) -> tuple[str, ...]:
    with contextlib.closing(sqlite3.connect(sqlite_uri(snapshot, immutable="1"), uri=True)) as db:
        try:
            rows = db.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        except sqlite3.OperationalError:
            return ()
        return tuple(f"{app}.{name}" for app, name in rows)


def _parent_for_incremental(dest: Path, page_size: int) -> tuple[Manifest | None, str]:
    """The newest backup of the newest chain, if an incremental can follow it; else why not."""
    chains = [c for c in chain.chain_dirs(dest) if chain.backup_names(c)]
    if not chains:
        return None, ""
    head = chain.chain_head(chains[-1])
    assert head is not None
    try:
        walked = chain.walk_chain(chains[-1], head)
    except BackupError as error:
        return None, f"the newest chain is unusable ({error}): starting a new one"
    for manifest in walked.manifests:
        for entry in manifest.files:
            data = walked.chain_dir / entry.name
            if not data.is_file() or data.stat().st_size != entry.size_bytes:
                return None, f"{data} is missing or damaged: starting a new chain"
    parent = walked.target
    if parent.engine != SQLITE:
        return None, "the newest chain is not a SQLite chain: starting a new one"
    if parent.database.page_size != page_size:
        return None, "the page size changed (VACUUM?): starting a new chain"
    return parent, ""


def backup_sqlite(
    *,
    db_path: Path,
    dest: Path,
    kind: str | None,
    keep: int | None = None,
    report: Reporter | None = None,
) -> BackupResult:
    """Take a full or incremental backup of `db_path` into `dest` (kind None: incremental
    when a chain exists, else full). Serialised with other backups by a lock on `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with chain.dest_lock(dest, exclusive=True, waiting=report):
        chain.remove_leftovers(dest)
        started = datetime.now(UTC)
        clock = time.monotonic()
        stamp = next_stamp(started, chain.newest_name(dest))
        snapshot = dest / f"{TEMP_PREFIX}{stamp}.snapshot.sqlite3"
        try:
            page_size = take_snapshot(db_path, snapshot)
            if report is not None and time.monotonic() - clock >= PROGRESS_AFTER_SECONDS:
                report(f"  snapshot taken in {time.monotonic() - clock:.1f} s")
            parent, note = (None, "") if kind == FULL else _parent_for_incremental(dest, page_size)
            if kind == INCREMENTAL and parent is None and not note:
                note = "no chain yet: this full backup starts one"
            result = _write_backup(
                snapshot=snapshot,
                dest=dest,
                stamp=stamp,
                parent=parent,
                page_size=page_size,
                started=started,
                clock=clock,
                report=report,
            )
        finally:
            snapshot.unlink(missing_ok=True)
        pruned = tuple(chain.prune(dest, keep)) if keep is not None else ()
    return BackupResult(
        manifest=result.manifest,
        chain_dir=result.chain_dir,
        pages_total=result.pages_total,
        pages_changed=result.pages_changed,
        pruned=pruned,
        note=note,
    )


def _write_backup(
    *,
    snapshot: Path,
    dest: Path,
    stamp: str,
    parent: Manifest | None,
    page_size: int,
    started: datetime,
    clock: float,
    report: Reporter | None,
) -> BackupResult:
    kind = FULL if parent is None else INCREMENTAL
    name = backup_name(stamp, kind)
    chain_id = stamp if parent is None else parent.chain
    chain_dir = dest / chain_id
    chain_dir.mkdir(exist_ok=True)
    suffix = ".sqlite3.gz" if parent is None else ".pages.gz"
    data_file = chain_dir / f"{name}{suffix}"
    temp = chain_dir / f"{TEMP_PREFIX}{data_file.name}"
    page_total = snapshot.stat().st_size // page_size
    progress = Progress(report, page_total, "pages", after=PROGRESS_AFTER_SECONDS)
    try:
        parent_digests = None if parent is None else decode_digests(parent.page_hashes)
        data = write_data(
            snapshot, temp, page_size=page_size, parent_digests=parent_digests, progress=progress
        )
        temp.replace(data_file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finished = datetime.now(UTC)
    manifest = Manifest(
        name=name,
        kind=kind,
        chain=chain_id,
        seq=0 if parent is None else parent.seq + 1,
        parent=None if parent is None else parent.name,
        started_at=started,
        finished_at=finished,
        duration_seconds=time.monotonic() - clock,
        parley_version=settings.PARLEY_VERSION,
        migrations=applied_migrations(snapshot),
        database=DatabaseInfo(
            engine=SQLITE,
            size_bytes=data.database_size,
            sha256=data.database_sha256,
            page_size=page_size,
            page_count=page_total,
        ),
        files=(
            FileEntry(
                name=data_file.name,
                content="sqlite-database" if parent is None else "sqlite-pages",
                compression="gzip",
                size_bytes=data.file_size,
                sha256=data.file_sha256,
            ),
        ),
        page_hashes=encode_digests(data.digests),
        pages_changed=data.pages_changed,
    )
    try:
        manifest.save(chain_dir)
    except BaseException:
        data_file.unlink(missing_ok=True)
        raise
    return BackupResult(
        manifest=dataclasses.replace(manifest, path=manifest_path(chain_dir, name)),
        chain_dir=chain_dir,
        pages_total=page_total,
        pages_changed=data.pages_changed,
    )
