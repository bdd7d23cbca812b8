"""Chat actions: sessions, titles, limits, and the short transactions that start a turn.

A turn is the user's message plus the assistant placeholder (status `streaming`) that
`chat.streaming` fills in. Both are written together in one short transaction, before
any network call, so the user's words are saved whatever happens upstream.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.audit import audit_record
from accounts.models import AuditAction
from accounts.usage import QuotaExceeded, check_token_quota
from chat import search
from chat.context import system_prompt_for
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from chat.tokens import count_message_tokens
from chat.window import context_budget
from config.rows import insert_all
from config.services import get_system_setting
from models_registry.models import ModelConfig

if TYPE_CHECKING:
    from accounts.models import User

TITLE_MAX_CHARS = 60


class ChatRejected(Exception):
    """A message or action refused with a reason the page shows; the text is kept."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def make_title(text: str) -> str:
    """A title from the first message: whitespace collapsed, at most 60 characters, cut at a
    word boundary when there is one, never empty."""
    # Control characters (a NUL, say) would make a title PostgreSQL cannot store.
    collapsed = re.sub(r"\s+", " ", CONTROL_CHARACTERS.sub(" ", text)).strip()
    if not collapsed:
        return _("New chat")
    if len(collapsed) <= TITLE_MAX_CHARS:
        return collapsed
    cut = collapsed[: TITLE_MAX_CHARS - 1]
    boundary = cut.rfind(" ")
    if boundary >= TITLE_MAX_CHARS // 2:
        cut = cut[:boundary]
    return cut.rstrip(" ,.;:-") + "…"


def chat_create(*, user: User, model_config: ModelConfig) -> ChatSession:
    """A new chat; the user's own system prompt (Preferences) is kept with it."""
    return ChatSession.objects.create(
        user=user, model_config=model_config, system_prompt=user.system_prompt
    )


def chat_rename(*, session: ChatSession, title: str) -> ChatSession:
    title = re.sub(r"\s+", " ", title).strip()
    if not title:
        raise ChatRejected(_("A chat needs a title."))
    session.title = title[:200]
    session.save(update_fields=["title", "updated_at"])
    return session


