"""The entrypoint backs up before `migrate` changes an existing database, and only then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.tests.backup_support import migrated_data_dir, populate, table_checksums
from config.tests.test_settings_env import run_manage

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "scripts" / "entrypoint.sh"


def run_entrypoint(data_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`entrypoint.sh true`: everything before serving, then `true` instead of gunicorn."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARLEY_", "DJANGO_", "DATABASE_", "CACHE_", "SECRET_"))
    }
    env.update(DATA_DIR=str(data_dir), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    return subprocess.run(
        [str(ENTRYPOINT), "true"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def manifests(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "backups").glob("*/*.manifest.json"))


@pytest.mark.slow
def test_pending_migrations_on_a_populated_database_are_backed_up_first(tmp_path):
    data_dir = migrated_data_dir(tmp_path / "data")
    populate(data_dir, users=5, sessions=20, messages=300)
    # One app a step back: its migration is pending, as after an upgrade.
    assert run_manage(data_dir, "migrate", "sessions", "zero", "-v", "0").returncode == 0
    before = table_checksums(data_dir / "db.sqlite3")

    started = run_entrypoint(data_dir, tmp_path)
    assert started.returncode == 0, started.stderr
    (manifest_file,) = manifests(data_dir)
    manifest = json.loads(manifest_file.read_text())
    assert manifest["kind"] == "full"
    # Taken before migrate: the pending migration is not in it, the data is.
    assert "sessions.0001_initial" not in manifest["migrations"]
    assert "chat.0001_initial" in manifest["migrations"]
    output = started.stdout
    assert output.index("Backup full") < output.index("Applying sessions.0001_initial")
    restored = tmp_path / "restored.sqlite3"
    done = run_manage(data_dir, "restore", manifest["chain"], "--to", str(restored), "-v", "0")
    assert done.returncode == 0, done.stderr
    assert table_checksums(restored)["chat_message"] == before["chat_message"]

    again = run_entrypoint(data_dir, tmp_path)
    assert again.returncode == 0, again.stderr
    assert manifests(data_dir) == [manifest_file]  # nothing pending: no backup


@pytest.mark.slow
def test_a_fresh_data_dir_starts_without_a_backup(tmp_path):
    data_dir = tmp_path / "fresh"
    started = run_entrypoint(data_dir, tmp_path)
    assert started.returncode == 0, started.stderr
    assert (data_dir / "db.sqlite3").stat().st_size > 0
    assert manifests(data_dir) == []
