"""The upstream client: HTTP and server-sent events to an OpenAI-compatible model server.

It knows nothing of Django models. Callers hand it a base URL, an API key and, when they
have checked the endpoint's address, a session pinned to it. Every failure becomes an
``UpstreamError`` with a short message for the page and a detail for the log; neither ever
contains the API key.

Choices where providers disagree or the brief left room:

- A connection that breaks after the reply started (reset, truncated chunked body) is
  ``UPSTREAM_ERROR``: the server was reached and then failed. Connection errors before any
  reply (refused, DNS, TLS, connect timeout) are ``UNREACHABLE``.
- A stream that ends cleanly without ``[DONE]`` still finishes with one ``StreamFinish``;
  its ``finish_reason`` is whatever the server sent, ``None`` if nothing (the caller may
  show the answer as possibly cut off). A reply with no event at all is ``BAD_RESPONSE``.
- ``total_timeout`` is an overall deadline: the read timeout of each wait shrinks to the
  time left, so a server that stays silent cannot hold a worker past it either.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from models_registry.sse import SSEParser
from models_registry.upstream_types import (
    USER_MESSAGES,
    Completion,
    ErrorKind,
    StreamDelta,
    StreamFinish,
    StreamItem,
    UpstreamError,
    Usage,
)

__all__ = [
    "USER_MESSAGES",
    "Completion",
    "ErrorKind",
    "SSEParser",
    "StreamDelta",
    "StreamFinish",
    "StreamItem",
    "UpstreamClient",
    "UpstreamError",
    "Usage",
    "get_shared_session",
]

logger = logging.getLogger(__name__)

USER_AGENT = "Parley"
_READ_SIZE = 64 * 1024
_REUSE_WAIT_SECONDS = 0.05  # for the rest of a finished stream's body, to keep its connection
_ERROR_BODY_LIMIT = 64 * 1024
_DETAIL_LIMIT = 500


# --- The client -------------------------------------------------------------------------

_shared_session: requests.Session | None = None
_shared_lock = threading.Lock()


def _new_session() -> requests.Session:
    session = requests.Session()
    # No automatic retries: repeating a POST could run (and bill) a completion twice.
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def get_shared_session() -> requests.Session:
    """One pooled session per process, so keep-alive connections are reused across chats."""
    global _shared_session
    if _shared_session is None:
        with _shared_lock:
            if _shared_session is None:
                _shared_session = _new_session()
    return _shared_session


def _forget_shared_session() -> None:
    # A forked worker must not share the parent's pooled sockets.
    global _shared_session, _shared_lock
    _shared_session = None
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_shared_session)


@dataclass
class _StreamState:
    events: int = 0
    done: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None


class UpstreamClient:
    """Calls one OpenAI-compatible server; see the module docstring for the error rules."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 10,
        idle_timeout: float = 60,
        total_timeout: float = 600,
        max_response_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key.strip()
        self.session = session if session is not None else get_shared_session()
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"<UpstreamClient {_safe_url(self.base_url)} api_key={key}>"

    # --- public calls ---

    def list_models(self) -> list[str]:
        """The model ids the server offers (``GET {base}/models``)."""
        deadline = time.monotonic() + self.total_timeout
        with self._logged("list_models"):
            response = self._send("GET", "models", None, deadline, accept="application/json")
            try:
                self._check_status(response, deadline)
                payload = self._parse_json(b"".join(self._body_chunks(response, deadline)))
            finally:
                response.close()
            models = payload.get("data") if isinstance(payload, dict) else payload
            if not isinstance(models, list):
                raise self._error(ErrorKind.BAD_RESPONSE, "model list without a 'data' array")
        ids = [item.get("id") for item in models if isinstance(item, dict)]
        return [model_id for model_id in ids if isinstance(model_id, str)]

    def complete(self, *, model: str, messages: list[dict], **params: Any) -> Completion:
        """One answer in one reply (``stream: false``); ``params`` go to the server as given."""
        body = {key: value for key, value in params.items() if key != "stream_options"}
        body.update(model=model, messages=messages, stream=False)
        deadline = time.monotonic() + self.total_timeout
        content: list[str] = []
        reasoning: list[str] = []
        finish = StreamFinish(None, None)
        with self._logged("complete"):
            response = self._post_chat(body, deadline, accept="application/json")
            try:
                for item in self._reply_items(response, deadline):
                    if isinstance(item, StreamDelta):
                        content.append(item.content)
                        reasoning.append(item.reasoning)
                    else:
                        finish = item
            finally:
                response.close()
        return Completion("".join(content), "".join(reasoning), finish.finish_reason, finish.usage)

    def stream(self, *, model: str, messages: list[dict], **params: Any) -> Iterator[StreamItem]:
        """Deltas as they arrive, then exactly one ``StreamFinish`` (or an ``UpstreamError``).

        Nothing is sent before the first ``next()``. Closing the generator early closes the
        connection, so the server sees an abandoned answer go away.
        """
        body = dict(params)
        body.update(model=model, messages=messages, stream=True)
        body.setdefault("stream_options", {"include_usage": True})
        deadline = time.monotonic() + self.total_timeout
        with self._logged("stream"):
            response = self._post_chat(body, deadline, accept="text/event-stream")
            try:
                yield from self._reply_items(response, deadline)
                _release_for_reuse(response)
            finally:
                response.close()

    @contextlib.contextmanager
    def _logged(self, call: str) -> Iterator[None]:
        """One log line per failed call, with the detail (never the key)."""
        try:
            yield
        except UpstreamError as exc:
            logger.warning("%s at %s failed: %s", call, _safe_url(self.base_url), exc)
            raise

    # --- HTTP ---

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        if accept == "text/event-stream":
            headers["Accept-Encoding"] = "identity"
        if self._api_key:
            if not all("!" <= char <= "~" for char in self._api_key):
                raise self._error(
                    ErrorKind.BAD_KEY, "the API key has characters a header cannot carry"
                )
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _send(
        self, method: str, path: str, body: dict | None, deadline: float, *, accept: str
    ) -> requests.Response:
        url = self._url(path)
        where = f"{method} {_safe_url(url)}"
        # Neither wait may outlast the overall deadline (with the defaults they never do).
        remaining = max(0.001, deadline - time.monotonic())
        connect_timeout = min(self.connect_timeout, remaining)
        read_timeout = min(self.idle_timeout, remaining)
        try:
            return _send_prepared(
                self.session,
                method,
                url,
                body=body,
                headers=self._headers(accept),
                timeout=(connect_timeout, read_timeout),
            )
        except requests.exceptions.ConnectTimeout:
            kind, what = ErrorKind.UNREACHABLE, f"no connection within {connect_timeout:g} s"
        except requests.exceptions.Timeout:
            kind, what = ErrorKind.TIMED_OUT, f"no reply within {read_timeout:g} s"
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            kind, what = ErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}"
        except requests.exceptions.RequestException as exc:
            kind, what = ErrorKind.UPSTREAM_ERROR, f"{type(exc).__name__}: {exc}"
        # Raised outside the except blocks: no traceback chains a library's exception.
        raise self._error(kind, f"{where}: {what}")

    def _post_chat(self, body: dict, deadline: float, *, accept: str) -> requests.Response:
        response = self._send("POST", "chat/completions", body, deadline, accept=accept)
        if response.status_code in (400, 422) and "stream_options" in body:
            text = self._read_error_text(response, deadline)
            if "stream_options" not in text:
                raise self._http_error(response.status_code, text)
            logger.info(
                "%s refused stream_options; retrying without usage reporting",
                _safe_url(self.base_url),
            )
            body = {key: value for key, value in body.items() if key != "stream_options"}
            response = self._send("POST", "chat/completions", body, deadline, accept=accept)
        self._check_status(response, deadline)
        return response

    def _check_status(self, response: requests.Response, deadline: float) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            location = _safe_url(response.headers.get("Location", ""))
            response.close()
            raise self._error(
                ErrorKind.UPSTREAM_ERROR,
                f"HTTP {status} redirect to {location!r} (redirects are not followed)",
                status=status,
            )
        raise self._http_error(status, self._read_error_text(response, deadline))

    def _read_error_text(self, response: requests.Response, deadline: float) -> str:
        """The start of an error body; a slow or huge one must not hide the status."""
        data = bytearray()
        try:
            for chunk in self._body_chunks(response, deadline):
                data += chunk
                if len(data) >= _ERROR_BODY_LIMIT:
                    break
        except UpstreamError:
            pass
        finally:
            response.close()
        return data[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace")

    def _body_chunks(self, response: requests.Response, deadline: float) -> Iterator[bytes]:
        """The body as it arrives, under the idle and total deadlines and the size cap."""
        raw = response.raw
        received = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(
                    ErrorKind.TIMED_OUT, f"reply not finished within {self.total_timeout:g} s"
                )
            _set_read_timeout(raw, min(self.idle_timeout, remaining))
            try:
                chunk = raw.read1(_READ_SIZE)
            except urllib3.exceptions.ReadTimeoutError:
                if time.monotonic() >= deadline:
                    what = f"reply not finished within {self.total_timeout:g} s"
                else:
                    what = f"no data for {self.idle_timeout:g} s"
                raise self._error(ErrorKind.TIMED_OUT, what) from None
            except urllib3.exceptions.DecodeError as exc:
                raise self._error(ErrorKind.BAD_RESPONSE, f"undecodable body: {exc}") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                what = f"connection broken mid-reply: {type(exc).__name__}: {exc}"
                raise self._error(ErrorKind.UPSTREAM_ERROR, what) from None
            if not chunk:
                return
            received += len(chunk)
            if received > self.max_response_bytes:
                raise self._error(
                    ErrorKind.BAD_RESPONSE,
                    f"reply larger than {self.max_response_bytes} bytes; cut off",
                )
            yield chunk

    # --- replies ---

    def _reply_items(self, response: requests.Response, deadline: float) -> Iterator[StreamItem]:
        """StreamItems from either an SSE stream or a plain JSON completion."""
        chunks = self._body_chunks(response, deadline)
        head = b""
        for chunk in chunks:
            head += chunk
            if head.strip():
                break
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        is_json = content_type == "application/json" or content_type.endswith("+json")
        if is_json or head.lstrip().startswith(b"{"):
            yield from self._json_items(head + b"".join(chunks))
        else:
            yield from self._sse_items(itertools.chain([head], chunks))

    def _json_items(self, body: bytes) -> Iterator[StreamItem]:
        payload = self._parse_json(body)
        if not isinstance(payload, dict):
            raise self._error(ErrorKind.BAD_RESPONSE, "completion is not a JSON object")
        if payload.get("error"):
            raise self._payload_error(payload)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._error(ErrorKind.BAD_RESPONSE, "completion without choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            message = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        content, reasoning = _text(message.get("content")), _reasoning(message)
        if content or reasoning:
            yield StreamDelta(content, reasoning)
        finish_reason = choice.get("finish_reason")
        yield StreamFinish(
            finish_reason if isinstance(finish_reason, str) else None, _usage(payload.get("usage"))
        )

    def _sse_items(self, chunks: Iterable[bytes]) -> Iterator[StreamItem]:
        parser = SSEParser()
        state = _StreamState()
        for chunk in chunks:
            yield from self._events(parser.feed(chunk), state)
            if state.done:
                break
        else:
            yield from self._events(parser.close(), state)
        if not state.events:
            raise self._error(ErrorKind.BAD_RESPONSE, "the reply had no server-sent events")
        if not state.done and state.finish_reason is None:
            logger.info("stream from %s ended without [DONE]", _safe_url(self.base_url))
        yield StreamFinish(state.finish_reason, state.usage)

    def _events(self, events: list[str], state: _StreamState) -> Iterator[StreamDelta]:
        for data in events:
            state.events += 1
            if data.strip() == "[DONE]":
                state.done = True
                return
            if not data.strip():
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                raise self._error(
                    ErrorKind.BAD_RESPONSE, f"event is not JSON: {data[:200]!r}"
                ) from None
            if not isinstance(payload, dict):
                raise self._error(ErrorKind.BAD_RESPONSE, f"event is not an object: {data[:200]!r}")
            if payload.get("error"):
                raise self._payload_error(payload)
            usage = _usage(payload.get("usage"))
            if usage is not None:
                state.usage = usage
            choices = payload.get("choices")
            for choice in choices if isinstance(choices, list) else ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice.get("message") if isinstance(choice.get("message"), dict) else {}
                content, reasoning = _text(delta.get("content")), _reasoning(delta)
                if content or reasoning:
                    yield StreamDelta(content, reasoning)
                finish_reason = choice.get("finish_reason")
                if isinstance(finish_reason, str) and finish_reason:
                    state.finish_reason = finish_reason

    # --- errors ---

    def _parse_json(self, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise self._error(
                ErrorKind.BAD_RESPONSE, f"reply is not JSON: {body[:200]!r}"
            ) from None

    def _http_error(self, status: int, text: str) -> UpstreamError:
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            message, code, type_ = _error_fields(payload)
        else:
            message, code, type_ = " ".join(text.split()), "", ""
        kind = _classify(status, message, code, type_)
        labels = "/".join(label for label in (type_, code) if label)
        return self._error(
            kind, f"HTTP {status}{f' {labels}' if labels else ''}: {message}", status=status
        )

    def _payload_error(self, payload: dict) -> UpstreamError:
        """An ``error`` object inside a 200 reply (mid-stream, or instead of a completion)."""
        message, code, type_ = _error_fields(payload)
        status = None
        raw_code = payload["error"].get("code") if isinstance(payload["error"], dict) else None
        if isinstance(raw_code, int) and 400 <= raw_code < 600:
            status = raw_code
        kind = _classify(status, message, code, type_)
        labels = "/".join(label for label in (type_, code) if label)
        return self._error(
            kind, f"error in reply{f' {labels}' if labels else ''}: {message}", status=status
        )

    def _error(self, kind: ErrorKind, detail: str, *, status: int | None = None) -> UpstreamError:
        """An error whose detail cannot carry the API key."""
        if self._api_key:
            detail = detail.replace(self._api_key, "[redacted]")
        return UpstreamError(kind, detail[:_DETAIL_LIMIT], status=status)


# --- helpers -----------------------------------------------------------------------------

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "exceed_context_size",
    "too long",
)


def _classify(status: int | None, message: str, code: str, type_: str) -> ErrorKind:
    text = f"{message} {code} {type_}".lower()
    mentions_context = any(hint in text for hint in _CONTEXT_HINTS)
    if status in (401, 403) or (status is None and code == "invalid_api_key"):
        return ErrorKind.BAD_KEY
    if status == 404 or code == "model_not_found":
        return ErrorKind.MODEL_NOT_FOUND
    if status == 429 or (status is None and "rate_limit" in text):
        return ErrorKind.RATE_LIMITED
    if status in (400, 413, None) and mentions_context:
        return ErrorKind.CONTEXT_TOO_LONG
    return ErrorKind.UPSTREAM_ERROR


def _error_fields(payload: dict) -> tuple[str, str, str]:
    """(message, code, type) from the shapes servers use: OpenAI's, Ollama's, FastAPI's."""
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        code, type_ = error.get("code"), error.get("type")
    else:
        message = error or payload.get("message") or payload.get("detail")
        code, type_ = payload.get("code"), payload.get("type")
    message = message if isinstance(message, str) else json.dumps(message)
    return (
        " ".join(message.split()),
        "" if code is None else str(code),
        "" if type_ is None else str(type_),
    )


def _text(value: Any) -> str:
    """``content`` as text: a string, a list of text parts, or nothing (null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _reasoning(delta: dict) -> str:
    """Thinking text, kept apart from the answer (``reasoning_content``, or ``reasoning``)."""
    for name in ("reasoning_content", "reasoning"):
        value = delta.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    numbers = [value.get(name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")]
    prompt, completion, total = (
        number if isinstance(number, int) and not isinstance(number, bool) else None
        for number in numbers
    )
    if prompt is None or completion is None:
        return None
    return Usage(prompt, completion, total if total is not None else prompt + completion)


def _safe_url(url: str) -> str:
    """A URL for the log: no user:password, no query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# What requests reads from the environment for a call: proxies (with the CGI guard that
# ignores HTTP_PROXY when REQUEST_METHOD is set) and the CA bundle.
_ENVIRONMENT_NAMES = (
    *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no")),
    *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "NO")),
    "REQUEST_METHOD",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


def _send_prepared(
    session: requests.Session,
    method: str,
    url: str,
    *,
    body: dict | None,
    headers: dict[str, str],
    timeout: tuple[float, float],
) -> requests.Response:
    """What ``session.request(..., json=body, stream=True)`` does for our calls, cheaper.

    The session's adapter sends the request, so connection pools, TLS verification,
    proxies, the error types and the pinned adapter's target check are requests' own.
    What is skipped is the per-call work around it, about 0.3 ms of every upstream call
    (docs/performance.md): preparing and merging through the session (the URL is
    prepared once per URL) and scanning the whole environment twice for proxies (read
    here through a cache keyed by the values of the variables that matter). Left out on
    purpose: cookies (an upstream has no business keeping state in Parley), netrc (it
    would replace the Authorization header), hooks and redirects (never followed).
    """
    prepared = requests.PreparedRequest()
    prepared.method = method
    prepared.url = _prepared_url(url)
    prepared.headers = CaseInsensitiveDict(session.headers)
    prepared.headers.update(headers)
    if body is not None:
        try:
            data = json.dumps(body, allow_nan=False).encode()
        except ValueError as exc:
            raise requests.exceptions.InvalidJSONError(exc) from None
        prepared.headers["Content-Type"] = "application/json"
        prepared.headers["Content-Length"] = str(len(data))
        prepared.body = data
    proxies, verify = _environment_settings(session, url)
    adapter = session.get_adapter(prepared.url)
    return adapter.send(prepared, stream=True, timeout=timeout, verify=verify, proxies=proxies)


@functools.lru_cache(maxsize=256)
def _prepared_url(url: str) -> str:
    """The URL as requests sends it (IDNA host, quoting); raises requests' URL errors."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return prepared.url or url


def _environment_settings(session: requests.Session, url: str) -> tuple[dict[str, str], Any]:
    """(proxies, verify) for a call, as ``Session.merge_environment_settings`` gives them."""
    if not session.trust_env:
        return session.proxies, session.verify
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT_NAMES)
    return _environment_settings_for(session, url, environment)


@functools.lru_cache(maxsize=256)
def _environment_settings_for(
    session: requests.Session, url: str, environment: tuple[str | None, ...]
) -> tuple[dict[str, str], Any]:
    # ``environment`` is only the cache key: a changed variable is a new entry.
    merged = session.merge_environment_settings(url, {}, None, None, None)
    return merged["proxies"], merged["verify"]


def _release_for_reuse(response: requests.Response) -> None:
    """After a whole streamed reply: read what little is left of the body (the end of the
    chunked encoding after ``[DONE]``, normally already received) so urllib3 puts the
    connection back in the pool and the next call skips the TCP (and TLS) handshake.

    ``response.close()`` on a body not read to its end closes the connection instead:
    that is what a server still sending after ``[DONE]``, or sending nothing more within
    ``_REUSE_WAIT_SECONDS``, gets (the answer is complete either way).
    """
    raw = response.raw
    _set_read_timeout(raw, _REUSE_WAIT_SECONDS)
    with contextlib.suppress(urllib3.exceptions.HTTPError, OSError, ValueError):
        for _ in range(4):
            if not raw.read1(_READ_SIZE):
                return  # the end of the body: urllib3 has released the connection


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Shrink the socket's read timeout to the time left, so the total deadline holds.

    Best effort: the socket sits on the pooled connection, or (for a reply that ends by
    closing) only on the response's file. If neither is reachable the deadline is still
    checked between reads, late by at most one idle timeout.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        socket_file = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(socket_file, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.settimeout(max(0.001, seconds))
