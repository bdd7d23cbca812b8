"""The container entrypoint, run outside Docker: migrates a fresh DATA_DIR, then serves."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_fresh_data_dir(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARLEY_", "DJANGO_", "DATABASE_", "CACHE_", "SECRET_"))
    }
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
    )
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "entrypoint.sh")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield port, tmp_path / "data", env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_for_health(port: int, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                return reply.status
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer /healthz in time")


@pytest.mark.slow
def test_entrypoint_migrates_a_fresh_data_dir_and_serves(served_fresh_data_dir):
    port, data_dir, env = served_fresh_data_dir
    assert wait_for_health(port) == 200
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        applied = {row[0] for row in db.execute("SELECT app FROM django_migrations")}
    assert {"accounts", "config", "models_registry", "chat", "sessions"} <= applied
    assert (data_dir / "secret_key").exists()
    healthcheck = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "healthcheck.py")],
        env={**env, "PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert healthcheck.returncode == 0


def test_healthcheck_script_fails_when_nothing_answers():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "healthcheck.py")],
        env={**os.environ, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "healthcheck failed" in result.stderr
