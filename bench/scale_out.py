"""Scale-out: two gunicorn instances on one PostgreSQL + one Redis, clients on both.

Usage: `python bench/scale_out.py [--smoke] [--write] [--users N] [--seconds S]`

Starts a throw-away PostgreSQL database and Redis database, two real Parleys
(`scripts/entrypoint.sh`, two gunicorn gthread workers each) on two ports and a mock
upstream (20-40 ms a token, 30-60 tokens an answer), then checks:

1. Load: N users spread round-robin over both instances, each logging in on its own
   and looping: open the chat page, send, stream the answer to its end, open /chats/
   (a new chat every few turns). Every failed request, refused message or answer that
   does not end `complete` is an error; afterwards PostgreSQL is read directly and
   every acknowledged message (the stream said `start`) must be there once, with its
   answer complete and exactly what the client saw. Reported: errors, lost, p50/p95
   page load, p50/p95 time to first token, turns per second.
2. Stop across instances: a slow answer (300 tokens, 40 ms each) streams from A; the
   same user (same session cookie: sessions live in the database) posts Stop to B; the
   stream on A must end `stopped` within 2 s and the row must say `stopped`.
3. Rate limit across instances: with 4 messages a minute, messages sent alternately
   to A and B are accepted four times, then refused with 429 on both.

Exit status 1 if a check fails. Without a reachable PostgreSQL or Redis, `--smoke` prints
a one-line "skipped" table and exits 0 (1 with PARLEY_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import _scale
import requests
from _live import Parley, sse_events
from common import parse_args, percentile, report, table, verdict

from models_registry.mock_llm import answer_tokens

TITLE = "Scale-out: two gunicorn instances on PostgreSQL + Redis"
HEADERS = ("check", "result", "numbers")
TURNS_PER_CHAT = 4  # then the user starts a new chat (keeps the history, and K, small)
PREFIX_WORDS = 6  # the mock's "Received K messages. Last user message:" before the echo
ANSWER_TOKENS = (30, 60)
STOP_WITHIN_S = 2.0
RATE_LIMIT = 4
TIMEOUT = (5, 30)  # connect, read
WORDS = [
    "scale", "postgres", "redis", "gunicorn", "worker", "stream", "token", "answer", "model",
    "chat", "session", "cache", "page", "load", "stop", "limit", "minute", "thread", "queue",
    "socket", "reply", "history", "window", "budget", "text", "latency", "replica", "message",
    "user", "database", "index", "commit", "lock", "shared", "flag", "event", "delta",
]  # fmt: skip


def extra_args(parser: Any) -> None:
    parser.add_argument("--users", type=int, default=None, help="simulated users (30)")
    parser.add_argument("--seconds", type=float, default=None, help="load duration (45)")
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database to use (13)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PARLEY_BENCH_POSTGRES_URL", _scale.DEFAULT_POSTGRES_URL),
        help="maintenance database URL (the bench creates and drops its own database)",
    )


# --- one simulated user ------------------------------------------------------------------


@dataclass
class Turn:
    user: str
    instance: str
    session_id: int
    message_id: int
    chat_turn: int  # 0 for the chat's first message
    client_id: str
    text: str
    streamed: str
    status: str


@dataclass
class LoadResult:
    turns: list[Turn] = field(default_factory=list)  # acknowledged: the stream said `start`
    completed: int = 0
    errors: Counter = field(default_factory=Counter)
    pages: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    ttft_by_instance: dict[str, list[float]] = field(default_factory=lambda: {"A": [], "B": []})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, reason: str) -> None:
        with self.lock:
            self.errors[reason] += 1


def csrf_headers(http: requests.Session, stream: bool = True) -> dict[str, str]:
    headers = {"X-CSRFToken": http.cookies.get("csrftoken", "")}
    if stream:
        headers["Accept"] = "text/event-stream"
    return headers


def message_text(rng: random.Random, tag: str) -> str:
    """A message whose echo makes a 30-60 token answer (the mock answers with its words)."""
    count = rng.randint(ANSWER_TOKENS[0], ANSWER_TOKENS[1]) - PREFIX_WORDS - 1
    return " ".join([tag, *rng.choices(WORDS, k=count)])


def expected_answer(text: str, chat_turn: int) -> str:
    """What the mock answers: history of 2 messages per earlier turn, plus this one."""
    messages = [{"role": "user", "content": text}] * (2 * chat_turn + 1)
    return "".join(answer_tokens(messages))


def read_stream(response: requests.Response, started: float) -> tuple[dict, str, str, float]:
    """(start event, final event, text, seconds to the first delta), read to the body's end."""
    start: dict = {}
    final, text, first = "", [], float("nan")
    try:
        for name, data in sse_events(response):
            if name == "start":
                start = data
            elif name == "delta":
                if not text:
                    first = time.perf_counter() - started
                text.append(data.get("content") or "")
            elif name in ("done", "error"):
                final = f"{name}:{data.get('status')}"
        # Read on to the end of the body, as the page's script does: the server saves the
        # answer after sending the final event, before it ends the response.
    finally:
        response.close()
    return start, final, "".join(text), first


