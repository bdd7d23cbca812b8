"""The send path end to end: a real Parley under gunicorn, the mock model, real HTTP.

Each test drives the site the way the chat page's script does (a logged-in `requests`
session posting with `Accept: text/event-stream` and reading the server-sent events),
then reads the SQLite file directly, as any other process would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest
import requests

from chat.tests.live import (
    ONLY_IN_SQLITE_PASS,
    PASSWORD,
    LiveParley,
    client_socket,
    sse_events,
)
from models_registry.mock_llm import MockLLMServer, make_server

pytestmark = [pytest.mark.slow, ONLY_IN_SQLITE_PASS]

USERNAME = "dana"
SLOW_TOKENS = 300  # the slow model's answer: 300 words, one every 30 ms (9 s in all)
INTERRUPTED = "The server stopped while writing this answer."

SETUP = """
import json
from accounts.models import Role, User
from config.services import get_system_setting, system_setting_update
from models_registry.models import ModelConfig
from models_registry.services import model_config_save

User.objects.create_user(username={username!r}, password={password!r}, role=Role.USER)
setting = get_system_setting()
setting.messages_per_minute = 0  # this module sends more than a person would
system_setting_update(setting=setting, changed_fields=["messages_per_minute"], actor=None)
ids = {{}}
for name, url in {models!r}.items():
    model = ModelConfig(name=name, api_url=url, model="mock-model", context_window=8192,
                        max_output_tokens=1024)
    model_config_save(model_config=model, new_api_key="sk-live-0000", changed_fields=[],
                      actor=None)
    ids[name] = model.pk
print(json.dumps(ids))
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[dict[str, MockLLMServer]]:
    """Two mock models: a quick one and a slow, long one to stop, cut and kill."""
    servers = {
        "fast": make_server(delay_ms=10),
        "slow": make_server(delay_ms=30, tokens=SLOW_TOKENS),
    }
    for server in servers.values():
        server.serve_in_thread()
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def live(parley_server: LiveParley, upstream: dict[str, MockLLMServer]) -> LiveParley:
    models = {name: server.base_url for name, server in upstream.items()}
    parley_server.models = parley_server.shell(
        SETUP.format(username=USERNAME, password=PASSWORD, models=models)
    )
    return parley_server


@pytest.fixture(scope="module")
def http(live: LiveParley) -> requests.Session:
    return live.login(USERNAME)


