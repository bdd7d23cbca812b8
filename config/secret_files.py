"""Secrets that Parley generates for itself on first start.

Zero-config means an operator may never set SECRET_KEY: we create one in DATA_DIR the
first time, readable only by the owner (0600), and reuse it on every later start so
sessions survive restarts. Imported by settings, so it must not import Django models.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

SECRET_FILE_MODE = 0o600


def read_or_create_secret(path: Path, generate: Callable[[], str]) -> str:
    """Return the secret stored at ``path``, creating it with ``generate()`` if absent.

    The file is created with O_EXCL so that two workers starting at once agree on one
    value: the loser of the race reads what the winner wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        return _read_existing(path)
    value = generate()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return value


def _read_existing(path: Path) -> str:
    # A concurrent creator may not have written yet; an empty read is retried briefly.
    for _ in range(50):
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"secret file {path} is empty; delete it to generate a new one")


def secret_from_env_or_file(
    env_value: str | None, env_file: str | None, path: Path, generate: Callable[[], str]
) -> str:
    """Resolve a secret: the variable, else its ``*_FILE`` variant, else the generated file."""
    if env_value:
        return env_value
    if env_file:
        return Path(env_file).read_text(encoding="utf-8").strip()
    return read_or_create_secret(path, generate)