def simulated_user(
    index: int,
    server: Parley,
    instance: str,
    model_id: int,
    barrier: threading.Barrier,
    deadline: list[float],
    result: LoadResult,
) -> None:
    name = f"load{index:02d}"
    rng = random.Random(index)  # noqa: S311 (word choice, not secrets)
    try:
        http = server.login(name)
    except Exception as error:
        result.error(f"log-in: {type(error).__name__}")
        barrier.abort()
        return
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:
        return
    session_id: int | None = None
    chat_turn = 0
    number = 0
    while time.monotonic() < deadline[0]:
        number += 1
        try:
            new_chat = session_id is None or chat_turn >= TURNS_PER_CHAT
            if new_chat:
                session_id, chat_turn = None, 0
            page = "/" if new_chat else f"/chats/{session_id}/"
            started = time.perf_counter()
            reply = http.get(server.url(page), timeout=TIMEOUT)
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                result.error(f"GET chat page: {reply.status_code}")
                session_id = None
                continue
            with result.lock:
                result.pages.append(elapsed)

            text = message_text(rng, f"{name}-turn{number}")
            client_id = str(uuid.uuid4())
            data = {"content": text, "client_id": client_id}
            if new_chat:
                path, data["model"] = "/chats/new/", str(model_id)
            else:
                path = f"/chats/{session_id}/send/"
            started = time.perf_counter()
            response = http.post(
                server.url(path),
                data=data,
                headers=csrf_headers(http),
                stream=True,
                allow_redirects=False,
                timeout=TIMEOUT,
            )
            if response.status_code != 200:
                result.error(f"POST send: {response.status_code}")
                response.close()
                session_id = None
                continue
            start, final, streamed, first = read_stream(response, started)
            if not start:
                result.error("stream without start")
                session_id = None
                continue
            session_id = start["session_id"]
            turn = Turn(
                name,
                instance,
                session_id,
                start["message_id"],
                chat_turn,
                client_id,
                text,
                streamed,
                final,
            )
            with result.lock:
                result.turns.append(turn)
            chat_turn += 1
            if final != "done:complete":
                result.error(f"answer ended {final or 'without a final event'}")
                session_id = None
                continue
            with result.lock:
                result.completed += 1
                result.ttft.append(first)
                result.ttft_by_instance[instance].append(first)

            started = time.perf_counter()
            reply = http.get(server.url("/chats/"), timeout=TIMEOUT)
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                result.error(f"GET /chats/: {reply.status_code}")
                continue
            with result.lock:
                result.pages.append(elapsed)
        except requests.RequestException as error:
            result.error(f"{type(error).__name__}")
            session_id = None
    http.close()


def run_load(cluster: _scale.Cluster, users: int, seconds: float) -> tuple[LoadResult, float]:
    """(result, wall seconds from the common start to the last turn's end)."""
    result = LoadResult()
    barrier = threading.Barrier(users + 1)
    deadline = [float("inf")]
    threads = []
    for index in range(users):
        server, instance = (cluster.a, "A") if index % 2 == 0 else (cluster.b, "B")
        thread = threading.Thread(
            target=simulated_user,
            args=(index, server, instance, cluster.models["load"], barrier, deadline, result),
            name=f"user-{index}",
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=180)  # everybody logged in
    started = time.monotonic()
    deadline[0] = started + seconds
    for thread in threads:
        thread.join(timeout=seconds + 120)
    if any(thread.is_alive() for thread in threads):
        result.error("a simulated user did not finish")
    return result, time.monotonic() - started


