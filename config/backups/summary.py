"""The newest backups, for the admin status page and /healthz: cheap, manifests only.

Backup names sort by time and carry their kind, so the newest full and the newest
incremental are found from file names alone; only those two manifests are read (a
manifest holds the page hashes, so reading every one would grow with the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from config.backups import chain
from config.backups.manifest import (
    FULL,
    INCREMENTAL,
    BackupError,
    kind_of,
    load_manifest,
    manifest_path,
    read_verification,
)


@dataclass(frozen=True)
class BackupSummary:
    """What a status page says about one backup."""

    name: str
    kind: str  # "full" | "incremental"
    chain: str
    engine: str  # "sqlite" | "postgresql"
    finished_at: datetime  # aware, UTC
    size_bytes: int  # the files this backup wrote (not the whole chain)
    pages_changed: int | None
    # The last verify_backups or restore check recorded for it: True passed, False
    # failed, None never checked.
    verified: bool | None
    verified_at: datetime | None = None
    problem: str = ""  # why the last check failed


def summarize(chain_dir: Path, name: str) -> BackupSummary:
    manifest = load_manifest(manifest_path(chain_dir, name))
    check = read_verification(chain_dir, name)
    return BackupSummary(
        name=manifest.name,
        kind=manifest.kind,
        chain=manifest.chain,
        engine=manifest.engine,
        finished_at=manifest.finished_at,
        size_bytes=manifest.size_bytes,
        pages_changed=manifest.pages_changed,
        verified=None if check is None else check.ok,
        verified_at=None if check is None else check.checked_at,
        problem="" if check is None else check.reason,
    )


def latest_backups(dest: Path | None = None) -> dict[str, BackupSummary | None]:
    """{"full": newest full backup, "incremental": newest incremental}, None where none.

    `dest` defaults to DATA_DIR/backups. An unreadable newest manifest is skipped in
    favour of the next one, so one damaged file does not hide every backup.
    """
    root = chain.backup_root(dest)
    candidates: dict[str, list[tuple[str, Path]]] = {FULL: [], INCREMENTAL: []}
    for chain_dir in chain.chain_dirs(root):
        for name in chain.backup_names(chain_dir):
            kind = kind_of(name)
            if kind in candidates:
                candidates[kind].append((name, chain_dir))
    latest: dict[str, BackupSummary | None] = {}
    for kind, found in candidates.items():
        latest[kind] = None
        for name, chain_dir in sorted(found, reverse=True):
            try:
                latest[kind] = summarize(chain_dir, name)
            except BackupError:
                continue
            break
    return latest


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
