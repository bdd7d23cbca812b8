"""UpstreamCall: the helper thread that reads an upstream stream for the relay."""

from __future__ import annotations

import threading
import time

from chat import streaming
from chat.streaming import FIRST_READ_AHEAD, UpstreamCall
from models_registry.client import StreamDelta, StreamFinish


class FakeClient:
    """Yields ``count`` deltas and a finish, counting how many the reader has pulled."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pulled = 0
        self.closed = threading.Event()

    def stream(self, *, model, messages, max_tokens):
        try:
            for index in range(self.count):
                self.pulled += 1
                yield StreamDelta(f"t{index} ", "")
            yield StreamFinish("stop", None)
        finally:
            self.closed.set()


def start(client: FakeClient) -> UpstreamCall:
    return UpstreamCall(client, model="m", messages=[], max_tokens=10)


def settle(condition, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_before_the_relay_takes_anything_the_reader_stays_a_few_items_ahead():
    """It must not parse a fast answer while the request thread saves the message."""
    client = FakeClient(500)
    call = start(client)
    settle(lambda: call.items.full())
    time.sleep(0.05)  # time enough to run ahead, were it allowed to
    assert call.items.qsize() == FIRST_READ_AHEAD
    assert client.pulled <= FIRST_READ_AHEAD + 1
    call.cancel()


def test_once_the_first_item_is_relayed_the_reader_may_run_further_ahead():
    client = FakeClient(500)
    call = start(client)
    assert call.items.get(timeout=2) == ("item", StreamDelta("t0 ", ""))
    settle(lambda: call.items.full())
    time.sleep(0.05)
    assert call.items.qsize() == FIRST_READ_AHEAD  # still short while the first is written
    assert call.items.get(timeout=2) == ("item", StreamDelta("t1 ", ""))
    started = time.monotonic()
    # The rest of the answer without waiting: deltas t2..t499, the finish and the end.
    settle(lambda: call.items.qsize() == 500)
    assert call.items.qsize() == 500
    assert time.monotonic() - started < 0.2  # not one STOP_CHECK_SECONDS wait per item


def test_every_item_arrives_in_order_then_the_end():
    client = FakeClient(300)
    call = start(client)
    received = []
    while (item := call.items.get(timeout=2))[0] != "end":
        received.append(item)
    assert [payload.content for _kind, payload in received[:-1]] == [
        f"t{index} " for index in range(300)
    ]
    assert received[-1] == ("item", StreamFinish("stop", None))


def test_a_cancelled_call_blocked_on_a_full_queue_lets_go_of_the_stream(monkeypatch):
    monkeypatch.setattr(streaming, "STOP_CHECK_SECONDS", 0.02)
    client = FakeClient(500)
    call = start(client)
    settle(lambda: call.items.full())
    call.cancel()
    assert client.closed.wait(2), "the reader never closed the upstream stream"
    assert client.pulled <= FIRST_READ_AHEAD + 1
