"""Password hashing: Argon2id at OWASP's recommended cost, one hash at a time per process.

Django's default Argon2 parameters (100 MiB, 2 passes, 8 lanes) hold 100 MiB for every
hash in progress and take about 0.4 s of CPU: on a 2-core server, 50 people signing in
within ten seconds made the server's memory peak at 717 MiB (target: 300) and saturated
both cores (bench/load.py; docs/performance.md, "What the live-server runs changed").
OWASP's password storage cheat sheet recommends Argon2id with at least 19 MiB, 2 passes
and 1 lane: this hasher uses exactly that (about 25 ms on one core), and a gate lets only
one hash run at a time in a process, so a burst of log-ins on a gthread worker queues
instead of holding one hash's memory per thread. (The entrypoint's glibc settings make
the freed 19 MiB go back to the system.)

The algorithm name and encoding are Django's (``argon2$argon2id$v=19$m=...``): hashes
made with other parameters still verify, and Django re-hashes them with these on the
next successful log-in (``must_update``).
"""

from __future__ import annotations

import threading
from typing import Any

from django.contrib.auth.hashers import Argon2PasswordHasher as DjangoArgon2PasswordHasher


class Argon2PasswordHasher(DjangoArgon2PasswordHasher):
    """Argon2id, 19 MiB, 2 passes, 1 lane; at most one hash at a time per process."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1

    _gate = threading.BoundedSemaphore(1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._gate = threading.BoundedSemaphore(1)

    def encode(self, password: str, salt: str) -> str:
        with self._gate:
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with self._gate:
            return super().verify(password, encoded)
