"""A real Parley for the live benchmarks (a helper, not a benchmark: the leading underscore
keeps it out of the smoke runner and `make bench` finds nothing to run in it).

`Parley` is `scripts/entrypoint.sh` under gunicorn (gthread; WEB_CONCURRENCY and
GUNICORN_THREADS as asked) on a free 127.0.0.1 port, with its own temporary DATA_DIR,
SQLite file and file cache, and an environment stripped of the developer's Parley
settings, started in its own process group and stopped with SIGTERM to that group.
`Upstream` is `models_registry.mock_llm` in a subprocess (so its threads never share a
GIL with the load generator), optionally with a random delay and length per answer.
The end-to-end tests' server (`chat/tests/live.py`) is built on the same pieces
(`LiveServer`, `clean_env`, `collect_static`, `csrf_token`, `sse_events`): they live
here, free of pytest, because `make bench` installs only the runtime requirements.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import runpy
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chat.fields import unpack_text  # noqa: E402  (needs ROOT on sys.path)

VENV_BIN = Path(sys.executable).parent
PASSWORD = "a-long-bench-passphrase-42"  # noqa: S105  (bench users only)
STRIPPED_PREFIXES = ("PARLEY_", "DJANGO_", "DATABASE_", "CACHE_", "SECRET_", "GUNICORN_")
LOCKED = "database is locked"
_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_static_root: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Parley's own settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}
    for name in ("DATA_DIR", "DEBUG", "STATIC_ROOT", "ALLOWED_HOSTS", "HOST", "PORT"):
        env.pop(name, None)
    for name in ("WEB_CONCURRENCY", "CONN_MAX_AGE", "LOG_LEVEL", "SQLITE_SYNCHRONOUS"):
        env.pop(name, None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def collect_static(static_root: Path) -> None:
    """`collectstatic` into ``static_root`` (whitenoise's manifest storage needs it)."""
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=clean_env(
            STATIC_ROOT=str(static_root), DATA_DIR=str(static_root.parent / "collectstatic-data")
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"collectstatic failed:\n{result.stdout}\n{result.stderr}")


def static_root() -> Path:
    """The current static files, collected once per process into a temporary directory."""
    global _static_root
    if _static_root is None:
        base = Path(tempfile.mkdtemp(prefix="parley-bench-static-"))
        try:
            collect_static(base / "static")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _static_root = base / "static"
    return _static_root


def _proc_stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size: shared pages divided among the processes sharing them (what
    the processes cost the machine together; summed RSS counts shared pages once each)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


# --- the mock model -------------------------------------------------------------------------

_UPSTREAM_CODE = """
import random, sys
sys.path.insert(0, sys.argv[1])
from models_registry.mock_llm import MockLLMServer

port, delay_lo, delay_hi, tokens_lo, tokens_hi = (int(a) for a in sys.argv[2:7])


class Varying(MockLLMServer):
    # Read once per answer by the handler: a fresh draw for every answer.
    @property
    def delay_ms(self):
        return random.randint(delay_lo, delay_hi)

    @delay_ms.setter
    def delay_ms(self, value):
        pass

    @property
    def tokens(self):
        return random.randint(tokens_lo, tokens_hi) if tokens_hi else None

    @tokens.setter
    def tokens(self, value):
        pass


server = Varying(("127.0.0.1", port))
print("ready", flush=True)
try:
    server.serve_forever(poll_interval=0.05)
except KeyboardInterrupt:
    pass
"""


class Upstream:
    """The mock model in its own process: ``delay_ms`` and ``tokens`` are (low, high) ranges
    drawn per answer (equal bounds: fixed); ``tokens=(0, 0)`` echoes the prompt."""

    def __init__(self, *, delay_ms: tuple[int, int] = (0, 0), tokens: tuple[int, int] = (0, 0)):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _UPSTREAM_CODE, str(ROOT), str(self.port), *map(str, delay_ms)]
            + [str(n) for n in tokens],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        atexit.register(self.stop)  # even when the script using it dies of an exception
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError("the mock model did not start")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.02)
        raise RuntimeError("the mock model does not accept connections")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Parley under gunicorn ------------------------------------------------------------------

SETUP = """
import json
from accounts.models import Role, User
from chat.models import ChatSession
from config.services import get_system_setting, system_setting_update
from django.contrib.auth.hashers import make_password
from models_registry.models import ModelConfig
from models_registry.services import model_config_save

hashed = make_password({password!r})  # one Argon2 hash for every bench user: same password
for name in {users!r}:
    User(username=name, password=hashed, role=Role.USER, approved=True).save()
setting = get_system_setting()
if {messages_per_minute!r} is not None:
    setting.messages_per_minute = {messages_per_minute!r}
    system_setting_update(setting=setting, changed_fields=["messages_per_minute"], actor=None)
ids = {{}}
for name, url in {models!r}.items():
    model = ModelConfig(name=name, api_url=url, model="mock-model", context_window=32768,
                        max_output_tokens=2048)
    model_config_save(model_config=model, new_api_key="sk-bench-0000", changed_fields=[],
                      actor=None)
    ids[name] = model.pk
chats = {{}}
for name, model_name, count in {chats!r}:
    user = User.objects.get(username=name)
    chats.setdefault(name, []).extend(
        ChatSession.objects.create(user=user, model_config_id=ids[model_name]).pk
        for _ in range(count)
    )
print(json.dumps({{"models": ids, "chats": chats}}))
"""


