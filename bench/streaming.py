"""What Parley adds to a streamed answer: time to first token, and time per token.

A real Parley (`scripts/entrypoint.sh`, gunicorn gthread with its default workers and threads,
SQLite)
relays the mock model (`models_registry.mock_llm`, its own process, no delay). For each
sample, on keep-alive `requests` sessions, alternately:

- **direct**: POST the mock's /v1/chat/completions (the same one-message prompt Parley
  sends, streaming) and time until the first chunk with content;
- **through Parley**: POST /chats/<id>/send/ with `Accept: text/event-stream` on a fresh
  chat (so the prompt is the same one message) and time until the first `delta` event.

Then the same for a 500-token answer, timed to the end of the stream (Parley: the `done`
event, which carries the rendered answer); the difference divided by 500 is the time
Parley adds per token. Targets: < 5 ms added to the first token (median), and the
per-token cost reported.

Run from the repository root: `python bench/streaming.py [--smoke] [--write]`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _live import Parley, Upstream, run_turn
from common import median_ms, parse_args, report, table, verdict

LONG_TOKENS = 500
TTFT_TARGET_MS = 5.0


def direct(http: requests.Session, base_url: str, text: str) -> tuple[float, float, int]:
    """(seconds to the first content chunk, seconds to [DONE], content chunks)."""
    body = {
        "model": "mock-model",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 2048,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = done = None
    chunks = 0
    with http.post(
        f"{base_url}/chat/completions",
        json=body,
        headers={"Accept": "text/event-stream", "Authorization": "Bearer sk-bench-0000"},
        stream=True,
        timeout=(10, 60),
    ) as response:
        response.raise_for_status()
        buffer = b""
        for data in response.iter_content(chunk_size=None):
            buffer += data
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                payload = block.decode().removeprefix("data:").strip()
                if payload == "[DONE]":
                    # Timed here; the loop still reads to the end of the body, so the
                    # keep-alive connection goes back to the pool.
                    done = time.perf_counter() - started
                    continue
                event = json.loads(payload)
                choices = event.get("choices") or []
                if choices and choices[0].get("delta", {}).get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - started
    if done is None:
        raise RuntimeError("the mock's stream ended without [DONE]")
    return first or float("nan"), done, chunks


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: (
            p.add_argument("--samples", type=int, default=200),
            p.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY"),
            p.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS"),
            p.add_argument("--note", default="", help="a sentence added to the notes"),
        ),
    )
    samples = 5 if args.smoke else args.samples
    long_samples = 3 if args.smoke else max(5, samples // 4)
    warmup = 4 if args.smoke else 10
    text = "Explain briefly why the sky is blue, in plain words please."

    with (
        Upstream(tokens=(20, 20)) as short,
        Upstream(tokens=(LONG_TOKENS, LONG_TOKENS)) as long,
        Parley(workers=args.workers, threads=args.threads) as server,
    ):
        server.start()
        needed = warmup + samples + long_samples
        info = server.setup(
            users=["bench"],
            models={"short": short.base_url, "long": long.base_url},
            chats=[("bench", "short", warmup + samples), ("bench", "long", long_samples)],
            messages_per_minute=0,
        )
        chats = info["chats"]["bench"]
        assert len(chats) == needed
        short_chats, long_chats = chats[: warmup + samples], chats[warmup + samples :]
        parley_http = server.login("bench")
        direct_http = requests.Session()

        # Warm both workers (imports, tokenizer, pooled upstream connections) and the mock.
        for chat in short_chats[:warmup]:
            result = run_turn(server, parley_http, chat, text)
            assert result.ok, result.error
            direct(direct_http, short.base_url, text)

        first_direct, first_parley, errors = [], [], 0
        for chat in short_chats[warmup:]:
            first_direct.append(direct(direct_http, short.base_url, text)[0])
            result = run_turn(server, parley_http, chat, text)
            if not result.ok or result.first_token is None:
                errors += 1
                continue
            first_parley.append(result.first_token)

        total_direct, total_parley = [], []
        for chat in long_chats:
            _first, total, chunks = direct(direct_http, long.base_url, text)
            assert chunks == LONG_TOKENS, chunks
            total_direct.append(total)
            result = run_turn(server, parley_http, chat, text)
            if not result.ok or result.deltas != LONG_TOKENS:
                errors += 1
                continue
            total_parley.append(result.total)
        locked = server.count_in_log("database is locked")

    added_first = median_ms(first_parley) - median_ms(first_direct)
    added_total = median_ms(total_parley) - median_ms(total_direct)
    per_token_us = added_total / LONG_TOKENS * 1000
    paired = [p - d for p, d in zip(first_parley, first_direct, strict=False)]
    rows = [
        [
            "first token (20-token answer)",
            len(first_parley),
            median_ms(first_direct),
            median_ms(first_parley),
            added_first,
            f"{median_ms(first_parley) / median_ms(first_direct):.1f}x",
            "" if args.smoke else verdict(added_first < TTFT_TARGET_MS, "< 5 ms added"),
        ],
        [
            f"whole {LONG_TOKENS}-token answer",
            len(total_parley),
            median_ms(total_direct),
            median_ms(total_parley),
            added_total,
            f"{median_ms(total_parley) / median_ms(total_direct):.1f}x",
            f"{per_token_us:.0f} µs added per token",
        ],
    ]
    body = table(
        ["measure", "samples", "direct ms", "through Parley ms", "added ms", "ratio", "verdict"],
        rows,
    )
    notes = (
        f"`python bench/streaming.py{' --smoke' if args.smoke else ''}`: Parley under "
        f"gunicorn (gthread, {server.workers} workers x {server.threads} threads, SQLite, "
        "file cache) relaying "
        "`mock_llm` (own process, no delay); keep-alive `requests` sessions; direct and "
        "through-Parley samples alternate, each Parley sample on a fresh chat (the same "
        "one-message prompt). Medians; the median of paired differences for the first "
        f"token is {statistics.median(paired) * 1000:.2f} ms. Errors: {errors}; "
        f"'database is locked' in the server log: {locked}."
    )
    if args.note:
        notes += f" {args.note}"
    report("Streaming overhead (bench/streaming.py)", body, write=args.write, notes=notes)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