def chat_delete(*, session: ChatSession, actor: User, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        audit_record(
            AuditAction.CHAT_DELETE,
            actor=actor,
            target=f"chat {session.pk}",
            request=request,
            detail={"messages": session.message_count},
        )
        session.delete()
        search.purge_deleted()  # its messages left search with the delete; now their words


def chat_exported(*, session: ChatSession, actor: User, fmt: str, request: HttpRequest) -> None:
    audit_record(
        AuditAction.EXPORT,
        actor=actor,
        target=f"chat {session.pk}",
        request=request,
        detail={"format": fmt, "messages": session.message_count},
    )


def check_rate_limit(user: User) -> None:
    """Messages per minute per user, counted in the shared cache (so across processes), then
    the daily token quota; every send path (new chat, send, regenerate, edit) calls this."""
    limit = get_system_setting().messages_per_minute
    if limit:
        _check_messages_per_minute(user, limit)
    try:
        check_token_quota(user)
    except QuotaExceeded as exceeded:
        raise ChatRejected(str(exceeded), status=429) from None


def _check_messages_per_minute(user: User, limit: int) -> None:
    window = int(time.time() // 60)
    key = f"chat-rate:{user.pk}:{window}"
    cache.add(key, 0, timeout=90)
    try:
        sent = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=90)
        sent = 1
    if sent > limit:
        raise ChatRejected(
            ngettext(
                "You can send %(limit)d message a minute. Wait a moment and send again.",
                "You can send %(limit)d messages a minute. Wait a moment and send again.",
                limit,
            )
            % {"limit": limit},
            status=429,
        )


def usable_model(model_config: ModelConfig | None) -> ModelConfig:
    if model_config is None or not model_config.is_active:
        raise ChatRejected(
            _("This chat's model was removed or turned off. Start a new chat with another model."),
            status=409,
        )
    return model_config


def validate_message(text: str, model_config: ModelConfig, *, own_prompt: str = "") -> int:
    """Check length and fit (``own_prompt``: the chat's user system prompt); returns the
    message's token count."""
    if not text.strip():
        raise ChatRejected(_("Write a message first."))
    limit = get_system_setting().max_message_chars
    if len(text) > limit:
        raise ChatRejected(
            _("This message is %(length)d characters long; the limit is %(limit)d.")
            % {"length": len(text), "limit": limit}
        )
    tokens = count_message_tokens(MessageRole.USER, text)
    system_prompt = system_prompt_for(own_prompt, model_config)
    budget = context_budget(
        context_window=model_config.context_window,
        max_output_tokens=model_config.max_output_tokens,
        system_prompt_tokens=(
            count_message_tokens(MessageRole.SYSTEM, system_prompt) if system_prompt else 0
        ),
    )
    if tokens > budget:
        raise ChatRejected(
            _(
                "This message is about %(tokens)d tokens; %(model)s can take %(budget)d "
                "with room for its answer. Shorten it or choose a model with a larger window."
            )
            % {"tokens": tokens, "model": model_config.name, "budget": budget}
        )
    return tokens


@dataclass(frozen=True)
class Turn:
    session: ChatSession
    user_message: Message | None
    placeholder: Message
    created: bool  # False when a retried POST found the turn it had already started


def _parse_client_id(client_id: str | None) -> uuid.UUID | None:
    if not client_id:
        return None
    try:
        return uuid.UUID(str(client_id))
    except ValueError:
        raise ChatRejected(_("The form sent an invalid message id. Reload the page.")) from None


def _existing_turn(session: ChatSession, client_id: uuid.UUID) -> Turn | None:
    first = Message.objects.filter(session=session, client_id=client_id).first()
    if first is None:
        return None
    if first.role == MessageRole.ASSISTANT:  # a regenerate turn: the placeholder itself
        return Turn(session, None, first, created=False)
    placeholder = (
        Message.objects.filter(session=session, id__gt=first.id, role=MessageRole.ASSISTANT)
        .order_by("id")
        .first()
    )
    if placeholder is None:
        raise ChatRejected(_("This message was already sent."), status=409)
    return Turn(session, first, placeholder, created=False)


# The two statements every new message runs, in raw SQL: measured on the send path, the
# ORM spent ~0.2 ms compiling the EXISTS query and ~0.45 ms the UPDATE with its NOT EXISTS
# (against ~15 µs each to run them), before the first token (docs/performance.md).
_STREAMING_ANSWER_SQL = "SELECT 1 FROM chat_message WHERE session_id = %s AND status = %s LIMIT 1"
_TOUCH_IF_IDLE_SQL = (
    "UPDATE chat_chatsession SET updated_at = %s, message_count = message_count + %s, "
    "title = COALESCE(%s, title) WHERE id = %s AND NOT EXISTS "
    "(SELECT 1 FROM chat_message WHERE session_id = %s AND status = %s)"
)


def _touch_session(
    session: ChatSession, *, added: int, title: str | None = None, only_if_idle: bool = False
) -> None:
    """Bump the chat's activity time and message count (and set its first title).

    ``only_if_idle`` refuses, in the same statement, when one of the chat's answers is
    still streaming: the check and the write cannot be split by another request.
    """
    now = timezone.now()
    if only_if_idle:
        with connection.cursor() as cursor:
            cursor.execute(
                _TOUCH_IF_IDLE_SQL,
                [
                    connection.ops.adapt_datetimefield_value(now),
                    added,
                    title,
                    session.pk,
                    session.pk,
                    MessageStatus.STREAMING.value,
                ],
            )
            if not cursor.rowcount:
                raise _still_streaming()
    else:
        fields: dict[str, object] = {"updated_at": now, "message_count": F("message_count") + added}
        if title is not None:
            fields["title"] = title
        ChatSession.objects.filter(pk=session.pk).update(**fields)
    session.updated_at = now
    session.message_count += added
    if title is not None:
        session.title = title


def _still_streaming() -> ChatRejected:
    return ChatRejected(
        _("An answer is still being written. Stop it or wait for it first."), status=409
    )


def _ensure_no_stream_running(session: ChatSession) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STREAMING_ANSWER_SQL, [session.pk, MessageStatus.STREAMING.value])
        if cursor.fetchone() is not None:
            raise _still_streaming()


@dataclass(frozen=True)
class PendingTurn:
    """A new message that passed every check and is not saved yet."""

    session: ChatSession
    model_config: ModelConfig
    text: str
    tokens: int
    client_id: uuid.UUID | None


def prepare_turn(
    *, session: ChatSession, text: str, client_id: str | None = None
) -> PendingTurn | Turn:
    """Check a new message without writing anything.

    A retried POST (same ``client_id``) gets the Turn it already started. The streaming
    check here only spares an upstream call that would be thrown away; ``commit_turn``
    checks again in the same statement as its write.
    """
    model_config = usable_model(session.model_config)
    parsed_id = _parse_client_id(client_id)
    if parsed_id is not None and (existing := _existing_turn(session, parsed_id)):
        return existing
    tokens = validate_message(text, model_config, own_prompt=session.system_prompt)
    _ensure_no_stream_running(session)
    return PendingTurn(session, model_config, text, tokens, parsed_id)