class LiveServer:
    """What a live Parley offers its callers: stop it, read its log, run `manage.py`,
    read its database, log in. Used by ``Parley`` here and by the end-to-end tests'
    ``LiveParley``; each provides ``process``, ``env``, ``data_dir``, ``log_path`` and
    ``url()``."""

    process: subprocess.Popen | None
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    stop_timeout: float = 35  # gunicorn's graceful timeout is 30 s

    def url(self, path: str) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def count_in_log(self, needle: str) -> int:
        return self.log_text().count(needle)

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args[:1])} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.sqlite3"

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Read the live database from this process, as any other reader would."""
        db = sqlite3.connect(self.db_path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def login(self, username: str, password: str = PASSWORD) -> requests.Session:
        """A keep-alive session logged in through the log-in form, CSRF token and all."""
        http = requests.Session()
        page = http.get(self.url("/accounts/login/"), timeout=30)
        page.raise_for_status()
        reply = http.post(
            self.url("/accounts/login/"),
            data={
                "csrfmiddlewaretoken": csrf_token(page.text),
                "username": username,
                "password": password,
            },
            headers={"Referer": self.url("/accounts/login/")},
            allow_redirects=False,
            timeout=30,
        )
        if reply.status_code != 302:
            raise RuntimeError(f"log-in as {username} failed ({reply.status_code})")
        return http


@dataclass
class Parley(LiveServer):
    """One server; ``start()`` returns the seconds from launch to /healthz 200."""

    workers: int | None = None  # WEB_CONCURRENCY; None: gunicorn.conf.py's default
    threads: int | None = None  # GUNICORN_THREADS; None: gunicorn.conf.py's default
    extra_env: dict[str, str] = field(default_factory=dict)
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="parley-bench-")))
    keep_base: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "gunicorn.log"
        self.env = clean_env(
            DATA_DIR=str(self.data_dir),
            DATABASE_URL=f"sqlite:///{self.data_dir / 'db.sqlite3'}",
            CACHE_URL=f"filecache://{self.data_dir / 'cache'}",
            STATIC_ROOT=str(static_root()),
            DEBUG="false",
            HOST="127.0.0.1",
            PORT=str(self.port),
            **self.extra_env,
        )
        if self.workers is not None:
            self.env["WEB_CONCURRENCY"] = str(self.workers)
        if self.threads is not None:
            self.env["GUNICORN_THREADS"] = str(self.threads)
        # What gunicorn will run, read from its configuration in the server's environment.
        with mock.patch.dict(os.environ, self.env, clear=True):
            conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
        self.workers, self.threads = conf["workers"], conf["threads"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # --- life cycle ---

    def start(self, *, wait_workers: bool = True, poll: float = 0.02) -> float:
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "entrypoint.sh")],
                cwd=self.base,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        atexit.register(self.stop)  # even when the script using it dies of an exception
        try:
            seconds = self._wait_healthy(started, poll=poll)
            if wait_workers:
                self._wait_for_workers()
        except BaseException:
            self.stop()
            raise
        return seconds

    def _wait_healthy(self, started: float, *, poll: float, timeout: float = 90) -> float:
        http = requests.Session()
        while time.perf_counter() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Parley exited at start-up:\n{self.log_tail()}")
            try:
                if http.get(self.url("/healthz"), timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            time.sleep(poll)
        raise RuntimeError(f"Parley did not answer /healthz in time:\n{self.log_tail()}")

    def _wait_for_workers(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(self.worker_pids()) == self.workers:
                return
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not run {self.workers} workers:\n{self.log_tail()}")

    def cleanup(self) -> None:
        self.stop()
        if not self.keep_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Parley:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- processes and logs ---

    def group_pids(self) -> list[int]:
        """Every live process of the server's process group (master and workers)."""
        if self.process is None:
            return []
        pgid = self.process.pid
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = _proc_stat(entry.name)
                if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                    found.append(int(entry.name))
        return found

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        return [
            pid
            for pid in self.group_pids()
            if (fields := _proc_stat(pid)) and int(fields[1]) == self.process.pid
        ]

    def rss(self) -> int:
        return rss_bytes(self.group_pids())

    def pss(self) -> int:
        return pss_bytes(self.group_pids())

    @staticmethod
    def rss_of(pid: int) -> int:
        return rss_bytes([pid])

    # --- manage.py and the database ---

    def setup(
        self,
        *,
        users: list[str],
        models: dict[str, str],
        chats: list[tuple[str, str, int]] = (),
        messages_per_minute: int | None = None,
    ) -> dict[str, Any]:
        """Users (password PASSWORD), system models {name: url}, and chats
        [(user, model name, how many)]: {"models": {name: id}, "chats": {user: [ids]}}."""
        code = SETUP.format(
            password=PASSWORD,
            users=list(users),
            models=dict(models),
            chats=[tuple(c) for c in chats],
            messages_per_minute=messages_per_minute,
        )
        output = self.manage("shell", "--no-imports", "-c", code).strip().splitlines()
        return json.loads(output[-1])

    # --- HTTP ---

    def send(
        self, http: requests.Session, chat_id: int, text: str, *, timeout: float = 60
    ) -> requests.Response:
        """POST a message the way the chat page's script does; the answer streams back."""
        return http.post(
            self.url(f"/chats/{chat_id}/send/"),
            data={"content": text},
            headers={"X-CSRFToken": http.cookies["csrftoken"], "Accept": "text/event-stream"},
            stream=True,
            allow_redirects=False,
            timeout=(10, timeout),
        )


