"""Slow-query logging: every SQL statement slower than PARLEY_SLOW_QUERY_MS is logged with
its SQL and time, and the latest ones are kept in the shared cache for the status page."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("parley.slow_queries")
RECENT_KEY = "slow-queries:recent"
RECENT_LIMIT = 20


def record_slow_queries(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms >= settings.PARLEY_SLOW_QUERY_MS:
            statement = " ".join(str(sql).split())[:2000]
            logger.warning("slow query (%.0f ms): %s", elapsed_ms, statement)
            recent = cache.get(RECENT_KEY) or []
            recent.insert(0, {"ms": round(elapsed_ms), "sql": statement, "at": time.time()})
            cache.set(RECENT_KEY, recent[:RECENT_LIMIT], timeout=7 * 24 * 3600)


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created handler: wrap every statement of every new connection."""
    if record_slow_queries not in connection.execute_wrappers:
        connection.execute_wrappers.append(record_slow_queries)


def recent_slow_queries() -> list[dict[str, Any]]:
    return cache.get(RECENT_KEY) or []
