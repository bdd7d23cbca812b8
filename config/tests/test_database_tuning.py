"""SQLite is tuned for a web server; the settings are read back from a live connection."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite PRAGMAs only apply to the SQLite backend"
)


def _pragma(name: str) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_every_pragma_is_live_on_the_connection():
    assert _pragma("journal_mode") == "wal"
    assert _pragma("synchronous") == 2  # FULL
    assert _pragma("temp_store") == 2  # MEMORY
    assert _pragma("cache_size") == -8000
    assert _pragma("journal_size_limit") == 67108864
    assert _pragma("foreign_keys") == 1
    assert _pragma("busy_timeout") >= 20_000


def test_connection_options_are_those_of_a_web_server():
    db = settings.DATABASES["default"]
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert db["OPTIONS"]["timeout"] >= 20
    assert db["CONN_MAX_AGE"] > 0
    assert db["CONN_HEALTH_CHECKS"] is True


@pytest.mark.django_db(transaction=True)
def test_atomic_blocks_begin_immediate():
    """A write transaction takes the write lock up front, so it never fails on upgrade."""
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        _pragma("user_version")
    statements = [query["sql"] for query in captured.captured_queries]
    assert statements[0] == "BEGIN IMMEDIATE"
