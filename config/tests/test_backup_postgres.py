"""On PostgreSQL `backup` is a full pg_dump with a manifest; incremental is refused clearly."""

from __future__ import annotations

import shutil
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from config.backups.manifest import BackupError, load_manifest, sha256_file
from config.backups.postgres import PG_DUMP_MISSING, backup_postgres
from config.backups.verify import verify_all

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql" or shutil.which("pg_dump") is None,
    reason="needs the PostgreSQL pass (make test-postgres) and pg_dump on PATH",
)


@on_postgres
@pytest.mark.django_db
def test_full_backup_is_a_pg_dump_with_a_manifest_that_verifies(tmp_path, alice):
    out = StringIO()
    call_command("backup", "--dest", str(tmp_path), stdout=out)
    (manifest_file,) = tmp_path.glob("*/*-full.manifest.json")
    manifest = load_manifest(manifest_file)
    (entry,) = manifest.files
    dump = manifest_file.parent / entry.name
    assert dump.stat().st_size == entry.size_bytes > 1000
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert sha256_file(dump) == entry.sha256
    assert manifest.engine == "postgresql" and manifest.tool.startswith("pg_dump")
    assert "accounts.0001_initial" in manifest.migrations
    assert f"Backup full {manifest.name}" in out.getvalue()
    assert [check.ok for check in verify_all(tmp_path)] == [True]


@on_postgres
@pytest.mark.django_db
def test_incremental_on_postgres_says_whose_job_it_is(tmp_path):
    with pytest.raises(CommandError, match="WAL archiving"):
        call_command("backup", "--incremental", "--dest", str(tmp_path))
    assert not any(tmp_path.glob("*/*.manifest.json"))


def test_missing_pg_dump_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(BackupError) as failure:
        backup_postgres(connection=object(), dest=tmp_path / "b", kind=None)
    assert str(failure.value) == PG_DUMP_MISSING and "pg_dump was not found" in PG_DUMP_MISSING
    assert not (tmp_path / "b").exists()
