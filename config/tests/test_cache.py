"""The default file cache keeps live entries when it fills up with expired ones."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from config.cache import DEFAULT_MAX_ENTRIES, ParleyFileCache


@pytest.fixture
def small_cache(tmp_path) -> ParleyFileCache:
    return ParleyFileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 50, "CULL_FREQUENCY": 3}})


def test_a_full_cache_drops_expired_entries_and_keeps_live_ones(small_cache, monkeypatch):
    small_cache.set("stop-flag", 1, timeout=600)
    small_cache.set("login-lockout", 5, timeout=900)
    for n in range(40):
        small_cache.set(f"old-rate-count-{n}", n, timeout=1)
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)

    for n in range(30):  # every set past the limit culls
        small_cache.set(f"new-{n}", n, timeout=600)

    assert small_cache.get("stop-flag") == 1
    assert small_cache.get("login-lockout") == 5
    assert len(small_cache._list_cache_files()) < 50


def test_a_cache_full_of_live_entries_still_culls(small_cache):
    for n in range(80):
        small_cache.set(f"live-{n}", n, timeout=600)
    assert len(small_cache._list_cache_files()) < 80


def test_the_default_file_cache_is_parleys_with_a_larger_limit():
    if settings.CACHES["default"]["BACKEND"] != "config.cache.ParleyFileCache":
        pytest.skip("this run uses another cache (the PostgreSQL + Redis pass)")
    from django.core.cache import caches

    assert isinstance(caches["default"], ParleyFileCache)
    assert caches["default"]._max_entries == DEFAULT_MAX_ENTRIES
