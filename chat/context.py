"""The messages sent upstream for the next answer: system prompt plus the newest history that fits.

Reads stored ``token_count``s newest first through the ``(session, id)`` index in
growing keyset batches, lets ``chat.window.select_window`` stop at the first message
that does not fit, then fetches content for the kept messages only. The number of
queries and rows grows with the window, never with the length of the chat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.models import Message, MessageRole, MessageStatus
from chat.tokens import REPLY_PRIMING, count_message_tokens
from chat.window import context_budget, select_window

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from chat.models import ChatSession
    from models_registry.models import ModelConfig

# The first batch covers a typical window in one query; later ones double so a very
# large window (many short messages) still needs only a handful of queries.
FIRST_BATCH = 64
MAX_BATCH = 8192

# Only finished text is history: a stopped answer keeps its partial text and is still
# part of the conversation; an error, an interrupted or a still-streaming one is not.
SENDABLE_STATUSES = (MessageStatus.COMPLETE, MessageStatus.STOPPED)
SENDABLE_ROLES = (MessageRole.USER, MessageRole.ASSISTANT)


@dataclass(frozen=True)
class Context:
    messages: list[dict[str, str]]  # OpenAI shape: optional system first, then user/assistant
    tokens: int  # system prompt + kept messages + REPLY_PRIMING
    omitted: int  # earlier messages of the session not sent ("N earlier messages not sent")


def _sendable(session: ChatSession, before_id: int | None) -> QuerySet[Message]:
    messages = (
        Message.objects.filter(
            session=session, status__in=SENDABLE_STATUSES, role__in=SENDABLE_ROLES
        )
        # Empty text (an answer that failed before its first token) would only waste tokens.
        .exclude(content="")
        .order_by("-id")
    )
    if before_id is not None:
        messages = messages.filter(id__lt=before_id)
    return messages


def _newest_first(messages: QuerySet[Message]) -> Iterator[tuple[int, int]]:
    """(id, token_count) newest first, in keyset batches fetched only when the last runs out."""
    limit = FIRST_BATCH
    batch = messages
    while True:
        rows = list(batch.values_list("id", "token_count")[:limit])
        yield from rows
        if len(rows) < limit:
            return
        # Keyed on the last id seen, not OFFSET: every batch is an index range scan.
        batch = messages.filter(id__lt=rows[-1][0])
        limit = min(limit * 2, MAX_BATCH)


def build_context(
    session: ChatSession,
    model_config: ModelConfig,
    *,
    before_id: int | None = None,
    with_content: bool = True,
) -> Context:
    """Build what to send for ``session``'s next answer from ``model_config``.

    ``before_id`` is the id of the assistant placeholder the caller just created: only
    older messages are history, and the placeholder is not counted as omitted.
    ``session.message_count`` must be current (it is denormalised by chat.services).
    ``with_content=False`` (the chat page's "N earlier messages not sent" line) skips
    loading and decoding the kept text: only the counts are wanted.
    """
    messages: list[dict[str, str]] = []
    system_tokens = 0
    if model_config.system_prompt:
        system_tokens = count_message_tokens(MessageRole.SYSTEM, model_config.system_prompt)
        messages.append({"role": MessageRole.SYSTEM.value, "content": model_config.system_prompt})

    budget = context_budget(
        context_window=model_config.context_window,
        max_output_tokens=model_config.max_output_tokens,
        system_prompt_tokens=system_tokens,
    )
    sendable = _sendable(session, before_id)
    window = select_window(_newest_first(sendable), budget)

    if window.kept_ids and with_content:
        kept = set(window.kept_ids)
        # One range query instead of `id IN (...)`: a large window can keep more ids
        # than a database accepts as parameters. Rows in the range that were not chosen
        # (a message that finished meanwhile) are dropped here.
        rows = (
            sendable.filter(id__gte=window.kept_ids[0], id__lte=window.kept_ids[-1])
            .order_by("id")
            .values_list("id", "role", "content")
        )
        messages += [{"role": role, "content": content} for pk, role, content in rows if pk in kept]

    placeholder = 1 if before_id is not None else 0
    omitted = max(session.message_count - len(window.kept_ids) - placeholder, 0)
    return Context(
        messages=messages, tokens=system_tokens + window.tokens + REPLY_PRIMING, omitted=omitted
    )
