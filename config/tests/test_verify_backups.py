"""`manage.py verify_backups` and `latest_backups()`: every chain rebuilt and checked, the
result remembered where the status page reads it, a broken backup named with its reason."""

from __future__ import annotations

import sqlite3
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from config.backups import BackupSummary, latest_backups
from config.backups.manifest import load_manifest
from config.backups.snapshot import backup_sqlite


def _chains(tmp_path: Path) -> tuple[Path, list[str]]:
    """Two chains: full + two incrementals, then full + one incremental."""
    db, dest = tmp_path / "db.sqlite3", tmp_path / "backups"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    names = []
    for step, kind in enumerate(["full", None, None, "full", None]):
        with sqlite3.connect(db) as conn:
            conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"{step}" * 500,)] * 50)
        names.append(backup_sqlite(db_path=db, dest=dest, kind=kind).manifest.name)
    return dest, names


def test_every_backup_ok_is_reported_and_recorded(tmp_path):
    dest, names = _chains(tmp_path)
    assert latest_backups(dest)["full"].verified is None
    out = StringIO()
    call_command("verify_backups", "--dest", str(dest), stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split("/")[-1] for line in lines[:-1]] == names
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert lines[-1] == "5 backup(s) in 2 chain(s): 5 ok, 0 broken."
    latest = latest_backups(dest)
    assert latest["full"].name == names[3] and latest["incremental"].name == names[4]
    assert latest["full"].verified is True and latest["incremental"].verified is True


def test_a_broken_backup_breaks_the_rest_of_its_chain_only(tmp_path):
    dest, names = _chains(tmp_path)
    damaged = next(dest.glob(f"*/{names[1]}.pages.gz"))
    damaged.write_bytes(damaged.read_bytes()[:-20])
    out = StringIO()
    with pytest.raises(CommandError, match="2 broken backup"):
        call_command("verify_backups", "--dest", str(dest), stdout=out)
    report = out.getvalue()
    assert (
        f"BROKEN  {load_manifest(next(dest.glob(f'*/{names[1]}.manifest.json'))).chain}" in report
    )
    assert str(damaged) in report
    assert f"{names[2]}: after a broken backup" in report
    assert sum(line.startswith("ok ") for line in report.splitlines()) == 3
    latest = latest_backups(dest)
    assert latest["incremental"].verified is True  # the other chain is fine
    summary = latest_backups(dest)  # still cheap to call repeatedly
    assert isinstance(summary["full"], BackupSummary)
    broken = next(dest.glob(f"*/{names[2]}.verified.json"))
    assert '"ok": false' in broken.read_text()


def test_no_backups_is_not_an_error_and_latest_is_empty(tmp_path):
    out = StringIO()
    call_command("verify_backups", "--dest", str(tmp_path / "none"), stdout=out)
    assert "No backups" in out.getvalue()
    assert latest_backups(tmp_path / "none") == {"full": None, "incremental": None}


def test_latest_backups_reads_manifests_only_and_skips_an_unreadable_one(tmp_path):
    dest, names = _chains(tmp_path)
    newest = next(dest.glob(f"*/{names[4]}.manifest.json"))
    newest.write_text("{not json")
    latest = latest_backups(dest)
    assert latest["incremental"].name == names[2]
    assert latest["full"].finished_at.tzinfo is not None and latest["full"].size_bytes > 0
    assert latest["full"].kind == "full" and latest["full"].chain == names[3].rsplit("-", 1)[0]
