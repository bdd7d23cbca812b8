"""Writing one answer: the upstream stream relayed to the browser and saved, never lost.

The upstream is read in a helper thread that only iterates the HTTP stream and hands
items over a queue; the request thread relays them as server-sent events (`start`,
`delta`, `done`, `error`, and `: ping` while the upstream is silent), saves the partial
text at most every PARTIAL_WRITE_SECONDS, watches the Stop flag in the shared cache
(so Stop works whichever process serves the stream), and saves the answer once with its
status: complete, stopped (Stop, or the browser went away) or error. The final `done` or
`error` event is sent only after that save, so a browser that sends its next message the
moment it arrives never finds the answer still `streaming` (in `finally` when the stream
ends without a final event). No database transaction is open while waiting on the network.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from accounts.models import UsageSource
from accounts.usage import record_usage
from chat import search
from chat.context import Context, build_context
from chat.helper_threads import run_in_helper_thread
from chat.markdown import html_to_store, message_html
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from chat.services import PendingTurn, Turn, commit_turn
from chat.tokens import count_message_tokens
from config.i18n import in_language
from models_registry.client import StreamDelta, StreamFinish, UpstreamClient, UpstreamError
from models_registry.models import ApiKeyUnreadable, ModelConfig
from models_registry.services import upstream_client_for

logger = logging.getLogger(__name__)

PARTIAL_WRITE_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0  # touch the placeholder so the sweep knows this stream is alive
STALE_AFTER_SECONDS = 60.0  # a streaming row untouched this long belonged to a dead worker
PING_SECONDS = 15.0
STOP_CHECK_SECONDS = 0.25
# How many items the upstream reader may parse ahead of the relay until the first one
# has been written to the browser: one, so a fast upstream cannot keep the reader
# parsing (and holding the GIL) while the request thread saves the message and writes
# the first token (with a zero-delay model the whole answer used to be parsed first:
# docs/performance.md). After that, no limit: a bound would cost a thread switch per
# token once reached (the answer is capped by the client's max_response_bytes anyway).
FIRST_READ_AHEAD = 1
STOP_FLAG_TTL = 600
UNEXPECTED_ERROR = gettext_lazy("Parley hit an unexpected error while reading the answer.")


class _ReadAheadQueue(queue.Queue):
    """Bounded at FIRST_READ_AHEAD until the relay asks for its second item, then not."""

    def __init__(self) -> None:
        super().__init__(maxsize=FIRST_READ_AHEAD)
        self.taken = 0

    def _get(self) -> tuple[str, object]:
        # Called with the queue's lock held; get() then wakes a waiting put().
        self.taken += 1
        if self.taken == 2:
            # No bound from now on; not 0, which would strand a put() already waiting.
            self.maxsize = sys.maxsize
        return super()._get()


def _stop_key(message_id: int) -> str:
    return f"chat-stop:{message_id}"


def set_stop_flag(message_id: int) -> None:
    cache.set(_stop_key(message_id), 1, timeout=STOP_FLAG_TTL)


def _stop_requested(message_id: int) -> bool:
    return cache.get(_stop_key(message_id)) is not None


def clean_text(text: str) -> str:
    """Valid Unicode only: a lone surrogate from an upstream's JSON would fail the save."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def sse_event(event: str, data: dict[str, object]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass
class _Answer:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: str = MessageStatus.ERROR
    error: str = ""

    @property
    def text(self) -> str:
        return clean_text("".join(self.content))

    @property
    def reasoning_text(self) -> str:
        return clean_text("".join(self.reasoning))


