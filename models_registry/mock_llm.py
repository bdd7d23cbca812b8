"""An OpenAI-compatible mock model server, for tests and for trying Parley with no provider.

Pure standard library, so a test can start it in a thread and ``manage.py mock_llm`` can
serve it. The answer is a deterministic function of the prompt::

    Received 3 messages. Last user message: <the text, [mock:...] directives removed>

sent one word per delta. Faults are chosen per request, first match wins:

1. an ``X-Mock-Fault: FAULT`` (or ``FAULT:ARG``) request header,
2. a ``[mock:FAULT]`` (or ``[mock:FAULT:ARG]``) directive in the last user message,
3. the model id ``mock-FAULT``.

``ARG`` is a number of milliseconds for ``slow_first_token``. The ``usage`` fault puts the
usage on the finish chunk itself (the non-empty-``choices`` shape some servers send); a
request that asks ``stream_options.include_usage`` gets OpenAI's separate usage chunk.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = (
    "slow_first_token",
    "error_mid_stream",
    "http_500",
    "http_429",
    "http_401",
    "http_404_model",
    "context_too_long",
    "disconnect",
    "never_ending",
    "idle_forever",
    "usage",
    "reasoning",
    "json_instead_of_stream",
    "reject_stream_options",
    "keepalive_comments",
    "crlf",
)
MODELS = ("mock-model", *(f"mock-{fault}" for fault in FAULTS))
SLOW_FIRST_TOKEN_MS = 2000
DELTAS_BEFORE_FAULT = 3
NEVER_ENDING_PAUSE = 0.02
MAX_REQUEST_BYTES = 10 * 1024 * 1024
RECORDED_REQUESTS = 200

_DIRECTIVE = re.compile(r"\[mock:([a-z0-9_]+)(?::(\d+))?\]")

# Error replies: (status, body). A str body is sent as text/plain, like a proxy's error page.
_ERRORS: dict[str, tuple[int, Any]] = {
    "http_500": (500, "Internal Server Error (mock)"),
    "http_429": (
        429,
        {
            "message": "Rate limit reached for mock-model (mock).",
            "type": "requests",
            "code": "rate_limit_exceeded",
        },
    ),
    "http_401": (
        401,
        {
            "message": "Incorrect API key provided (mock).",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        },
    ),
    "http_404_model": (
        404,
        {
            "message": "The model does not exist or you do not have access to it (mock).",
            "type": "invalid_request_error",
            "code": "model_not_found",
        },
    ),
    "context_too_long": (
        400,
        {
            "message": "This model's maximum context length is 4096 tokens. However, your "
            "messages resulted in 9000 tokens (mock).",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        },
    ),
}
_MID_STREAM_ERROR = {"message": "The mock model crashed mid-answer.", "type": "server_error"}
_STREAM_OPTIONS_ERROR = {
    "message": "Unrecognized request argument supplied: stream_options (mock)",
    "type": "invalid_request_error",
    "code": None,
}


@dataclass(frozen=True)
class RecordedRequest:
    """What a client sent; ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    tcp_nodelay: bool


def message_text(message: Any) -> str:
    """A message's text: a string, or the text parts of a list (the vision format)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def answer_tokens(messages: list[Any], tokens: int | None = None) -> list[str]:
    """The deterministic answer, one word (and the space after it) per token.

    ``tokens`` repeats the words cyclically to exactly that many tokens.
    """
    count = len(messages)
    last_user = next(
        (
            message_text(m)
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    echo = " ".join(_DIRECTIVE.sub(" ", last_user).split())
    noun = "message" if count == 1 else "messages"
    words = f"Received {count} {noun}. Last user message: {echo}".split()
    if tokens is not None:
        words = list(itertools.islice(itertools.cycle(words), tokens))
    return _tokens(" ".join(words))


def _tokens(text: str) -> list[str]:
    """Word tokens that join back to ``text``: each word with the space after it."""
    words = text.split()
    return [f"{word} " for word in words[:-1]] + words[-1:]


def prompt_token_count(messages: list[Any]) -> int:
    """Usage's prompt_tokens: the number of words in all messages."""
    return sum(len(message_text(message).split()) for message in messages)


def select_fault(headers: Any, messages: list[Any], model: str) -> tuple[str | None, int | None]:
    """(fault, argument) from the header, the last user message, or the model id."""
    header = (headers.get("X-Mock-Fault") or "").strip()
    if header:
        name, _colon, argument = header.partition(":")
        return name.strip(), int(argument) if argument.strip().isdigit() else None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            match = _DIRECTIVE.search(message_text(message))
            if match:
                return match[1], int(match[2]) if match[2] else None
            break
    if model.startswith("mock-") and model[5:] in FAULTS:
        return model[5:], None
    return None, None


