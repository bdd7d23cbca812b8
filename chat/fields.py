"""``CompressedTextField``: text that is ``str`` in Python and compressed at rest when long.

Storage format (a BLOB on SQLite, ``bytea`` on PostgreSQL):

- the empty string is a zero-length value, so "is empty" stays a cheap SQL test
  (``.exclude(content="")`` compiles to ``NOT (content = X'')``, no text is loaded);
- anything else is one type byte, then the payload: ``0x00`` UTF-8 as is, ``0x01``
  zlib (level 6) of the UTF-8. ``0x02`` is reserved for zstd, should it ever be worth
  a dependency (see ``docs/performance.md``: on chat-sized messages it is not).

A value is compressed when its UTF-8 is longer than
``SystemSetting.compression_threshold_bytes`` and only when that makes it smaller; the
threshold comes from the cached settings row, read at most once per value written, or
once for a whole block under ``pinned_threshold()``. Readers always get ``str``.

SQL cannot look inside compressed bytes, so the field offers only ``exact`` (matching
either stored form of the text, see ``StoredTextExact``) and ``isnull``: ``icontains``,
``startswith``, ``gt`` and the like raise ``FieldError`` instead of silently missing
compressed rows. Search in SQL belongs on other columns (titles). NUL characters round-trip
(a bytea holds them, unlike PostgreSQL's text); lone surrogates are refused with
``UnicodeEncodeError``, as the database drivers refused them for ``TextField``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django import forms
from django.core.exceptions import FieldError
from django.db import models
from django.db.models.lookups import Exact
from django.utils.translation import gettext_lazy as _

PLAIN = 0x00
ZLIB = 0x01
ZSTD = 0x02  # reserved, never written
ZLIB_LEVEL = 6  # chosen by bench/compression.py: level 9 saves <0.5% more, 10% slower
EMPTY = b""

_pinned_threshold: ContextVar[int | None] = ContextVar("compression_threshold", default=None)


def pack_text(text: str, *, threshold: int) -> bytes:
    """The stored form of ``text``: compressed when longer than ``threshold`` and smaller."""
    if not text:
        return EMPTY
    raw = text.encode("utf-8")  # strict: a lone surrogate raises UnicodeEncodeError
    if len(raw) > threshold:
        packed = zlib.compress(raw, ZLIB_LEVEL)
        if len(packed) < len(raw):
            return bytes((ZLIB,)) + packed
    return bytes((PLAIN,)) + raw


def unpack_text(stored: bytes | bytearray | memoryview | str) -> str:
    """The text of a stored value (any type byte this code has ever written)."""
    if isinstance(stored, str):
        # SQLite lets raw SQL put TEXT into a BLOB column: it can only be plain text.
        return stored
    view = memoryview(stored)
    if not view:
        return ""
    kind, payload = view[0], view[1:]
    if kind == PLAIN:
        return str(payload, "utf-8")
    if kind == ZLIB:
        return zlib.decompress(payload).decode("utf-8")
    raise ValueError(f"unknown stored text type {kind:#04x} (0x02 = zstd is not supported)")


def stored_kind(stored: bytes | memoryview) -> int | None:
    """The type byte of a stored value; None for the empty string."""
    return memoryview(stored)[0] if len(stored) else None


def configured_threshold() -> int:
    pinned = _pinned_threshold.get()
    if pinned is not None:
        return pinned
    from config.services import get_system_setting  # late: fields load before other apps

    return get_system_setting().compression_threshold_bytes


@contextmanager
def pinned_threshold(threshold: int | None = None) -> Iterator[int]:
    """Read the threshold once (or use ``threshold``) for every value written in the block."""
    value = configured_threshold() if threshold is None else threshold
    token = _pinned_threshold.set(value)
    try:
        yield value
    finally:
        _pinned_threshold.reset(token)


def stored_forms(text: str) -> tuple[bytes, ...]:
    """Every value this code may have written for ``text``, whatever the threshold was."""
    if not text:
        return (EMPTY,)
    raw = text.encode("utf-8")
    forms = [bytes((PLAIN,)) + raw]
    packed = zlib.compress(raw, ZLIB_LEVEL)
    if len(packed) < len(raw):
        forms.append(bytes((ZLIB,)) + packed)
    return tuple(forms)


class StoredTextExact(Exact):
    """``content = 'text'`` in SQL: true when the column holds either stored form of it.

    The empty string has one form, so ``.exclude(content="")`` stays one equality test.
    A compressed form is what this zlib build writes at ZLIB_LEVEL: text compressed by
    another zlib (a different library build, or a changed level) may not match.
    """

    def get_prep_lookup(self) -> Any:
        if hasattr(self.rhs, "resolve_expression"):
            raise FieldError(
                f"{self.lhs.output_field.name} is stored compressed: compare it with a str, "
                "not an expression."
            )
        if self.rhs is None:
            return None
        return stored_forms(self.lhs.output_field.to_python(self.rhs))

    def get_db_prep_lookup(self, value: Any, connection: Any) -> tuple[str, list[Any]]:
        placeholders = "%s" if len(value) == 1 else f"({', '.join(['%s'] * len(value))})"
        return placeholders, [connection.Database.Binary(v) for v in value]

    def get_rhs_op(self, connection: Any, rhs: str) -> str:
        return super().get_rhs_op(connection, rhs) if len(self.rhs) == 1 else f"IN {rhs}"


class CompressedTextField(models.Field):
    description = _("Text (stored compressed when long)")

    def get_internal_type(self) -> str:
        return "BinaryField"  # BLOB on SQLite, bytea on PostgreSQL

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return connection.ops.binary_placeholder_sql(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        return None if value is None else unpack_text(value)

    def to_python(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return unpack_text(value)  # a stored value, e.g. read with a raw cursor
        return str(value)

    def get_prep_value(self, value: Any) -> bytes | None:
        value = super().get_prep_value(value)  # resolves lazy translations
        if value is None:
            return None
        text = self.to_python(value)
        if not text:
            return EMPTY  # no threshold needed: keeps lookups and empty writes query-free
        return pack_text(text, threshold=configured_threshold())

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        return None if value is None else connection.Database.Binary(value)

    def value_to_string(self, obj: models.Model) -> str:
        return self.value_from_object(obj)  # dumpdata shows the text, loaddata takes it back

    def formfield(self, **kwargs: Any) -> forms.Field:
        return super().formfield(**{"widget": forms.Textarea, **kwargs})

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name == "exact":
            return StoredTextExact
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None  # contains, icontains, in, gt...: SQL cannot see inside compressed bytes

    def get_transform(self, name: str) -> Any:
        return None
