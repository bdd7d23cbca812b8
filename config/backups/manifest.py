"""Backup manifests: what one backup holds, and everything needed to check it.

The backup folder (default `DATA_DIR/backups`) holds one folder per chain, named after
the UTC time of the chain's full backup:

    20261204T140000.000Z/
        20261204T140000.000Z-full.sqlite3.gz         full: the whole snapshot, gzip
        20261204T150000.000Z-incremental.pages.gz    changed pages with their numbers, gzip
        <name>.dump                                   PostgreSQL: pg_dump custom format
        <name>.manifest.json                          written last: no manifest, no backup
        <name>.verified.json                          the last verify/restore result

Backup names are the UTC start time plus the kind, so they sort by time. Every file is
written under a `.tmp-` name, flushed to disk and renamed when complete: a crash never
leaves something that looks like a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

FORMAT = "parley-backup"
FORMAT_VERSION = 1
FULL = "full"
INCREMENTAL = "incremental"
KINDS = (FULL, INCREMENTAL)
SQLITE = "sqlite"
POSTGRESQL = "postgresql"

MANIFEST_SUFFIX = ".manifest.json"
VERIFIED_SUFFIX = ".verified.json"
TEMP_PREFIX = ".tmp-"
STAMP_RE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z$")
NAME_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{3}Z)-(?P<kind>full|incremental)$")


class BackupError(Exception):
    """A backup, restore or check failed; the message names the file at fault."""


# --- names --------------------------------------------------------------------------


def stamp_for(moment: datetime) -> str:
    """`20261204T150102.123Z`: sortable, millisecond resolution, always UTC."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z"


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp[:-1], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)


def next_stamp(moment: datetime, taken: str | None) -> str:
    """A stamp for `moment`, later than `taken` (names must sort in the order taken)."""
    stamp = stamp_for(moment)
    if taken is not None and stamp <= taken:
        stamp = stamp_for(parse_stamp(taken) + timedelta(milliseconds=1))
    return stamp


def backup_name(stamp: str, kind: str) -> str:
    return f"{stamp}-{kind}"


def kind_of(name: str) -> str | None:
    match = NAME_RE.match(name)
    return match["kind"] if match else None


def manifest_path(chain_dir: Path, name: str) -> Path:
    return chain_dir / f"{name}{MANIFEST_SUFFIX}"


def name_of_manifest(path: Path) -> str:
    return path.name.removesuffix(MANIFEST_SUFFIX)


# --- files --------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename durable (the directory entry itself must reach the disk)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Write `path` under a temporary name; rename only once written and flushed."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    try:
        with temp.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_file(path) as handle:
        handle.write(json.dumps(data, indent=1, sort_keys=False).encode("utf-8") + b"\n")


# --- the manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """A file the backup wrote, with what it holds and its SHA-256."""

    name: str
    content: str  # "sqlite-database" | "sqlite-pages" | "pg-dump-custom"
    compression: str  # "gzip" | "pg_dump"
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class DatabaseInfo:
    """The database the backup reconstructs (for SQLite: byte for byte)."""

    engine: str
    size_bytes: int | None = None
    sha256: str | None = None
    page_size: int | None = None
    page_count: int | None = None
    name: str = ""  # PostgreSQL database name


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str
    chain: str
    seq: int  # 0 for the full backup that starts the chain
    parent: str | None
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    parley_version: str
    migrations: tuple[str, ...]  # "app.name" as recorded in django_migrations
    database: DatabaseInfo
    files: tuple[FileEntry, ...]
    page_hashes: str = ""  # base64 of 8-byte BLAKE2b digests, one per page, in order
    pages_changed: int | None = None
    tool: str = ""  # e.g. "pg_dump (PostgreSQL) 15.4"
    path: Path | None = field(default=None, compare=False)

    @property
    def engine(self) -> str:
        return self.database.engine

    @property
    def size_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.files)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
        data.update(
            name=self.name,
            kind=self.kind,
            chain=self.chain,
            seq=self.seq,
            parent=self.parent,
            started_at=self.started_at.isoformat(),
            finished_at=self.finished_at.isoformat(),
            duration_seconds=round(self.duration_seconds, 3),
            parley_version=self.parley_version,
            migrations=list(self.migrations),
            database=asdict(self.database),
            files=[asdict(entry) for entry in self.files],
            pages_changed=self.pages_changed,
            tool=self.tool,
            page_hashes={
                "algorithm": "blake2b-64",
                "encoding": "base64",
                "value": self.page_hashes,
            },
        )
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError("not a Parley backup manifest")
        if int(data["format_version"]) > FORMAT_VERSION:
            raise ValueError(
                f"format version {data['format_version']} is newer than this Parley reads "
                f"({FORMAT_VERSION})"
            )
        if data["kind"] not in KINDS:
            raise ValueError(f"unknown kind {data['kind']!r}")
        hashes = data.get("page_hashes") or {}
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            chain=str(data["chain"]),
            seq=int(data["seq"]),
            parent=data["parent"],
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            duration_seconds=float(data["duration_seconds"]),
            parley_version=str(data["parley_version"]),
            migrations=tuple(data["migrations"]),
            database=DatabaseInfo(**data["database"]),
            files=tuple(FileEntry(**entry) for entry in data["files"]),
            page_hashes=str(hashes.get("value", "")),
            pages_changed=data.get("pages_changed"),
            tool=str(data.get("tool", "")),
            path=path,
        )

    def save(self, chain_dir: Path) -> Path:
        path = manifest_path(chain_dir, self.name)
        write_json_atomic(path, self.to_json())
        return path


def load_manifest(path: Path) -> Manifest:
    """Read a manifest; a missing, unreadable or malformed one is an error naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest.from_json(data, path)
    except FileNotFoundError:
        raise BackupError(f"{path}: the manifest is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BackupError(f"{path}: not a valid backup manifest ({error})") from None
    if manifest.name != name_of_manifest(path):
        raise BackupError(f"{path}: the manifest names another backup ({manifest.name})")
    return manifest


# --- the verified sidecar -----------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked_at: datetime
    by: str  # "verify_backups" | "restore"
    reason: str = ""


def verified_path(chain_dir: Path, name: str) -> Path:
    return chain_dir / f"{name}{VERIFIED_SUFFIX}"


def record_verification(chain_dir: Path, name: str, *, ok: bool, by: str, reason: str = "") -> None:
    """Remember the last check of a backup next to its manifest (best effort: the backup
    folder may be read-only, and the check's result was printed anyway)."""
    data = {"ok": ok, "checked_at": datetime.now(UTC).isoformat(), "by": by, "reason": reason}
    with contextlib.suppress(OSError):
        write_json_atomic(verified_path(chain_dir, name), data)


def read_verification(chain_dir: Path, name: str) -> Verification | None:
    try:
        data = json.loads(verified_path(chain_dir, name).read_text(encoding="utf-8"))
        return Verification(
            ok=bool(data["ok"]),
            checked_at=datetime.fromisoformat(data["checked_at"]),
            by=str(data.get("by", "")),
            reason=str(data.get("reason", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
