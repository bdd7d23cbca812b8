"""Model instances from hand-written SELECTs, for the few lookups every request makes.

Compiling a queryset costs the ORM 0.15-0.3 ms per lookup, several times what the query
itself costs on SQLite; the session, the signed-in user and the chat are looked up on
every chat request, before the upstream is asked (docs/performance.md). ``ModelColumns``
writes a model's column list once and turns a row back into an instance with the very
converters the ORM applies (dates, booleans, UUIDs, JSON, our compressed text field),
so an instance read here equals one from ``Model.objects.get()``, on SQLite and
PostgreSQL alike (``config/tests/test_rows.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


class ModelColumns(Generic[M]):
    """A model's concrete columns under a table alias, and the way back from a row."""

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        self.alias = alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self.pk_index = self.attnames.index(model._meta.pk.attname)
        # Double quotes name a column on both SQLite and PostgreSQL.
        self.sql = ", ".join(f'{alias}."{field.column}"' for field in self.fields)
        self.table = f'"{model._meta.db_table}" {alias}'
        # Per connection (one per thread): the converters are bound to its operations.
        self._converters: weakref.WeakKeyDictionary[
            BaseDatabaseWrapper, list[tuple[int, Any, list[Converter]]]
        ] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self.fields)

    def _converters_for(self, connection: BaseDatabaseWrapper) -> list:
        converters = self._converters.get(connection)
        if converters is None:
            converters = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.alias)
                found = connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                )
                if found:
                    converters.append((index, column, found))
            self._converters[connection] = converters
        return converters

    def instance(self, values: Sequence[Any], using: str = "default") -> M | None:
        """The instance for this model's slice of a row; None when it is all NULL (no
        row on that side of a LEFT JOIN)."""
        if values[self.pk_index] is None:
            return None
        connection = connections[using]
        values = list(values)
        for index, column, converters in self._converters_for(connection):
            value = values[index]
            for convert in converters:
                value = convert(value, column, connection)
            values[index] = value
        return self.model.from_db(using, self.attnames, values)


# The range of a 64-bit primary key: a number from a URL outside it matches no row (the
# ORM says so too), and SQLite would refuse to bind it.
MAX_ID = 2**63 - 1


def is_storable_id(value: int) -> bool:
    return 0 < value <= MAX_ID


def fetch_one(sql: str, params: Sequence[Any], using: str = "default") -> tuple | None:
    """The first row of ``sql``, or None."""
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def insert_all(objs: Sequence[M], using: str = "default") -> None:
    """INSERT new ``objs`` of one model in one statement and set their primary keys.

    What ``bulk_create`` does for new rows, without compiling it (~0.8 ms for the two
    rows of every sent message). Each field prepares its own value (defaults, auto_now,
    compression), as in a save. One statement inserts in order under the write lock, so
    the returned ids, sorted, belong to ``objs`` in order. Without RETURNING (SQLite
    older than 3.35) this is ``bulk_create``.
    """
    if not objs:
        return
    model = type(objs[0])
    connection = connections[using]
    if not connection.features.can_return_rows_from_bulk_insert:
        model._base_manager.using(using).bulk_create(objs)
        return
    meta = model._meta
    fields = [field for field in meta.concrete_fields if field is not meta.auto_field]
    rows, params = [], []
    for obj in objs:
        placeholders = []
        for field in fields:
            value = field.get_db_prep_save(field.pre_save(obj, add=True), connection)
            custom = getattr(field, "get_placeholder", None)  # e.g. a binary field's
            placeholders.append(custom(value, None, connection) if custom else "%s")
            params.append(value)
        rows.append(f"({', '.join(placeholders)})")
    columns = ", ".join(f'"{field.column}"' for field in fields)
    sql = (
        f'INSERT INTO "{meta.db_table}" ({columns}) VALUES {", ".join(rows)} '  # noqa: S608
        f'RETURNING "{meta.pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = sorted(row[0] for row in cursor.fetchall())
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = using
