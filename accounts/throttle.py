"""Log-in throttling through the shared cache, keyed on username + client IP.

After PARLEY_LOGIN_FAILURE_LIMIT failures the pair is locked for
PARLEY_LOGIN_LOCKOUT_SECONDS. The state lives in the cache so every gunicorn worker
(and every instance, with Redis) sees the same count.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache


def _now() -> float:
    return time.time()


class LoginThrottle:
    def __init__(self, username: str, ip: str | None) -> None:
        digest = hashlib.sha256(f"{username.strip().lower()}\0{ip or '-'}".encode()).hexdigest()
        self._failures_key = f"login-failures:{digest}"
        self._lock_key = f"login-lock:{digest}"

    @property
    def limit(self) -> int:
        return settings.PARLEY_LOGIN_FAILURE_LIMIT

    @property
    def lockout_seconds(self) -> int:
        return settings.PARLEY_LOGIN_LOCKOUT_SECONDS

    def seconds_locked(self) -> int:
        """Seconds until log-in is allowed again; 0 when it is allowed now."""
        locked_until = cache.get(self._lock_key)
        if locked_until is None:
            return 0
        remaining = locked_until - _now()
        if remaining <= 0:
            cache.delete_many([self._lock_key, self._failures_key])
            return 0
        return math.ceil(remaining)

    def register_failure(self) -> bool:
        """Count one failed attempt; True when this failure locks the pair."""
        cache.add(self._failures_key, 0, timeout=self.lockout_seconds)
        try:
            failures = cache.incr(self._failures_key)
        except ValueError:  # expired between add and incr
            cache.set(self._failures_key, 1, timeout=self.lockout_seconds)
            failures = 1
        if failures >= self.limit:
            cache.set(self._lock_key, _now() + self.lockout_seconds, timeout=self.lockout_seconds)
            return True
        return False

    def reset(self) -> None:
        cache.delete_many([self._lock_key, self._failures_key])
