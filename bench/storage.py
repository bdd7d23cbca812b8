"""Bytes per message and database size for 1,000,000 messages, with and without compression.

Messages are ``bench/corpus.py``'s mix (Chinese and English questions and answers,
pasted code and logs, reasoning), stored exactly as ``CompressedTextField`` stores them:
``pack_text`` with the default threshold (compressed above 1024 bytes, when smaller)
against a threshold no message reaches (compression off, the naive alternative). Both
databases get the same rows, in the same order, in the full production schema (every
index), with the production PRAGMAs; rows go in with ``executemany`` in batches. Sizes are
read after ``PRAGMA wal_checkpoint(TRUNCATE)`` and again after ``VACUUM``.

Generating and compressing a million messages takes minutes, so by default the
compressed database gets all 1,000,000 and the uncompressed one the first 200,000, and
its size at 1,000,000 is extrapolated from there (``--full`` measures both in full).

Run from the repository root: ``python bench/storage.py [--smoke] [--write] [--full]``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import parse_args, report, setup_django, table, verdict
from context_build import ensure_benchmarks_heading
from corpus import SEED, CorpusBuilder

MESSAGES = 1_000_000
PARTIAL = 200_000  # the uncompressed database's size without --full
SMOKE_MESSAGES = 300
PER_CHAT = 100
USERS = 100
BATCH = 10_000
OFF = 1 << 62  # a threshold no message reaches: compression off

INSERT_SQL = (
    "INSERT INTO chat_message (session_id, role, content, reasoning, rendered_html, "
    "token_count, status, error, finish_reason, created_at, updated_at) "
    "VALUES (?, ?, ?, X'', X'', ?, 'complete', '', '', ?, ?)"
)
USER_ROLES = {"question-en", "question-zh", "paste-code", "paste-log"}


@dataclass
class Variant:
    name: str
    threshold: int
    path: Path
    limit: int
    conn: sqlite3.Connection | None = None
    rows: int = 0
    seconds: float = 0.0  # packing and inserting
    sizes: dict[str, int] = field(default_factory=dict)


def open_db(path: Path) -> sqlite3.Connection:
    from django.conf import settings

    conn = sqlite3.connect(path, isolation_level=None)
    for name, value in settings.SQLITE_PRAGMAS.items():
        conn.execute(f"PRAGMA {name}={value}")
    return conn


def file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))  # + -wal, -shm


def checkpointed_size(conn: sqlite3.Connection, path: Path) -> int:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return file_size(path)


def chats(conn: sqlite3.Connection, messages: int) -> None:
    """Users and chats for ``messages`` messages, PER_CHAT messages each."""
    stamp = "2026-01-01 00:00:00.000000"
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, "
        "email, is_staff, is_active, date_joined, role, approved, store_api_chats, theme, "
        "language, enter_to_send, system_prompt) "
        "VALUES ('!', 0, ?, '', '', ?, 0, 1, ?, 'user', 1, 0, 'system', '', 1, '')",
        [(f"user{n}", f"user{n}@example.com", stamp) for n in range(USERS)],
    )
    first_user = conn.execute("SELECT min(id) FROM accounts_user WHERE username = 'user0'")
    first = first_user.fetchone()[0]
    conn.executemany(
        "INSERT INTO chat_chatsession (user_id, title, system_prompt, message_count, "
        "created_at, updated_at) VALUES (?, ?, '', ?, ?, ?)",
        [
            (first + n % USERS, f"Chat {n}", PER_CHAT, stamp, stamp)
            for n in range(-(-messages // PER_CHAT))
        ],
    )
    conn.execute("COMMIT")


def main() -> None:
    def extra(parser):
        parser.add_argument("--full", action="store_true", help="1,000,000 in both databases")

    args = parse_args(__doc__.splitlines()[0], extra)
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-storage-"))
    try:
        run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args, data_dir: Path) -> None:
    setup_django(data_dir / "django")
    from django.db import connection

    from chat.fields import pack_text
    from config.services import get_system_setting

    total = SMOKE_MESSAGES if args.smoke else MESSAGES
    partial = total if args.smoke or args.full else PARTIAL
    threshold = get_system_setting().compression_threshold_bytes
    connection.close()

    # Both databases start as a copy of the migrated (empty) production database.
    template = data_dir / "django" / "db.sqlite3"
    with sqlite3.connect(template) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    variants = [
        Variant(f"compressed (threshold {threshold} B)", threshold, data_dir / "on.sqlite3", total),
        Variant("uncompressed (threshold off)", OFF, data_dir / "off.sqlite3", partial),
    ]
    for variant in variants:
        variant.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, variant.path)
        variant.conn = open_db(variant.path)
        variant.sizes["empty"] = checkpointed_size(variant.conn, variant.path)
        chats(variant.conn, variant.limit)
        first = variant.conn.execute("SELECT min(id) FROM chat_chatsession").fetchone()[0]
        variant.first_chat = first

    load = os.getloadavg()[0]
    builder = CorpusBuilder(SEED)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    raw_bytes = {v.name: 0 for v in variants}
    generate_s = 0.0
    started = time.perf_counter()
    done = 0
    while done < total:
        size = min(BATCH, total - done)
        t0 = time.perf_counter()
        batch = []
        for i in range(done, done + size):
            sample = builder.sample()
            raw = sample.text.encode("utf-8")
            when = str(
                (start + timedelta(seconds=i, microseconds=i % 999_983)).replace(tzinfo=None)
            )
            batch.append((i, sample, raw, when))
        generate_s += time.perf_counter() - t0
        for variant in variants:
            if done >= variant.limit:
                continue
            t0 = time.perf_counter()
            rows = [
                (
                    variant.first_chat + i // PER_CHAT,
                    "user" if sample.kind in USER_ROLES else "assistant",
                    pack_text(sample.text, threshold=variant.threshold),
                    max(1, len(raw) // 4),  # an estimate: the count barely changes the row size
                    when,
                    when,
                )
                for i, sample, raw, when in batch[: variant.limit - done]
            ]
            raw_bytes[variant.name] += sum(
                len(r) for _i, _s, r, _w in batch[: variant.limit - done]
            )
            variant.conn.execute("BEGIN")
            variant.conn.executemany(INSERT_SQL, rows)
            variant.conn.execute("COMMIT")
            variant.rows += len(rows)
            variant.seconds += time.perf_counter() - t0
        done += size
    elapsed = time.perf_counter() - started

    for variant in variants:
        conn = variant.conn
        variant.sizes["checkpoint"] = checkpointed_size(conn, variant.path)
        t0 = time.perf_counter()
        conn.execute("VACUUM")
        variant.sizes["vacuum"] = checkpointed_size(conn, variant.path)
        variant.vacuum_s = time.perf_counter() - t0
        variant.text = conn.execute(
            "SELECT sum(length(content)), sum(CASE WHEN substr(content, 1, 1) = X'01' "
            "THEN 1 ELSE 0 END) FROM chat_message"
        ).fetchone()
        conn.close()

    on, off = variants
    rows = []
    per_message: dict[str, float] = {}
    for variant in variants:
        scale = total / variant.rows
        measured = variant.rows == total
        net = variant.sizes["vacuum"] - variant.sizes["empty"]
        per_message[variant.name] = net / variant.rows
        stored_text, compressed = variant.text
        empty = variant.sizes["empty"]
        before_vacuum = empty + (variant.sizes["checkpoint"] - empty) * scale
        rows.append(
            [
                variant.name,
                f"{variant.rows:,}" + ("" if measured else f" (x{scale:g} = {total:,})"),
                "measured" if measured else f"extrapolated from {variant.rows:,}",
                f"{raw_bytes[variant.name] / variant.rows:,.0f}",
                f"{stored_text / variant.rows:,.0f}",
                f"{compressed / variant.rows:.1%}",
                f"{net / variant.rows:,.0f}",
                f"{(empty + net * scale) / 1e6:,.1f}",
                f"{before_vacuum / 1e6:,.1f}",
                f"{variant.seconds * scale:,.1f}",
            ]
        )
    saving = 1 - per_message[on.name] / per_message[off.name]
    body = table(
        [
            "variant",
            "messages",
            "size",
            "UTF-8 text B/message",
            "stored text B/message",
            "compressed rows",
            "database B/message (after VACUUM)",
            f"database MB at {total:,} (after VACUUM)",
            "MB after checkpoint, before VACUUM",
            "pack + insert s",
        ],
        rows,
    )
    body += "\n\n" + table(
        ["measure", "value", "verdict"],
        [
            [
                "database size, compressed / uncompressed",
                f"{per_message[on.name] / per_message[off.name]:.3f} ({saving:.0%} smaller)",
                "smoke" if args.smoke else verdict(saving > 0, "compression makes it smaller"),
            ]
        ],
    )
    notes = (
        f"`python bench/storage.py{' --smoke' if args.smoke else ''}"
        f"{' --full' if args.full else ''}`. SQLite {sqlite3.sqlite_version}, the migrated "
        f"production schema (every index of `chat_message`) and PRAGMAs, page size "
        f"{page_size(on.path)} B. Messages from `bench/corpus.py` (seed {SEED}), one corpus "
        "sample per message (questions and pastes as user messages, answers and reasoning "
        f"as assistant messages), {PER_CHAT} per chat, {USERS} users; `token_count` is an "
        f"estimate (bytes / 4). Inserted in batches of {BATCH:,} rows with `executemany`, "
        f"one transaction per batch; generating the corpus took {generate_s:.0f} s of the "
        f"{elapsed:.0f} s. B/message = (size after `VACUUM` - size of the empty database, "
        f"{on.sizes['empty'] / 1e6:.1f} MB) / messages. VACUUM took "
        f"{on.vacuum_s:.0f} s (compressed) and {off.vacuum_s:.0f} s (uncompressed, "
        f"{off.rows:,} rows). Load average when the run started: {load:.2f}."
    )
    if not args.write:
        report("Storage (1,000,000 messages)", body, write=False, notes=notes)
        return
    ensure_benchmarks_heading()
    report("Storage (1,000,000 messages)", body, write=True, notes=notes)


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


if __name__ == "__main__":
    main()
