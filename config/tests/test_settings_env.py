"""Zero-config settings: generated secrets, the shared cache, synchronous=NORMAL opt-in."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config.secret_files import read_or_create_secret, secret_from_env_or_file

ROOT = Path(__file__).resolve().parents[2]


def run_manage(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py with production settings and a given DATA_DIR (no inherited .env values)."""
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARLEY_", "DJANGO_", "DATABASE_", "CACHE_", "SECRET_", "SQLITE_"))
    }
    clean_env.update({"DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "config.settings"})
    clean_env.update(env)
    if args[:1] == ("shell",):
        args = ("shell", "--no-imports", *args[1:])
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_secret_file_is_created_private_and_reused(tmp_path):
    path = tmp_path / "secret_key"
    first = read_or_create_secret(path, lambda: "generated-once")
    assert first == "generated-once"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_or_create_secret(path, lambda: "must-not-be-used")
    assert again == "generated-once"


def test_environment_and_file_variant_win_over_the_generated_file(tmp_path):
    secret_file = tmp_path / "docker-secret"
    secret_file.write_text("from-a-docker-secret\n")
    generated = tmp_path / "generated"
    assert secret_from_env_or_file("from-env", "", generated, lambda: "x") == "from-env"
    assert (
        secret_from_env_or_file("", str(secret_file), generated, lambda: "x")
        == "from-a-docker-secret"
    )
    assert not generated.exists()


@pytest.mark.slow
def test_a_fresh_data_dir_gets_a_secret_key_that_later_starts_reuse(tmp_path):
    show_key = ("shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    first = run_manage(tmp_path, *show_key)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = run_manage(tmp_path, *show_key)
    assert first.stdout.strip() == second.stdout.strip() == key_file.read_text().strip()
    assert len(first.stdout.strip()) >= 50


@pytest.mark.slow
def test_default_cache_is_shared_between_processes(tmp_path):
    """Throttling and Stop must hold across gunicorn workers: one process sees another's writes."""
    writer = run_manage(
        tmp_path, "shell", "-c", "from django.core.cache import cache; cache.set('probe', 42, 60)"
    )
    assert writer.returncode == 0, writer.stderr
    reader = run_manage(
        tmp_path, "shell", "-c", "from django.core.cache import cache; print(cache.get('probe'))"
    )
    assert reader.stdout.strip() == "42"


@pytest.mark.slow
def test_synchronous_normal_is_an_explicit_choice(tmp_path):
    probe = (
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('PRAGMA synchronous'); print(c.fetchone()[0])"
    )
    default = run_manage(tmp_path, "shell", "-c", probe)
    normal = run_manage(tmp_path, "shell", "-c", probe, SQLITE_SYNCHRONOUS="normal")
    assert (default.stdout.strip(), normal.stdout.strip()) == ("2", "1")
    wrong = run_manage(tmp_path, "check", SQLITE_SYNCHRONOUS="off")
    assert wrong.returncode != 0
    assert "SQLITE_SYNCHRONOUS must be FULL or NORMAL" in wrong.stderr
