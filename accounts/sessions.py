"""Django's database sessions, loaded without compiling a queryset (``SESSION_ENGINE``).

Every signed-in request loads its session before anything else; ``config.rows`` does it
with one precompiled SELECT. Stored sessions, cookies and every other behaviour are
Django's own (``django.contrib.sessions.backends.db``).
"""

from __future__ import annotations

import functools

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.utils import timezone

from accounts.backends import PARLEY_BACKEND
from config.rows import ModelColumns, fetch_one

# Sessions signed in before Parley had its own backend name Django's; both load a user
# the same way (``accounts.backends``), so such a session stays signed in.
DJANGO_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@functools.cache
def _columns() -> tuple[ModelColumns[Session], str]:
    columns = ModelColumns(Session, "s")
    sql = (
        f"SELECT {columns.sql} FROM {columns.table} "  # noqa: S608 - model names only
        "WHERE s.session_key = %s AND s.expire_date > %s"
    )
    return columns, sql


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        columns, sql = _columns()
        if self.session_key is None:  # Django's setter turned a malformed key into None
            return None
        using = router.db_for_read(Session)
        expire_date = Session._meta.get_field("expire_date")
        now = expire_date.get_db_prep_value(timezone.now(), connections[using])
        row = fetch_one(sql, [self.session_key, now], using=using)
        if row is None:
            self._session_key = None
            return None
        return columns.instance(row, using=using)

    def load(self) -> dict:
        data = super().load()
        if data.get("_auth_user_backend") == DJANGO_MODEL_BACKEND:
            data["_auth_user_backend"] = PARLEY_BACKEND
        return data
