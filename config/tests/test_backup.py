"""`manage.py backup`: consistent snapshots while writers run, incrementals that hold only
changed pages, manifests that let the next backup and a restore check everything,
nothing that looks complete after a crash, and retention that never orphans a backup."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from config.backups import latest_backups, pagefile, snapshot
from config.backups.chain import backup_names, chain_dirs, walk_chain
from config.backups.manifest import FORMAT_VERSION, load_manifest, manifest_path
from config.backups.restore import restore_sqlite
from config.backups.snapshot import backup_sqlite
from config.tests.backup_support import file_sha256, integrity, migrated_data_dir, populate
from config.tests.test_settings_env import run_manage


def small_db(path: Path, rows: int = 2000) -> Path:
    """A WAL database with one table of varied rows, made without Django (fast)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO note (body) VALUES (?)",
            ((f"note {i} " + "z" * (i % 700),) for i in range(rows)),
        )
    return path


def write(path: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, params)


def test_incremental_holds_only_the_changed_pages_and_a_full_manifest(tmp_path):
    db, dest = small_db(tmp_path / "db.sqlite3"), tmp_path / "backups"
    full = backup_sqlite(db_path=db, dest=dest, kind=None)
    write(db, "UPDATE note SET body = 'changed' WHERE id = 1500")
    incremental = backup_sqlite(db_path=db, dest=dest, kind=None)

    assert (full.manifest.kind, incremental.manifest.kind) == ("full", "incremental")
    assert incremental.manifest.chain == full.manifest.chain
    assert incremental.manifest.parent == full.manifest.name
    assert full.pages_changed == full.pages_total
    # The row's page, plus page 1 (the header's change counter): nothing else.
    assert incremental.pages_changed is not None and 1 <= incremental.pages_changed <= 3
    assert incremental.manifest.size_bytes * 10 < full.manifest.size_bytes

    data = json.loads(manifest_path(incremental.chain_dir, incremental.manifest.name).read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["kind"] == "incremental" and data["parent"] == full.manifest.name
    assert data["database"]["page_size"] == 4096
    assert data["database"]["page_count"] == len(
        pagefile.decode_digests(data["page_hashes"]["value"])
    )
    assert data["parley_version"] and data["duration_seconds"] >= 0
    assert data["started_at"].endswith("+00:00") and data["finished_at"] >= data["started_at"]
    (entry,) = data["files"]
    assert entry["sha256"] == file_sha256(incremental.chain_dir / entry["name"])
    # The database it reconstructs is the live one at that moment, byte for byte.
    with sqlite3.connect(tmp_path / "copy.sqlite3") as copy, sqlite3.connect(db) as live:
        live.backup(copy)
    assert data["database"]["sha256"] == file_sha256(tmp_path / "copy.sqlite3")


def test_manifest_records_the_applied_migrations(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    result = backup_sqlite(db_path=data_dir / "db.sqlite3", dest=tmp_path / "b", kind="full")
    assert {"accounts.0001_initial", "chat.0001_initial", "sessions.0001_initial"} <= set(
        result.manifest.migrations
    )


def test_explicit_incremental_without_a_chain_starts_one_and_says_so(tmp_path):
    db = small_db(tmp_path / "db.sqlite3", rows=10)
    result = backup_sqlite(db_path=db, dest=tmp_path / "b", kind="incremental")
    assert result.manifest.kind == "full" and "no chain yet" in result.note
    again = backup_sqlite(db_path=db, dest=tmp_path / "b", kind="full")
    assert again.manifest.kind == "full" and again.manifest.chain != result.manifest.chain


def test_progress_lines_on_long_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "PROGRESS_AFTER_SECONDS", 0)
    lines: list[str] = []
    backup_sqlite(
        db_path=small_db(tmp_path / "db.sqlite3"),
        dest=tmp_path / "b",
        kind=None,
        report=lines.append,
    )
    progress = [line for line in lines if "pages (" in line]
    assert progress[-1].endswith("(100%)") and 5 <= len(progress) <= 11
    assert re.search(r"\d+/\d+ pages \(\d+%\)", progress[0])


def test_a_crash_mid_backup_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    db, dest = small_db(tmp_path / "db.sqlite3"), tmp_path / "backups"
    backup_sqlite(db_path=db, dest=dest, kind="full")
    real_write = pagefile.write_data

    def crash(snapshot_file: Path, out: Path, **kwargs):
        real_write(snapshot_file, out, **kwargs)
        raise KeyboardInterrupt  # killed after the data, before the manifest

    monkeypatch.setattr(snapshot, "write_data", crash)
    with pytest.raises(KeyboardInterrupt):
        backup_sqlite(db_path=db, dest=dest, kind="incremental")
    (chain_dir,) = chain_dirs(dest)
    assert len(backup_names(chain_dir)) == 1
    assert latest_backups(dest)["incremental"] is None
    assert not list(dest.rglob("*.pages.gz")) and not list(dest.rglob("*.snapshot*"))

    # A leftover from a harder crash (power cut) is tidied by the next backup.
    (chain_dir / ".tmp-20990101T000000.000Z-incremental.pages.gz").write_bytes(b"partial")
    monkeypatch.setattr(snapshot, "write_data", real_write)
    backup_sqlite(db_path=db, dest=dest, kind="incremental")
    assert not list(dest.rglob(".tmp-*"))
    assert latest_backups(dest)["incremental"] is not None


def test_keep_deletes_old_chains_whole_and_never_a_parent_of_a_kept_backup(tmp_path):
    db, dest = small_db(tmp_path / "db.sqlite3", rows=50), tmp_path / "backups"
    plan = ["full", None, None, "full", None, "full", None]
    chains = []
    for step, kind in enumerate(plan):
        write(db, "INSERT INTO note (body) VALUES (?)", f"step {step}")
        result = backup_sqlite(db_path=db, dest=dest, kind=kind, keep=2)
        chains.append(result.manifest.chain)
    _first, second, third = dict.fromkeys(chains)
    assert [c.name for c in chain_dirs(dest)] == [second, third]
    # Every kept backup still has its whole ancestry, so it restores.
    for chain_dir in chain_dirs(dest):
        for name in backup_names(chain_dir):
            walk_chain(chain_dir, name)
    assert len(backup_names(dest / second)) == 2  # its full and the incremental after it
    out = restore_sqlite(dest=dest, ref=second, to=tmp_path / "second.sqlite3")
    assert out.backups_applied == 2
    backup_sqlite(db_path=db, dest=dest, kind=None, keep=1)
    assert [c.name for c in chain_dirs(dest)] == [third]


def test_backups_taken_while_four_threads_write_all_restore_intact(tmp_path):
    db, dest = small_db(tmp_path / "db.sqlite3", rows=500), tmp_path / "backups"
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0] * 4

    def writer(number: int) -> None:
        rng = random.Random(number)
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO note (body) VALUES (?)",
                    (f"t{number} " + "w" * rng.randint(0, 3000),),
                )
                conn.execute(
                    "UPDATE note SET body = body || '+' WHERE id = ?", (rng.randint(1, 500),)
                )
                conn.execute("DELETE FROM note WHERE id = ?", (rng.randint(1, 2000),))
                conn.execute("COMMIT")
                written[number] += 1
                time.sleep(rng.uniform(0.0005, 0.003))
        except BaseException as error:  # surfaced in the test thread below
            errors.append(error)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        names, totals = [], []
        for kind in ("full", None, None, None):
            time.sleep(0.25)
            names.append(backup_sqlite(db_path=db, dest=dest, kind=kind).manifest.name)
            totals.append(sum(written))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors and min(written) > 0
    assert totals == sorted(set(totals))  # the writers kept writing around every backup
    chain_id = load_manifest(next(dest.glob(f"*/{names[0]}.manifest.json"))).chain
    for name in names:
        out = restore_sqlite(dest=dest, ref=chain_id, at=name, to=tmp_path / f"{name}.sqlite3")
        assert integrity(out.written_to) == "ok"


@pytest.mark.slow
def test_backup_command_summary_quiet_mode_and_audit(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    populate(data_dir, users=3, sessions=10, messages=200)
    loud = run_manage(data_dir, "backup")
    assert loud.returncode == 0, loud.stderr
    assert re.search(
        r"^Backup full \S+-full: [\d.]+ [KM]iB, (\d+)/\1 pages changed, [\d.]+ s", loud.stdout, re.M
    )
    quiet = run_manage(data_dir, "backup", "--incremental", "-v", "0")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        rows = db.execute(
            "SELECT target, detail FROM accounts_auditevent WHERE action = 'backup' ORDER BY id"
        ).fetchall()
    latest = latest_backups(data_dir / "backups")
    assert [target for target, _ in rows] == [latest["full"].name, latest["incremental"].name]
    detail = json.loads(rows[1][1])
    assert detail == {
        "kind": "incremental",
        "name": latest["incremental"].name,
        "bytes": latest["incremental"].size_bytes,
    }