class MockLLMServer(ThreadingHTTPServer):
    """The server; ``requests`` holds the last requests received, for tests to inspect."""

    daemon_threads = True
    allow_reuse_address = True
    # Never wait for handler threads: shutdown is made prompt by ``stopping`` instead.
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        delay_ms: int = 0,
        tokens: int | None = None,
        log_requests: bool = False,
    ) -> None:
        self.delay_ms = delay_ms
        self.tokens = tokens
        self.log_requests = log_requests
        self.stopping = threading.Event()
        self.requests: deque[RecordedRequest] = deque(maxlen=RECORDED_REQUESTS)
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        super().__init__(address, MockLLMHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def open_connections(self) -> int:
        """Connections a handler still holds (a fault that outlives its client shows here)."""
        with self._lock:
            return len(self._connections)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up (getfqdn): slow without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        """Every accepted socket gets TCP_NODELAY: each small SSE write leaves at once."""
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is normal here (faults provoke it); anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def next_id(self) -> str:
        return f"chatcmpl-mock-{next(self._ids)}"

    def serve_in_thread(self) -> threading.Thread:
        """Serve from a daemon thread (tests); ``stop()`` ends it."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Stop serving, wake every waiting fault and close open connections."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    delay_ms: int = 0,
    tokens: int | None = None,
    log_requests: bool = False,
) -> MockLLMServer:
    """A bound server (port 0: a free one); then ``serve_in_thread()`` or ``serve_forever()``."""
    return MockLLMServer((host, port), delay_ms=delay_ms, tokens=tokens, log_requests=log_requests)


class _ClientGone(Exception):
    """The client closed the connection (or the server is stopping): stop writing."""


class MockLLMHandler(BaseHTTPRequestHandler):
    """One request; HTTP/1.1 with chunked SSE bodies, like real providers."""

    protocol_version = "HTTP/1.1"
    server_version = "ParleyMockLLM/1"
    server: MockLLMServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)

    # --- routing ---

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._record(path, None)
        if self._redirected(path):
            return
        if path != "/v1/models":
            self._send_not_found(path)
            return
        fault, _argument = select_fault(self.headers, [], "")
        if fault in _ERRORS:
            self._send_fault_error(fault)
            return
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "parley-mock"} for m in MODELS
        ]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send_json(
                413, {"error": {"message": "Request too large", "type": "invalid_request_error"}}
            )
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        self._record(path, body)
        if self._redirected(path):
            return
        if path != "/v1/chat/completions":
            self._send_not_found(path)
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            error = {
                "message": "Expected a JSON object with 'messages'.",
                "type": "invalid_request_error",
            }
            self._send_json(400, {"error": error})
            return
        try:
            self._chat(body)
        except _ClientGone:
            self.close_connection = True

    def _record(self, path: str, body: Any) -> None:
        nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append(
            RecordedRequest(self.command, path, headers, body, tcp_nodelay=bool(nodelay))
        )

    def _redirected(self, path: str) -> bool:
        """``/redirect/...`` answers 307 to ``/...``: a client must not follow it."""
        if not path.startswith("/redirect/"):
            return False
        self.send_response(307)
        self.send_header("Location", path.removeprefix("/redirect"))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    # --- chat completions ---

    def _chat(self, body: dict) -> None:
        messages = body["messages"]
        model = str(body.get("model") or "mock-model")
        fault, argument = select_fault(self.headers, messages, model)
        if fault is not None and fault not in FAULTS:
            error = {"message": f"Unknown mock fault {fault!r}.", "type": "invalid_request_error"}
            self._send_json(400, {"error": error})
            return
        if fault in _ERRORS:
            self._send_fault_error(fault)
            return
        if fault == "reject_stream_options" and "stream_options" in body:
            self._send_json(400, {"error": _STREAM_OPTIONS_ERROR})
            return
        content = answer_tokens(messages, self.server.tokens)
        finish_reason = "stop"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(limit, int) and 0 <= limit < len(content):
            content, finish_reason = content[:limit], "length"
        reasoning: list[str] = []
        if fault == "reasoning":
            reasoning = _tokens(f"The user sent {len(messages)} messages; I will echo the last.")
        prompt_tokens = prompt_token_count(messages)
        completion_tokens = len(reasoning) + len(content)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        first_token_delay = (
            (argument or SLOW_FIRST_TOKEN_MS) / 1000 if fault == "slow_first_token" else 0
        )
        reply = _Reply(
            self.server.next_id(), int(time.time()), model, content, reasoning, finish_reason, usage
        )
        if body.get("stream") is not True:
            self._answer_json(reply, fault, first_token_delay)
            return
        if fault == "json_instead_of_stream":
            self._send_json(200, reply.completion())
            return
        stream_options = body.get("stream_options")
        include_usage = (
            isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        )
        self._answer_stream(reply, fault, first_token_delay, include_usage)

    def _answer_json(self, reply: _Reply, fault: str | None, first_token_delay: float) -> None:
        if fault == "error_mid_stream":
            self._send_json(500, {"error": _MID_STREAM_ERROR})
            return
        if fault in ("never_ending", "idle_forever", "disconnect"):
            self._start_chunked("application/json")
            self._write_chunk(b'{"id": "' + reply.id.encode() + b'", ')
            if fault == "disconnect":
                self._reset_connection()
            elif fault == "idle_forever":
                self._wait_until_gone()
            else:
                while True:
                    self._pause(NEVER_ENDING_PAUSE)
                    self._write_chunk(b" ")
            return
        self._pause(first_token_delay + self.server.delay_ms / 1000 * len(reply.content))
        self._send_json(200, reply.completion())

    def _answer_stream(
        self, reply: _Reply, fault: str | None, first_token_delay: float, include_usage: bool
    ) -> None:
        eol = "\r\n" if fault == "crlf" else "\n"
        null_usage = {"usage": None} if include_usage else {}

        def event(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            self._write_chunk(f"data: {text}{eol}{eol}".encode())

        def delta(fields: dict, finish_reason: str | None = None, **extra: Any) -> None:
            choice = {"index": 0, "delta": fields, "finish_reason": finish_reason}
            event({**reply.chunk([choice]), **null_usage, **extra})

        def broke_off() -> bool:
            """End the stream the way the fault says; False if this fault does not."""
            if fault == "error_mid_stream":
                event({"error": _MID_STREAM_ERROR})
                self._end_chunked()
            elif fault == "disconnect":
                self._pause(0.05)  # let the deltas arrive before the reset
                self._reset_connection()
            elif fault == "idle_forever":
                self._wait_until_gone()
            return fault in ("error_mid_stream", "disconnect", "idle_forever")

        pause = NEVER_ENDING_PAUSE if fault == "never_ending" else self.server.delay_ms / 1000
        self._start_chunked("text/event-stream; charset=utf-8")
        delta({"role": "assistant", "content": ""})
        self._pause(first_token_delay)
        for token in reply.reasoning:
            delta({"reasoning_content": token, "content": None})
            self._pause(pause)
        tokens: Iterator[str] = iter(reply.content)
        if fault == "never_ending":
            tokens = itertools.cycle(reply.content or ["more "])
        break_after = 1 if fault == "idle_forever" else DELTAS_BEFORE_FAULT
        for sent, token in enumerate(tokens, start=1):
            if sent > 1 and fault == "keepalive_comments":
                self._write_chunk(f": ping{eol}{eol}".encode())
            delta({"content": token})
            if sent == break_after and broke_off():
                return
            self._pause(pause)
        if broke_off():  # an answer shorter than DELTAS_BEFORE_FAULT still gets its fault
            return
        if fault == "usage":
            delta({}, reply.finish_reason, usage=reply.usage)
        else:
            delta({}, reply.finish_reason)
            if include_usage:
                event({**reply.chunk([]), "usage": reply.usage})
        event("[DONE]")
        self._end_chunked()

    # --- low level ---

    def _send_fault_error(self, fault: str) -> None:
        status, body = _ERRORS[fault]
        headers = {"Retry-After": "1"} if status == 429 else {}
        if isinstance(body, str):
            self._send_bytes(status, body.encode(), "text/plain; charset=utf-8", headers)
        else:
            self._send_json(status, {"error": body}, headers)

    def _send_not_found(self, path: str) -> None:
        error = {
            "message": f"Unknown path {path}",
            "type": "invalid_request_error",
            "code": "not_found",
        }
        self._send_json(404, {"error": error})

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        if self.server.stopping.is_set():
            raise _ClientGone
        try:
            self.wfile.write(data)
        except OSError:
            raise _ClientGone from None

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake for a server shutdown."""
        if seconds > 0 and self.server.stopping.wait(seconds):
            raise _ClientGone

    def _wait_until_gone(self) -> None:
        """Hold the connection silently until the client leaves or the server stops."""
        while not self.server.stopping.wait(0.05):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        break
                except OSError:
                    break
        raise _ClientGone

    def _reset_connection(self) -> None:
        """Close with a TCP reset: the client sees the connection break mid-reply."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.connection.close()


@dataclass(frozen=True)
class _Reply:
    id: str
    created: int
    model: str
    content: list[str]
    reasoning: list[str]
    finish_reason: str
    usage: dict[str, int]

    def chunk(self, choices: list[dict]) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def completion(self) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage,
        }
