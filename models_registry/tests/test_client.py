"""The upstream client against the mock server over real HTTP, and against stub replies."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from models_registry.client import (
    Completion,
    ErrorKind,
    StreamDelta,
    StreamFinish,
    UpstreamClient,
    UpstreamError,
    Usage,
    get_shared_session,
)

KEY = "sk-test-SECRET-0123456789abcdef"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is Parley?"},
]
ANSWER = "Received 4 messages. Last user message: What is Parley?"
USAGE = Usage(prompt_tokens=7, completion_tokens=9, total_tokens=16)
MESSAGES_TEXT = {
    ErrorKind.BAD_KEY: "The API key was refused by the provider.",
    ErrorKind.MODEL_NOT_FOUND: "The model was not found at the provider.",
    ErrorKind.RATE_LIMITED: "The provider is rate limiting requests; try again shortly.",
    ErrorKind.CONTEXT_TOO_LONG: "The conversation is too long for this model's context window.",
    ErrorKind.UNREACHABLE: "Could not reach the model's server.",
    ErrorKind.TIMED_OUT: "The model's server took too long to answer.",
    ErrorKind.UPSTREAM_ERROR: "The model's server returned an error.",
    ErrorKind.BAD_RESPONSE: "The model's server sent a reply Parley could not read.",
}


@pytest.fixture
def session():
    """A private session per test, so no pooled connection outlives its server."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def make_client(mock_llm, session):
    def make(**options) -> UpstreamClient:
        options = {"idle_timeout": 3, "total_timeout": 5, **options}
        base_url = options.pop("base_url", mock_llm.base_url)
        return UpstreamClient(base_url, options.pop("api_key", KEY), session=session, **options)

    return make


@pytest.fixture
def client(make_client) -> UpstreamClient:
    return make_client()


def ask(directive: str) -> list[dict]:
    """MESSAGES with a ``[mock:...]`` directive in the last user message."""
    return [*MESSAGES[:-1], {"role": "user", "content": f"What is Parley? [mock:{directive}]"}]


def collect(items) -> tuple[str, str, StreamFinish]:
    """Join a stream; it must end with exactly one StreamFinish."""
    items = list(items)
    finishes = [item for item in items if isinstance(item, StreamFinish)]
    assert finishes == items[-1:], "exactly one StreamFinish, and last"
    deltas = items[:-1]
    content = "".join(item.content for item in deltas)
    reasoning = "".join(item.reasoning for item in deltas)
    return content, reasoning, finishes[0]


def call_api(client: UpstreamClient, call: str, model="mock-model", messages=MESSAGES):
    """``complete``, ``list_models``, or ``stream`` drained to a list."""
    if call == "stream":
        return list(client.stream(model=model, messages=messages))
    if call == "complete":
        return client.complete(model=model, messages=messages)
    return client.list_models()


def stream_error(
    client: UpstreamClient, messages=MESSAGES, model="mock-model"
) -> tuple[UpstreamError, list]:
    """The error a stream ends with, and what it yielded before (never a StreamFinish)."""
    received = []
    try:
        for item in client.stream(model=model, messages=messages):
            received.append(item)
    except UpstreamError as error:
        assert not any(isinstance(item, StreamFinish) for item in received)
        return error, received
    raise AssertionError("the stream ended without an UpstreamError")


# --- happy paths ------------------------------------------------------------------------


def test_complete_returns_the_deterministic_answer_and_usage(client, mock_llm):
    completion = client.complete(model="mock-model", messages=MESSAGES)
    assert completion == Completion(ANSWER, "", "stop", USAGE)
    body = mock_llm.requests[-1].body
    assert body["stream"] is False and "stream_options" not in body
    assert body["messages"] == MESSAGES


def test_stream_yields_one_word_per_delta_then_the_finish_with_usage(client, mock_llm):
    items = list(client.stream(model="mock-model", messages=MESSAGES))
    assert [item.content for item in items[:-1]] == [
        "Received ", "4 ", "messages. ", "Last ", "user ", "message: ", "What ", "is ", "Parley?",
    ]  # fmt: skip
    assert items[-1] == StreamFinish("stop", USAGE)
    body = mock_llm.requests[-1].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.fixture
