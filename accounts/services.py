"""Account actions. Views, admin and commands all call these, so no path skips a rule."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from accounts.audit import audit_record
from accounts.models import AuditAction, Role, Theme, User
from config.models import SignupMode
from config.services import get_system_setting, lock_system_setting


class SignupClosed(Exception):
    """Sign-up is closed and the instance already has accounts."""


def signup_is_open() -> bool:
    """Whether the sign-up page accepts new accounts (always, while there is no account)."""
    if get_system_setting().signup_mode != SignupMode.CLOSED:
        return True
    return not User.objects.exists()


def user_signup(
    *, username: str, password: str, email: str = "", request: HttpRequest | None = None
) -> User:
    """Create an account from the sign-up page. The very first account becomes ADMIN."""
    with transaction.atomic():
        # Locking the settings row serialises sign-ups, so two people signing up on a
        # fresh instance cannot both become the first ADMIN.
        setting = lock_system_setting()
        is_first = not User.objects.exists()
        if not is_first and setting.signup_mode == SignupMode.CLOSED:
            raise SignupClosed
        user = User.objects.create_user(
            username=username,
            email=email,
            password=password,
            role=Role.ADMIN if is_first else Role.USER,
            approved=is_first or setting.signup_mode != SignupMode.APPROVAL,
        )
        audit_record(
            AuditAction.SIGNUP,
            actor=user,
            target=user.username,
            request=request,
            detail={"role": user.role, "approved": user.approved, "first_account": is_first},
        )
    return user


def has_other_active_admin(user: User) -> bool:
    return User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk).exists()


def check_admin_change(*, user: User, role: str, is_active: bool) -> None:
    """Refuse a change that would leave the instance without an active ADMIN."""
    if user.pk is None or not (user.role == Role.ADMIN and user.is_active):
        return
    if (role != Role.ADMIN or not is_active) and not has_other_active_admin(user):
        raise ValidationError(
            _("This is the last active admin. Make another account admin first."),
            code="last_admin",
        )


def user_set_role(
    *, user: User, role: str, actor: User | None, request: HttpRequest | None = None
) -> User:
    if role not in Role.values:
        raise ValidationError(_("Unknown role."), code="invalid_role")
    if user.role == role:
        return user
    with transaction.atomic():
        check_admin_change(user=user, role=role, is_active=user.is_active)
        previous = user.role
        user.role = role
        if role == Role.ADMIN:
            user.approved = True
        user.save(update_fields=["role", "approved"])
        audit_record(
            AuditAction.ROLE_CHANGE,
            actor=actor,
            target=user.username,
            request=request,
            detail={"from": previous, "to": role},
        )
    return user


def user_set_active(
    *, user: User, is_active: bool, actor: User | None, request: HttpRequest | None = None
) -> User:
    if user.is_active == is_active:
        return user
    with transaction.atomic():
        check_admin_change(user=user, role=user.role, is_active=is_active)
        user.is_active = is_active
        user.save(update_fields=["is_active"])
        audit_record(
            AuditAction.ACTIVE_CHANGE,
            actor=actor,
            target=user.username,
            request=request,
            detail={"is_active": is_active},
        )
    return user


def user_set_approved(
    *, user: User, approved: bool, actor: User | None, request: HttpRequest | None = None
) -> User:
    if user.approved == approved:
        return user
    with transaction.atomic():
        user.approved = approved
        user.save(update_fields=["approved"])
        audit_record(
            AuditAction.APPROVAL,
            actor=actor,
            target=user.username,
            request=request,
            detail={"approved": approved},
        )
    return user


def users_approve(
    *, users: Iterable[User], actor: User | None, request: HttpRequest | None = None
) -> int:
    """Approve waiting accounts; returns how many changed."""
    changed = 0
    for user in users:
        if not user.approved:
            user_set_approved(user=user, approved=True, actor=actor, request=request)
            changed += 1
    return changed


def users_deactivate(
    *, users: Iterable[User], actor: User | None, request: HttpRequest | None = None
) -> int:
    """Deactivate accounts (never the last active admin); returns how many changed."""
    changed = 0
    with transaction.atomic():
        for user in users:
            if user.is_active:
                user_set_active(user=user, is_active=False, actor=actor, request=request)
                changed += 1
    return changed


def user_created_by_admin(
    *, user: User, actor: User | None, request: HttpRequest | None = None
) -> None:
    audit_record(
        AuditAction.USER_CREATE,
        actor=actor,
        target=user.username,
        request=request,
        detail={"role": user.role},
    )


def password_changed(
    *, user: User, actor: User | None = None, request: HttpRequest | None = None
) -> None:
    """Record a changed (or removed) password; the actor is the user unless an admin did it."""
    audit_record(
        AuditAction.PASSWORD_CHANGE, actor=actor or user, target=user.username, request=request
    )


def stored_password_hash(user_pk: object) -> str | None:
    """The saved hash, for pages whose form saves the password itself: compared before and
    after, it tells whether the password really changed (every save gets a new salt)."""
    return User.objects.filter(pk=user_pk).values_list("password", flat=True).first()


def get_single_user() -> User:
    """The one local ADMIN of single-user mode, created on first use."""
    username = settings.PARLEY_SINGLE_USER_NAME
    user = User.objects.filter(username=username).first()
    if user is None:
        with transaction.atomic():
            user, created = User.objects.get_or_create(
                username=username, defaults={"role": Role.ADMIN, "approved": True}
            )
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
    if user.role != Role.ADMIN or not user.approved or not user.is_active:
        user.role, user.approved, user.is_active = Role.ADMIN, True, True
        user.save(update_fields=["role", "approved", "is_active"])
    return user


def user_set_store_api_chats(*, user: User, enabled: bool) -> None:
    """The user's own choice whether the /v1 gateway saves their API conversations as chats."""
    if user.store_api_chats == enabled:
        return
    user.store_api_chats = enabled
    user.save(update_fields=["store_api_chats"])


def user_set_theme(*, user: User, theme: str) -> None:
    """The user's colour theme for every page: system (follows the device), light or dark."""
    if theme not in Theme.values:
        raise ValidationError(_("Unknown theme."), code="invalid_theme")
    if user.theme == theme:
        return
    user.theme = theme
    user.save(update_fields=["theme"])


PREFERENCE_FIELDS = ("language", "theme", "default_model", "enter_to_send", "system_prompt")


def user_save_preferences(*, user: User, changed: list[str]) -> None:
    """Save the Preferences page's fields that changed (only those: other writers of the
    user row, such as the last-login stamp, are never overwritten)."""
    fields = [name for name in changed if name in PREFERENCE_FIELDS]
    if fields:
        user.save(update_fields=fields)
