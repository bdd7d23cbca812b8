"""A real Parley for end-to-end tests: `scripts/entrypoint.sh` under gunicorn, over HTTP.

`LiveParley` is one server: gthread with two worker processes (so Stop, the cache and
the database are shared the way production shares them), its own DATA_DIR with a fresh
SQLite file, and an environment stripped of the developer's PARLEY_/DATABASE_/CACHE_/
SECRET_ variables. It migrates, runs the start-up sweep and serves, exactly as the
container does. Users and models are created with `manage.py shell` subprocesses; the
database is read with the `sqlite3` module, as any other process would read it.

The fixtures that start one per test module are in `chat/tests/conftest.py`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from chat.fields import unpack_text

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PASSWORD = "a-long-live-test-passphrase-42"
STRIPPED_PREFIXES = ("PARLEY_", "DJANGO_", "DATABASE_", "CACHE_", "SECRET_")

# The PostgreSQL pass of `make test` sets this: these tests exercise the server and the
# pages, not the database backend, so they run once, in the SQLite pass.
ONLY_IN_SQLITE_PASS = pytest.mark.skipif(
    bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
    reason="live-server tests run in the SQLite pass only (PARLEY_TEST_DATABASE_URL is set)",
)

_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Parley's own settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}
    for name in ("DATA_DIR", "DEBUG", "STATIC_ROOT", "ALLOWED_HOSTS", "HOST", "PORT"):
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


@dataclass
class LiveParley:
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    models: dict[str, int] = field(default_factory=dict)  # model ids by name, once created
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "entrypoint.sh")],
                cwd=self.data_dir.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        self.wait_healthy(seconds=90)
        self.wait_for_workers(2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_healthy(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Parley exited at start-up:\n{self.log_tail()}")
            try:
                if requests.get(self.url("/healthz"), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Parley did not answer /healthz in time:\n{self.log_tail()}")

    # --- gunicorn's processes -----------------------------------------------------------

    @property
    def master_pid(self) -> int:
        assert self.process is not None
        return self.process.pid  # entrypoint.sh `exec`s gunicorn: the same pid

    def worker_pids(self) -> set[int]:
        """gunicorn's workers: the master's children."""
        workers = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.master_pid and fields[0] != "Z":
                workers.add(int(entry.name))
        return workers

    def wait_for_workers(self, count: int, seconds: float = 30) -> set[int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            workers = self.worker_pids()
            if len(workers) == count:
                return workers
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not run {count} workers:\n{self.log_tail()}")

    def worker_serving(self, client: socket.socket | tuple[str, int]) -> int | None:
        """The worker process holding the server end of the connection ``client`` opened."""
        client_port = (client.getsockname() if isinstance(client, socket.socket) else client)[1]
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                columns = row.split()
                local_port = int(columns[1].rsplit(":", 1)[1], 16)
                remote_port = int(columns[2].rsplit(":", 1)[1], 16)
                if local_port == self.port and remote_port == client_port:
                    inodes.add(f"socket:[{columns[9]}]")
        for pid in self.worker_pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(fd) in inodes:
                        return pid
                except OSError:
                    continue
        return None

    # --- manage.py and the database -----------------------------------------------------

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

    def shell(self, code: str) -> Any:
        """Run ``code`` in `manage.py shell`; it ends by printing one JSON value, returned."""
        output = self.manage("shell", "--no-imports", "-c", code).strip().splitlines()
        return json.loads(output[-1]) if output else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.sqlite3"

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """Read the live database from this process, as any other reader would."""
        db = sqlite3.connect(self.db_path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    _MESSAGES_SQL = (
        "SELECT id, session_id, role, content, status, error, client_id FROM chat_message"
        " WHERE {} = ? ORDER BY id"
    )
    _BY_SESSION = _MESSAGES_SQL.format("session_id")
    _BY_ID = _MESSAGES_SQL.format("id")

    def _messages(self, sql: str, param: int) -> list[dict[str, Any]]:
        # `content` is stored in chat.fields' format (a type byte, maybe zlib): decode it.
        return [
            {**dict(row), "content": unpack_text(row["content"])}
            for row in self.query(sql, (param,))
        ]

    def messages(self, session_id: int) -> list[dict[str, Any]]:
        return self._messages(self._BY_SESSION, session_id)

    def message(self, message_id: int) -> dict[str, Any] | None:
        rows = self._messages(self._BY_ID, message_id)
        return rows[0] if rows else None

    def wait_for_status(
        self, message_id: int, statuses: set[str], seconds: float = 10
    ) -> dict[str, Any]:
        """Poll the answer's row until its status is one of ``statuses``."""
        deadline = time.monotonic() + seconds
        row = None
        while time.monotonic() < deadline:
            row = self.message(message_id)
            if row is not None and row["status"] in statuses:
                return row
            time.sleep(0.05)
        raise AssertionError(
            f"message {message_id} is {row['status'] if row else 'missing'}, "
            f"not {sorted(statuses)}, after {seconds} s"
        )

    # --- HTTP -----------------------------------------------------------------------------

    def login(self, username: str, password: str = PASSWORD) -> requests.Session:
        """A `requests` session logged in through the log-in form, CSRF token and all."""
        http = requests.Session()
        page = http.get(self.url("/accounts/login/"), timeout=10)
        reply = http.post(
            self.url("/accounts/login/"),
            data={
                "csrfmiddlewaretoken": csrf_token(page.text),
                "username": username,
                "password": password,
            },
            headers={"Referer": self.url("/accounts/login/")},
            allow_redirects=False,
            timeout=10,
        )
        assert reply.status_code == 302, f"log-in as {username} failed ({reply.status_code})"
        return http


