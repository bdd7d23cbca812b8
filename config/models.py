"""SystemSetting: the one typed row of site-wide settings, edited in the admin."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

SINGLETON_PK = 1


class SignupMode(models.TextChoices):
    CLOSED = "closed", _("Closed: only the admin creates accounts")
    OPEN = "open", _("Open: anyone can sign up")
    APPROVAL = "approval", _("Open, but new accounts wait for an admin's approval")


class SystemSettingQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("the system settings row cannot be deleted")


class SystemSetting(models.Model):
    """Site-wide settings. Exactly one row (pk=1), read through the cache in `services`."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    site_name = models.CharField(_("site name"), max_length=80, default="Parley")
    signup_mode = models.CharField(
        _("sign-up"), max_length=16, choices=SignupMode.choices, default=SignupMode.APPROVAL
    )
    allow_personal_models = models.BooleanField(_("users may add personal models"), default=True)
    allow_private_endpoints = models.BooleanField(
        _("personal models may use private-network endpoints"),
        default=False,
        help_text=_(
            "Allows addresses like 192.168.x.x or localhost for personal models. Cloud "
            "metadata and link-local addresses stay refused."
        ),
    )
    hide_system_model_urls = models.BooleanField(
        _("hide system models' API URLs from users"), default=False
    )
    default_model = models.ForeignKey(
        "models_registry.ModelConfig",
        verbose_name=_("default model"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"owner__isnull": True},
    )
    max_message_chars = models.PositiveIntegerField(
        _("maximum message length (characters)"), default=32000
    )
    messages_per_minute = models.PositiveIntegerField(
        _("messages per minute per user"), default=20, help_text=_("0 means no limit.")
    )
    daily_token_quota = models.PositiveIntegerField(
        _("Daily token quota per user"),
        default=0,
        help_text=_(
            "Prompt and completion tokens each user may use per day; 0 means no limit. "
            "The chat pages and the API both count."
        ),
    )
    compression_threshold_bytes = models.PositiveIntegerField(
        _("compress messages longer than (bytes)"), default=1024
    )
    chat_retention_days = models.PositiveIntegerField(
        _("delete inactive chats after (days)"), default=0, help_text=_("0 keeps chats forever.")
    )
    audit_retention_days = models.PositiveIntegerField(
        _("keep audit events for (days)"), default=365, help_text=_("0 keeps them forever.")
    )
    # A known value encrypted with the API-key encryption keys: a system check decrypts
    # it on every manage.py call, so a lost or wrong key fails loudly, not silently.
    encryption_canary = models.TextField(editable=False, blank=True, default="")
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = SystemSettingQuerySet.as_manager()

    class Meta:
        verbose_name = _("system settings")
        verbose_name_plural = _("system settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(id=SINGLETON_PK), name="config_systemsetting_singleton"
            ),
            models.CheckConstraint(
                condition=Q(signup_mode__in=SignupMode.values),
                name="config_systemsetting_signup_mode_valid",
            ),
            models.CheckConstraint(
                condition=Q(max_message_chars__gte=1),
                name="config_systemsetting_max_message_chars_positive",
            ),
        ]

    def __str__(self) -> str:
        return str(_("System settings"))

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("the system settings row cannot be deleted")
