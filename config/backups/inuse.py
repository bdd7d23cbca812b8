"""Is another process using the live SQLite database? `restore --replace` asks first.

SQLite marks every open connection with POSIX advisory locks: in WAL mode a connection
holds a SHARED lock on the database file's lock bytes and a read lock on the `-shm`
"dead man switch" byte for as long as it is open, idle or not. A gunicorn worker keeps
its connection (CONN_MAX_AGE), so a server that has served a request holds both; so does
a `manage.py shell` or the sqlite3 CLI. We ask the kernel (F_GETLK) whether a lock that
conflicts with an exclusive one exists, and which process holds it. F_GETLK places no
lock, so the server is never disturbed, and locks of our own process never count.

A server that has not opened the database yet holds nothing, and is not at risk either:
it opens the restored file on its first request.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
from pathlib import Path

PENDING_BYTE = 0x40000000  # the database file's lock bytes: PENDING, RESERVED, SHARED x510
DB_LOCK_SPAN = 512
SHM_LOCK_START = 120  # the WAL-index locks, then the dead-man-switch byte at 128
SHM_LOCK_SPAN = 9

if sys.platform.startswith("linux"):
    _FLOCK = "hhqqi4x"  # short l_type, l_whence; off_t l_start, l_len; pid_t l_pid

    def _pack(start: int, length: int) -> bytes:
        return struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)

    def _holder(raw: bytes) -> int | None:
        kind, _whence, _start, _length, pid = struct.unpack(_FLOCK, raw)
        return None if kind == fcntl.F_UNLCK else pid

else:  # the BSDs and macOS: off_t l_start, l_len; pid_t l_pid; short l_type, l_whence
    _FLOCK = "qqihh"

    def _pack(start: int, length: int) -> bytes:
        return struct.pack(_FLOCK, start, length, 0, fcntl.F_WRLCK, os.SEEK_SET)

    def _holder(raw: bytes) -> int | None:
        _start, _length, pid, kind, _whence = struct.unpack(_FLOCK, raw)
        return None if kind == fcntl.F_UNLCK else pid


def _lock_holder(path: Path, start: int, length: int) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _holder(fcntl.fcntl(fd, fcntl.F_GETLK, _pack(start, length)))
    finally:
        os.close(fd)


def database_user(db_path: Path) -> int | None:
    """The id of another process that has the database open, or None."""
    return _lock_holder(db_path, PENDING_BYTE, DB_LOCK_SPAN) or _lock_holder(
        Path(f"{db_path}-shm"), SHM_LOCK_START, SHM_LOCK_SPAN
    )
