"""The mock model server: OpenAI's wire shapes, deterministic answers, faults, the command."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from models_registry.mock_llm import FAULTS, MODELS, MockLLMServer
from models_registry.sse import SSEParser

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Tell me a joke"},
]
ANSWER = "Received 2 messages. Last user message: Tell me a joke"


def post(
    server: MockLLMServer,
    body: dict,
    headers: dict | None = None,
    path: str = "/v1/chat/completions",
) -> http.client.HTTPResponse:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request(
        "POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})}
    )
    return connection.getresponse()


def get_json(host: str, port: int, path: str) -> dict:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", path)
    reply = connection.getresponse()
    assert reply.status == 200
    return json.loads(reply.read())


def chat(server: MockLLMServer, headers: dict | None = None, **body) -> tuple[int, dict]:
    reply = post(server, {"model": "mock-model", "messages": MESSAGES, **body}, headers)
    return reply.status, json.loads(reply.read())


def stream_events(server: MockLLMServer, **body) -> list:
    reply = post(server, {"model": "mock-model", "messages": MESSAGES, "stream": True, **body})
    assert reply.status == 200
    assert reply.getheader("Content-Type").startswith("text/event-stream")
    parser = SSEParser()
    events = parser.feed(reply.read()) + parser.close()
    return [event if event == "[DONE]" else json.loads(event) for event in events]


def test_accepted_sockets_have_tcp_nodelay(mock_llm):
    chat(mock_llm)
    assert mock_llm.requests[-1].tcp_nodelay is True


def test_models_lists_the_plain_model_and_one_per_fault(mock_llm):
    ids = [model["id"] for model in get_json(*mock_llm.server_address[:2], "/v1/models")["data"]]
    assert ids == list(MODELS)
    assert ids[0] == "mock-model" and len(ids) == 1 + len(FAULTS)


def test_a_completion_is_openai_shaped_and_deterministic(mock_llm):
    status, first = chat(mock_llm)
    assert status == 200
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 6, "completion_tokens": 10, "total_tokens": 16}
    _, again = chat(mock_llm)
    assert again["choices"] == first["choices"] and again["usage"] == first["usage"]
    _, other = chat(mock_llm, messages=[{"role": "user", "content": "Something else"}])
    assert other["choices"][0]["message"]["content"] != ANSWER


def test_a_stream_is_role_then_words_then_finish_then_usage_then_done(mock_llm):
    events = stream_events(mock_llm, stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    words = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-2]]
    assert words == [f"{word} " for word in ANSWER.split()[:-1]] + ["joke"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(words)


def test_a_stream_has_no_usage_chunk_unless_asked(mock_llm):
    events = stream_events(mock_llm)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in event for event in events[:-1])


def test_the_tokens_option_gives_exactly_n_tokens(start_mock_llm):
    server = start_mock_llm(tokens=25)
    events = stream_events(server, stream_options={"include_usage": True})
    deltas = [event for event in events[1:-3]]
    assert len(deltas) == 25
    assert events[-2]["usage"]["completion_tokens"] == 25
    _, completion = chat(server)
    assert completion["choices"][0]["message"]["content"].split() == (ANSWER.split() * 3)[:25]


def test_a_short_answer_still_gets_its_mid_stream_fault(start_mock_llm):
    server = start_mock_llm(tokens=1)
    events = stream_events(server, model="mock-error_mid_stream")
    assert events[-1] == {
        "error": {"message": "The mock model crashed mid-answer.", "type": "server_error"}
    }
    assert "[DONE]" not in events


def test_delay_ms_spaces_the_tokens(start_mock_llm):
    server = start_mock_llm(delay_ms=40, tokens=5)
    started = time.monotonic()
    stream_events(server)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("headers", "content", "model", "status"),
    [
        ({"X-Mock-Fault": "http_429"}, "hi", "mock-model", 429),
        ({}, "hi [mock:http_429]", "mock-model", 429),
        ({}, "hi", "mock-http_429", 429),
        ({"X-Mock-Fault": "http_401"}, "hi [mock:http_429]", "mock-http_500", 401),
        ({}, "hi [mock:http_401]", "mock-http_500", 401),
        ({"X-Mock-Fault": "no_such_fault"}, "hi", "mock-model", 400),
        ({}, "hi", "mock-no_such_fault", 200),
    ],
)
def test_faults_come_from_header_then_directive_then_model(
    mock_llm, headers, content, model, status
):
    reply = post(
        mock_llm, {"model": model, "messages": [{"role": "user", "content": content}]}, headers
    )
    assert reply.status == status


def test_a_directive_is_not_echoed_and_only_the_last_user_message_counts(mock_llm):
    messages = [
        {"role": "user", "content": "[mock:http_500] old"},
        {"role": "user", "content": "new [mock:usage]"},
    ]
    status, body = chat(mock_llm, messages=messages)
    assert status == 200
    assert body["choices"][0]["message"]["content"].endswith("Last user message: new")


def test_slow_first_token_takes_the_given_milliseconds(mock_llm):
    started = time.monotonic()
    chat(mock_llm, {"X-Mock-Fault": "slow_first_token:300"})
    assert 0.3 <= time.monotonic() - started < 1.5


def test_crlf_and_keepalive_faults_change_only_the_framing(mock_llm):
    reply = post(mock_llm, {"model": "mock-crlf", "messages": MESSAGES, "stream": True})
    raw = reply.read()
    assert raw.count(b"\r\n\r\n") > 5 and b"\n\n" not in raw.replace(b"\r\n", b"")
    reply = post(
        mock_llm, {"model": "mock-keepalive_comments", "messages": MESSAGES, "stream": True}
    )
    assert b": ping\n\n" in reply.read()


def test_reject_stream_options_refuses_only_requests_that_carry_them(mock_llm):
    body = {"model": "mock-reject_stream_options", "messages": MESSAGES, "stream": True}
    refused = post(mock_llm, {**body, "stream_options": {"include_usage": True}})
    assert refused.status == 400 and b"stream_options" in refused.read()
    assert post(mock_llm, body).status == 200


def test_unknown_paths_are_a_json_404(mock_llm):
    reply = post(mock_llm, {}, path="/v2/nothing")
    assert reply.status == 404
    assert json.loads(reply.read())["error"]["code"] == "not_found"


def test_requests_are_recorded_with_headers_and_body(mock_llm):
    chat(mock_llm, {"Authorization": "Bearer sk-mock"}, temperature=0.5)
    recorded = mock_llm.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == "Bearer sk-mock"
    assert recorded.body["temperature"] == 0.5
    assert mock_llm.requests.maxlen is not None


def wait_for(condition, seconds: float = 3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_never_ending_stops_when_the_client_goes_away(mock_llm):
    reply = post(mock_llm, {"model": "mock-never_ending", "messages": MESSAGES, "stream": True})
    assert reply.read1(4096).startswith(b"data: ")
    time.sleep(0.1)
    assert mock_llm.open_connections == 1
    reply.close()
    assert wait_for(lambda: mock_llm.open_connections == 0), "the handler kept writing"


def test_idle_forever_does_not_hold_up_shutdown(start_mock_llm):
    server = start_mock_llm()
    reply = post(server, {"model": "mock-idle_forever", "messages": MESSAGES, "stream": True})
    assert reply.read1(4096).startswith(b"data: ")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    assert wait_for(lambda: server.open_connections == 0)
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        reply.read()


def test_stop_closes_idle_keep_alive_connections(start_mock_llm):
    server = start_mock_llm()
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    connection.request("POST", "/v1/chat/completions", json.dumps({"messages": MESSAGES}))
    connection.getresponse().read()
    assert server.open_connections == 1  # HTTP/1.1: the handler waits for the next request
    server.stop()
    assert wait_for(lambda: server.open_connections == 0)
    connection.close()


def test_idle_forever_lets_go_when_the_client_leaves(mock_llm):
    reply = post(mock_llm, {"model": "mock-idle_forever", "messages": MESSAGES, "stream": True})
    reply.read1(4096)
    reply.close()
    assert wait_for(lambda: mock_llm.open_connections == 0)


# --- the management command ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_command_serves_until_terminated():
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.test_settings"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "mock_llm", "--port", str(port), "--tokens", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(process, seconds=20)
        assert f"http://127.0.0.1:{port}/v1" in line and "any API key" in line
        assert get_json("127.0.0.1", port, "/v1/models")["data"][0]["id"] == "mock-model"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/v1/chat/completions", json.dumps({"messages": MESSAGES}))
        content = json.load(connection.getresponse())["choices"][0]["message"]["content"]
        assert content == "Received 2 messages. Last"
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "stopped" in stdout


def read_line(process: subprocess.Popen, seconds: float) -> str:
    """The first line of output, without hanging the suite if it never comes."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert lines, "the command printed nothing"
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", "0"], "--tokens"),
        (["--delay-ms", "-1"], "--delay-ms"),
    ],
)
def test_the_command_refuses_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("mock_llm", *args)


def test_the_command_says_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match="Cannot listen"):
            call_command("mock_llm", "--port", str(port))
