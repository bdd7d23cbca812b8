"""Checking every backup in the folder: each chain rebuilt in a temporary place.

A chain is rebuilt once, backup after backup; after each one the rebuilt database must
have the SHA-256 its manifest records and pass `PRAGMA integrity_check`. A backup after
a broken one in the same chain is broken too (it cannot be restored). PostgreSQL dumps
are checked by SHA-256 and by `pg_restore --list`, which reads the whole archive's table
of contents. Each result is remembered in a `<name>.verified.json` sidecar, which the
admin status page and /healthz read through `latest_backups()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from config.backups import chain
from config.backups.manifest import (
    SQLITE,
    TEMP_PREFIX,
    BackupError,
    Manifest,
    load_manifest,
    manifest_path,
    record_verification,
)
from config.backups.pagefile import apply_pages, expand_full
from config.backups.postgres import verify_dump
from config.backups.restore import verify_files
from config.backups.snapshot import sqlite_uri


@dataclass(frozen=True)
class BackupCheck:
    chain: str
    name: str
    ok: bool
    reason: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(sqlite_uri(db, immutable="1"), uri=True)) as conn:
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            return str(error)
    return "" if problems == ["ok"] else "; ".join(problems[:3])


def _apply(manifest: Manifest, chain_dir: Path, db: Path, previous: Manifest | None) -> None:
    """Bring the rebuilt database `db` from `previous` to `manifest`, then check it."""
    if manifest.engine != SQLITE:
        raise BackupError(f"{manifest.path}: a {manifest.engine} backup inside a SQLite chain")
    if previous is None and manifest.seq != 0:
        raise BackupError(f"{manifest.path}: the chain does not start with a full backup")
    if previous is not None and manifest.parent != previous.name:
        raise BackupError(
            f"{manifest.path}: its parent {manifest.parent} is missing from the chain "
            f"(the one before it is {previous.name})"
        )
    verify_files(manifest, chain_dir)
    data = chain_dir / manifest.files[0].name
    if previous is None:
        with db.open("wb") as handle:
            expand_full(data, handle)
    else:
        with db.open("r+b") as handle:
            apply_pages(
                data,
                handle,
                page_size=int(manifest.database.page_size or 0),
                page_count=int(manifest.database.page_count or 0),
            )
    actual = _sha256(db)
    if actual != manifest.database.sha256:
        raise BackupError(
            f"{manifest.path}: the rebuilt database has SHA-256 {actual[:16]}..., "
            f"the manifest records {str(manifest.database.sha256)[:16]}..."
        )
    problem = _integrity(db)
    if problem:
        raise BackupError(f"{data}: the rebuilt database fails integrity_check: {problem}")


def verify_chain(chain_dir: Path, work: Path) -> list[BackupCheck]:
    """Every backup of one chain, in order; the first failure breaks the rest."""
    results: list[BackupCheck] = []
    db = work / f"{chain_dir.name}.sqlite3"
    previous: Manifest | None = None
    broken = ""
    for name in chain.backup_names(chain_dir):
        if broken:
            results.append(
                BackupCheck(chain_dir.name, name, False, f"after a broken backup: {broken}")
            )
            continue
        try:
            manifest = load_manifest(manifest_path(chain_dir, name))
            if manifest.engine == SQLITE:
                _apply(manifest, chain_dir, db, previous)
            else:
                verify_dump(manifest, chain_dir)
            previous = manifest
            results.append(BackupCheck(chain_dir.name, name, True))
        except (BackupError, OSError) as error:
            broken = name
            results.append(BackupCheck(chain_dir.name, name, False, str(error)))
    db.unlink(missing_ok=True)
    return results


@contextlib.contextmanager
def _workspace(dest: Path) -> Iterator[str]:
    """A scratch folder beside the backups (same disk, sized for them), or the system's
    temporary folder when the backup folder is read-only."""
    try:
        scratch = tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}verify-", dir=dest)
    except OSError:
        scratch = tempfile.TemporaryDirectory(prefix="parley-verify-")
    with scratch as work:
        yield work


def verify_all(
    dest: Path, report: Callable[[BackupCheck], None] | None = None
) -> list[BackupCheck]:
    """Rebuild and check every chain under `dest`; record each result next to its manifest."""
    results: list[BackupCheck] = []
    if not dest.is_dir():
        return results
    with chain.dest_lock(dest, exclusive=False), _workspace(dest) as work:
        for chain_dir in chain.chain_dirs(dest):
            for check in verify_chain(chain_dir, Path(work)):
                record_verification(
                    chain_dir, check.name, ok=check.ok, by="verify_backups", reason=check.reason
                )
                results.append(check)
                if report is not None:
                    report(check)
    return results
