"""Compressing message text stored before compression existed (or under a higher threshold).

New writes are compressed by ``chat.fields.CompressedTextField`` itself; this rewrites
rows already in the database: those whose ``content`` or ``reasoning`` is stored plain
(type byte 0x00) and longer than the threshold. It reads the stored bytes with SQL (the
ORM would hand back decoded text), walks the table by id in keyset batches, compresses
outside any transaction, then writes each batch in its own short transaction. Every
write is a compare-and-swap on the old bytes, so a message edited meanwhile (a streaming
answer's partial save) is left alone rather than overwritten with stale text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max

from chat.fields import PLAIN, ZLIB, pack_text, pinned_threshold, unpack_text
from chat.models import Message

COLUMNS = ("content", "reasoning")


@dataclass
class CompressionProgress:
    batch: int
    last_id: int  # every message with an id up to this one has been looked at
    max_id: int
    rows_rewritten: int = 0  # messages with at least one value compressed
    values_rewritten: int = 0  # content and reasoning counted apart
    bytes_before: int = 0  # stored size of the rewritten values, before
    bytes_after: int = 0  # and after
    left_plain: int = 0  # long values that do not get smaller compressed
    changed_meanwhile: int = 0  # values edited while this ran: left for the next run

    def add(self, other: CompressionProgress) -> None:
        for name in (
            "rows_rewritten",
            "values_rewritten",
            "bytes_before",
            "bytes_after",
            "left_plain",
            "changed_meanwhile",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _candidates(after_id: int, max_id: int, threshold: int, limit: int) -> list[tuple]:
    """(id, content, reasoning) as stored, for rows with a long plain value, by id."""
    quote = connection.ops.quote_name
    plain_and_long = " OR ".join(
        f"(LENGTH({quote(c)}) > %s AND SUBSTR({quote(c)}, 1, 1) = %s)" for c in COLUMNS
    )
    columns = ", ".join(quote(c) for c in ("id", *COLUMNS))
    sql = (
        f"SELECT {columns} FROM {quote(Message._meta.db_table)} "  # noqa: S608 - names quoted
        f"WHERE id > %s AND id <= %s AND ({plain_and_long}) ORDER BY id LIMIT %s"
    )
    # Stored plain is 1 type byte + UTF-8, so "UTF-8 longer than threshold" is length > t + 1.
    marker = connection.Database.Binary(bytes((PLAIN,)))
    params: list[object] = [after_id, max_id]
    for _column in COLUMNS:
        params += [threshold + 1, marker]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return cursor.fetchall()


def _compress_batch(
    rows: list[tuple], threshold: int, progress: CompressionProgress, *, dry_run: bool
) -> None:
    changes: list[tuple[int, str, bytes, bytes]] = []
    for pk, *stored_values in rows:
        for column, stored in zip(COLUMNS, stored_values, strict=True):
            old = bytes(stored)
            if len(old) <= threshold + 1 or old[0] != PLAIN:
                continue
            new = pack_text(unpack_text(old), threshold=threshold)
            if new[0] == ZLIB:
                changes.append((pk, column, old, new))
            else:
                progress.left_plain += 1
    written = _write(changes) if changes and not dry_run else [True] * len(changes)
    rewritten_rows: set[int] = set()
    for (pk, _column, old, new), ok in zip(changes, written, strict=True):
        if ok:
            rewritten_rows.add(pk)
            progress.values_rewritten += 1
            progress.bytes_before += len(old)
            progress.bytes_after += len(new)
        else:
            progress.changed_meanwhile += 1
    progress.rows_rewritten += len(rewritten_rows)


def _write(changes: list[tuple[int, str, bytes, bytes]]) -> list[bool]:
    """Swap each value in one short transaction; False where the row changed meanwhile."""
    quote, binary = connection.ops.quote_name, connection.Database.Binary
    table = quote(Message._meta.db_table)
    written = []
    with transaction.atomic(), connection.cursor() as cursor:
        for pk, column, old, new in changes:
            cursor.execute(
                f"UPDATE {table} SET {quote(column)} = %s "  # noqa: S608 - names quoted
                f"WHERE id = %s AND {quote(column)} = %s",
                [binary(new), pk, binary(old)],
            )
            written.append(cursor.rowcount == 1)
    return written


def compress_stored_messages(
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    on_batch: Callable[[CompressionProgress], None] | None = None,
) -> CompressionProgress:
    """Compress every long plain value; returns the totals (``dry_run``: what it would do)."""
    max_id = Message.objects.aggregate(top=Max("id"))["top"] or 0
    total = CompressionProgress(batch=0, last_id=0, max_id=max_id)
    with pinned_threshold() as threshold:
        while True:
            rows = _candidates(total.last_id, max_id, threshold, batch_size)
            if not rows:
                total.last_id = max_id
                return total
            batch = CompressionProgress(batch=total.batch + 1, last_id=rows[-1][0], max_id=max_id)
            _compress_batch(rows, threshold, batch, dry_run=dry_run)
            total.add(batch)
            total.batch, total.last_id = batch.batch, batch.last_id
            if on_batch is not None:
                on_batch(batch)