def start_live_parley(base: Path, static_root: Path, **env: str) -> LiveParley:
    port = free_port()
    data_dir = base / "data"
    server = LiveParley(
        port=port,
        data_dir=data_dir,
        log_path=base / "gunicorn.log",
        env=clean_env(
            DATA_DIR=str(data_dir),
            # Explicit, so a developer's `.env` cannot point the server elsewhere.
            DATABASE_URL=f"sqlite:///{data_dir / 'db.sqlite3'}",
            CACHE_URL=f"filecache://{data_dir / 'cache'}",
            STATIC_ROOT=str(static_root),
            DEBUG="false",
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="8",
            # gunicorn's control socket defaults to one path per user account: a test
            # server must not take it over from the developer's own `make run`.
            GUNICORN_CMD_ARGS="--no-control-socket",
            **env,
        ),
    )
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def csrf_token(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match, "the page has no CSRF token"
    return match[1]


# --- server-sent events ------------------------------------------------------------------


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


def client_socket(response: requests.Response) -> socket.socket:
    """The socket a streaming response is read from (to find the worker serving it)."""
    connection = response.raw.connection
    assert connection is not None and connection.sock is not None
    return connection.sock


# --- an upstream with a scripted answer ------------------------------------------------------


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedUpstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        answer = self.server.answer
        pieces = [answer[i : i + 6] for i in range(0, len(answer), 6)]
        for piece in pieces:
            self._event({"content": piece}, None)
            time.sleep(self.server.delay)
        self._event({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, delta: dict, finish_reason: str | None) -> None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        chunk = {"id": "scripted", "object": "chat.completion.chunk", "choices": [choice]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()


class ScriptedUpstream(ThreadingHTTPServer):
    """An OpenAI-compatible server whose every answer is ``answer``, streamed in pieces.

    The mock model echoes the user's words on one line; this one can answer with line
    breaks, so a fenced code block can come back from "the model".
    """

    daemon_threads = True

    def __init__(self, answer: str, *, delay: float = 0.02) -> None:
        self.answer = answer
        self.delay = delay
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up: slow without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
