"""Rebuilding a chain into a NEW file, proving it sound, and only then putting it in place.

Order of a restore: every data file's SHA-256 against its manifest; the chain rebuilt
(full, then each incremental's pages) into a new file; the SHA-256 of the rebuilt
database against the target's manifest; `PRAGMA integrity_check` and
`foreign_key_check`; the stored API keys tried with the current encryption keys (a
warning, not a failure: the operator may still have to restore the key file). Only then
`--to` renames the file into place, or `--replace` moves the live database and its
`-wal`/`-shm` aside (`*.pre-restore`) and renames the restored file over it. A failure
at any step deletes the new file and leaves the live database untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from config.backups import chain
from config.backups.chain import ChainPath
from config.backups.inuse import database_user
from config.backups.manifest import (
    SQLITE,
    TEMP_PREFIX,
    BackupError,
    Manifest,
    fsync_dir,
    record_verification,
    sha256_file,
    stamp_for,
)
from config.backups.pagefile import apply_pages, expand_full
from config.backups.snapshot import sqlite_uri


@dataclass(frozen=True)
class DatabaseCheck:
    api_keys: int  # stored (non-empty) API keys
    api_keys_unreadable: int  # of those, how many the current keys cannot open
    api_key_problem: str = ""  # why none could be tried (keys missing), if so


@dataclass(frozen=True)
class RestoreResult:
    target: Manifest
    backups_applied: int
    written_to: Path
    check: DatabaseCheck
    moved_aside: tuple[Path, ...] = ()


def verify_files(manifest: Manifest, chain_dir: Path) -> None:
    """Each file a backup wrote: present, the recorded size, the recorded SHA-256."""
    where = manifest.path or chain_dir
    if not manifest.files:
        raise BackupError(f"{where}: the manifest lists no data file")
    for entry in manifest.files:
        data = chain_dir / entry.name
        if not data.is_file():
            raise BackupError(f"{data}: missing (listed in {where})")
        size = data.stat().st_size
        if size != entry.size_bytes:
            raise BackupError(
                f"{data}: {size} bytes, but {where} records {entry.size_bytes} (truncated?)"
            )
        actual = sha256_file(data)
        if actual != entry.sha256:
            raise BackupError(
                f"{data}: SHA-256 {actual[:16]}... does not match {where} "
                f"({entry.sha256[:16]}...): the file or its manifest was altered"
            )


def _sha256_handle(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while block := handle.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _check_database_hash(manifest: Manifest, actual: str) -> None:
    if actual != manifest.database.sha256:
        raise BackupError(
            f"{manifest.path}: the database rebuilt up to {manifest.name} has SHA-256 "
            f"{actual[:16]}..., the manifest records {str(manifest.database.sha256)[:16]}..."
        )


def rebuild(path: ChainPath, out: Path, *, check_each: bool = False) -> None:
    """Rebuild `path.target` into `out` (a new file) and prove it is byte for byte the
    snapshot that was backed up. `check_each` also checks every intermediate state."""
    for manifest in path.manifests:
        if manifest.engine != SQLITE:
            raise BackupError(f"{manifest.path}: not a SQLite backup ({manifest.engine})")
        verify_files(manifest, path.chain_dir)
    full, *incrementals = path.manifests
    with out.open("x+b") as handle:
        expand_full(path.chain_dir / full.files[0].name, handle)
        handle.flush()
        if check_each or not incrementals:
            _check_database_hash(full, _sha256_handle(handle))
        for manifest in incrementals:
            page_size, page_count = manifest.database.page_size, manifest.database.page_count
            if page_size != full.database.page_size or page_count is None:
                raise BackupError(f"{manifest.path}: page size differs from the full backup's")
            apply_pages(
                path.chain_dir / manifest.files[0].name,
                handle,
                page_size=int(page_size),
                page_count=page_count,
            )
            handle.flush()
            if check_each or manifest is incrementals[-1]:
                _check_database_hash(manifest, _sha256_handle(handle))
        os.fsync(handle.fileno())


def check_database(db: Path, target: Manifest) -> DatabaseCheck:
    """integrity_check and foreign_key_check must pass; API keys are counted, not required."""
    origin = f"rebuilt from {target.path}"
    with contextlib.closing(sqlite3.connect(sqlite_uri(db, immutable="1"), uri=True)) as conn:
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(
                    f"{db} ({origin}): PRAGMA integrity_check failed: {'; '.join(problems[:3])}"
                )
            violations = conn.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                table, rowid, parent, _ = violations[0]
                raise BackupError(
                    f"{db} ({origin}): {len(violations)} foreign key violation(s), first: "
                    f"{table} row {rowid} points to a missing {parent}"
                )
            try:
                tokens = [
                    row[0]
                    for row in conn.execute(
                        "SELECT api_key FROM models_registry_modelconfig WHERE api_key != ''"
                    )
                ]
            except sqlite3.OperationalError:
                tokens = []  # a database from before models existed
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{db} ({origin}): not a usable database ({error})") from None
    return _check_api_keys(tokens)


def _check_api_keys(tokens: list[str]) -> DatabaseCheck:
    from models_registry import crypto

    unreadable = 0
    for token in tokens:
        try:
            crypto.decrypt(token)
        except crypto.DecryptionFailed:
            unreadable += 1
        except crypto.EncryptionKeyError as error:
            return DatabaseCheck(len(tokens), len(tokens), str(error))
    return DatabaseCheck(len(tokens), unreadable)


def _refuse_if_in_use(db_path: Path) -> None:
    pid = database_user(db_path)
    if pid is not None:
        raise BackupError(
            f"{db_path}: process {pid} has the database open (a running Parley server?). "
            "Stop the server first, or use --to PATH to restore next to it; --force "
            "replaces it anyway (then restart every Parley process at once)."
        )


def _checkpoint(db_path: Path) -> None:
    """Fold the WAL into the old database, so its `.pre-restore` copy stands alone."""
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(sqlite_uri(db_path, mode="rw"), uri=True, timeout=5)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()


def move_aside(db_path: Path, stamp: str) -> tuple[tuple[Path, Path], ...]:
    """Rename the live database and its -wal/-shm to `*.pre-restore` (with `stamp` if such
    files exist already). The WAL goes first: a WAL must never sit beside another database."""
    if db_path.exists():
        _checkpoint(db_path)
    files = [Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), db_path]
    stamped = any(Path(f"{file}.pre-restore").exists() for file in files)
    moved = []
    for file in files:
        if file.exists():
            target = Path(f"{file}.{stamp}.pre-restore" if stamped else f"{file}.pre-restore")
            os.replace(file, target)
            moved.append((file, target))
    return tuple(moved)


def _put_back(moved: tuple[tuple[Path, Path], ...]) -> None:
    """Undo `move_aside` when the restored file could not be put in place."""
    for original, aside in reversed(moved):
        if not original.exists():
            os.replace(aside, original)


def restore_sqlite(
    *,
    dest: Path,
    ref: str,
    at: str | None = None,
    to: Path | None = None,
    replace: Path | None = None,
    force: bool = False,
) -> RestoreResult:
    """Restore `ref` (`at` a backup in it) into the new file `to`, or over the live
    database `replace`. Nothing existing is touched unless every check passed."""
    if (to is None) == (replace is None):
        raise BackupError("choose one of --to PATH or --replace")
    with chain.dest_lock(dest, exclusive=False):
        path = chain.resolve(dest, ref, at)
        target = path.target
        if target.engine != SQLITE:
            raise BackupError(
                f"{target.path}: a PostgreSQL dump; restore it with pg_restore "
                "(docs/operations.md, 'Restore')"
            )
        stamp = stamp_for(datetime.now(UTC))
        if to is not None:
            final = to.expanduser().resolve()
            if final.exists():
                raise BackupError(f"{final}: exists already; --to writes a new file only")
            if not final.parent.is_dir():
                raise BackupError(f"{final.parent}: no such folder")
            temp = final.with_name(f"{TEMP_PREFIX}{final.name}")
        else:
            assert replace is not None
            final = replace
            if not force:
                _refuse_if_in_use(final)
            temp = final.with_name(f"{final.name}.restoring-{stamp}")
        temp.unlink(missing_ok=True)
        try:
            rebuild(path, temp)
            check = check_database(temp, target)
        except BaseException as error:
            temp.unlink(missing_ok=True)
            if isinstance(error, BackupError):
                record_verification(
                    path.chain_dir, target.name, ok=False, by="restore", reason=str(error)
                )
            raise
        record_verification(path.chain_dir, target.name, ok=True, by="restore")
        moved: tuple[tuple[Path, Path], ...] = ()
        try:
            if replace is not None:
                if not force:
                    _refuse_if_in_use(final)
                if final.exists():
                    temp.chmod(stat.S_IMODE(final.stat().st_mode))
                    if os.geteuid() == 0:
                        info = final.stat()
                        os.chown(temp, info.st_uid, info.st_gid)
                moved = move_aside(final, stamp)
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            _put_back(moved)
            raise
        fsync_dir(final.parent)
    return RestoreResult(
        target=target,
        backups_applied=len(path.manifests),
        written_to=final,
        check=check,
        moved_aside=tuple(aside for original, aside in moved if original == final)
        + tuple(aside for original, aside in moved if original != final),
    )


def migration_gap(applied: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(migrations this code has that the backup lacks, migrations the backup has that
    this code does not know): the first are applied by `migrate`, the second mean the
    backup came from a newer Parley."""
    from django.db.migrations.loader import MigrationLoader

    known = {f"{app}.{name}" for app, name in MigrationLoader(None).disk_migrations}
    return sorted(known - set(applied)), sorted(set(applied) - known)