class UpstreamCall:
    """One upstream request, read in a helper thread that does HTTP only, no database.

    Items go to ``items`` as ``("item", StreamDelta | StreamFinish)``, ``("error",
    reason)`` and always a last ``("end", None)``. ``cancel()`` makes the reader drop the
    stream at its next item (which closes the upstream connection).
    """

    def __init__(
        self, client: UpstreamClient, *, model: str, messages: list[dict], max_tokens: int
    ) -> None:
        self.items: queue.Queue[tuple[str, object]] = _ReadAheadQueue()
        self._cancelled = threading.Event()
        self._args = (client, model, messages, max_tokens)
        run_in_helper_thread(self._read)

    def cancel(self) -> None:
        self._cancelled.set()

    def _put(self, kind: str, payload: object) -> bool:
        """Hand one item over, waiting while the relay is behind (FIRST_READ_AHEAD); False
        once the call is cancelled (nobody will take it)."""
        while not self._cancelled.is_set():
            try:
                self.items.put((kind, payload), timeout=STOP_CHECK_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        client, model, messages, max_tokens = self._args
        try:
            for item in client.stream(model=model, messages=messages, max_tokens=max_tokens):
                if not self._put("item", item):
                    return
        except UpstreamError as error:
            # Lazy: this helper thread has no language; the request thread translates it.
            self._put("error", error.user_message)
        except Exception:  # a bug must still end the answer, with a reason, not hang it
            logger.exception("reading an upstream stream failed")
            self._put("error", UNEXPECTED_ERROR)
        finally:
            self._put("end", None)


def upstream_client_or_error(model_config: ModelConfig) -> tuple[UpstreamClient | None, str]:
    """The client for a chat's model, or why there is none (key unreadable, URL unsafe)."""
    try:
        return upstream_client_for(model_config), ""
    except ApiKeyUnreadable as error:
        return None, str(error)
    except ValidationError as error:
        return None, " ".join(error.messages)


def start_upstream_call(
    model_config: ModelConfig, context: Context
) -> tuple[UpstreamCall | None, str]:
    """The running upstream call for ``context``, or none and why (key, unsafe URL)."""
    client, error = upstream_client_or_error(model_config)
    if client is None:
        return None, error
    call = UpstreamCall(
        client,
        model=model_config.model,
        messages=context.messages,
        max_tokens=model_config.max_output_tokens,
    )
    return call, ""


def start_answer(pending: PendingTurn) -> tuple[Turn, AnswerStream | None]:
    """Ask the upstream first, then save the message while it thinks.

    The upstream call starts before the transaction that saves the user's message and
    the placeholder, so the database write (and its fsync) no longer delays the first
    token. If the save is refused, the call is cancelled. A retried POST that lost a
    race gets its existing Turn and no stream (the caller answers it as a retry).
    """
    session, model_config = pending.session, pending.model_config
    context = build_context(
        session, model_config, pending=(MessageRole.USER.value, pending.text, pending.tokens)
    )
    call, client_error = start_upstream_call(model_config, context)
    try:
        turn = commit_turn(pending)
    except BaseException:
        if call is not None:
            call.cancel()
        raise
    if not turn.created:
        if call is not None:
            call.cancel()
        return turn, None
    return turn, AnswerStream(turn, context=context, call=call, client_error=client_error)


class AnswerStream:
    """Produces the answer for one placeholder message; iterate `events()` exactly once.

    ``start_answer`` passes the context and the upstream call it already started;
    otherwise (regenerate, edit, the no-JavaScript path) both are made here.
    """

    def __init__(
        self,
        turn: Turn,
        *,
        context: Context | None = None,
        call: UpstreamCall | None = None,
        client_error: str = "",
    ) -> None:
        self.turn = turn
        self.session: ChatSession = turn.session
        self.placeholder: Message = turn.placeholder
        self.answer = _Answer(error=client_error)
        self._context = context
        self._call = call
        self._save_tried = False  # the final save happens once, even when it fails
        self._stored_html = ""
        # The language of the request that asked: the events are written in it, whichever
        # thread iterates them and whatever that thread's language is meanwhile.
        self.language = translation.get_language()

    def events(self) -> Iterator[bytes]:
        return in_language(self._events(), self.language)

    def _events(self) -> Iterator[bytes]:
        answer = self.answer
        try:
            model_config = self.session.model_config
            if model_config is None:
                answer.error = _("This chat's model was removed.")
                yield self._finish()
                return
            context = self._context
            if context is None:
                context = build_context(self.session, model_config, before_id=self.placeholder.pk)
                self._context = context  # its token count is the usage fallback
                # Under way before `start` is sent: the upstream's wait overlaps it.
                self._call, answer.error = start_upstream_call(model_config, context)
            yield sse_event(
                "start",
                {
                    "message_id": self.placeholder.pk,
                    "session_id": self.session.pk,
                    "context_tokens": context.tokens,
                    "omitted": context.omitted,
                    "context_text": context_text(context.omitted, context.tokens),
                    "title": self.session.title,
                },
            )
            if self._call is None:
                yield self._finish()
                return
            yield from self._relay(self._call)
            yield self._finish()
        except GeneratorExit:
            # The browser went away (tab closed, network lost): keep what we have.
            answer.status = MessageStatus.STOPPED
            raise
        finally:
            if self._call is not None:
                self._call.cancel()
            if not self._save_tried:
                self._save_final()

    def _finish(self) -> bytes:
        """Save the answer, then the final event: `done` (or `error`) means it is stored,
        so the browser may send the next message (or reload) the moment it arrives."""
        if self._call is not None:
            self._call.cancel()
        self._save_final()
        return sse_event(
            "error" if self.answer.status == MessageStatus.ERROR else "done",
            self._final_payload(),
        )

    def _relay(self, call: UpstreamCall) -> Iterator[bytes]:
        answer = self.answer
        now = time.monotonic()
        last_write = last_event = last_stop_check = now
        while True:
            try:
                kind, payload = call.items.get(timeout=STOP_CHECK_SECONDS)
            except queue.Empty:
                kind, payload = "idle", None
            now = time.monotonic()
            if kind == "item" and isinstance(payload, StreamDelta):
                answer.content.append(payload.content)
                answer.reasoning.append(payload.reasoning)
                yield sse_event(
                    "delta", {"content": payload.content, "reasoning": payload.reasoning}
                )
                last_event = now
            elif kind == "item" and isinstance(payload, StreamFinish):
                answer.finish_reason = payload.finish_reason or ""
                if payload.usage is not None:
                    answer.prompt_tokens = payload.usage.prompt_tokens
                    answer.completion_tokens = payload.usage.completion_tokens
            elif kind == "error":
                answer.status, answer.error = MessageStatus.ERROR, str(payload)
                return
            elif kind == "end":
                answer.status = MessageStatus.COMPLETE
                return
            if now - last_stop_check >= STOP_CHECK_SECONDS:
                last_stop_check = now
                if _stop_requested(self.placeholder.pk):
                    answer.status = MessageStatus.STOPPED
                    return
            if now - last_event >= PING_SECONDS:
                yield b": ping\n\n"
                last_event = now
            if now - last_write >= PARTIAL_WRITE_SECONDS:
                self._save_partial(touch_only=kind != "item")
                last_write = now

    def _save_partial(self, *, touch_only: bool) -> None:
        """Keep the text so far (and the heartbeat) in the row, in its own tiny write."""
        fields: dict[str, object] = {"updated_at": timezone.now()}
        if not touch_only:
            fields["content"] = self.answer.text
            fields["reasoning"] = self.answer.reasoning_text
        Message.objects.filter(pk=self.placeholder.pk, status=MessageStatus.STREAMING).update(
            **fields
        )

    def _save_final(self) -> None:
        self._save_tried = True
        answer = self.answer
        text = answer.text
        now = timezone.now()
        try:
            self._stored_html = html_to_store(text)
            token_count = count_message_tokens(MessageRole.ASSISTANT, text)
            with transaction.atomic():
                saved = Message.objects.filter(pk=self.placeholder.pk).update(
                    content=text,
                    rendered_html=self._stored_html,
                    reasoning=answer.reasoning_text,
                    status=answer.status,
                    error=answer.error if answer.status == MessageStatus.ERROR else "",
                    finish_reason=answer.finish_reason,
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                    token_count=token_count,
                    updated_at=now,
                )
                if saved:  # (a chat deleted meanwhile has nothing to index)
                    search.index_messages(
                        [(self.placeholder.pk, self.session.pk, self.session.user_id, text)]
                    )
                ChatSession.objects.filter(pk=self.session.pk).update(updated_at=now)
                self._record_usage(counted_completion_tokens=token_count)
        except Exception:
            logger.exception(
                "could not save the answer %s (status %s, %d characters)",
                self.placeholder.pk,
                answer.status,
                len(text),
            )
            raise
        cache.delete(_stop_key(self.placeholder.pk))

    def _record_usage(self, *, counted_completion_tokens: int) -> None:
        """Count this answer's tokens for the user (accounts.usage), once, with the answer.

        Only when an upstream call was made and it produced something: its reported usage
        or some text (answer or reasoning). What the upstream did not report is counted
        here: the context sent for the prompt, the answer text for the completion. A failed
        write is logged and rolled back to its savepoint; it never costs the user the answer.
        """
        answer, model_config = self.answer, self.session.model_config
        if self._call is None or model_config is None:
            return
        reported = answer.prompt_tokens is not None or answer.completion_tokens is not None
        if not reported and not any(answer.content) and not any(answer.reasoning):
            return
        prompt = answer.prompt_tokens
        if prompt is None:
            prompt = self._context.tokens if self._context is not None else 0
        completion = answer.completion_tokens
        if completion is None:
            completion = counted_completion_tokens
        try:
            with transaction.atomic():
                record_usage(
                    user=self.session.user,
                    model_config=model_config,
                    source=UsageSource.CHAT,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                )
        except DatabaseError:
            logger.exception("could not record the token usage of answer %s", self.placeholder.pk)

    def _final_payload(self) -> dict[str, object]:
        answer = self.answer
        payload: dict[str, object] = {
            "message_id": self.placeholder.pk,
            "status": str(answer.status),
            "html": str(message_html(answer.text, self._stored_html)),
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            },
        }
        if answer.status == MessageStatus.ERROR:
            payload["error"] = answer.error
        return payload