def verify_load(cluster: _scale.Cluster, result: LoadResult) -> tuple[int, list[str], int]:
    """(lost turns, first problems, rows checked): PostgreSQL against what clients saw."""
    sessions = sorted({turn.session_id for turn in result.turns})
    rows = cluster.query(
        "SELECT id, session_id, role, content, status, client_id::text AS client_id"
        " FROM chat_message WHERE session_id = ANY(%s) ORDER BY id",
        (sessions,),
    )
    by_id = {row["id"]: row for row in rows}
    by_client = Counter(row["client_id"] for row in rows if row["client_id"])
    user_rows = {row["client_id"]: row for row in rows if row["client_id"]}
    lost, problems = 0, []
    for turn in result.turns:
        answer = by_id.get(turn.message_id)
        sent = user_rows.get(turn.client_id)
        expected = expected_answer(turn.text, turn.chat_turn)
        problem = None
        if sent is None or sent["content"] != turn.text or by_client[turn.client_id] != 1:
            problem = "user message missing, changed or doubled"
        elif answer is None:
            problem = "answer row missing"
        elif answer["status"] != "complete":
            problem = f"answer is {answer['status']}"
        elif answer["content"] != expected:
            problem = f"answer has {len(answer['content'])} of {len(expected)} characters"
        elif answer["content"] != turn.streamed:
            problem = "answer differs from what the client read"
        if problem:
            lost += 1
            if len(problems) < 5:
                problems.append(f"message {turn.message_id} ({turn.instance}): {problem}")
    counted = cluster.query(
        "SELECT s.id, s.message_count, COUNT(m.id) AS n FROM chat_chatsession s"
        " LEFT JOIN chat_message m ON m.session_id = s.id GROUP BY s.id"
    )
    acknowledged = Counter(turn.session_id for turn in result.turns)
    for row in counted:
        if row["n"] != row["message_count"] or row["n"] != 2 * acknowledged.get(row["id"], 0):
            problems.append(
                f"chat {row['id']}: {row['n']} rows, message_count {row['message_count']},"
                f" {acknowledged.get(row['id'], 0)} acknowledged turns"
            )
            lost += 1
    return lost, problems, len(rows)


# --- Stop across instances -----------------------------------------------------------------