def connects(monkeypatch) -> list[tuple[str, int]]:
    """Every TCP connection urllib3 opens from now on (its address)."""
    opened: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def counting(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    return opened


def test_finished_streams_leave_their_connection_in_the_pool(client, connects):
    # Each answer on a new connection would pay a TCP (and TLS) handshake before its
    # first token; a stream read to [DONE] hands its connection to the next call.
    for _ in range(3):
        collect(client.stream(model="mock-model", messages=MESSAGES))
    client.complete(model="mock-model", messages=MESSAGES)
    assert len(connects) == 1


def test_a_stream_left_early_closes_its_connection(client, connects):
    stream = client.stream(model="mock-model", messages=MESSAGES)
    next(stream)
    stream.close()  # the caller stopped reading (Stop, or the browser went away)
    collect(client.stream(model="mock-model", messages=MESSAGES))
    assert len(connects) == 2


def test_parameters_are_passed_through(client, mock_llm):
    completion = client.complete(
        model="mock-model", messages=MESSAGES, temperature=0.2, max_tokens=3
    )
    assert completion.content == "Received 4 messages. "
    assert completion.finish_reason == "length"
    body = mock_llm.requests[-1].body
    assert body["temperature"] == 0.2 and body["max_tokens"] == 3


def test_the_api_key_is_sent_as_a_bearer_token_only_when_set(make_client, mock_llm):
    make_client().complete(model="mock-model", messages=MESSAGES)
    assert mock_llm.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    make_client(api_key="").complete(model="mock-model", messages=MESSAGES)
    assert "authorization" not in mock_llm.requests[-1].headers


def test_paths_are_joined_without_doubled_slashes(make_client, mock_llm):
    make_client(base_url=mock_llm.base_url + "/").complete(model="mock-model", messages=MESSAGES)
    assert mock_llm.requests[-1].path == "/v1/chat/completions"


def test_list_models_returns_the_ids(client, mock_llm):
    models = client.list_models()
    assert models[0] == "mock-model"
    assert {"mock-http_500", "mock-never_ending"} <= set(models)
    assert (mock_llm.requests[-1].method, mock_llm.requests[-1].path) == ("GET", "/v1/models")


@pytest.mark.parametrize("fault", ["keepalive_comments", "crlf", "usage"])
def test_stream_formats_that_differ_give_the_same_answer(client, fault):
    content, reasoning, finish = collect(client.stream(model=f"mock-{fault}", messages=MESSAGES))
    assert (content, reasoning) == (ANSWER, "")
    assert finish == StreamFinish("stop", USAGE)


def test_reasoning_is_kept_apart_from_the_answer(client):
    thinking = "The user sent 4 messages; I will echo the last."
    items = list(client.stream(model="mock-reasoning", messages=MESSAGES))
    content, reasoning, finish = collect(items)
    assert (content, reasoning) == (ANSWER, thinking)
    assert items[0] == StreamDelta(reasoning="The ")
    assert finish.usage.completion_tokens == 9 + len(thinking.split())
    completion = client.complete(model="mock-reasoning", messages=MESSAGES)
    assert (completion.content, completion.reasoning) == (ANSWER, thinking)


def test_a_json_reply_to_a_stream_request_is_one_delta_and_the_finish(client):
    items = list(client.stream(model="mock-json_instead_of_stream", messages=MESSAGES))
    assert items == [StreamDelta(content=ANSWER), StreamFinish("stop", USAGE)]


def test_a_server_refusing_stream_options_is_asked_again_without_them(client, mock_llm):
    content, _reasoning, finish = collect(
        client.stream(model="mock-model", messages=ask("reject_stream_options"))
    )
    assert content.startswith("Received 4 messages.")
    assert finish == StreamFinish("stop", None)
    first, second = list(mock_llm.requests)[-2:]
    assert "stream_options" in first.body
    assert "stream_options" not in second.body and second.body["stream"] is True


def test_other_400s_are_not_retried(client, mock_llm):
    error, _received = stream_error(client, ask("context_too_long"))
    assert error.kind == ErrorKind.CONTEXT_TOO_LONG
    assert len(mock_llm.requests) == 1


def test_a_slow_first_token_within_the_idle_timeout_is_fine(make_client):
    client = make_client(idle_timeout=2)
    content, _, _ = collect(client.stream(model="m", messages=ask("slow_first_token:300")))
    assert content.startswith("Received 4 messages.")


# --- errors -------------------------------------------------------------------------------

ERROR_FAULTS = [
    # fault, kind, status, text the detail must carry
    ("http_500", ErrorKind.UPSTREAM_ERROR, 500, "Internal Server Error (mock)"),
    ("http_429", ErrorKind.RATE_LIMITED, 429, "Rate limit reached"),
    ("http_401", ErrorKind.BAD_KEY, 401, "Incorrect API key provided"),
    ("http_404_model", ErrorKind.MODEL_NOT_FOUND, 404, "does not exist"),
    ("context_too_long", ErrorKind.CONTEXT_TOO_LONG, 400, "maximum context length is 4096"),
]


@pytest.mark.parametrize(("fault", "kind", "status", "text"), ERROR_FAULTS)
@pytest.mark.parametrize("call", ["stream", "complete"])
def test_http_errors_are_mapped_for_the_user(client, call, fault, kind, status, text):
    with pytest.raises(UpstreamError) as caught:
        call_api(client, call, f"mock-{fault}")
    error = caught.value
    assert (error.kind, error.status) == (kind, status)
    assert str(error.user_message) == MESSAGES_TEXT[kind]
    assert text in error.detail and f"HTTP {status}" in error.detail


def test_an_error_in_the_middle_of_a_stream_keeps_the_deltas_before_it(client):
    error, received = stream_error(client, model="mock-error_mid_stream")
    assert error.kind == ErrorKind.UPSTREAM_ERROR
    assert "The mock model crashed mid-answer." in error.detail
    assert "".join(item.content for item in received) == "Received 4 messages. "


def test_error_mid_stream_without_streaming_is_an_http_500(client):
    with pytest.raises(UpstreamError) as caught:
        client.complete(model="mock-error_mid_stream", messages=MESSAGES)
    assert (caught.value.kind, caught.value.status) == (ErrorKind.UPSTREAM_ERROR, 500)


def test_a_connection_reset_mid_stream_is_an_upstream_error(client):
    error, _received = stream_error(client, model="mock-disconnect")
    assert error.kind == ErrorKind.UPSTREAM_ERROR
    assert "connection broken" in error.detail
    with pytest.raises(UpstreamError) as caught:
        client.complete(model="mock-disconnect", messages=MESSAGES)
    assert caught.value.kind == ErrorKind.UPSTREAM_ERROR


@pytest.mark.parametrize("call", ["stream", "complete"])
def test_a_never_ending_answer_is_stopped_by_the_total_timeout(make_client, call):
    client = make_client(idle_timeout=5, total_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        call_api(client, call, "mock-never_ending")
    assert caught.value.kind == ErrorKind.TIMED_OUT
    assert str(caught.value.user_message) == MESSAGES_TEXT[ErrorKind.TIMED_OUT]
    assert 0.5 < time.monotonic() - started < 1.5


@pytest.mark.parametrize("call", ["stream", "complete"])
def test_a_silent_server_is_stopped_by_the_idle_timeout(make_client, call):
    client = make_client(idle_timeout=0.3, total_timeout=5)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        call_api(client, call, "mock-idle_forever")
    assert caught.value.kind == ErrorKind.TIMED_OUT
    assert time.monotonic() - started < 1.5


def test_the_total_timeout_also_cuts_a_silent_wait_short(make_client):
    client = make_client(idle_timeout=10, total_timeout=0.5)
    started = time.monotonic()
    error, _received = stream_error(client, model="mock-idle_forever")
    assert error.kind == ErrorKind.TIMED_OUT
    assert time.monotonic() - started < 1.5


def test_the_total_timeout_holds_when_a_server_goes_silent_midway(stub, session):
    """Each wait's read timeout shrinks to the time left, not just the first one."""

    def script(write, stopping):
        write(sse('{"choices":[{"delta":{"content":"Hi"}}]}').encode())
        time.sleep(0.8)
        write(sse('{"choices":[{"delta":{"content":" there"}}]}').encode())
        stopping.wait(10)

    stub.script = script
    client = UpstreamClient(stub.base_url, session=session, idle_timeout=10, total_timeout=1)
    started = time.monotonic()
    error, received = stream_error(client)
    assert error.kind == ErrorKind.TIMED_OUT
    assert [item.content for item in received] == ["Hi", " there"]
    assert time.monotonic() - started < 1.5


def test_a_slow_first_token_beyond_the_idle_timeout_times_out(make_client):
    client = make_client(idle_timeout=0.1)
    error, _received = stream_error(client, ask("slow_first_token:1000"))
    assert error.kind == ErrorKind.TIMED_OUT


def test_a_reply_larger_than_the_cap_is_cut_off(make_client):
    client = make_client(max_response_bytes=600)
    error, _received = stream_error(client)
    assert error.kind == ErrorKind.BAD_RESPONSE
    assert "600 bytes" in error.detail
    with pytest.raises(UpstreamError) as caught:
        make_client(max_response_bytes=100).complete(model="mock-model", messages=MESSAGES)
    assert caught.value.kind == ErrorKind.BAD_RESPONSE
    # The same replies pass under the default cap.
    assert make_client().complete(model="mock-model", messages=MESSAGES).content == ANSWER


@pytest.mark.parametrize("call", ["stream", "list_models"])
def test_redirects_are_not_followed(make_client, mock_llm, call):
    client = make_client(base_url=mock_llm.base_url.replace("/v1", "/redirect/v1"))
    with pytest.raises(UpstreamError) as caught:
        call_api(client, call)
    assert (caught.value.kind, caught.value.status) == (ErrorKind.UPSTREAM_ERROR, 307)
    assert [request.path.startswith("/redirect/") for request in mock_llm.requests] == [True]


def test_list_models_maps_errors(client, session):
    session.headers["X-Mock-Fault"] = "http_401"
    with pytest.raises(UpstreamError) as caught:
        client.list_models()
    assert caught.value.kind == ErrorKind.BAD_KEY


def test_nothing_listening_is_unreachable(session):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = UpstreamClient(f"http://127.0.0.1:{port}/v1", KEY, session=session)
    with pytest.raises(UpstreamError) as caught:
        client.list_models()
    assert caught.value.kind == ErrorKind.UNREACHABLE
    assert str(caught.value.user_message) == MESSAGES_TEXT[ErrorKind.UNREACHABLE]


# --- the API key stays secret ------------------------------------------------------------

FAULTS_THAT_FAIL = [
    "http_500",
    "http_429",
    "http_401",
    "http_404_model",
    "context_too_long",
    "error_mid_stream",
    "disconnect",
    "never_ending",
    "idle_forever",
]


def test_the_key_is_in_no_error_and_no_log_line(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(idle_timeout=0.2, total_timeout=0.3)
    assert KEY not in repr(client) and KEY not in str(client)
    errors = []
    for fault in FAULTS_THAT_FAIL:
        for call in ("stream", "complete"):
            with pytest.raises(UpstreamError) as caught:
                call_api(client, call, f"mock-{fault}")
            errors.append(caught.value)
    assert len(errors) == 2 * len(FAULTS_THAT_FAIL)
    for error in errors:
        assert KEY not in f"{error} {error!r} {error.detail} {error.args}"
    assert "models_registry.client" in caplog.text
    assert KEY not in caplog.text


def test_a_key_echoed_by_the_server_is_redacted(stub, session, caplog):
    stub.reply(401, f'{{"error": {{"message": "Incorrect API key provided: {KEY}."}}}}')
    client = UpstreamClient(stub.base_url, KEY, session=session)
    with pytest.raises(UpstreamError) as caught:
        client.complete(model="m", messages=MESSAGES)
    assert caught.value.kind == ErrorKind.BAD_KEY
    assert "Incorrect API key provided: [redacted]" in caught.value.detail
    assert KEY not in str(caught.value) and KEY not in caplog.text


def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(session, mock_llm):
    client = UpstreamClient(mock_llm.base_url, "sk-abc\ndef", session=session)
    with pytest.raises(UpstreamError) as caught:
        client.list_models()
    assert caught.value.kind == ErrorKind.BAD_KEY
    assert "abc" not in str(caught.value)
    assert len(mock_llm.requests) == 0


# --- how every call is made --------------------------------------------------------------


class RecordingAdapter(HTTPAdapter):
    """Records each request its session sends through it, then raises the given exception."""

    def __init__(self, exception: Exception) -> None:
        super().__init__()
        self.exception = exception
        self.calls: list[tuple[requests.PreparedRequest, dict]] = []

    def send(self, request, **kwargs):
        self.calls.append((request, kwargs))
        raise self.exception


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (requests.ConnectTimeout("connect timed out"), ErrorKind.UNREACHABLE),
        (requests.ReadTimeout("read timed out"), ErrorKind.TIMED_OUT),
        (requests.ConnectionError("refused"), ErrorKind.UNREACHABLE),
        (requests.exceptions.InvalidURL("bad"), ErrorKind.UNREACHABLE),
    ],
)
def test_every_call_goes_through_the_given_session_with_safe_options(exception, kind):
    session = requests.Session()
    adapter = RecordingAdapter(exception)
    session.mount("http://", adapter)
    client = UpstreamClient(
        "http://10.0.0.1:8080/v1", KEY, session=session, connect_timeout=4, idle_timeout=30
    )
    with pytest.raises(UpstreamError) as caught:
        list(client.stream(model="m", messages=MESSAGES))
    assert caught.value.kind == kind
    ((request, options),) = adapter.calls
    assert request.method == "POST"
    assert request.url == "http://10.0.0.1:8080/v1/chat/completions"
    assert options["stream"] is True
    assert options["timeout"] == (4, 30)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body)["messages"] == MESSAGES
    assert int(request.headers["Content-Length"]) == len(request.body)


