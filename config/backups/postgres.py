"""PostgreSQL: full backups through pg_dump; incremental backups are the server's own job.

`pg_dump --format=custom` reads one consistent snapshot (a repeatable-read transaction)
without blocking writers, compresses, and is what `pg_restore` reads table by table. A
page-level incremental like the SQLite one cannot be taken from outside a PostgreSQL
server: continuous WAL archiving (`archive_command`, pgBackRest, Barman) is how it is
backed up incrementally, with point-in-time recovery as a bonus. So `backup` on
PostgreSQL is always full, and `--incremental` says so and fails.

The connection settings reach pg_dump through libpq's environment variables (PGHOST,
PGPASSWORD, ...), never its command line, so the password is not visible in `ps`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from config.backups import chain
from config.backups.manifest import (
    FULL,
    POSTGRESQL,
    TEMP_PREFIX,
    BackupError,
    DatabaseInfo,
    FileEntry,
    Manifest,
    backup_name,
    next_stamp,
    sha256_file,
)
from config.backups.pagefile import Reporter
from config.backups.restore import verify_files
from config.backups.snapshot import BackupResult

INCREMENTAL_REFUSED = (
    "Incremental backups of PostgreSQL are the database server's own job: use continuous "
    "WAL archiving (archive_command) or a tool such as pgBackRest or Barman. "
    "`manage.py backup` takes full backups with pg_dump: run it without --incremental."
)
PG_DUMP_MISSING = (
    "pg_dump was not found on PATH. Install the PostgreSQL client tools (the same major "
    "version as the server or newer; on Debian the postgresql-client package) or use the "
    "database server's own backups (docs/operations.md)."
)
_ENV = {"HOST": "PGHOST", "PORT": "PGPORT", "USER": "PGUSER", "PASSWORD": "PGPASSWORD"}
_OPTION_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
}


def pg_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    """The environment that points libpq (pg_dump) at Django's database."""
    env = dict(os.environ)  # libpq variables the operator set apply to Django's psycopg too
    for key, variable in _ENV.items():
        if settings_dict.get(key):
            env[variable] = str(settings_dict[key])
    for key, variable in _OPTION_ENV.items():
        value = (settings_dict.get("OPTIONS") or {}).get(key)
        if value:
            env[variable] = str(value)
    if settings_dict.get("NAME"):
        env["PGDATABASE"] = str(settings_dict["NAME"])
    return env


def _migrations(connection: Any) -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        return tuple(f"{app}.{name}" for app, name in cursor.fetchall())


def backup_postgres(
    *,
    connection: Any,
    dest: Path,
    kind: str | None,
    keep: int | None = None,
    report: Reporter | None = None,
) -> BackupResult:
    """A full pg_dump (custom format) of the default database into `dest`, with a manifest."""
    if kind not in (None, FULL):
        raise BackupError(INCREMENTAL_REFUSED)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(PG_DUMP_MISSING)
    dest.mkdir(parents=True, exist_ok=True)
    with chain.dest_lock(dest, exclusive=True, waiting=report):
        chain.remove_leftovers(dest)
        started = datetime.now(UTC)
        clock = time.monotonic()
        stamp = next_stamp(started, chain.newest_name(dest))
        name = backup_name(stamp, FULL)
        chain_dir = dest / stamp
        chain_dir.mkdir()
        dump = chain_dir / f"{name}.dump"
        temp = chain_dir / f"{TEMP_PREFIX}{dump.name}"
        env = pg_env(connection.settings_dict)
        if report is not None:
            report(f"  running pg_dump on database {env.get('PGDATABASE', '?')}...")
        done = subprocess.run(
            [pg_dump, "--format=custom", "--no-password", f"--file={temp}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not temp.is_file():
            temp.unlink(missing_ok=True)
            shutil.rmtree(chain_dir, ignore_errors=True)
            detail = done.stderr.strip()[-800:] or f"exit status {done.returncode}"
            raise BackupError(f"{dump}: pg_dump failed: {detail}")
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        temp.replace(dump)
        tool = subprocess.run(
            [pg_dump, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        manifest = Manifest(
            name=name,
            kind=FULL,
            chain=stamp,
            seq=0,
            parent=None,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_seconds=time.monotonic() - clock,
            parley_version=settings.PARLEY_VERSION,
            migrations=_migrations(connection),
            database=DatabaseInfo(engine=POSTGRESQL, name=env.get("PGDATABASE", "")),
            files=(
                FileEntry(
                    name=dump.name,
                    content="pg-dump-custom",
                    compression="pg_dump",
                    size_bytes=dump.stat().st_size,
                    sha256=sha256_file(dump),
                ),
            ),
            tool=tool,
        )
        try:
            manifest = dataclasses.replace(manifest, path=manifest.save(chain_dir))
        except BaseException:
            dump.unlink(missing_ok=True)
            raise
        pruned = tuple(chain.prune(dest, keep)) if keep is not None else ()
    return BackupResult(manifest, chain_dir, None, None, pruned)


def verify_dump(manifest: Manifest, chain_dir: Path) -> None:
    """SHA-256 of the dump, then `pg_restore --list` (reads the archive, needs no server)."""
    verify_files(manifest, chain_dir)
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        return
    dump = chain_dir / manifest.files[0].name
    done = subprocess.run(
        [pg_restore, "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{dump}: pg_restore cannot read it: {done.stderr.strip()[-300:]}")
