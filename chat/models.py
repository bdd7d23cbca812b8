"""Chat sessions and their messages."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from chat.fields import CompressedTextField


class ChatSession(models.Model):
    # No index of its own: the (user, -updated_at, -id) index serves lookups by user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="chat_sessions",
        db_index=False,
    )
    # A chat outlives its model: deleting a model leaves the conversation readable.
    model_config = models.ForeignKey(
        "models_registry.ModelConfig",
        verbose_name=_("model"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_sessions",
    )
    title = models.CharField(_("title"), max_length=200, blank=True, default="")
    # The owner's own system prompt when the chat was started (Preferences), sent before the
    # model's: a later change of the preference applies to new chats only.
    system_prompt = models.TextField(_("your system prompt"), blank=True, default="")
    # Kept in step by chat.services in the same transactions that add or remove messages,
    # so "N earlier messages not sent" needs no COUNT over a long history.
    message_count = models.PositiveIntegerField(_("messages"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Last activity, the sidebar's order; set explicitly when a message is added.
    updated_at = models.DateTimeField(_("last activity"), auto_now=True)

    class Meta:
        verbose_name = _("chat")
        verbose_name_plural = _("chats")
        ordering = ["-updated_at", "-id"]
        indexes = [
            # Keyset pagination of the sidebar: WHERE user = ? AND (updated_at, id) < (?, ?)
            models.Index(fields=["user", "-updated_at", "-id"], name="chat_session_user_recent"),
        ]

    def __str__(self) -> str:
        return self.title or _("Untitled chat")


class MessageRole(models.TextChoices):
    SYSTEM = "system", _("System")
    USER = "user", _("User")
    ASSISTANT = "assistant", _("Assistant")


class MessageStatus(models.TextChoices):
    STREAMING = "streaming", _("Streaming")
    COMPLETE = "complete", _("Complete")
    STOPPED = "stopped", _("Stopped")
    ERROR = "error", _("Error")
    INTERRUPTED = "interrupted", _("Interrupted")


class Message(models.Model):
    # No index of its own: the (session, id) index below serves every lookup by session.
    session = models.ForeignKey(
        ChatSession,
        verbose_name=_("chat"),
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,
    )
    role = models.CharField(_("role"), max_length=16, choices=MessageRole.choices)
    # Stored compressed above SystemSetting.compression_threshold_bytes; str in Python.
    content = CompressedTextField(_("content"), blank=True, default="")
    # Counted once, when the message is written, so building a context never re-tokenises.
    token_count = models.PositiveIntegerField(_("tokens"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE
    )
    # The model's separate reasoning stream (reasoning_content), shown apart from the answer.
    reasoning = CompressedTextField(_("reasoning"), blank=True, default="")
    # The final answer rendered once (markdown, highlighting, sanitising) when it is saved,
    # so a chat page never re-renders history (chat.markdown.message_html).
    rendered_html = CompressedTextField(_("rendered HTML"), blank=True, default="", editable=False)
    error = models.TextField(_("error"), blank=True, default="")
    finish_reason = models.CharField(_("finish reason"), max_length=32, blank=True, default="")
    # Sent by the browser with each new message, so a retried POST never doubles it.
    client_id = models.UUIDField(_("client id"), null=True, blank=True, editable=False)
    prompt_tokens = models.PositiveIntegerField(
        _("prompt tokens (upstream)"), null=True, blank=True
    )
    completion_tokens = models.PositiveIntegerField(
        _("completion tokens (upstream)"), null=True, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # The streaming service touches this at least every few seconds: a `streaming` row
    # that stops moving belonged to a killed worker (see services.sweep_stale_streams).
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session", "id"], name="chat_message_session_id"),
            # The stale-stream sweep (every chat page view, start-up, cleanup) reads only
            # `streaming` rows: a partial index keeps it independent of the history.
            models.Index(
                fields=["session", "updated_at"],
                condition=Q(status="streaming"),
                name="chat_message_streaming",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=MessageRole.values), name="chat_message_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=MessageStatus.values), name="chat_message_status_valid"
            ),
            models.UniqueConstraint(
                fields=["session", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_message_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"
