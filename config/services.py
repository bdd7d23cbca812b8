"""Reading and changing the SystemSetting row.

Every request reads the settings (site name, sign-up mode, limits), so they are served
from the shared cache and invalidated when the row is saved (see `config.signals`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from config.models import SINGLETON_PK, SystemSetting

if TYPE_CHECKING:
    from accounts.models import User

SYSTEM_SETTING_CACHE_KEY = "system-setting:v1"

# The row as this request first read it (set by SystemSettingPerRequestMiddleware): the
# send path used to read the cache three times before the first token, a page up to
# four. None outside a request (commands, streamed bodies): every call reads the cache.
_read_in_this_request: ContextVar[list[SystemSetting] | None] = ContextVar(
    "system_setting_read_in_this_request", default=None
)


def get_system_setting() -> SystemSetting:
    """The settings row, from the cache when possible; created with defaults if missing.

    Within a request, read once: the request sees one version of the settings. Treat the
    row as read-only; change it with ``system_setting_update``.
    """
    memo = _read_in_this_request.get()
    if memo:
        return memo[0]
    setting = cache.get(SYSTEM_SETTING_CACHE_KEY)
    if setting is None:
        setting, _ = SystemSetting.objects.get_or_create(pk=SINGLETON_PK)
        cache.set(SYSTEM_SETTING_CACHE_KEY, setting, timeout=None)
    if memo is not None:
        memo.append(setting)
    return setting


class SystemSettingPerRequestMiddleware:
    """Lets ``get_system_setting`` read the shared cache once per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _read_in_this_request.set([])
        try:
            return self.get_response(request)
        finally:
            _read_in_this_request.reset(token)


def lock_system_setting() -> SystemSetting:
    """The settings row, locked for the current transaction (a mutex for rare writes)."""
    SystemSetting.objects.get_or_create(pk=SINGLETON_PK)
    return SystemSetting.objects.select_for_update().get(pk=SINGLETON_PK)


def invalidate_system_setting_cache() -> None:
    memo = _read_in_this_request.get()
    if memo:
        memo.clear()  # the rest of this request reads the new row
    cache.delete(SYSTEM_SETTING_CACHE_KEY)
    # A reader between our save and the commit may have cached the old row again.
    transaction.on_commit(lambda: cache.delete(SYSTEM_SETTING_CACHE_KEY))


def system_setting_update(
    *,
    setting: SystemSetting,
    changed_fields: list[str],
    actor: User | None,
    request: HttpRequest | None = None,
) -> SystemSetting:
    """Save the edited settings row and record which fields changed (not their values)."""
    from accounts.audit import audit_record
    from accounts.models import AuditAction

    with transaction.atomic():
        setting.full_clean()
        setting.save()
        if changed_fields:
            audit_record(
                AuditAction.SETTING_CHANGE,
                actor=actor,
                target="system settings",
                request=request,
                detail={"changed": sorted(changed_fields)},
            )
    return setting
