"""Chains in the backup folder: finding them, walking them, locking and pruning them.

A chain is one full backup followed by incrementals, each naming its parent. Restoring
backup N needs every backup from the full one up to N, so retention works on whole
chains: `--keep N` keeps the newest N chains and deletes older chains entirely, which
can never remove the parent of a backup that is kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from config.backups.manifest import (
    FULL,
    MANIFEST_SUFFIX,
    NAME_RE,
    STAMP_RE,
    TEMP_PREFIX,
    BackupError,
    Manifest,
    load_manifest,
    manifest_path,
    name_of_manifest,
)

LOCK_NAME = ".lock"


def default_dest() -> Path:
    return Path(settings.DATA_DIR) / "backups"


def backup_root(dest: Path | None) -> Path:
    return Path(dest).expanduser().resolve() if dest is not None else default_dest()


@contextlib.contextmanager
def dest_lock(
    dest: Path, *, exclusive: bool, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Serialise writers (backup, pruning) against readers (restore, verify) of one folder.

    A reader of a read-only backup folder (a mounted copy) goes on without the lock.
    """
    try:
        handle = (dest / LOCK_NAME).open("a+b")
    except OSError:
        if exclusive:
            raise BackupError(f"{dest}: cannot write to the backup folder") from None
        yield
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(f"Waiting for another backup command on {dest} to finish...")
            fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def chain_dirs(dest: Path) -> list[Path]:
    """Chain folders, oldest first (their names are the UTC time of their full backup)."""
    if not dest.is_dir():
        return []
    return sorted(p for p in dest.iterdir() if p.is_dir() and STAMP_RE.match(p.name))


def backup_names(chain_dir: Path) -> list[str]:
    """Names of the complete backups (those with a manifest) in a chain, oldest first."""
    names = (name_of_manifest(p) for p in chain_dir.glob(f"*{MANIFEST_SUFFIX}"))
    return sorted(name for name in names if NAME_RE.match(name))


def newest_name(dest: Path) -> str | None:
    """The newest backup name anywhere in the folder, or a chain folder's stamp."""
    newest: str | None = None
    for chain_dir in chain_dirs(dest):
        for candidate in [chain_dir.name, *backup_names(chain_dir)]:
            if newest is None or candidate > newest:
                newest = candidate
    return newest


@dataclass(frozen=True)
class ChainPath:
    """The backups to apply, full first, to rebuild `target`."""

    chain_dir: Path
    manifests: tuple[Manifest, ...]

    @property
    def target(self) -> Manifest:
        return self.manifests[-1]


def walk_chain(chain_dir: Path, target: str) -> ChainPath:
    """Follow parent links from `target` back to the full backup, checking every link."""
    path: list[Manifest] = []
    name: str | None = target
    child: Manifest | None = None
    while name is not None:
        file = manifest_path(chain_dir, name)
        if child is not None and not file.exists():
            raise BackupError(
                f"{file}: missing. {child.name} needs its parent {name}; the chain "
                f"{chain_dir.name} is broken from {child.name} on."
            )
        manifest = load_manifest(file)
        if manifest.chain != chain_dir.name:
            raise BackupError(f"{file}: belongs to chain {manifest.chain}, not {chain_dir.name}")
        if child is not None and manifest.seq != child.seq - 1:
            raise BackupError(
                f"{file}: sequence {manifest.seq} does not precede {child.name} ({child.seq})"
            )
        path.append(manifest)
        if len(path) > 100_000:
            raise BackupError(f"{file}: the parent links loop")
        child, name = manifest, manifest.parent
    if child is None or child.kind != FULL or child.seq != 0:
        raise BackupError(f"{chain_dir}: the chain does not start with a full backup")
    return ChainPath(chain_dir, tuple(reversed(path)))


def chain_head(chain_dir: Path) -> str | None:
    names = backup_names(chain_dir)
    return names[-1] if names else None


def resolve(dest: Path, ref: str, at: str | None = None) -> ChainPath:
    """A chain id, a backup name, `latest`, or a path to a chain folder or a manifest."""
    chain_dir: Path | None = None
    target: str | None = None
    candidate = Path(ref).expanduser()
    if ref == "latest":
        chains = [c for c in chain_dirs(dest) if backup_names(c)]
        if not chains:
            raise BackupError(f"{dest}: no backups here")
        chain_dir = chains[-1]
    elif STAMP_RE.match(ref) and (dest / ref).is_dir():
        chain_dir = dest / ref
    elif NAME_RE.match(ref):
        found = list(dest.glob(f"*/{ref}{MANIFEST_SUFFIX}"))
        if not found:
            raise BackupError(
                f"{dest}: no backup named {ref} (looked for */{ref}{MANIFEST_SUFFIX})"
            )
        chain_dir, target = found[0].parent, ref
    elif candidate.is_dir():
        chain_dir = candidate.resolve()
    elif candidate.name.endswith(MANIFEST_SUFFIX) and candidate.is_file():
        chain_dir, target = candidate.resolve().parent, name_of_manifest(candidate)
    else:
        raise BackupError(f"{dest}: no chain or backup {ref!r} (try `restore latest`)")
    if at is not None:
        if not manifest_path(chain_dir, at).exists():
            raise BackupError(
                f"{manifest_path(chain_dir, at)}: no backup {at} in chain {chain_dir.name}"
            )
        target = at
    target = target or chain_head(chain_dir)
    if target is None:
        raise BackupError(f"{chain_dir}: the chain holds no complete backup")
    return walk_chain(chain_dir, target)


def remove_leftovers(dest: Path) -> list[Path]:
    """Delete what a crashed backup left: temporary files, data files without a
    manifest, empty chain folders. Call only under the exclusive lock."""
    removed: list[Path] = []
    for item in dest.glob(f"{TEMP_PREFIX}*"):
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    for chain_dir in chain_dirs(dest):
        complete = set(backup_names(chain_dir))
        for item in chain_dir.iterdir():
            owner = item.name.split(".", 2)
            stem = ".".join(owner[:2]) if len(owner) > 1 else item.name
            if item.name.startswith(TEMP_PREFIX) or (NAME_RE.match(stem) and stem not in complete):
                item.unlink(missing_ok=True)
                removed.append(item)
        if not any(chain_dir.iterdir()):
            chain_dir.rmdir()
            removed.append(chain_dir)
    return removed


def prune(dest: Path, keep: int) -> list[str]:
    """Keep the newest `keep` chains and delete older ones whole. Under the exclusive lock."""
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    chains = [c for c in chain_dirs(dest) if backup_names(c)]
    doomed = chains[:-keep]
    for chain_dir in doomed:
        shutil.rmtree(chain_dir)
    return [chain_dir.name for chain_dir in doomed]