def csrf_token(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    if not match:
        raise RuntimeError("the page has no CSRF token")
    return match[1]


# --- server-sent events ---------------------------------------------------------------------


def sse_events(response: requests.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs as they arrive; comments (`: ping`) are skipped."""
    buffer = b""
    for chunk in response.iter_content(chunk_size=None):
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            name, data = "message", []
            for line in block.decode().split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                yield name, json.loads("\n".join(data))


@dataclass
class TurnResult:
    """One message sent and its answer read to the end, timed from the POST."""

    ok: bool
    status: int = 0
    error: str = ""
    message_id: int | None = None
    session_id: int | None = None
    text: str = ""  # the answer as streamed
    deltas: int = 0
    first_token: float | None = None  # seconds from the POST to the first delta
    total: float = 0.0  # seconds from the POST to the final event


def run_turn(server: Parley, http: requests.Session, chat_id: int, text: str) -> TurnResult:
    started = time.perf_counter()
    try:
        response = server.send(http, chat_id, text)
    except requests.RequestException as exc:
        return TurnResult(False, error=f"{type(exc).__name__}: {exc}")
    result = TurnResult(False, status=response.status_code)
    with response:
        if response.status_code != 200:
            result.error = f"HTTP {response.status_code}: {response.text[:200]}"
            result.total = time.perf_counter() - started
            return result
        parts: list[str] = []
        final = ""
        try:
            for name, data in sse_events(response):
                if name == "delta":
                    if result.first_token is None:
                        result.first_token = time.perf_counter() - started
                    parts.append(data["content"])
                    result.deltas += 1
                elif name == "start":
                    result.message_id = data["message_id"]
                    result.session_id = data["session_id"]
                elif name in ("done", "error"):
                    result.total = time.perf_counter() - started
                    final = name if name == "error" else data.get("status", "?")
                    if name == "error":
                        result.error = f"error event: {data.get('error')}"
                    # No break: read to the end of the body, so the keep-alive connection
                    # goes back to the pool instead of being closed half-read.
        except (requests.RequestException, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
    if not final:
        result.total = time.perf_counter() - started
    result.text = "".join(parts)
    result.ok = final == "complete"
    if not result.ok and not result.error:
        result.error = f"answer ended as {final or 'nothing'}"
    return result


def verify_turns(server: Parley, turns: list[tuple[str, TurnResult]]) -> tuple[int, int]:
    """(lost, incomplete) among acknowledged turns [(user text, result)]: a user message
    missing from its chat, or an answer not `complete` with exactly the streamed text."""
    lost = incomplete = 0
    db = sqlite3.connect(server.db_path, timeout=30)
    try:
        for text, turn in turns:
            if turn.message_id is None:
                continue
            row = db.execute(
                "SELECT session_id, content, status FROM chat_message WHERE id = ?",
                (turn.message_id,),
            ).fetchone()
            users = db.execute(
                "SELECT content FROM chat_message WHERE session_id = ? AND role = 'user'"
                " AND id < ? ORDER BY id DESC LIMIT 1",
                (turn.session_id, turn.message_id),
            ).fetchone()
            if row is None or users is None or unpack_text(users[0]) != text:
                lost += 1
            elif turn.ok and (row[2] != "complete" or unpack_text(row[1]) != turn.text):
                incomplete += 1
    finally:
        db.close()
    return lost, incomplete


class RssSampler:
    """Samples the server's summed RSS every ``interval`` seconds in a thread."""

    def __init__(self, server: Parley, interval: float = 0.5) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[int] = []
        self.pss_samples: list[int] = []
        self.per_worker_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self.server.group_pids()
            self.samples.append(rss_bytes(pids))
            self.pss_samples.append(pss_bytes(pids))
            for pid in self.server.worker_pids():
                self.per_worker_peak = max(self.per_worker_peak, rss_bytes([pid]))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)

    @property
    def pss_peak(self) -> int:
        return max(self.pss_samples, default=0)


MIB = 1024 * 1024
