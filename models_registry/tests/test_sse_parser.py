"""The SSE parser: every quirk real servers produce, and chunking at any byte."""

from __future__ import annotations

import pytest

from models_registry.sse import SSEParser


def parse(*chunks: bytes) -> list[str]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.close()


@pytest.mark.parametrize(
    ("stream", "events"),
    [
        pytest.param(b'data: {"a": 1}\n\n', ['{"a": 1}'], id="plain"),
        pytest.param(b'data:{"a": 1}\n\n', ['{"a": 1}'], id="no-space-after-colon"),
        pytest.param(b"data:  two spaces\n\n", [" two spaces"], id="only-one-space-removed"),
        pytest.param(b"data: a\r\n\r\ndata: b\r\n\r\n", ["a", "b"], id="crlf"),
        pytest.param(b"data: a\r\rdata: b\r\r", ["a", "b"], id="cr"),
        pytest.param(b"data: a\r\n\ndata: b\n\r\n", ["a", "b"], id="mixed-line-endings"),
        pytest.param(b": ping\n\ndata: a\n\n: ping\n\n", ["a"], id="comments"),
        pytest.param(b":\n\n\n\ndata: a\n\n", ["a"], id="empty-keepalives"),
        pytest.param(b"data: line 1\ndata: line 2\n\n", ["line 1\nline 2"], id="multi-line"),
        pytest.param(
            b"event: message\nid: 7\nretry: 1000\nfoo: bar\ndata: a\n\n", ["a"], id="other-fields"
        ),
        pytest.param(b"event: ping\n\n", [], id="event-without-data"),
        pytest.param(b"data: a\n\ndata: [DONE]\n\n", ["a", "[DONE]"], id="done"),
        pytest.param(b"data: a\n\ndata: b", ["a", "b"], id="last-event-without-blank-line"),
        pytest.param(b"data: a\n\ndata: b\n", ["a", "b"], id="last-event-one-newline"),
        pytest.param(b"data\n\n", [""], id="field-without-colon"),
        pytest.param(b"\xef\xbb\xbfdata: a\n\n", ["a"], id="byte-order-mark"),
        pytest.param("data: 你好 👋\n\n".encode(), ["你好 👋"], id="utf-8"),
        pytest.param(b"data: \xff\n\n", ["\ufffd"], id="invalid-utf-8-replaced"),
    ],
)
def test_quirk(stream, events):
    assert parse(stream) == events


SAMPLE = (
    b": keep-alive\r\n\r\n"
    b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
    b'data:{"choices":[{"delta":{"content":"Bonjour, \xc3\xa7a va ? \xe2\x9c\x85"}}]}\r\n\r\n'
    b"event: update\rid: 3\rdata: first line\rdata: second line\r\r"
    b"data: crlf 1\r\ndata: crlf 2\r\n\r\n"
    b'data: {"choices":[{"delta":{"content":"\xf0\x9f\x98\x80"}}]}\n\n'
    b"retry: 500\n"
    b"data: [DONE]\n\n"
)
SAMPLE_EVENTS = [
    '{"choices":[{"delta":{"role":"assistant"}}]}',
    '{"choices":[{"delta":{"content":"Bonjour, ça va ? ✅"}}]}',
    "first line\nsecond line",
    "crlf 1\ncrlf 2",
    '{"choices":[{"delta":{"content":"😀"}}]}',
    "[DONE]",
]


def test_the_sample_stream_parses_as_expected():
    assert parse(SAMPLE) == SAMPLE_EVENTS


def test_a_split_at_every_byte_boundary_gives_the_same_events():
    for cut in range(len(SAMPLE) + 1):
        assert parse(SAMPLE[:cut], SAMPLE[cut:]) == SAMPLE_EVENTS, f"split at byte {cut}"


def test_byte_by_byte_gives_the_same_events():
    assert parse(*(SAMPLE[i : i + 1] for i in range(len(SAMPLE)))) == SAMPLE_EVENTS


def test_a_crlf_split_between_cr_and_lf_is_one_line_ending():
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == ["a\nb"]


def test_events_come_out_as_soon_as_they_are_complete():
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\ndata: b") == ["a"]
    assert parser.feed(b"\n\n") == ["b"]
    assert parser.close() == []
