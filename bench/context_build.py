"""build_context against "load the whole chat, count, trim", on chats of 100 to 100,000 messages.

``chat.context.build_context`` reads stored token counts newest first through the
``(session, id)`` index and fetches text only for the messages it keeps, so its cost
should follow the window, not the length of the chat. The naive alternative, measured
in the same run, loads every message of the chat (full rows, text decompressed), then
trims with the stored counts; the "truly naive" one also re-tokenises every message
with tiktoken (as a server keeping one chat blob must), run on the smaller chats only.

Messages are 20-400 tokens (uniform), text cut from ``bench/corpus.py`` (Chinese,
English, code), stored exactly as ``CompressedTextField`` stores it and inserted with
raw ``executemany`` in one transaction. Windows: 8k (1k output) and 128k (4k output),
with a short system prompt.

Run from the repository root: ``python bench/context_build.py [--smoke] [--write]``.
Other scripts (``chat_page.py``, ``storage.py``) reuse ``insert_messages`` from here.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import median_ms, parse_args, percentile, report, setup_django, table, timed, verdict
from corpus import SEED, CorpusBuilder

TARGET_MS = 2.0
TARGET_RATIO = 1.5
SIZES = (100, 10_000, 100_000)
SMOKE_SIZES = (20, 100, 200)
TOKENS = (20, 400)  # per message, uniform
POOL = 997  # distinct message texts, cycled (a prime, so roles and texts do not line up)
SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely; use code blocks for code."
WINDOWS = (("8k", 8_192, 1_024), ("128k", 131_072, 4_096))
TIKTOKEN_MAX_SIZE = 10_000  # the re-tokenising variant takes seconds beyond this

INSERT_SQL = (
    "INSERT INTO chat_message (session_id, role, content, reasoning, rendered_html, "
    "token_count, status, error, finish_reason, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, '', '', %s, %s)"
)


# -- populating (shared with chat_page.py and storage.py) ---------------------------------


def insert_messages(
    session_id: int,
    rows: Iterable[tuple[str, bytes, int] | tuple[str, bytes, int, bytes]],
    *,
    start: datetime | None = None,
    status: str = "complete",
    batch: int = 20_000,
) -> int:
    """Append (role, stored content, token_count[, stored reasoning]) rows to a chat.

    Raw ``executemany``; ``content`` and ``reasoning`` are the field's stored form
    (``chat.fields.pack_text``). The caller holds
    the transaction; ``message_count`` and ``updated_at`` of the chat are set here, as
    ``chat.services`` would keep them. Returns the number of rows written.
    """
    from django.db import connection

    from chat.fields import EMPTY

    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    adapt = connection.ops.adapt_datetimefield_value
    written = 0
    stamp = start
    with connection.cursor() as cursor:
        chunk: list[tuple[object, ...]] = []
        for role, content, tokens, *reasoning in rows:
            stamp = start + timedelta(seconds=written)
            when = adapt(stamp)
            thought = reasoning[0] if reasoning else EMPTY
            chunk.append((session_id, role, content, thought, EMPTY, tokens, status, when, when))
            written += 1
            if len(chunk) >= batch:
                cursor.executemany(INSERT_SQL, chunk)
                chunk.clear()
        if chunk:
            cursor.executemany(INSERT_SQL, chunk)
        cursor.execute(
            "UPDATE chat_chatsession SET message_count = message_count + %s, updated_at = %s "
            "WHERE id = %s",
            [written, adapt(stamp), session_id],
        )
    return written


def ensure_benchmarks_heading() -> None:
    """Append the "## Benchmarks" heading to docs/performance.md once (never rewrites it)."""
    from common import DOCS

    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    if "\n## Benchmarks\n" not in text:
        with DOCS.open("a", encoding="utf-8") as handle:
            handle.write(
                "\n## Benchmarks\n\nEach run below names its script, machine and date, and "
                "compares Parley's way with a naive alternative measured in the same run.\n"
            )


def bench_user(username: str = "bench"):
    from accounts.models import User

    user = User(username=username, email=f"{username}@example.com", approved=True)
    user.set_unusable_password()
    user.save()
    return user


def bench_model(name: str, context_window: int, max_output_tokens: int, system_prompt: str = ""):
    from models_registry.models import ModelConfig

    return ModelConfig.objects.create(
        name=name,
        api_url="https://api.example.com/v1",
        model="bench",
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        system_prompt=system_prompt,
    )


def message_pool(size: int, *, seed: int = SEED) -> list[tuple[str, bytes, int]]:
    """``size`` distinct texts of 20-400 tokens: (text, stored form, token count)."""
    import tiktoken

    from chat.fields import pack_text
    from chat.tokens import ENCODING_NAME, count_message_tokens
    from config.services import get_system_setting

    encoding = tiktoken.get_encoding(ENCODING_NAME)
    threshold = get_system_setting().compression_threshold_bytes
    builder = CorpusBuilder(seed)
    rng = random.Random(seed)  # noqa: S311 - deterministic test data
    pool = []
    while len(pool) < size:
        tokens = encoding.encode(builder.sample().text, disallowed_special=())
        want = rng.randint(*TOKENS)
        if len(tokens) < want:
            continue
        text = encoding.decode(tokens[:want]).strip("\ufffd")  # a cut may split a character
        if text:
            # Role costs one token for user and assistant alike.
            pool.append(
                (text, pack_text(text, threshold=threshold), count_message_tokens("user", text))
            )
    return pool


def conversation(
    n: int, pool: Sequence[tuple[str, bytes, int]]
) -> Iterable[tuple[str, bytes, int]]:
    for i in range(n):
        _text, stored, tokens = pool[i % len(pool)]
        yield ("user" if i % 2 == 0 else "assistant", stored, tokens)


# -- the naive alternatives ----------------------------------------------------------------


def naive_context(session, model_config, *, retokenize: bool) -> list[dict[str, str]]:
    """Load every message of the chat, then keep the newest that fit (stored or fresh counts)."""
    from chat.context import SENDABLE_ROLES, SENDABLE_STATUSES
    from chat.models import Message
    from chat.tokens import count_message_tokens
    from chat.window import context_budget

    system = count_message_tokens("system", model_config.system_prompt)
    budget = context_budget(
        context_window=model_config.context_window,
        max_output_tokens=model_config.max_output_tokens,
        system_prompt_tokens=system,
    )
    history = [
        m
        for m in Message.objects.filter(session=session).order_by("id")
        if m.status in SENDABLE_STATUSES and m.role in SENDABLE_ROLES and m.content
    ]
    counts = [
        count_message_tokens(m.role, m.content) if retokenize else m.token_count for m in history
    ]
    kept: list[dict[str, str]] = []
    total = 0
    for message, tokens in zip(reversed(history), reversed(counts), strict=True):
        if total + tokens > budget:
            break
        kept.append({"role": message.role, "content": message.content})
        total += tokens
    kept.reverse()
    return [{"role": "system", "content": model_config.system_prompt}, *kept]


# -- the run -------------------------------------------------------------------------------


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-context-"))
    try:
        run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args, data_dir: Path) -> None:
    # Bulk inserts and the naive loads are slow on purpose: keep the slow-query log quiet.
    setup_django(data_dir, PARLEY_SLOW_QUERY_MS="600000")
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from chat.context import build_context
    from chat.fields import unpack_text
    from chat.models import ChatSession, Message

    sizes = SMOKE_SIZES if args.smoke else SIZES
    repeat, warmup = (3, 1) if args.smoke else (51, 5)
    naive_repeat = 3 if args.smoke else 7

    user = bench_user()
    models = {
        label: bench_model(f"Bench {label}", window, output, SYSTEM_PROMPT)
        for label, window, output in WINDOWS
    }
    pool = message_pool(60 if args.smoke else POOL)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    sessions = {}
    with transaction.atomic():
        for n in sizes:
            session = ChatSession.objects.create(user=user, title=f"{n} messages")
            insert_messages(session.pk, conversation(n, pool))
            sessions[n] = session
    populate_s = time.perf_counter() - started
    for n in sizes:
        sessions[n].refresh_from_db()

    cases = [(label, n) for label, _window, _output in WINDOWS for n in sizes]
    ours, queries = {}, {}
    for label, n in cases:
        ours[label, n] = build_context(sessions[n], models[label])
        naive = naive_context(sessions[n], models[label], retokenize=False)
        assert ours[label, n].messages == naive, f"{label}/{n}: build_context and naive disagree"
        with CaptureQueriesContext(connection) as captured:
            build_context(sessions[n], models[label])
        queries[label, n] = len(captured)

    # build_context first, every case in turn, in rounds: no case is measured right after
    # the naive loads (which churn the memory) or always first.
    rounds = 3
    samples: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for _round in range(rounds):
        for label, n in cases:
            gc.collect()
            samples[label, n] += timed(
                lambda s=sessions[n], m=models[label]: build_context(s, m),
                max(repeat // rounds, 1),
                warmup,
            )

    rows = []
    medians: dict[tuple[str, int], float] = {}
    kept: dict[tuple[str, int], int] = {}
    for label, n in cases:
        session, model, context = sessions[n], models[label], ours[label, n]
        naive_samples = timed(
            lambda s=session, m=model: naive_context(s, m, retokenize=False), naive_repeat, 1
        )
        fresh = "not run"
        if n <= TIKTOKEN_MAX_SIZE:
            fresh_ms = median_ms(
                timed(
                    lambda s=session, m=model: naive_context(s, m, retokenize=True),
                    naive_repeat,
                    1,
                )
            )
            fresh = f"{fresh_ms:,.1f}"
        # The floor at this window: decoding the kept text (already fetched) alone.
        kept_ids = list(
            Message.objects.filter(session=session)
            .order_by("-id")
            .values_list("id", flat=True)[: len(context.messages) - 1]
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT content FROM chat_message WHERE session_id = %s AND id >= %s",
                [session.pk, min(kept_ids)],
            )
            stored = [row[0] for row in cursor.fetchall()]
        decode_ms = median_ms(timed(lambda b=stored: [unpack_text(v) for v in b], repeat, 1))
        ours_samples = samples[label, n]
        ours_ms, naive_ms = median_ms(ours_samples), median_ms(naive_samples)
        medians[label, n] = ours_ms
        kept[label, n] = len(context.messages) - 1
        rows.append(
            [
                label,
                n,
                kept[label, n],
                context.tokens,
                queries[label, n],
                ours_ms,
                percentile(ours_samples, 90) * 1000,
                decode_ms,
                naive_ms,
                fresh,
                f"{naive_ms / ours_ms:,.0f}x",
                "smoke" if args.smoke else verdict(ours_ms < TARGET_MS, f"< {TARGET_MS} ms"),
            ]
        )

    body = table(
        [
            "window",
            "messages in chat",
            "kept",
            "context tokens",
            "queries",
            "build_context median ms",
            "p90 ms",
            "of which decoding the kept text ms",
            "naive, stored counts ms",
            "naive, tiktoken ms",
            "naive / build_context",
            "verdict",
        ],
        rows,
    )
    small, big = sizes[0], sizes[-1]
    ratio_rows = []
    for label, _window, _output in WINDOWS:
        # Compare with the smallest chat that already fills the window: a chat shorter
        # than the window is cheaper only because there is less to send.
        fills = next((n for n in sizes if kept[label, n] < n), None)
        base = fills or small
        ratio = medians[label, big] / medians[label, base]
        ratio_rows.append(
            [
                label,
                f"{medians[label, big] / medians[label, small]:.2f}",
                f"{medians[label, big] / medians[label, sizes[1]]:.2f}",
                f"{fills:,}" if fills else "none (every chat fits)",
                "smoke"
                if args.smoke
                else verdict(ratio < TARGET_RATIO, f"{big:,} / {base:,} < {TARGET_RATIO}"),
            ]
        )
    body += "\n\n" + table(
        [
            "window",
            f"{big:,} / {small:,} messages",
            f"{big:,} / {sizes[1]:,}",
            "smallest chat that fills the window",
            "verdict",
        ],
        ratio_rows,
    )
    notes = (
        f"`python bench/context_build.py{' --smoke' if args.smoke else ''}`. SQLite, production "
        f"settings. Messages of {TOKENS[0]}-{TOKENS[1]} tokens (uniform) cut from "
        f"`bench/corpus.py` ({len(pool)} distinct texts, cycled), alternating user/assistant, "
        f"stored as `CompressedTextField` stores them; {sum(sizes):,} rows inserted with "
        f"`executemany` in {populate_s:.1f} s. Medians of {repeat} calls in {rounds} rounds "
        f"(naive: {naive_repeat}). *naive, stored counts*: every message loaded as a model "
        "instance (text decompressed), trimmed with the stored `token_count`; *naive, tiktoken*: "
        "the same, re-counting every message with tiktoken (what a server that keeps no "
        f"per-message count must do), run up to {TIKTOKEN_MAX_SIZE:,} messages. Both naive "
        "variants return exactly what `build_context` returns (checked). With the 128k window "
        "a 100-message chat fits whole (about 21k tokens), so the 128k ratio that shows "
        "independence from the chat's length is the one between two chats that both fill the "
        "window; a chat shorter than the window is cheaper because there is less to send. "
        "*of which decoding the kept text*: `unpack_text` over the kept rows' stored bytes, "
        "already fetched: the part of `build_context` that only a smaller window can reduce. "
        f"Load average when the run started: {load:.2f} (other benchmarks share the machine)."
    )
    if args.write:
        ensure_benchmarks_heading()
    report("Context building (build_context)", body, write=args.write, notes=notes)


if __name__ == "__main__":
    main()
