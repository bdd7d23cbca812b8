"""`make test` skips the PostgreSQL pass in one line without a server, unless CI requires it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOBODY_LISTENS = "postgres://nobody@127.0.0.1:1/parley"


def run_pass(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "test-postgres.sh")],
        env={**os.environ, "PYTHON": sys.executable, "TEST_DATABASE_URL": NOBODY_LISTENS, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_postgres_the_pass_is_skipped_in_one_line():
    result = run_pass(PARLEY_REQUIRE_POSTGRES="0")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "skipping the PostgreSQL pass" in lines[0]


def test_ci_fails_instead_of_skipping():
    result = run_pass(PARLEY_REQUIRE_POSTGRES="1")
    assert result.returncode != 0
    assert "PostgreSQL is required" in result.stderr