def commit_turn(pending: PendingTurn) -> Turn:
    """Save the user's message and the answer's placeholder in one short transaction."""
    session = pending.session
    try:
        with transaction.atomic():
            _touch_session(
                session,
                added=2,
                title=None if session.title else make_title(pending.text),
                only_if_idle=True,
            )
            # One INSERT for both rows (ids come back through RETURNING): this is the
            # hot path of every message, and its lock is held until the commit.
            user_message = Message(
                session=session,
                role=MessageRole.USER,
                content=pending.text,
                token_count=pending.tokens,
                status=MessageStatus.COMPLETE,
                client_id=pending.client_id,
            )
            placeholder = Message(
                session=session, role=MessageRole.ASSISTANT, status=MessageStatus.STREAMING
            )
            insert_all([user_message, placeholder])
            search.index_messages([(user_message.pk, session.pk, session.user_id, pending.text)])
    except IntegrityError:
        # Two copies of one POST raced: the other one won; answer with its turn.
        if pending.client_id is not None and (
            existing := _existing_turn(session, pending.client_id)
        ):
            return existing
        raise
    return Turn(session, user_message, placeholder, created=True)


def begin_turn(*, session: ChatSession, text: str, client_id: str | None = None) -> Turn:
    """Check and save a new message: ``prepare_turn`` then ``commit_turn``."""
    outcome = prepare_turn(session=session, text=text, client_id=client_id)
    return outcome if isinstance(outcome, Turn) else commit_turn(outcome)


def _last_messages(session: ChatSession, count: int) -> list[Message]:
    return list(Message.objects.filter(session=session).order_by("-id")[:count])


def begin_regenerate(*, session: ChatSession, client_id: str | None = None) -> Turn:
    """Replace the last answer (complete, stopped, failed) with a new one."""
    usable_model(session.model_config)
    parsed_id = _parse_client_id(client_id)
    if parsed_id is not None and (existing := _existing_turn(session, parsed_id)):
        return existing
    with transaction.atomic():
        _ensure_no_stream_running(session)
        last = _last_messages(session, 1)
        if not last:
            raise ChatRejected(_("There is no answer to regenerate yet."))
        removed = 0
        if last[0].role == MessageRole.ASSISTANT:
            last[0].delete()
            search.purge_deleted()
            removed = 1
        placeholder = Message.objects.create(
            session=session,
            role=MessageRole.ASSISTANT,
            status=MessageStatus.STREAMING,
            client_id=parsed_id,
        )
        _touch_session(session, added=1 - removed)
    return Turn(session, None, placeholder, created=True)


def begin_edit(*, session: ChatSession, text: str, client_id: str | None = None) -> Turn:
    """Replace the last user message (and the answer to it) with an edited one, and resend."""
    model_config = usable_model(session.model_config)
    parsed_id = _parse_client_id(client_id)
    if parsed_id is not None and (existing := _existing_turn(session, parsed_id)):
        return existing
    tokens = validate_message(text, model_config, own_prompt=session.system_prompt)
    with transaction.atomic():
        _ensure_no_stream_running(session)
        last_user = (
            Message.objects.filter(session=session, role=MessageRole.USER).order_by("-id").first()
        )
        if last_user is None:
            raise ChatRejected(_("There is no message to edit yet."))
        removed, _details = Message.objects.filter(session=session, id__gte=last_user.id).delete()
        user_message = Message.objects.create(
            session=session,
            role=MessageRole.USER,
            content=text,
            token_count=tokens,
            client_id=parsed_id,
        )
        search.purge_deleted()
        search.index_messages([(user_message.pk, session.pk, session.user_id, text)])
        placeholder = Message.objects.create(
            session=session, role=MessageRole.ASSISTANT, status=MessageStatus.STREAMING
        )
        _touch_session(session, added=2 - removed)
    return Turn(session, user_message, placeholder, created=True)


def request_stop(*, session: ChatSession) -> int:
    """Ask every stream of this chat to stop, in whichever process serves it."""
    from chat.streaming import set_stop_flag

    ids = list(
        Message.objects.filter(session=session, status=MessageStatus.STREAMING).values_list(
            "id", flat=True
        )
    )
    for message_id in ids:
        set_stop_flag(message_id)
    return len(ids)
