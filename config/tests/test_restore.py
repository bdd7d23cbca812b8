"""`manage.py restore`: the drill (every moment comes back exactly), damage that names the
file at fault and leaves the live database alone, and `--replace` done safely."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from config.backups import latest_backups
from config.backups.manifest import BackupError, load_manifest, manifest_path
from config.backups.restore import restore_sqlite
from config.backups.snapshot import backup_sqlite
from config.tests.backup_support import (
    change,
    django_shell,
    integrity,
    live_state,
    migrated_data_dir,
    populate,
    table_checksums,
)
from config.tests.test_settings_env import run_manage


@pytest.mark.slow
def test_restore_drill_brings_back_every_moment_exactly(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    db, dest = data_dir / "db.sqlite3", tmp_path / "backups"
    populate(data_dir)
    moments = []  # (backup name, checksums of the live database when it was taken)
    for seed in (None, 2, 3, 4):
        if seed is not None:
            change(data_dir, seed)
        sums = table_checksums(db)
        result = backup_sqlite(db_path=db, dest=dest, kind=None)
        moments.append((result.manifest.name, sums))
    change(data_dir, 5)  # after the last backup: must not come back

    chain_id = load_manifest(next(dest.glob(f"*/{moments[0][0]}.manifest.json"))).chain
    assert [name.split("-", 1)[1] for name, _ in moments] == ["full"] + ["incremental"] * 3
    assert moments[0][1]["chat_message"][0] >= 3000
    latest = restore_sqlite(dest=dest, ref=chain_id, to=tmp_path / "latest.sqlite3")
    assert latest.backups_applied == 4
    assert table_checksums(latest.written_to) == moments[-1][1]
    assert table_checksums(latest.written_to) != table_checksums(db)

    second = restore_sqlite(dest=dest, ref=chain_id, at=moments[1][0], to=tmp_path / "2.sqlite3")
    assert table_checksums(second.written_to) == moments[1][1] != moments[-1][1]
    assert integrity(second.written_to) == "ok"


@pytest.fixture(scope="module")
def pristine_chain(tmp_path_factory) -> Path:
    """A live WAL database and a chain of a full and three incrementals, built once."""
    root = tmp_path_factory.mktemp("chain")
    db = root / "live" / "db.sqlite3"
    db.parent.mkdir()
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO note (body) VALUES (?)", [("n" * 900,)] * 800)
    for step in range(4):
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE note SET body = ? WHERE id % 7 = ?", (f"step {step}", step))
        backup_sqlite(db_path=db, dest=root / "backups", kind=None)
    return root


def _damage(dest: Path, how: str) -> Path:
    """Damage the chain one way; returns the file a good error message must name."""
    (chain_dir,) = [p for p in dest.iterdir() if p.is_dir()]
    manifests = sorted(chain_dir.glob("*.manifest.json"))
    full, first, second, last = (load_manifest(path) for path in manifests)
    if how == "flipped byte":
        data = chain_dir / first.files[0].name
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        data.write_bytes(bytes(raw))
        return data
    if how == "truncated":
        data = chain_dir / full.files[0].name
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        return data
    if how == "missing incremental":
        (chain_dir / second.files[0].name).unlink()
        manifest_path(chain_dir, second.name).unlink()
        return manifest_path(chain_dir, second.name)
    assert how == "wrong manifest"
    path = manifest_path(chain_dir, last.name)
    data = json.loads(path.read_text())
    data["files"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    return chain_dir / last.files[0].name


@pytest.mark.parametrize(
    "how", ["flipped byte", "truncated", "missing incremental", "wrong manifest"]
)
def test_damaged_backups_fail_naming_the_file_and_leave_the_live_database_alone(
    pristine_chain, tmp_path, how
):
    root = tmp_path / "copy"
    shutil.copytree(pristine_chain, root)
    db, dest = root / "live" / "db.sqlite3", root / "backups"
    culprit = _damage(dest, how)
    before, files = live_state(db), sorted(db.parent.iterdir())
    with pytest.raises(BackupError) as failure:
        restore_sqlite(dest=dest, ref="latest", replace=db)
    assert str(culprit) in str(failure.value)
    assert live_state(db) == before
    assert sorted(db.parent.iterdir()) == files  # nothing moved aside, no leftovers
    with pytest.raises(BackupError, match=str(culprit)):
        restore_sqlite(dest=dest, ref="latest", to=tmp_path / "out.sqlite3")
    assert not (tmp_path / "out.sqlite3").exists()


@pytest.mark.slow
def test_replace_keeps_the_old_files_and_the_app_serves_the_restored_data(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    db = data_dir / "db.sqlite3"
    populate(data_dir, users=3, sessions=5, messages=50)
    assert run_manage(data_dir, "backup", "-v", "0").returncode == 0
    django_shell(data_dir, "from accounts.models import User; User.objects.create(username='late')")

    done = run_manage(data_dir, "restore", "latest", "--replace")
    assert done.returncode == 0, done.stderr
    assert "db.sqlite3.pre-restore" in done.stdout
    probe = (
        "from accounts.models import AuditEvent, User; from chat.models import Message; "
        "print(User.objects.filter(username='late').exists(), Message.objects.count(), "
        "list(AuditEvent.objects.filter(action='restore').values_list('target', flat=True)))"
    )
    late, messages, restores = django_shell(data_dir, probe).strip().split(" ", 2)
    assert (late, messages) == ("False", "50")
    assert restores == f"[{latest_backups(data_dir / 'backups')['full'].name!r}]"
    with sqlite3.connect(f"{db}.pre-restore") as old:
        assert old.execute("SELECT 1 FROM accounts_user WHERE username = 'late'").fetchone()

    again = run_manage(data_dir, "restore", "latest", "--replace", "-v", "0")
    assert again.returncode == 0, again.stderr
    assert len(list(data_dir.glob("db.sqlite3.*.pre-restore"))) == 1  # timestamped, kept both
    assert Path(f"{db}.pre-restore").exists()


@pytest.mark.slow
def test_replace_refuses_while_another_process_has_the_database_open(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    db = data_dir / "db.sqlite3"
    assert run_manage(data_dir, "backup", "-v", "0").returncode == 0
    holder = sqlite3.connect(db)  # as an idle gunicorn worker would
    holder.execute("SELECT count(*) FROM django_migrations").fetchone()
    try:
        before = live_state(db)
        refused = run_manage(data_dir, "restore", "latest", "--replace")
        assert refused.returncode != 0
        assert f"process {os.getpid()} has the database open" in refused.stderr
        assert str(db) in refused.stderr and "nothing was changed" in refused.stderr
        assert live_state(db) == before and not Path(f"{db}.pre-restore").exists()
        forced = run_manage(data_dir, "restore", "latest", "--replace", "--force")
        assert forced.returncode == 0, forced.stderr
        assert Path(f"{db}.pre-restore").exists()
    finally:
        holder.close()


@pytest.mark.slow
def test_restore_warns_about_api_keys_the_current_keys_cannot_open(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    django_shell(
        data_dir,
        "from models_registry.models import ModelConfig\n"
        "m = ModelConfig(name='m', api_url='http://127.0.0.1:9/v1', model='x')\n"
        "m.set_api_key('sk-test-123'); m.save()",
    )
    assert run_manage(data_dir, "backup", "-v", "0").returncode == 0
    same = run_manage(data_dir, "restore", "latest", "--to", str(tmp_path / "a.sqlite3"))
    assert same.returncode == 0, same.stderr
    assert "All 1 stored API key(s) decrypt" in same.stdout
    other_keys = run_manage(
        data_dir,
        "restore",
        "latest",
        "--to",
        str(tmp_path / "b.sqlite3"),
        PARLEY_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    assert other_keys.returncode == 0, other_keys.stderr  # a warning, not a failure
    assert "1 of 1 stored API key(s) do not decrypt" in other_keys.stderr
    assert (tmp_path / "b.sqlite3").exists()


def test_to_never_overwrites_and_unknown_names_are_clear(pristine_chain, tmp_path):
    dest = pristine_chain / "backups"
    existing = tmp_path / "there.sqlite3"
    existing.write_bytes(b"keep me")
    with pytest.raises(BackupError, match="exists already"):
        restore_sqlite(dest=dest, ref="latest", to=existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(BackupError, match=r"no backup named 20000101T000000\.000Z-full"):
        restore_sqlite(dest=dest, ref="20000101T000000.000Z-full", to=tmp_path / "x")
    with pytest.raises(BackupError, match="no backup nope"):
        restore_sqlite(dest=dest, ref="latest", at="nope", to=tmp_path / "x")
