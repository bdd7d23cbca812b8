"""Audit records for Django's own auth events (site and admin log-in alike)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.audit import audit_record
from accounts.models import AuditAction


@receiver(user_logged_in, dispatch_uid="parley-audit-login")
def _logged_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    audit_record(AuditAction.LOGIN, actor=user, target=user.get_username(), request=request)


@receiver(user_logged_out, dispatch_uid="parley-audit-logout")
def _logged_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(AuditAction.LOGOUT, actor=user, target=user.get_username(), request=request)


@receiver(user_login_failed, dispatch_uid="parley-audit-login-failed")
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # `credentials` is already scrubbed of the password by Django; keep only the name.
    audit_record(
        AuditAction.LOGIN_FAILED,
        target=str(credentials.get("username", ""))[:150],
        request=request,
    )
