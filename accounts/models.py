"""Accounts: the User (role is the source of truth), personal API tokens, token usage and the
append-only audit log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Role(models.TextChoices):
    ADMIN = "admin", _("Admin")
    USER = "user", _("User")


class Theme(models.TextChoices):
    """The page colours a user chose; "system" follows the device (prefers-color-scheme)."""

    SYSTEM = "system", pgettext_lazy("theme", "System")
    LIGHT = "light", _("Light")
    DARK = "dark", _("Dark")


class ParleyUserManager(UserManager):
    """`createsuperuser` makes an ADMIN; `is_staff`/`is_superuser` always follow the role."""

    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra: Any
    ) -> User:
        extra["role"] = Role.ADMIN
        extra["approved"] = True
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return super().create_superuser(username, email, password, **extra)


class User(AbstractUser):
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.USER)
    approved = models.BooleanField(
        _("approved"),
        default=True,
        help_text=_("Unapproved accounts can log in only to a 'waiting for approval' page."),
    )
    store_api_chats = models.BooleanField(
        _("Keep API conversations"),
        default=False,
        help_text=_(
            "Save conversations made through the API as chats you can open here. Off: "
            "Parley forwards them and keeps only the token counts."
        ),
    )
    theme = models.CharField(
        _("Theme"),
        max_length=8,
        choices=Theme.choices,
        default=Theme.SYSTEM,
        help_text=_("System follows your device's light or dark setting."),
    )
    # Preferences (the Preferences page). An empty language follows the browser.
    language = models.CharField(
        _("Language"),
        max_length=16,
        blank=True,
        default="",
        choices=[("", _("Browser's language")), *settings.LANGUAGES],
    )
    default_model = models.ForeignKey(
        "models_registry.ModelConfig",
        verbose_name=_("Default model"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Chosen for you when you start a new chat."),
    )
    enter_to_send = models.BooleanField(
        _("Enter sends the message"),
        default=True,
        help_text=_("Off: Enter starts a new line and Ctrl+Enter (⌘+Enter) sends."),
    )
    system_prompt = models.TextField(
        _("Your system prompt"),
        blank=True,
        default="",
        max_length=4000,
        help_text=_("Sent before the model's own system prompt in chats you start from now on."),
    )

    objects = ParleyUserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="accounts_user_role_valid"
            ),
            # The flags Django's admin and permissions read are derived from the role.
            models.CheckConstraint(
                condition=(
                    Q(role=Role.ADMIN, is_staff=True, is_superuser=True)
                    | Q(role=Role.USER, is_staff=False, is_superuser=False)
                ),
                name="accounts_user_flags_follow_role",
            ),
            models.CheckConstraint(
                condition=Q(theme__in=Theme.values), name="accounts_user_theme_valid"
            ),
            models.CheckConstraint(
                condition=Q(language__in=["", *(code for code, _name in settings.LANGUAGES)]),
                name="accounts_user_language_valid",
            ),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.sync_flags_with_role()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "role" in update_fields:
            kwargs["update_fields"] = {*update_fields, "is_staff", "is_superuser"}
        super().save(*args, **kwargs)

    def sync_flags_with_role(self) -> None:
        is_admin = self.role == Role.ADMIN
        self.is_staff = is_admin
        self.is_superuser = is_admin

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN and self.is_active


class TokenStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


class ApiToken(models.Model):
    """A personal token for the OpenAI-compatible /v1 gateway; see accounts.api_tokens.

    The token itself is never stored: it is shown once when created, and only its hash
    (to find it) and its first characters (to recognise it in a list) are kept.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(
        _("prefix"),
        max_length=16,
        help_text=_("The first characters of the token, to recognise it."),
    )
    # SHA-256 hex of the whole token. A fast hash is right here, unlike for passwords: the
    # token carries 256 random bits, so there is nothing to guess or brute-force from the
    # hash, and an unsalted hash lets every API request find its row through this unique
    # index in one lookup (a salted slow hasher would need a scan and ~100 ms per request).
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def __repr__(self) -> str:
        return f"<ApiToken {self.pk}: {self.name!r} {self.prefix}… of user {self.user_id}>"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    @property
    def status(self) -> TokenStatus:
        """What the lists show; a revoked token stays revoked after its expiry date."""
        if self.is_revoked:
            return TokenStatus.REVOKED
        if self.is_expired:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE


class UsageSource(models.TextChoices):
    CHAT = "chat", _("Chat pages")
    API = "api", _("API")


class TokenUsage(models.Model):
    """Tokens one user spent on one model in one day through one way in; see accounts.usage.

    One row per (user, model, day, source), incremented in place by `record_usage`, so the
    table grows with days x models, never with the number of requests.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="token_usage",
    )
    model_config = models.ForeignKey(
        "models_registry.ModelConfig",
        verbose_name=_("model"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The model's name when it was used: the row still names it after the model is deleted.
    model_name = models.CharField(_("model name"), max_length=100)
    day = models.DateField(_("day"))
    source = models.CharField(_("source"), max_length=8, choices=UsageSource.choices)
    requests = models.PositiveIntegerField(_("requests"), default=0)
    prompt_tokens = models.PositiveBigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.PositiveBigIntegerField(_("completion tokens"), default=0)

    class Meta:
        verbose_name = _("token usage")
        verbose_name_plural = _("token usage")
        constraints = [
            # The conflict target of record_usage's upsert: keep the two in step.
            models.UniqueConstraint(
                fields=["user", "model_config", "day", "source"],
                name="accounts_tokenusage_one_row_per_day",
            ),
            models.CheckConstraint(
                condition=Q(source__in=UsageSource.values),
                name="accounts_tokenusage_source_valid",
            ),
        ]
        indexes = [models.Index(fields=["day"], name="accounts_tokenusage_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.model_name} {self.source}: {self.total_tokens}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class AuditAction(models.TextChoices):
    LOGIN = "login", _("Log-in")
    LOGIN_FAILED = "login_failed", _("Failed log-in")
    LOGIN_LOCKED = "login_locked", _("Log-in locked out")
    LOGOUT = "logout", _("Log-out")
    SIGNUP = "signup", _("Sign-up")
    APPROVAL = "approval", _("Approval")
    ROLE_CHANGE = "role_change", _("Role change")
    ACTIVE_CHANGE = "active_change", _("Active change")
    PASSWORD_CHANGE = "password_change", _("Password change")
    USER_CREATE = "user_create", _("User created by admin")
    MODEL_CREATE = "model_create", _("Model created")
    MODEL_UPDATE = "model_update", _("Model updated")
    MODEL_DELETE = "model_delete", _("Model deleted")
    API_KEY_SET = "api_key_set", _("API key set or replaced")
    KEY_ROTATION = "key_rotation", _("Encryption key rotation")
    SETTING_CHANGE = "setting_change", _("System setting change")
    CHAT_DELETE = "chat_delete", _("Chat deleted")
    EXPORT = "export", _("Export")
    BACKUP = "backup", _("Backup")
    RESTORE = "restore", _("Restore")
    CLEANUP = "cleanup", _("Clean-up")
    API_TOKEN_CREATE = "api_token_create", _("API token created")
    API_TOKEN_REVOKE = "api_token_revoke", _("API token revoked")


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """A security-relevant action. Append-only; never a secret or message content."""

    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too, so the record still names the actor after the account is deleted.
    actor_username = models.CharField(_("actor name"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    target = models.CharField(_("target"), max_length=255, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=AuditAction.values), name="accounts_auditevent_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)