def context_text(omitted: int, tokens: int) -> str:
    """The line under the messages; the chat page's template says the same."""
    return ngettext(
        "%(counter)s earlier message not sent · %(tokens)s tokens in context",
        "%(counter)s earlier messages not sent · %(tokens)s tokens in context",
        omitted,
    ) % {"counter": omitted, "tokens": tokens}


def replay_events(message: Message) -> Iterator[bytes]:
    """A retried request for a turn that already finished: the stored answer, at once."""
    status = "error" if message.status == MessageStatus.ERROR else "done"
    payload: dict[str, object] = {
        "message_id": message.pk,
        "status": message.status,
        "html": str(message_html(message.content, message.rendered_html)),
    }
    if message.error:
        payload["error"] = message.error
    yield sse_event(status, payload)


def run_to_completion(turn: Turn) -> None:
    """The no-JavaScript path: produce the whole answer before the redirect."""
    for _event in AnswerStream(turn).events():
        pass


def sweep_stale_streams(
    *, older_than_seconds: float = STALE_AFTER_SECONDS, session: ChatSession | None = None
) -> int:
    """Mark answers left `streaming` by a killed worker as `interrupted`; returns how many."""
    now = timezone.now()
    stale = Message.objects.filter(
        status=MessageStatus.STREAMING,
        updated_at__lte=now - timedelta(seconds=older_than_seconds),
    )
    if session is not None:
        stale = stale.filter(session=session)
    swept = stale.update(
        status=MessageStatus.INTERRUPTED,
        error=_("The server stopped while writing this answer."),
        updated_at=now,
    )
    if swept:  # their text is final now: searchable
        marked = Message.objects.filter(status=MessageStatus.INTERRUPTED, updated_at=now)
        with transaction.atomic():
            search.index_stored(marked.filter(session=session) if session else marked)
    return swept