class Stream:
    """One answer being read as the page's script reads it."""

    def __init__(self, response: requests.Response) -> None:
        assert response.status_code == 200, (response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("text/event-stream")
        self.response = response
        self.events: list[tuple[str, dict]] = []
        self._source = sse_events(response)
        name, self.start = self._next()
        assert name == "start", name

    def _next(self) -> tuple[str, dict]:
        event = next(self._source)
        self.events.append(event)
        return event

    @property
    def session_id(self) -> int:
        return self.start["session_id"]

    @property
    def message_id(self) -> int:
        return self.start["message_id"]

    @property
    def text(self) -> str:
        """The answer's text as far as it has arrived."""
        return "".join(data["content"] for name, data in self.events if name == "delta")

    @property
    def deltas(self) -> int:
        return sum(1 for name, _data in self.events if name == "delta")

    @property
    def ended(self) -> bool:
        return self.events[-1][0] in ("done", "error")

    def read_deltas(self, count: int) -> None:
        target = self.deltas + count
        while self.deltas < target:
            assert not self.ended, "the answer ended early"
            self._next()

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert not self.ended, "the answer ended early"
            self._next()

    def finish(self) -> tuple[str, dict]:
        """Read to the end; returns the final event."""
        for _event in self._source:
            self.events.append(_event)
        self.response.close()
        assert self.ended, self.events[-1:]
        return self.events[-1]


def post(live: LiveParley, http: requests.Session, path: str, stream: bool = True, **data: str):
    headers = {"X-CSRFToken": http.cookies["csrftoken"]}
    if stream:
        headers["Accept"] = "text/event-stream"
    return http.post(
        live.url(path),
        data=data,
        headers=headers,
        stream=stream,
        allow_redirects=False,
        timeout=(5, 20),
    )


def new_chat(live: LiveParley, http: requests.Session, model: str, text: str, **data) -> Stream:
    return Stream(
        post(live, http, "/chats/new/", model=str(live.models[model]), content=text, **data)
    )


def full_answer(text: str, *, messages: int = 1) -> str:
    noun = "message" if messages == 1 else "messages"
    return f"Received {messages} {noun}. Last user message: {text}"


def assert_user_message_saved_once(live: LiveParley, session_id: int, text: str) -> None:
    rows = live.messages(session_id)
    assert [r["content"] for r in rows if r["role"] == "user"].count(text) == 1
    # Every user message is followed by exactly one answer.
    assert [r["role"] for r in rows] == ["user", "assistant"] * (len(rows) // 2)


def test_an_answer_streams_in_steps_and_is_saved_complete(live, http):
    text = "Hello over real HTTP"
    stream = new_chat(live, http, "fast", text, client_id=str(uuid.uuid4()))
    name, final = stream.finish()

    assert stream.deltas >= 3  # the answer arrives in several steps
    assert (name, final["status"]) == ("done", "complete")
    assert stream.text == full_answer(text)
    assert text in final["html"]
    answer = live.message(stream.message_id)
    assert (answer["status"], answer["content"]) == ("complete", stream.text)
    assert_user_message_saved_once(live, stream.session_id, text)
    page = http.get(live.url(f"/chats/{stream.session_id}/"), timeout=10)
    assert page.status_code == 200 and full_answer(text) in page.text


def other_worker_connection(
    live: LiveParley, http: requests.Session, busy_worker: int
) -> HTTPConnection:
    """A keep-alive connection that gunicorn handed to a worker other than ``busy_worker``."""
    for _attempt in range(40):
        connection = HTTPConnection("127.0.0.1", live.port, timeout=10)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        worker = live.worker_serving(connection.sock)
        if worker is not None and worker != busy_worker:
            return connection
        connection.close()
    pytest.fail(f"no connection reached a worker other than {busy_worker}")


def test_stop_from_another_process_ends_the_answer_stopped_with_its_text(live, http):
    text = "Write me something long"
    stream = new_chat(live, http, "slow", text)
    stream.read_deltas(3)
    streaming_worker = live.worker_serving(client_socket(stream.response))
    assert streaming_worker in live.worker_pids()

    # Stop arrives on another connection, served by the other gunicorn process.
    connection = other_worker_connection(live, http, streaming_worker)
    cookies = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    connection.request(
        "POST",
        f"/chats/{stream.session_id}/stop/",
        headers={
            "Cookie": cookies,
            "X-CSRFToken": http.cookies["csrftoken"],
            "Accept": "application/json",
        },
    )
    reply = connection.getresponse()
    assert (reply.status, json.loads(reply.read())) == (200, {"stopping": 1})
    connection.close()

    started = time.monotonic()
    name, final = stream.finish()
    assert time.monotonic() - started < 3  # stopped, not run to its 9 s end
    assert (name, final["status"]) == ("done", "stopped")
    answer = live.message(stream.message_id)
    assert answer["status"] == "stopped"
    assert answer["content"] == stream.text  # every word the reader saw, and only those
    assert 0 < len(answer["content"]) < len(full_answer(text)) + SLOW_TOKENS
    assert len(stream.text.split()) < SLOW_TOKENS
    assert_user_message_saved_once(live, stream.session_id, text)


def test_closing_the_stream_keeps_the_text_so_far_as_stopped(live, http):
    text = "I will close the tab"
    stream = new_chat(live, http, "slow", text)
    stream.read_deltas(5)
    seen = stream.text
    stream.response.close()  # the browser goes away mid-answer

    answer = live.wait_for_status(stream.message_id, {"stopped"})
    assert answer["content"].startswith(seen) and len(seen) > 0
    assert len(answer["content"].split()) < SLOW_TOKENS
    assert_user_message_saved_once(live, stream.session_id, text)


def test_an_upstream_error_mid_answer_keeps_the_partial_text(live, http):
    text = "Please fail [mock:error_mid_stream] halfway"
    stream = new_chat(live, http, "fast", text)
    name, final = stream.finish()

    assert stream.deltas == 3  # the mock breaks off after three words
    assert (name, final["status"]) == ("error", "error")
    assert final["error"] == "The model's server returned an error."
    answer = live.message(stream.message_id)
    assert (answer["status"], answer["content"]) == ("error", stream.text)
    assert answer["content"] == "Received 1 message. "
    assert answer["error"] == final["error"]
    assert_user_message_saved_once(live, stream.session_id, text)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http_401", "The API key was refused by the provider."),
        ("http_429", "The provider is rate limiting requests; try again shortly."),
        ("http_500", "The model's server returned an error."),
    ],
)
def test_an_upstream_refusal_ends_the_answer_with_its_reason(live, http, fault, reason):
    text = f"Hello [mock:{fault}]"
    stream = new_chat(live, http, "fast", text)
    name, final = stream.finish()

    assert stream.deltas == 0
    assert (name, final["status"], final["error"]) == ("error", "error", reason)
    answer = live.message(stream.message_id)
    assert (answer["status"], answer["content"], answer["error"]) == ("error", "", reason)
    assert_user_message_saved_once(live, stream.session_id, text)
    page = http.get(live.url(f"/chats/{stream.session_id}/"), timeout=10).text
    assert reason.replace("'", "&#x27;") in page and ">Retry</button>" in page


