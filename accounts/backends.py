"""Django's ModelBackend, with the signed-in user loaded by one precompiled SELECT.

``get_user`` runs on every signed-in request; ``config.rows`` skips the ORM's query
compilation (docs/performance.md). Authentication, permissions and the rules for
inactive users are ModelBackend's.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import router

from config.rows import ModelColumns, fetch_one, is_storable_id


@functools.cache
def _columns() -> tuple[ModelColumns, str]:
    columns = ModelColumns(get_user_model(), "u")
    pk = columns.fields[columns.pk_index].column
    sql = f'SELECT {columns.sql} FROM {columns.table} WHERE u."{pk}" = %s'  # noqa: S608 - names
    return columns, sql


class UserBackend(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        columns, sql = _columns()
        if not isinstance(user_id, int) or not is_storable_id(user_id):
            return None
        using = router.db_for_read(columns.model)
        row = fetch_one(sql, [user_id], using=using)
        user = columns.instance(row, using=using) if row is not None else None
        return user if user is not None and self.user_can_authenticate(user) else None


# The backend's dotted path, as settings name it and sessions store it.
PARLEY_BACKEND = f"{UserBackend.__module__}.{UserBackend.__qualname__}"
