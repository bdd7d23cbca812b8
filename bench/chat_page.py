"""Server time of the chat page of a 10,000-message chat, against rendering the whole chat.

``ChatDetailView`` shows the newest 50 messages (keyset "Load earlier" for the rest),
renders answers' markdown through a per-process cache, and builds the context for the
"N earlier messages not sent" line. The naive alternative, measured in the same run, is
the same view and template with every message of the chat on the page (what a client
that loads the whole chat blob has to render).

Requests go through Django's test ``Client`` with a logged-in user and the production
settings (``DEBUG`` off, manifest static files collected into the throw-away data dir),
so middleware, session, template and context processors are all counted; only the
network and gunicorn are not. Messages come from ``bench/corpus.py``: user questions and
pastes, assistant answers (a quarter with reasoning), token counts from tiktoken.

Run from the repository root: ``python bench/chat_page.py [--smoke] [--write]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from common import median_ms, parse_args, percentile, report, setup_django, table, timed, verdict
from context_build import bench_model, bench_user, ensure_benchmarks_heading, insert_messages
from corpus import SEED, CorpusBuilder

TARGET_MS = 30.0
MESSAGES = 10_000
SMOKE_MESSAGES = 120
WINDOW = ("128k", 131_072, 4_096)


def corpus_conversation(n: int, *, seed: int = SEED):
    """(role, stored content, tokens, stored reasoning) rows: questions/pastes, then answers."""
    from chat.fields import EMPTY, pack_text
    from chat.tokens import count_message_tokens
    from config.services import get_system_setting

    threshold = get_system_setting().compression_threshold_bytes
    builder = CorpusBuilder(seed)
    rows = []
    for i in range(n):
        reasoning = EMPTY
        if i % 2 == 0:
            role = "user"
            text = (builder.paste() if builder.rng.random() < 0.25 else builder.question()).text
        else:
            role = "assistant"
            text = builder.answer().text
            if builder.rng.random() < 0.25:
                reasoning = pack_text(builder.reasoning().text, threshold=threshold)
        stored = pack_text(text, threshold=threshold)
        rows.append((role, stored, count_message_tokens(role, text), reasoning))
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-page-"))
    try:
        run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args, data_dir: Path) -> None:
    setup_django(data_dir, STATIC_ROOT=str(data_dir / "static"), PARLEY_SLOW_QUERY_MS="600000")
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from chat import selectors
    from chat.markdown import html_to_store, render_markdown_cached
    from chat.models import ChatSession, Message

    call_command("collectstatic", interactive=False, verbosity=0)
    n = SMOKE_MESSAGES if args.smoke else MESSAGES
    repeat, warmup = (3, 1) if args.smoke else (31, 3)
    naive_repeat = 2 if args.smoke else 3

    user = bench_user()
    label, window, output = WINDOW
    model = bench_model(f"Bench {label}", window, output, "You are a helpful assistant.")
    rows = corpus_conversation(n)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with transaction.atomic():
        session = ChatSession.objects.create(user=user, title="A long chat", model_config=model)
        insert_messages(session.pk, rows)
        # Final answers keep their HTML from the moment they are saved (chat.streaming):
        # do the same for the answers a page can show, as the app would have.
        for message in Message.objects.filter(session=session, role="assistant").order_by("-id")[
            :60
        ]:
            Message.objects.filter(pk=message.pk).update(
                rendered_html=html_to_store(message.content)
            )
        # A few more chats, so the sidebar is not empty.
        for i in range(40):
            ChatSession.objects.create(user=user, title=f"Other chat {i}", model_config=model)
    populate_s = time.perf_counter() - started
    stored_mb = sum(len(r[1]) + len(r[3]) for r in rows) / 1e6

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = reverse("chat:detail", args=[session.pk])

    def get() -> int:
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        return len(response.content)

    def get_cold() -> int:
        render_markdown_cached.cache_clear()  # a worker that has not rendered these yet
        return get()

    def measure(fn, times: int, warm: int) -> tuple[list[float], int, int]:
        size = fn()
        with CaptureQueriesContext(connection) as captured:
            fn()
        queries = len(captured)  # now: every request start empties the query log
        return timed(fn, times, warm), queries, size

    results = [
        ("paged (newest 50), markdown cache warm", *measure(get, repeat, warmup)),
        ("paged (newest 50), markdown cache cold", *measure(get_cold, repeat, warmup)),
    ]
    page_size = selectors.MESSAGE_PAGE_SIZE
    selectors.MESSAGE_PAGE_SIZE = 10**9  # the same view, every message on the page
    try:
        naive = measure(get_cold, naive_repeat, 0)
    finally:
        selectors.MESSAGE_PAGE_SIZE = page_size
    results.append((f"naive: all {n:,} messages rendered", *naive))

    paged_cold = median_ms(results[1][1])
    naive_ms = median_ms(naive[0])
    table_rows = []
    for name, samples, queries, size in results:
        ms = median_ms(samples)
        ok = "smoke" if args.smoke else verdict(ms < TARGET_MS, f"< {TARGET_MS:.0f} ms")
        table_rows.append(
            [
                name,
                ms,
                percentile(samples, 90) * 1000,
                queries,
                f"{size / 1024:,.0f}",
                f"{naive_ms / ms:,.0f}x" if not name.startswith("naive") else "1x",
                ok if not name.startswith("naive") else "",
            ]
        )
    body = table(
        [
            f"chat page, {n:,} messages",
            "server median ms",
            "p90 ms",
            "queries",
            "HTML KiB",
            "naive / this",
            "verdict",
        ],
        table_rows,
    )
    notes = (
        f"`python bench/chat_page.py{' --smoke' if args.smoke else ''}`. SQLite, production "
        f"settings (`DEBUG` off), `GET /chats/<id>/` through the test `Client`, logged in. "
        f"{n:,} messages from `bench/corpus.py` ({stored_mb:.1f} MB stored), inserted with "
        f"`executemany` in {populate_s:.1f} s; model window {label} (the page builds the "
        f'context for its "N earlier messages not sent" line). Medians of {repeat} requests '
        f"(naive: {naive_repeat}). *warm*: the answers' HTML is in the process's markdown "
        "cache (a reload); *cold*: the cache is cleared before every request (the first view "
        "of a chat by that worker). The naive page renders every message with the same view "
        "and template (its markdown cache of 512 entries cannot hold 5,000 answers, so it is "
        f"always cold). Cold page / naive page: {paged_cold / naive_ms:.4f}. Load average when "
        f"the run started: {load:.2f} (other benchmarks share the machine)."
    )
    if args.write:
        ensure_benchmarks_heading()
    report("Chat page (10,000-message chat)", body, write=args.write, notes=notes)


if __name__ == "__main__":
    main()
