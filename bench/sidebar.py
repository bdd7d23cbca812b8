"""The sidebar's keyset page against OFFSET pagination, at the top and 50,000 chats deep.

``chat.selectors.sidebar_page`` continues after a cursor ``(updated_at, id)`` through the
``(user, -updated_at, -id)`` index, so a deep page costs what the first page costs.
The naive alternative, measured in the same run, is what a page-number list does:
``ChatSession.objects.filter(user=...).order_by("-updated_at", "-id")[offset:offset + 30]``,
which makes the database walk past every chat before the page.

One user owns 60,000 chats; four other users own 15,000 each, interleaved with theirs
(ids and activity times mixed), inserted with raw ``executemany``.

Run from the repository root: ``python bench/sidebar.py [--smoke] [--write]``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import median_ms, parse_args, percentile, report, setup_django, table, timed, verdict
from context_build import bench_user, ensure_benchmarks_heading
from corpus import SEED

TARGET_MS = 3.0
OWN, OTHERS, OTHERS_EACH = 60_000, 4, 15_000
DEPTHS = (0, 1_000, 10_000, 50_000)
SMOKE = (300, 2, 100, (0, 30, 200))

INSERT_SQL = (
    "INSERT INTO chat_chatsession (user_id, title, system_prompt, message_count, created_at, "
    "updated_at) VALUES (%s, %s, '', %s, %s, %s)"
)


def populate(owners: list[int], rng: random.Random) -> int:
    """Chats of ``owners`` (one entry per chat, already shuffled) with scattered activity."""
    from django.db import connection

    adapt = connection.ops.adapt_datetimefield_value
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i, owner in enumerate(owners):
        created = start + timedelta(minutes=i)
        # Activity after creation, anywhere up to a year later: the sidebar's order is
        # not the order of ids.
        updated = created + timedelta(
            seconds=rng.randrange(365 * 24 * 3600), microseconds=rng.randrange(1, 1_000_000)
        )
        rows.append((owner, f"Chat {i}", rng.randint(2, 200), adapt(created), adapt(updated)))
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    return len(rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-sidebar-"))
    try:
        run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args, data_dir: Path) -> None:
    setup_django(data_dir, PARLEY_SLOW_QUERY_MS="600000")
    from django.db import connection, transaction

    from chat.models import ChatSession
    from chat.selectors import SIDEBAR_PAGE_SIZE, encode_cursor, sidebar_page

    own, others, others_each, depths = SMOKE if args.smoke else (OWN, OTHERS, OTHERS_EACH, DEPTHS)
    repeat, warmup = (3, 1) if args.smoke else (51, 5)
    rng = random.Random(SEED)  # noqa: S311 - deterministic test data

    user = bench_user()
    strangers = [bench_user(f"other{n}") for n in range(others)]
    owners = [user.pk] * own + [s.pk for s in strangers for _ in range(others_each)]
    rng.shuffle(owners)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with transaction.atomic():
        total = populate(owners, rng)
    populate_s = time.perf_counter() - started

    def offset_page(offset: int) -> list[ChatSession]:
        return list(
            ChatSession.objects.filter(user=user).order_by("-updated_at", "-id")[
                offset : offset + SIDEBAR_PAGE_SIZE
            ]
        )

    rows = []
    first: dict[str, float] = {}
    for depth in depths:
        cursor = ""
        if depth:
            # The cursor the page before this one hands out (found once, by OFFSET).
            cursor = encode_cursor(offset_page(depth - 1)[0])
        page = sidebar_page(user, cursor=cursor)
        expected = [s.pk for s in offset_page(depth)]
        assert [s.pk for s in page.sessions] == expected, f"keyset and OFFSET differ at {depth}"
        keyset = timed(lambda c=cursor: sidebar_page(user, cursor=c), repeat, warmup)
        offset = timed(lambda d=depth: offset_page(d), repeat, warmup)
        keyset_ms, offset_ms = median_ms(keyset), median_ms(offset)
        first.setdefault("keyset", keyset_ms)
        first.setdefault("offset", offset_ms)
        rows.append(
            [
                depth,
                keyset_ms,
                percentile(keyset, 90) * 1000,
                f"{keyset_ms / first['keyset']:.2f}",
                offset_ms,
                percentile(offset, 90) * 1000,
                f"{offset_ms / first['offset']:.2f}",
                f"{offset_ms / keyset_ms:,.1f}x",
                "smoke" if args.smoke else verdict(keyset_ms < TARGET_MS, f"< {TARGET_MS} ms"),
            ]
        )

    body = table(
        [
            "chats before the page",
            "keyset median ms",
            "keyset p90 ms",
            "keyset / top",
            "OFFSET median ms",
            "OFFSET p90 ms",
            "OFFSET / top",
            "OFFSET / keyset",
            "verdict",
        ],
        rows,
    )
    # The plan of the deepest page's query as it runs, with bound parameters (SQLite
    # plans some queries differently when the values are written into the SQL).
    statements: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        sidebar_page(user, cursor=cursor)
    with connection.cursor() as db:
        db.execute(f"EXPLAIN QUERY PLAN {statements[-1][0]}", statements[-1][1])
        plan = "; ".join(str(row[-1]) for row in db.fetchall())
    notes = (
        f"`python bench/sidebar.py{' --smoke' if args.smoke else ''}`. SQLite, production "
        f"settings, no ANALYZE. {own:,} chats of one user among {total:,} ({others} other users "
        f"with {others_each:,} each, interleaved), inserted with `executemany` in "
        f"{populate_s:.1f} s. Pages of {SIDEBAR_PAGE_SIZE}; medians of {repeat} calls. "
        "*keyset*: `chat.selectors.sidebar_page(user, cursor=...)` with the cursor the "
        "previous page hands out; *OFFSET*: "
        '`ChatSession.objects.filter(user=user).order_by("-updated_at", "-id")[offset:offset+30]`'
        " (both return the same chats, checked). SQLite's plan for the keyset query: "
        f"`{plan}`. Load average when the run started: {load:.2f} (other benchmarks share "
        "the machine)."
    )
    if args.write:
        ensure_benchmarks_heading()
    report("Sidebar page (keyset against OFFSET)", body, write=args.write, notes=notes)


if __name__ == "__main__":
    main()
