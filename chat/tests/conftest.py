"""Fixtures for the end-to-end tests: a real Parley under gunicorn (see `live.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.tests.live import LiveParley, collect_static, start_live_parley


@pytest.fixture(scope="session")
def live_static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The current static files, collected once per run (never into the working tree)."""
    root = tmp_path_factory.mktemp("live-static") / "static"
    collect_static(root)
    return root


@pytest.fixture(scope="module")
def parley_server(
    tmp_path_factory: pytest.TempPathFactory, live_static_root: Path
) -> Iterator[LiveParley]:
    """A fresh Parley for one test module: empty database, two gunicorn workers."""
    server = start_live_parley(tmp_path_factory.mktemp("live-parley"), live_static_root)
    try:
        yield server
    finally:
        server.stop()
