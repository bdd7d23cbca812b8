"""A real Parley for end-to-end tests: `scripts/entrypoint.sh` under gunicorn, over HTTP.

`LiveParley` is one server: gthread with two worker processes (so Stop, the cache and
the database are shared the way production shares them), its own DATA_DIR with a fresh
SQLite file, and an environment stripped of the developer's Parley, Django, database,
cache and gunicorn settings. It migrates, runs the start-up sweep and serves, exactly as
the container does. Users and models are created with `manage.py shell` subprocesses;
the database is read with the `sqlite3` module, as any other process would read it.
What it shares with the benchmarks' server (stopping, logs, `manage.py`, the database,
log-in, server-sent events) is `bench._live.LiveServer` and the functions beside it.

The fixtures that start one per test module are in `chat/tests/conftest.py`.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bench._live import (  # the live-server pieces the benchmarks use too
    PASSWORD,
    ROOT,
    LiveServer,
    clean_env,
    collect_static,
    csrf_token,
    free_port,
    sse_events,
)
from chat.fields import unpack_text

__all__ = [
    "ONLY_IN_SQLITE_PASS",
    "PASSWORD",
    "ROOT",
    "LiveParley",
    "ScriptedUpstream",
    "client_socket",
    "collect_static",
    "csrf_token",
    "sse_events",
    "start_live_parley",
]

# The PostgreSQL pass of `make test` sets this: these tests exercise the server and the
# pages, not the database backend, so they run once, in the SQLite pass.
ONLY_IN_SQLITE_PASS = pytest.mark.skipif(
    bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
    reason="live-server tests run in the SQLite pass only (PARLEY_TEST_DATABASE_URL is set)",
)


@dataclass
class LiveParley(LiveServer):
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

    def shell(self, code: str) -> Any:
        """Run ``code`` in `manage.py shell`; it ends by printing one JSON value, returned."""
        output = self.manage("shell", "--no-imports", "-c", code).strip().splitlines()
        return json.loads(output[-1]) if output else None

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
