"""Every benchmark script runs with ``--smoke`` and prints its markdown table (``make test``).

Scripts are found by glob, so a new ``bench/*.py`` is covered without touching this file;
``common.py``, ``corpus.py``, helper modules (``_*.py``) and tests are not scripts. Each runs
in a subprocess from the repository root with the environment stripped of anything that
would point it at the suite's database or cache: a script sets up its own throw-away
SQLite. No timing is asserted here; the numbers belong in docs/performance.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOT_SCRIPTS = {"common.py", "corpus.py", "conftest.py"}
SCRIPTS = sorted(
    path
    for path in BENCH.glob("*.py")
    if path.name not in NOT_SCRIPTS and not path.name.startswith(("test_", "_"))
)
# The suite's own settings must not leak into a script: it picks its own data directory.
STRIPPED_PREFIXES = ("PARLEY_", "DATABASE_", "CACHE_")
STRIPPED_NAMES = {"DATA_DIR", "DJANGO_SETTINGS_MODULE"}
TIMEOUT = 300

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
        reason="the benchmarks use their own SQLite: run once, in the SQLite pass",
    ),
]


def script_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(STRIPPED_PREFIXES) and name not in STRIPPED_NAMES
    }


def test_the_glob_finds_the_scripts():
    names = {path.name for path in SCRIPTS}
    assert {"compression.py", "context_build.py", "sidebar.py", "chat_page.py"} <= names
    assert "storage.py" in names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_runs_with_smoke_and_prints_a_table(script):
    result = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        cwd=ROOT,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    assert any(line.startswith("| ") for line in result.stdout.splitlines()), (
        f"no markdown table in the output:\n{result.stdout[-2000:]}"
    )