def test_a_killed_worker_leaves_the_answer_streaming_until_the_sweep(live, http):
    text = "Keep going until the server dies"
    stream = new_chat(live, http, "slow", text)
    stream.read_for(1.5)  # longer than PARTIAL_WRITE_SECONDS: the text so far is in the row
    deadline = time.monotonic() + 5
    while not live.message(stream.message_id)["content"] and time.monotonic() < deadline:
        stream.read_deltas(1)
    worker = live.worker_serving(client_socket(stream.response))
    workers_before = live.worker_pids()
    assert worker in workers_before

    os.kill(worker, signal.SIGKILL)
    with pytest.raises(requests.RequestException):
        stream.finish()
    time.sleep(0.5)
    answer = live.message(stream.message_id)
    assert answer["status"] == "streaming"  # nobody was left to write the final status
    saved = answer["content"]
    assert saved and stream.text.startswith(saved)

    # gunicorn replaces the worker; the start-up sweep (here run by hand) tidies the row.
    assert worker not in live.wait_for_workers(2)
    live.wait_healthy()
    assert live.manage("sweep_streams", "--older-than", "0").strip() == (
        "Marked 1 interrupted answer(s)."
    )
    answer = live.message(stream.message_id)
    assert (answer["status"], answer["content"], answer["error"]) == (
        "interrupted",
        saved,
        INTERRUPTED,
    )
    assert_user_message_saved_once(live, stream.session_id, text)
    page = http.get(live.url(f"/chats/{stream.session_id}/"), timeout=10).text
    assert ">interrupted</span>" in page and saved.split()[-1] in page


def test_a_retried_post_with_the_same_client_id_saves_the_message_once(live, http):
    text = "Only once, please"
    client_id = str(uuid.uuid4())
    first = new_chat(live, http, "fast", text, client_id=client_id)
    first.finish()

    # The script retries the very same POST: the stored answer comes back, nothing new.
    retried = post(
        live,
        http,
        "/chats/new/",
        model=str(live.models["fast"]),
        content=text,
        client_id=client_id,
    )
    assert retried.status_code == 200
    events = list(sse_events(retried))
    assert [(n, d["message_id"], d["status"]) for n, d in events] == [
        ("done", first.message_id, "complete")
    ]
    titles = live.query("SELECT id FROM chat_chatsession WHERE title = ?", (text,))
    assert [row["id"] for row in titles] == [first.session_id]

    # A second message; its retry without JavaScript (a plain form post) is a redirect.
    second_id = str(uuid.uuid4())
    send = Stream(
        post(
            live, http, f"/chats/{first.session_id}/send/", content="And again", client_id=second_id
        )
    )
    send.finish()
    plain = post(
        live,
        http,
        f"/chats/{first.session_id}/send/",
        stream=False,
        content="And again",
        client_id=second_id,
    )
    assert plain.status_code == 302
    assert plain.headers["Location"] == f"/chats/{first.session_id}/"

    # A retry while the answer is still being written is refused, not answered twice.
    third_id = str(uuid.uuid4())
    slow_chat = new_chat(live, http, "slow", "Slowly, once", client_id=third_id)
    slow_chat.read_deltas(2)
    busy = post(
        live,
        http,
        "/chats/new/",
        model=str(live.models["slow"]),
        content="Slowly, once",
        client_id=third_id,
    )
    assert busy.status_code == 409
    assert busy.json()["error"] == "This message is already being answered."
    post(live, http, f"/chats/{slow_chat.session_id}/stop/", stream=False)
    slow_chat.finish()

    assert_user_message_saved_once(live, first.session_id, text)
    assert_user_message_saved_once(live, first.session_id, "And again")
    assert_user_message_saved_once(live, slow_chat.session_id, "Slowly, once")
    assert len(live.messages(first.session_id)) == 4


def write_without_waiting(db_path: Path, session_id: int) -> bool:
    """One write transaction that may not wait for the lock (busy_timeout 0).

    Up to three quick tries, so a partial-text write the server makes at that very
    millisecond does not count; a transaction held open through the stream fails all.
    """
    db = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        db.execute("PRAGMA busy_timeout = 0")
        for _try in range(3):
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                time.sleep(0.02)
                continue
            db.execute("UPDATE chat_chatsession SET title = title WHERE id = ?", (session_id,))
            db.execute("COMMIT")
            return True
        return False
    finally:
        db.close()


def test_no_database_transaction_stays_open_while_an_answer_streams(live, http):
    stream = new_chat(live, http, "slow", "Take your time")
    results = []
    for _write in range(6):
        stream.read_deltas(8)  # about a quarter of a second between writes
        results.append(write_without_waiting(live.db_path, stream.session_id))
        assert live.message(stream.message_id)["status"] == "streaming"
    assert results == [True] * 6
    assert not stream.ended
    post(live, http, f"/chats/{stream.session_id}/stop/", stream=False)
    assert stream.finish()[1]["status"] == "stopped"