def check_stop(cluster: _scale.Cluster) -> tuple[bool, str]:
    http_a = cluster.a.login("stopper")
    http_b = requests.Session()  # "logged in on B": the same cookies, another process
    http_b.cookies.update(http_a.cookies)
    try:
        started = time.perf_counter()
        response = http_a.post(
            cluster.a.url("/chats/new/"),
            data={"model": str(cluster.models["slow"]), "content": "Write me something long"},
            headers=csrf_headers(http_a),
            stream=True,
            timeout=TIMEOUT,
        )
        if response.status_code != 200:
            return False, f"POST on A answered {response.status_code}"
        events = sse_events(response)
        start, deltas, text = {}, 0, []
        for name, data in events:
            if name == "start":
                start = data
            elif name == "delta":
                deltas += 1
                text.append(data["content"])
                if deltas >= 3:
                    break
            else:
                return False, f"the slow answer ended early ({name})"
        if not start or deltas < 3:
            return False, "the slow answer on A did not start streaming"
        stop_sent = time.perf_counter()
        stop = http_b.post(
            cluster.b.url(f"/chats/{start['session_id']}/stop/"),
            headers={**csrf_headers(http_b, stream=False), "Accept": "application/json"},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        stop_reply = stop.json() if stop.status_code == 200 else stop.status_code
        final = ""
        for name, data in events:
            if name == "delta":
                deltas += 1
                text.append(data["content"])
            elif name in ("done", "error"):
                final = f"{name}:{data.get('status')}"
        ended = time.perf_counter() - stop_sent  # the response's end, after the final save
        response.close()
        row = cluster.query(
            "SELECT status, content FROM chat_message WHERE id = %s", (start["message_id"],)
        )
        status = row[0]["status"] if row else "missing"
        ok = (
            stop_reply == {"stopping": 1}
            and final == "done:stopped"
            and ended <= STOP_WITHIN_S
            and status == "stopped"
            and row[0]["content"] == "".join(text)
            and deltas < 300
        )
        numbers = (
            f"Stop on B answered {stop_reply}; stream on A ended `{final or 'never'}` "
            f"{ended:.2f} s after it (limit {STOP_WITHIN_S:.0f} s), {deltas} of 300 tokens; "
            f"row `{status}`, {'same' if row and row[0]['content'] == ''.join(text) else 'other'}"
            f" text as streamed; whole check {time.perf_counter() - started:.1f} s"
        )
        return ok, numbers
    finally:
        http_a.close()
        http_b.close()


# --- rate limit across instances ----------------------------------------------------------


def check_rate_limit(cluster: _scale.Cluster, usernames: list[str]) -> tuple[bool, str]:
    cluster.set_rate_limit(RATE_LIMIT)
    numbers = ""
    for attempt, name in enumerate(usernames):
        # The count lives in a per-minute key: stay inside one minute.
        left = 60 - time.time() % 60
        if left < 5:
            time.sleep(left + 0.2)
        window = int(time.time() // 60)
        http = cluster.a.login(name)
        statuses = []
        try:
            for number in range(RATE_LIMIT + 2):
                server, label = (cluster.a, "A") if number % 2 == 0 else (cluster.b, "B")
                response = http.post(
                    server.url("/chats/new/"),
                    data={"model": str(cluster.models["load"]), "content": f"rate {number + 1}"},
                    headers=csrf_headers(http),
                    stream=True,
                    timeout=TIMEOUT,
                )
                final = ""
                if response.status_code == 200:
                    final = read_stream(response, time.perf_counter())[1]
                else:
                    response.close()
                statuses.append((label, response.status_code, final))
        finally:
            http.close()
        same_minute = int(time.time() // 60) == window
        saved = cluster.query(
            "SELECT COUNT(*) AS n FROM chat_message m JOIN chat_chatsession s"
            " ON s.id = m.session_id JOIN accounts_user u ON u.id = s.user_id"
            " WHERE u.username = %s AND m.role = 'user'",
            (name,),
        )[0]["n"]
        expected = [200] * RATE_LIMIT + [429, 429]
        ok = (
            [status for _label, status, _final in statuses] == expected
            and all(final == "done:complete" for _l, s, final in statuses if s == 200)
            and saved == RATE_LIMIT
        )
        numbers = (
            f"limit {RATE_LIMIT}/min; "
            + ", ".join(
                f"#{i + 1} {label} {status}" for i, (label, status, _f) in enumerate(statuses)
            )
            + f"; {saved} saved"
        )
        if same_minute or attempt == len(usernames) - 1:
            return ok, numbers if same_minute else numbers + " (crossed a minute boundary)"
    return False, numbers


def server_log_problems(cluster: _scale.Cluster) -> list[str]:
    """Lines of both servers' logs that report an error (the 429s log a WARNING: fine)."""
    return [
        line
        for server in cluster.instances
        for line in server.log_text().splitlines()
        if any(mark in line for mark in (" ERROR ", "[ERROR]", "[CRITICAL]", "Traceback"))
    ]


# --- main -------------------------------------------------------------------------------------


def _ms(samples: list[float]) -> str:
    clean = [s for s in samples if s == s]  # drop NaN
    if not clean:
        return "n/a"
    return f"{percentile(clean, 50) * 1000:.0f} / {percentile(clean, 95) * 1000:.0f} ms"


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)  # unwinds through `cluster()`, which drops the database


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    users = args.users or (2 if args.smoke else 30)
    seconds = args.seconds or (3.0 if args.smoke else 45.0)
    redis_url = f"redis://{_scale.DEFAULT_REDIS_HOST}/{args.redis_db}"
    why = _scale.unreachable(args.postgres, redis_url)
    if why:
        required = os.environ.get("PARLEY_REQUIRE_POSTGRES") == "1" or not args.smoke
        result = (
            "FAILED: PostgreSQL/Redis required but" if required else "skipped: PostgreSQL/Redis"
        )
        print(table(("check", "result"), [("scale-out", f"{result} not reachable ({why})")]))
        return 1 if required else 0
    signal.signal(signal.SIGTERM, _on_sigterm)

    usernames = [f"load{i:02d}" for i in range(users)]
    limited = ["limited1", "limited2"]
    rows: list[tuple[str, str, str]] = []
    failed = False
    versions = _scale.server_versions(args.postgres, redis_url)
    setup_started = time.monotonic()
    with _scale.cluster(
        usernames=[*usernames, "stopper", *limited],
        postgres_url=args.postgres,
        redis_db=args.redis_db,
    ) as cluster:
        setup_s = time.monotonic() - setup_started
        try:
            result, wall = run_load(cluster, users, seconds)
            lost, problems, checked = verify_load(cluster, result)
            stuck = cluster.query(
                "SELECT COUNT(*) AS n FROM chat_message WHERE status = 'streaming'"
            )[0]["n"]
            errors = sum(result.errors.values())
            per_instance = Counter(turn.instance for turn in result.turns)
            load_ok = errors == 0 and lost == 0 and stuck == 0 and result.completed > 0
            failed |= not load_ok
            rows += [
                (
                    f"load: {users} users x {seconds:g} s, round-robin over A and B",
                    "ok" if load_ok else "FAILED",
                    f"{result.completed:,} turns completed (A {per_instance['A']:,},"
                    f" B {per_instance['B']:,}), {result.completed / wall:.1f} turns/s",
                ),
                (
                    "load: errors",
                    "ok" if errors == 0 else "FAILED",
                    f"{errors}"
                    + (
                        " (" + "; ".join(f"{r} x{n}" for r, n in result.errors.most_common(4)) + ")"
                        if errors
                        else ""
                    ),
                ),
                (
                    "load: lost (PostgreSQL read directly)",
                    "ok" if lost == 0 and stuck == 0 else "FAILED",
                    f"{lost} of {len(result.turns):,} acknowledged turns ({checked:,} rows"
                    f" checked, {stuck} left `streaming`)"
                    + (": " + "; ".join(problems) if problems else ""),
                ),
                (
                    "load: page load p50 / p95",
                    "measured",
                    f"{_ms(result.pages)} ({len(result.pages):,} pages)",
                ),
                (
                    "load: time to first token p50 / p95",
                    "measured",
                    f"{_ms(result.ttft)} ({len(result.ttft):,} answers; A"
                    f" {_ms(result.ttft_by_instance['A'])}, B {_ms(result.ttft_by_instance['B'])})",
                ),
            ]

            stop_ok, stop_numbers = check_stop(cluster)
            failed |= not stop_ok
            rows.append(
                (
                    "Stop posted to B stops a stream served by A",
                    "ok" if stop_ok else "FAILED",
                    stop_numbers,
                )
            )

            rate_ok, rate_numbers = check_rate_limit(cluster, limited)
            failed |= not rate_ok
            rows.append(
                ("rate limit counts across A and B", "ok" if rate_ok else "FAILED", rate_numbers)
            )
            problems = server_log_problems(cluster)
            failed |= bool(problems)
            rows.append(
                (
                    "server logs of A and B",
                    "FAILED" if problems else "ok",
                    f"{len(problems)} errors or tracebacks"
                    + (f" (first: {problems[0][:160]})" if problems else ""),
                )
            )
        except BaseException:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        if failed:
            print(cluster.log_tails(), file=sys.stderr)

    notes = (
        f"`python bench/scale_out.py{' --smoke' if args.smoke else ''}`: {versions}. Two "
        "Parleys (`scripts/entrypoint.sh`, gunicorn gthread, 2 workers x 8 threads each) on "
        f"two ports, one throw-away PostgreSQL database, Redis db {args.redis_db} as the "
        "cache; the mock upstream in its own process (20-40 ms a token, 30-60 tokens an "
        f"answer); a new chat every {TURNS_PER_CHAT} turns. Clients, servers, mock and "
        f"databases share the machine. Set-up (database, migrate, two starts) took "
        f"{setup_s:.1f} s. Page load: the chat page and /chats/, whole body; time to first "
        "token: POST sent to the first `delta` event."
    )
    if args.smoke:
        notes += " Smoke run: tiny sizes, no timing claims."
    else:
        notes += " Verdict: " + verdict(
            not failed, "0 errors, 0 lost, Stop and rate limit across instances"
        )
    report(TITLE, table(HEADERS, rows), write=args.write, notes=notes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
