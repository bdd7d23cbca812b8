"""Shared helpers for the backup tests: a migrated DATA_DIR, Django writes, table checksums.

The tests never back up the pytest database: each gets a copy of a DATA_DIR migrated
once per run by a real `manage.py migrate` (with its own secret and encryption keys),
and writes through Django in a subprocess, so the schema is whatever the code defines.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import shutil
import sqlite3
import tempfile
from pathlib import Path

from config.tests.test_settings_env import run_manage

_template: list[Path] = []

POPULATE = """
import random
from accounts.models import User
from chat.models import ChatSession, Message
rng = random.Random({seed})
users = User.objects.bulk_create(
    User(username=f"u{seed}-{{i}}", email=f"u{{i}}@example.com", password="!", role="user",
         is_staff=False, is_superuser=False, approved=True)
    for i in range({users})
)
sessions = ChatSession.objects.bulk_create(
    ChatSession(user=rng.choice(users), title=f"chat {{i}} " + "x" * rng.randint(0, 80))
    for i in range({sessions})
)
words = "the quick brown fox jumps over a lazy dog while parley keeps every word".split()
def text(n):
    return " ".join(rng.choices(words, k=n))
Message.objects.bulk_create(
    Message(session=rng.choice(sessions), role=rng.choice(["user", "assistant"]),
            content=text(rng.choice([5, 20, 60, 3000])), token_count=rng.randint(1, 900))
    for _ in range({messages})
)
"""

CHANGE = """
import random
from accounts.models import User
from chat.models import ChatSession, Message
rng = random.Random({seed})
ids = list(Message.objects.values_list("id", flat=True))
for pk in rng.sample(ids, {updates}):
    edited = f"edited in round {seed} " + "y" * rng.randint(1, 4000)
    Message.objects.filter(pk=pk).update(content=edited)
Message.objects.filter(pk__in=rng.sample(ids, {deletes})).delete()
oldest = list(ChatSession.objects.order_by("id").values_list("id", flat=True)[:{chat_deletes}])
ChatSession.objects.filter(pk__in=oldest).delete()
user = User.objects.create(username=f"late-{seed}", password="!", role="user")
chat = ChatSession.objects.create(user=user, title=f"round {seed}")
Message.objects.bulk_create(
    Message(session=chat, role="user", content=f"new {{i}} " * rng.randint(1, 300))
    for i in range({adds})
)
"""


def migrated_data_dir(target: Path) -> Path:
    """A copy of a freshly migrated DATA_DIR (db.sqlite3, secret and encryption keys)."""
    if not _template:
        template = Path(tempfile.mkdtemp(prefix="parley-backup-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        done = run_manage(template, "migrate", "-v", "0")
        assert done.returncode == 0, done.stderr
        _template.append(template)
    shutil.copytree(_template[0], target, ignore=shutil.ignore_patterns("cache"))
    return target


def django_shell(data_dir: Path, code: str, **env: str) -> str:
    """Run Python in `manage.py shell` on that DATA_DIR; returns its output."""
    done = run_manage(data_dir, "shell", "-c", code, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def populate(data_dir: Path, *, seed: int = 1, users: int = 20, sessions: int = 150,
             messages: int = 3000) -> None:  # fmt: skip
    django_shell(
        data_dir, POPULATE.format(seed=seed, users=users, sessions=sessions, messages=messages)
    )


def change(data_dir: Path, seed: int) -> None:
    """Updates, deletes (with cascades) and inserts, as a day of use would."""
    django_shell(
        data_dir,
        CHANGE.format(seed=seed, updates=150, deletes=80, chat_deletes=3, adds=120),
    )


def table_checksums(db: Path) -> dict[str, tuple[int, str]]:
    """Per table: (row count, SHA-256 over every row in primary-key order)."""
    uri = f"{db.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        tables = conn.execute(
            # A virtual table (the FTS5 search index) lives in its shadow tables, which
            # are checksummed; a contentless one cannot be scanned itself.
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
            "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
        ).fetchall()
        sums = {}
        for table, sql in tables:
            digest = hashlib.sha256()
            count = 0
            # A WITHOUT ROWID table is read in primary-key order anyway.
            order = "" if "WITHOUT ROWID" in sql.upper() else " ORDER BY rowid"
            for row in conn.execute(f'SELECT * FROM "{table}"{order}'):  # noqa: S608
                digest.update(repr(row).encode())
                count += 1
            sums[table] = (count, digest.hexdigest())
    return sums


def integrity(db: Path) -> str:
    uri = f"{db.resolve().as_uri()}?immutable=1"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def live_state(db: Path) -> dict[str, str | None]:
    """The bytes of the live database and its WAL, to prove a failed restore left them alone."""
    return {
        suffix: file_sha256(Path(f"{db}{suffix}")) if Path(f"{db}{suffix}").exists() else None
        for suffix in ("", "-wal")
    }
