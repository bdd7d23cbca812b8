"""Server-sent events: an incremental parser that any chunking of the bytes cannot fool."""

from __future__ import annotations

import codecs
import re

_LINE_END = re.compile(r"\r\n|\r|\n")


class SSEParser:
    """Incremental SSE parser (WHATWG rules): bytes in, the ``data`` of each event out.

    Chunks may split anything (a UTF-8 character, a CRLF pair); comments and the
    ``event``/``id``/``retry`` fields are ignored because chat completions never need them.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []
        self._data: list[str] = []
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[str]:
        """Parse more bytes; return the events they completed."""
        events: list[str] = []
        self._consume(self._decoder.decode(chunk), events)
        return events

    def close(self) -> list[str]:
        """End of stream: flush a last line and a last event that had no blank line after."""
        events: list[str] = []
        self._consume(self._decoder.decode(b"", final=True), events)
        if self._partial:
            line = "".join(self._partial)
            self._partial = []
            self._line(line, events)
        self._line("", events)
        return events

    def _consume(self, text: str, events: list[str]) -> None:
        if not text:
            return
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf:
            self._skip_lf = False
            text = text.removeprefix("\n")
        position = 0
        for match in _LINE_END.finditer(text):
            self._partial.append(text[position : match.start()])
            line = "".join(self._partial)
            self._partial = []
            self._line(line, events)
            position = match.end()
        if position < len(text):
            self._partial.append(text[position:])
        # A CR at the end may be the first half of a CRLF split across chunks.
        self._skip_lf = text.endswith("\r")

    def _line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return
        name, _colon, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
