"""Personal API tokens: create, revoke, authenticate (the /v1 gateway's one entry point).

A token is "prly_" + 43 URL-safe characters (256 random bits). It exists in clear only in
the return value of `create_api_token`; the database keeps its SHA-256 (see
`ApiToken.token_hash`) and its first characters, so a stolen database or backup holds no
usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import ApiToken, AuditAction

if TYPE_CHECKING:
    from accounts.models import User

TOKEN_PREFIX = "prly_"  # noqa: S105 - the public marker of every token, not a secret
# The prefix kept in clear: "prly_" and 7 random characters (42 of the 256 bits), enough
# to tell one's tokens apart and far too few to help guess the rest.
SHOWN_PREFIX_LENGTH = 12
# A real token is 48 characters; anything much longer is refused before it is hashed.
MAX_TOKEN_LENGTH = 200
# last_used_at is a hint for the owner, not a log: written at most once a minute per token,
# so a busy client does not turn every API request into a database write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length


def generate_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode("ascii")).hexdigest()


def _target(token: ApiToken) -> str:
    return f"api token {token.pk}"


def create_api_token(
    *,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
    via: str = "",
) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the raw token, which nothing keeps.

    `actor` is who did it (the user by default); `via` ("command", ...) goes in the audit
    detail when the action did not come from the user's own page.
    """
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            _("A token needs a name of 1 to %(max)d characters.") % {"max": NAME_MAX_LENGTH},
            code="invalid_name",
        )
    if not user.is_active:
        raise ValidationError(_("This account is inactive."), code="inactive_user")
    if expires_at is not None and (timezone.is_naive(expires_at) or expires_at <= timezone.now()):
        raise ValidationError(_("The expiry date must be in the future."), code="invalid_expiry")
    raw_token = generate_raw_token()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=raw_token[:SHOWN_PREFIX_LENGTH],
            token_hash=hash_token(raw_token),
            expires_at=expires_at,
        )
        detail: dict[str, object] = {
            "owner": user.get_username(),
            "name": name,
            "prefix_shown": token.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        }
        if via:
            detail["via"] = via
        audit_record(
            AuditAction.API_TOKEN_CREATE,
            actor=actor or user,
            target=_target(token),
            request=request,
            detail=detail,
        )
    return token, raw_token


def revoke_api_token(
    *, token: ApiToken, actor: User | None, request: HttpRequest | None = None
) -> None:
    """Revoke at once (the next request with it is refused). Revoking twice changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        # The conditional UPDATE makes two concurrent revocations record one audit event.
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not revoked:
            token.refresh_from_db(fields=["revoked_at"])
            return
        token.revoked_at = now
        audit_record(
            AuditAction.API_TOKEN_REVOKE,
            actor=actor,
            target=_target(token),
            request=request,
            detail={
                "owner": token.user.get_username(),
                "name": token.name,
                "prefix_shown": token.prefix,
            },
        )


def authenticate_api_token(raw: str) -> ApiToken | None:
    """The usable token `raw` names, with `.user` loaded; None for anything else.

    None for malformed input, an unknown, revoked or expired token, and a token whose
    owner is inactive or not approved. Never raises on bad input.
    """
    if (
        not isinstance(raw, str)
        or len(raw) > MAX_TOKEN_LENGTH
        or not raw.startswith(TOKEN_PREFIX)
        or not raw.isascii()
    ):
        return None
    digest = hash_token(raw)
    token = ApiToken.objects.select_related("user").filter(token_hash=digest).first()
    # The index lookup found the row by the hash; comparing in constant time as well costs
    # nothing and keeps this check timing-safe even if the lookup ever changes.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active or not token.user.approved:
        return None
    _record_use(token, now)
    return token


def _record_use(token: ApiToken, now: datetime) -> None:
    cutoff = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > cutoff:
        return
    # Conditional, so concurrent requests with the same token write once between them.
    written = (
        ApiToken.objects.filter(pk=token.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
        .update(last_used_at=now)
    )
    if written:
        token.last_used_at = now


def tokens_for_user(user: User) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first: the only rows the token pages may touch."""
    return ApiToken.objects.filter(user=user)


def get_token_for_user(user: User, pk: object) -> ApiToken:
    """One of the user's tokens; Http404 for anyone else's, as if it did not exist."""
    return get_object_or_404(tokens_for_user(user), pk=pk)
