"""Finding user-visible template text that is not marked for translation.

Used by the i18n tests (config/tests/test_i18n.py). A template's text nodes and its
user-visible attributes (``placeholder``, ``title``, ``alt``, ``aria-label``, ``value`` of
buttons, ``content`` of the description meta) must hold no letters once Django's tags,
variables and comments are taken out: words belong in ``{% translate %}`` or
``{% blocktranslate %}``. ``<script>``/``<style>``/``<pre>``/``<code>`` contents are skipped,
as is text inside ``{% blocktranslate %}`` blocks.

``read_po`` reads a gettext catalogue (.po or .pot) without a third-party library, so the
tests can compare what ``makemessages`` extracts with what ``locale/`` holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VISIBLE_ATTRIBUTES = {"placeholder", "title", "alt", "aria-label", "aria-description"}
SKIPPED_ELEMENTS = {"script", "style", "pre", "code"}
# Words that are the same in every language.
SAME_IN_EVERY_LANGUAGE = {"Parley", "OpenAI", "API", "URL", "JSON", "Markdown", "SQL", "ID"}

_BLOCK_TRANSLATION = re.compile(
    r"{%\s*blocktrans(?:late)?\b.*?%}.*?{%\s*endblocktrans(?:late)?\s*%}", re.S
)
_COMMENT_BLOCK = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)
# {% block main_class %}page narrow{% endblock %}: CSS class names, not text.
_CLASS_BLOCK = re.compile(r"{%\s*block\s+\w*class\w*\s*%}.*?{%\s*endblock\b.*?%}", re.S)
_TAG_OR_VARIABLE = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.S)
_WORD = re.compile(r"[^\W\d_]+")


def _strip_django(text: str) -> str:
    text = _COMMENT_BLOCK.sub(" ", text)
    text = _CLASS_BLOCK.sub(" ", text)
    text = _BLOCK_TRANSLATION.sub(" ", text)
    return _TAG_OR_VARIABLE.sub(" ", text)


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_ELEMENTS:
            self._skipping.append(tag)
        values = dict(attrs)
        for name, value in attrs:
            visible = name in VISIBLE_ATTRIBUTES or (
                name == "value" and tag == "input" and values.get("type") in {"submit", "button"}
            )
            if visible and value:
                self._check(value)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._check(data)

    def _check(self, text: str) -> None:
        text = " ".join(text.split())
        if set(_WORD.findall(text)) - SAME_IN_EVERY_LANGUAGE:
            self.found.append((self.getpos()[0], text))


def unmarked_text(template: Path) -> list[tuple[int, str]]:
    """(line, text) of every user-visible piece of ``template`` not marked for translation."""
    finder = _TextFinder()
    finder.feed(_strip_django(template.read_text(encoding="utf-8")))
    finder.close()
    return finder.found


# --- Catalogues ----------------------------------------------------------------------------

# What `makemessages` leaves out (docs/i18n.md): the virtualenv, benchmarks and tests are
# not user-facing.
MAKEMESSAGES_IGNORE = [".venv", "bench", "chat/tests/vendor", "*/tests/*"]


@dataclass
class PoEntry:
    """One message of a .po/.pot file: its id (with context and plural) and translations."""

    msgid: str
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr) and "fuzzy" not in self.flags


_PO_LINE = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"$')
_PO_CONTINUATION = re.compile(r'^"(.*)"$')


def _unquote(text: str) -> str:
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), text)


def read_po(path: Path) -> dict[tuple[str | None, str], PoEntry]:
    """The messages of a .po or .pot file by (context, msgid); the header (msgid "") and
    obsolete (``#~``) entries left out. Enough of the format for what xgettext writes."""
    entries: dict[tuple[str | None, str], PoEntry] = {}
    entry: PoEntry | None = None
    field_name: str | None = None
    index = 0
    flags: set[str] = set()

    def finish() -> None:
        if entry is not None and entry.msgid:
            entries[entry.key] = entry

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#,"):
            if entry is not None and field_name is not None and field_name.startswith("msgstr"):
                finish()
                entry, field_name = None, None
            flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if not line or line.startswith("#"):
            continue
        match = _PO_LINE.match(line)
        if match:
            keyword, number, text = match.group(1), match.group(2), _unquote(match.group(3))
            starts_entry = keyword in {"msgctxt", "msgid"} and (
                entry is None or (field_name or "").startswith("msgstr")
            )
            if starts_entry:
                finish()
                entry, flags = PoEntry(msgid="", flags=flags), set()
            assert entry is not None, f"{path}: {raw!r} outside an entry"
            if keyword == "msgctxt":
                entry.msgctxt = text
            elif keyword == "msgid":
                entry.msgid = text
            elif keyword == "msgid_plural":
                entry.msgid_plural = text
            else:
                index = int(number or 0)
                while len(entry.msgstr) <= index:
                    entry.msgstr.append("")
                entry.msgstr[index] = text
            field_name = keyword
            continue
        match = _PO_CONTINUATION.match(line)
        if match and entry is not None and field_name is not None:
            text = _unquote(match.group(1))
            if field_name == "msgctxt":
                entry.msgctxt = (entry.msgctxt or "") + text
            elif field_name == "msgid":
                entry.msgid += text
            elif field_name == "msgid_plural":
                entry.msgid_plural = (entry.msgid_plural or "") + text
            else:
                entry.msgstr[index] += text
    finish()
    return entries