def test_a_body_json_cannot_carry_is_refused_before_sending(mock_llm):
    client = UpstreamClient(mock_llm.base_url)
    with pytest.raises(UpstreamError) as caught:
        list(client.stream(model="m", messages=MESSAGES, temperature=float("nan")))
    assert caught.value.kind == ErrorKind.UPSTREAM_ERROR
    assert len(mock_llm.requests) == 0


def test_a_netrc_entry_never_replaces_the_api_key(mock_llm, tmp_path, monkeypatch):
    """requests would send ~/.netrc credentials as Basic auth over our Bearer key."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    list(UpstreamClient(mock_llm.base_url, KEY).stream(model="m", messages=MESSAGES))
    (request,) = mock_llm.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_the_shared_session_is_one_per_process_and_the_default(mock_llm):
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_shared_session())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(session) for session in seen}) == 1
    assert UpstreamClient(mock_llm.base_url).session is seen[0]


# --- stub replies: shapes the mock does not produce ----------------------------------------


@pytest.fixture
def stub():
    """A server that answers every request with one canned reply (HTTP/1.0, then closes).

    ``state.script(write, stopping)`` replaces the body with timed writes when set.
    """
    stopping = threading.Event()
    state = SimpleNamespace(
        status=200, body=b"", content_type="text/event-stream", script=None, paths=[]
    )

    def reply(status: int, body: str | bytes, content_type: str = "application/json") -> None:
        state.status, state.content_type = status, content_type
        state.body = body.encode() if isinstance(body, str) else body

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.paths.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Type", state.content_type)
            self.end_headers()
            if state.script:
                state.script(self.wfile.write, stopping)
            else:
                self.wfile.write(state.body)

        do_GET = do_POST

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.reply = reply
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    stopping.set()
    server.shutdown()
    server.server_close()
    thread.join()


def sse(*events: str) -> str:
    return "".join(f"data: {event}\n\n" for event in events)


def test_system_models_reach_their_server_through_the_environments_proxy(stub, monkeypatch):
    """Operators behind a proxy set HTTP(S)_PROXY; NO_PROXY exempts hosts; both are read per
    call (a changed variable counts at once, although the reading is cached)."""
    body = sse('{"choices":[{"delta":{"content":"via proxy"}}]}', "[DONE]")
    stub.reply(200, body, "text/event-stream")
    with socket.socket() as unused:  # nothing listens there: reached directly, it refuses
        unused.bind(("127.0.0.1", 0))
        target = f"http://127.0.0.1:{unused.getsockname()[1]}/v1"
    monkeypatch.setenv("HTTP_PROXY", stub.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = UpstreamClient(target, KEY, session=requests.Session())
    items = list(client.stream(model="m", messages=MESSAGES))
    assert items[0] == StreamDelta("via proxy", "")
    assert stub.paths == [f"{target}/chat/completions"]

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(UpstreamError) as caught:  # now direct, to the closed port
        list(client.stream(model="m", messages=MESSAGES))
    assert caught.value.kind == ErrorKind.UNREACHABLE
    assert len(stub.paths) == 1


def stub_stream(stub, session, body: str, content_type: str = "text/event-stream"):
    stub.reply(200, body, content_type)
    return UpstreamClient(stub.base_url, KEY, session=session).stream(model="m", messages=MESSAGES)


@pytest.mark.parametrize(
    ("body", "content", "finish"),
    [
        pytest.param(
            sse(
                '{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}',
                '{"choices":[]}',
                '{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}',
                '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
                '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}',
                "[DONE]",
            ),
            "Hi",
            StreamFinish("stop", Usage(3, 1, 4)),
            id="null-content-empty-choices-usage-chunk",
        ),
        pytest.param(
            sse('{"choices":[{"delta":{"content":"Hi"},"finish_reason":"length"}]}'),
            "Hi",
            StreamFinish("length", None),
            id="no-done-after-a-finish-reason",
        ),
        pytest.param(
            sse('{"choices":[{"delta":{"content":"Hi"}}]}'),
            "Hi",
            StreamFinish(None, None),
            id="no-done-no-finish-reason",
        ),
        pytest.param(
            '{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}',
            "Hi",
            StreamFinish("stop", None),
            id="json-body-labelled-event-stream",
        ),
        pytest.param(
            sse('{"choices":[{"delta":{"content":[{"type":"text","text":"Hi"}]}}]}', "[DONE]"),
            "Hi",
            StreamFinish(None, None),
            id="content-as-parts",
        ),
    ],
)
def test_stream_shapes_from_other_servers(stub, session, body, content, finish):
    got, _reasoning, got_finish = collect(stub_stream(stub, session, body))
    assert (got, got_finish) == (content, finish)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            '{"message": "too many tokens", "code": "context_length_exceeded"}',
            ErrorKind.CONTEXT_TOO_LONG,
        ),
        (
            '{"message": "This model\'s maximum context length is 8 tokens"}',
            ErrorKind.CONTEXT_TOO_LONG,
        ),
        ('{"message": "slow down", "type": "rate_limit_error"}', ErrorKind.RATE_LIMITED),
        ('{"message": "no such model", "code": "model_not_found"}', ErrorKind.MODEL_NOT_FOUND),
        ('{"message": "overloaded", "code": 503}', ErrorKind.UPSTREAM_ERROR),
        ('"plain string error"', ErrorKind.UPSTREAM_ERROR),
    ],
)
def test_an_error_event_is_mapped_like_an_http_error(stub, session, error, kind):
    body = sse('{"choices":[{"delta":{"content":"Hi"}}]}', f'{{"error": {error}}}')
    with pytest.raises(UpstreamError) as caught:
        list(stub_stream(stub, session, body))
    assert caught.value.kind == kind
    assert caught.value.detail.startswith("error in reply")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (sse("not json"), "not JSON"),
        (sse("[1, 2]"), "not an object"),
        ("", "no server-sent events"),
        (": only a comment\n\n", "no server-sent events"),
    ],
)
def test_unreadable_streams_are_bad_responses(stub, session, body, reason):
    with pytest.raises(UpstreamError) as caught:
        list(stub_stream(stub, session, body))
    assert caught.value.kind == ErrorKind.BAD_RESPONSE
    assert reason in caught.value.detail
    assert str(caught.value.user_message) == MESSAGES_TEXT[ErrorKind.BAD_RESPONSE]


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (403, '{"error": {"message": "forbidden"}}', ErrorKind.BAD_KEY, "forbidden"),
        (
            400,
            '{"error": {"message": "no xyz", "code": "model_not_found"}}',
            ErrorKind.MODEL_NOT_FOUND,
            "model_not_found: no xyz",
        ),
        (413, "Request body too long", ErrorKind.CONTEXT_TOO_LONG, "too long"),
        (
            400,
            '{"error": {"message": "temperature must be at most 2"}}',
            ErrorKind.UPSTREAM_ERROR,
            "temperature must be at most 2",
        ),
        (502, "<html><body>Bad Gateway</body></html>", ErrorKind.UPSTREAM_ERROR, "Bad Gateway"),
        (500, '{"error": "llama runner crashed"}', ErrorKind.UPSTREAM_ERROR, "runner crashed"),
        (422, '{"detail": [{"msg": "field required"}]}', ErrorKind.UPSTREAM_ERROR, "required"),
    ],
)
def test_http_error_bodies_of_every_shape(stub, session, status, body, kind, text):
    stub.reply(status, body, "text/html" if body.startswith("<") else "application/json")
    client = UpstreamClient(stub.base_url, KEY, session=session)
    with pytest.raises(UpstreamError) as caught:
        client.complete(model="m", messages=MESSAGES)
    assert (caught.value.kind, caught.value.status) == (kind, status)
    assert f"HTTP {status}" in caught.value.detail
    assert text in caught.value.detail


def test_an_unreadable_completion_or_model_list_is_a_bad_response(stub, session):
    client = UpstreamClient(stub.base_url, KEY, session=session)
    stub.reply(200, '{"object": "chat.completion", "choices": []}')
    with pytest.raises(UpstreamError) as caught:
        client.complete(model="m", messages=MESSAGES)
    assert caught.value.kind == ErrorKind.BAD_RESPONSE
    stub.reply(200, "<html>not an API</html>", "text/html")
    with pytest.raises(UpstreamError) as caught:
        client.list_models()
    assert caught.value.kind == ErrorKind.BAD_RESPONSE
