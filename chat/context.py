"""The messages sent upstream for the next answer: system prompt plus the newest history that fits.

Reads (id, token_count, role, stored content) newest first through the ``(session, id)``
index in growing keyset batches, lets ``chat.window.select_window`` stop at the first
message that does not fit, then decompresses the kept messages only: one query for a
typical window. The number of queries and rows grows with the window, never with the
length of the chat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection

from chat.fields import EMPTY, unpack_text
from chat.models import MessageRole, MessageStatus
from chat.tokens import REPLY_PRIMING, count_message_tokens
from chat.window import context_budget, select_window
from config.rows import MAX_ID

if TYPE_CHECKING:
    from chat.models import ChatSession
    from models_registry.models import ModelConfig

# The first batch covers a typical window in one query; later ones double so a very
# large window (many short messages) still needs only a handful of queries.
FIRST_BATCH = 64
MAX_BATCH = 8192
PENDING_ID = 0  # stands for the message not saved yet; real ids start at 1

# Only finished text is history: a stopped answer keeps its partial text and is still
# part of the conversation; an error, an interrupted or a still-streaming one is not.
SENDABLE_STATUSES = (MessageStatus.COMPLETE.value, MessageStatus.STOPPED.value)
SENDABLE_ROLES = (MessageRole.USER.value, MessageRole.ASSISTANT.value)


def system_prompt_for(own_prompt: str, model_config: ModelConfig) -> str:
    """The system message: the user's own prompt (kept with the chat), then the model's."""
    return "\n\n".join(p for p in (own_prompt.strip(), model_config.system_prompt) if p)


@dataclass(frozen=True)
class Context:
    messages: list[dict[str, str]]  # OpenAI shape: optional system first, then user/assistant
    tokens: int  # system prompt + kept messages + REPLY_PRIMING
    omitted: int  # earlier messages of the session not sent ("N earlier messages not sent")


# One keyset batch of a chat's sendable rows below an id, newest first. Raw SQL, not
# the ORM: this runs on every send, and compiling querysets cost more than the queries.
# ``content`` comes back in its stored form; only the rows the window keeps are ever
# decompressed. Empty text (an answer that failed before its first token) is left out.
_BATCH_WHERE = (
    "FROM chat_message WHERE session_id = %s AND status IN (%s, %s) AND role IN (%s, %s) "
    "AND content <> %s AND id < %s ORDER BY id DESC LIMIT %s"
)
BATCH_WITH_TEXT_SQL = "SELECT id, token_count, role, content " + _BATCH_WHERE
BATCH_COUNTS_SQL = "SELECT id, token_count " + _BATCH_WHERE


def _newest_first(
    session: ChatSession,
    *,
    before_id: int | None,
    stored: dict[int, tuple[str, bytes | str]] | None,
) -> Iterator[tuple[int, int]]:
    """(id, token_count) newest first, in keyset batches fetched only when the last runs out.

    With ``stored`` given, each row's (role, stored content) is put there as it is
    read, so the window's text needs no second query.
    """
    sql = BATCH_COUNTS_SQL if stored is None else BATCH_WITH_TEXT_SQL
    fixed = [session.pk, *SENDABLE_STATUSES, *SENDABLE_ROLES, connection.Database.Binary(EMPTY)]
    upper = before_id if before_id is not None else MAX_ID  # the first batch: the newest
    limit = FIRST_BATCH
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*fixed, upper, limit])
            rows = cursor.fetchall()
        for row in rows:
            if stored is not None:
                stored[row[0]] = (row[2], row[3])
            yield row[0], row[1]
        if len(rows) < limit:
            return
        # Keyed on the last id seen, not OFFSET: every batch is an index range scan.
        upper = rows[-1][0]
        limit = min(limit * 2, MAX_BATCH)


def build_context(
    session: ChatSession,
    model_config: ModelConfig,
    *,
    before_id: int | None = None,
    with_content: bool = True,
    pending: tuple[str, str, int] | None = None,
) -> Context:
    """Build what to send for ``session``'s next answer from ``model_config``.

    ``before_id`` is the id of the assistant placeholder the caller just created: only
    older messages are history, and the placeholder is not counted as omitted.
    ``session.message_count`` must be current (it is denormalised by chat.services).
    ``with_content=False`` (the chat page's "N earlier messages not sent" line) skips
    loading and decoding the kept text: only the counts are wanted.
    ``pending`` is a (role, text, token_count) message not saved yet, sent as the newest
    (``chat.streaming.start_answer`` asks the upstream before the message is written).
    """
    messages: list[dict[str, str]] = []
    system_tokens = 0
    system_prompt = system_prompt_for(session.system_prompt, model_config)
    if system_prompt:
        system_tokens = count_message_tokens(MessageRole.SYSTEM, system_prompt)
        messages.append({"role": MessageRole.SYSTEM.value, "content": system_prompt})

    budget = context_budget(
        context_window=model_config.context_window,
        max_output_tokens=model_config.max_output_tokens,
        system_prompt_tokens=system_tokens,
    )
    stored: dict[int, tuple[str, bytes | str]] | None = {} if with_content else None
    rows = _newest_first(session, before_id=before_id, stored=stored)
    if pending is not None:
        role, text, tokens = pending
        if stored is not None:
            stored[PENDING_ID] = (role, text)  # unpack_text passes a str through
        rows = itertools.chain([(PENDING_ID, tokens)], rows)
    window = select_window(rows, budget)
    if stored is not None:
        messages += [
            {"role": stored[pk][0], "content": unpack_text(stored[pk][1])} for pk in window.kept_ids
        ]

    placeholder = 1 if before_id is not None else 0
    saved = session.message_count + (1 if pending is not None else 0)
    omitted = max(saved - len(window.kept_ids) - placeholder, 0)
    return Context(
        messages=messages, tokens=system_tokens + window.tokens + REPLY_PRIMING, omitted=omitted
    )
