"""The default cache: Django's file cache, culling expired entries before live ones.

Django's ``FileBasedCache`` deletes a random third of all entries once it holds
``MAX_ENTRIES`` (300 by default), and expired files stay on disk until read. Parley
keeps state in this cache that must not vanish early: Stop flags, log-in lock-outs,
per-minute message counts. Here a full cache first drops what has expired; only if
it is still full are live entries culled, and the default limit is raised to 5,000.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.filebased import FileBasedCache

DEFAULT_MAX_ENTRIES = 5000


class ParleyFileCache(FileBasedCache):
    def __init__(self, dir: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        if "MAX_ENTRIES" not in options and "max_entries" not in params:
            options["MAX_ENTRIES"] = DEFAULT_MAX_ENTRIES
        super().__init__(dir, {**params, "OPTIONS": options})

    def _cull(self) -> None:
        filelist = self._list_cache_files()
        if len(filelist) < self._max_entries:
            return
        live = []
        for name in filelist:
            try:
                with open(name, "rb") as handle:
                    if not self._is_expired(handle):
                        live.append(name)
            except FileNotFoundError:
                continue  # another process removed it meanwhile
        if len(live) >= self._max_entries:
            super()._cull()
