"""Model configurations: system models (owner NULL, visible to all) and personal ones."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from models_registry import crypto

if TYPE_CHECKING:
    from accounts.models import User

API_KEY_MASK_TAIL = 4


def mask_api_key(api_key: str) -> str:
    """A key as a person may see it again after saving: its prefix and last four characters."""
    if not api_key:
        return ""
    if len(api_key) <= 8:
        return "…" + api_key[-2:]
    prefix = api_key[:3] if api_key[2:3] == "-" else api_key[:2]
    return f"{prefix}…{api_key[-API_KEY_MASK_TAIL:]}"


PERSONAL_ID_PREFIX = "personal/"
API_ID_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
    _("Use letters, digits, dots, colons, dashes and underscores; start with a letter or digit."),
)


class ApiKeyUnreadable(Exception):
    """The stored key does not decrypt (wrong or retired encryption key): re-enter it."""


class KeyStatus(models.TextChoices):
    NONE = "none", _("No API key")
    OK = "ok", _("Stored")
    UNREADABLE = "unreadable", _("Cannot be read: re-enter the API key")


class ModelConfigQuerySet(models.QuerySet):
    def system(self) -> ModelConfigQuerySet:
        return self.filter(owner__isnull=True)

    def active(self) -> ModelConfigQuerySet:
        return self.filter(is_active=True)

    def visible_to(self, user: User) -> ModelConfigQuerySet:
        """System models plus the user's own personal models."""
        return self.filter(Q(owner__isnull=True) | Q(owner=user))


class ModelConfig(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_models",
        help_text=_("Empty for a system model, which every user can chat with."),
    )
    name = models.CharField(_("name"), max_length=100)
    api_url = models.URLField(
        _("API base URL"),
        max_length=500,
        help_text=_("The OpenAI-compatible base URL, e.g. https://api.openai.com/v1"),
    )
    # Only ciphertext (models_registry.crypto) is stored here; set it with set_api_key().
    # It is write-only in every form and never rendered back, not even decrypted.
    api_key = models.TextField(_("API key (encrypted)"), blank=True, default="")
    # What a person may see again after saving: like "sk-…9f2c".
    api_key_hint = models.CharField(_("API key"), max_length=32, blank=True, default="")
    model = models.CharField(
        _("upstream model id"), max_length=200, help_text=_("e.g. gpt-4o-mini, deepseek-chat")
    )
    # The id API clients name this model by (/v1/models). Set once, from the name, and
    # never changed by a rename, so scripts and tools keep working.
    api_id = models.CharField(
        _("API model id"),
        max_length=100,
        blank=True,
        validators=[API_ID_VALIDATOR],
        help_text=_("The model id for Parley's API (/v1). Leave empty to derive it from the name."),
    )
    context_window = models.PositiveIntegerField(_("context window (tokens)"), default=8192)
    max_output_tokens = models.PositiveIntegerField(_("max output tokens"), default=1024)
    system_prompt = models.TextField(_("system prompt"), blank=True, default="")
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ModelConfigQuerySet.as_manager()

    class Meta:
        verbose_name = _("model")
        verbose_name_plural = _("models")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                "owner",
                Lower("name"),
                condition=Q(owner__isnull=False),
                name="models_registry_personal_name_unique",
                violation_error_message=_("You already have a model with this name."),
            ),
            models.UniqueConstraint(
                Lower("name"),
                condition=Q(owner__isnull=True),
                name="models_registry_system_name_unique",
                violation_error_message=_("A system model with this name already exists."),
            ),
            models.UniqueConstraint(
                "owner",
                Lower("api_id"),
                condition=Q(owner__isnull=False),
                name="models_registry_personal_api_id_unique",
                violation_error_message=_("You already have a model with this API model id."),
            ),
            models.UniqueConstraint(
                Lower("api_id"),
                condition=Q(owner__isnull=True),
                name="models_registry_system_api_id_unique",
                violation_error_message=_("A system model with this API model id already exists."),
            ),
            models.CheckConstraint(
                condition=Q(context_window__gte=1), name="models_registry_context_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_output_tokens__gte=1)
                & Q(max_output_tokens__lt=F("context_window")),
                name="models_registry_max_output_below_window",
                violation_error_message=_(
                    "Max output tokens must be at least 1 and smaller than the context window."
                ),
            ),
            models.CheckConstraint(
                condition=Q(api_url__startswith="http://") | Q(api_url__startswith="https://"),
                name="models_registry_api_url_http",
                violation_error_message=_("The API URL must start with http:// or https://."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Never the key, not even masked: reprs end up in logs and tracebacks.
        return f"<ModelConfig {self.pk}: {self.name!r} owner={self.owner_id}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.api_id:
            self.api_id = unique_api_id(self)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "api_id"}
        super().save(*args, **kwargs)

    @property
    def is_system(self) -> bool:
        return self.owner_id is None

    @property
    def public_id(self) -> str:
        """The id API clients use: personal models live under "personal/"."""
        return self.api_id if self.is_system else f"{PERSONAL_ID_PREFIX}{self.api_id}"

    @property
    def api_key_mask(self) -> str:
        return self.api_key_hint

    def set_api_key(self, plaintext: str) -> None:
        """Store a new key (encrypted) and its mask; "" removes the key."""
        if plaintext:
            self.api_key = crypto.encrypt(plaintext)
            self.api_key_hint = mask_api_key(plaintext)
        else:
            self.api_key = ""
            self.api_key_hint = ""

    def get_api_key(self) -> str:
        """The plaintext key for an upstream call; raises ApiKeyUnreadable if it cannot open."""
        if not self.api_key:
            return ""
        try:
            return crypto.decrypt(self.api_key)
        except (crypto.DecryptionFailed, crypto.EncryptionKeyError):
            raise ApiKeyUnreadable(
                _("The stored API key cannot be read. Re-enter the API key.")
            ) from None

    @property
    def key_status(self) -> str:
        if not self.api_key:
            return KeyStatus.NONE
        try:
            self.get_api_key()
        except ApiKeyUnreadable:
            return KeyStatus.UNREADABLE
        return KeyStatus.OK


def api_id_from(text: str) -> str:
    """A readable id from a name: lower case, letters, digits, ".", "_", "-" (else "-")."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:80]


def unique_api_id(model_config: ModelConfig) -> str:
    """From the name (else the upstream id), with "-2", "-3"... if taken in its scope."""
    base = api_id_from(model_config.name) or api_id_from(model_config.model) or "model"
    taken = ModelConfig.objects.filter(owner_id=model_config.owner_id).exclude(pk=model_config.pk)
    candidate, n = base, 1
    while taken.filter(api_id__iexact=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate
