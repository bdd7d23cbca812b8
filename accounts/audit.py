"""The audit trail: one function that records a security-relevant action.

Callers pass what happened, never secrets or message content: `audit_record` refuses a
detail key that names one, so a careless caller fails in tests instead of leaking.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import AuditAction, AuditEvent

if TYPE_CHECKING:
    from accounts.models import User

FORBIDDEN_DETAIL_KEYS = frozenset(
    {"password", "api_key", "key", "secret", "token", "content", "message", "prompt"}
)


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: REMOTE_ADDR, or the proxy's X-Forwarded-For when trusted."""
    if request is None:
        return None
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.PARLEY_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # The right-most entry is the one our own proxy appended; the rest is client-supplied.
        if forwarded:
            candidate = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def audit_record(
    action: AuditAction,
    *,
    actor: User | None = None,
    target: str = "",
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    detail = detail or {}
    leaked = FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in detail)
    if leaked:
        raise ValueError(f"audit detail may not carry {sorted(leaked)}")
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_username=actor.get_username() if actor is not None else "",
        target=str(target)[:255],
        ip=client_ip(request),
        detail=detail,
    )
