"""Parley as an OpenAI-compatible gateway: ``/v1/models`` and ``/v1/chat/completions``.

People and their tools reach the team's models with a personal API token
(``accounts.api_tokens``), never with the provider's key: the upstream key and URL stay
here. A request goes through the same rate limit, daily token quota, endpoint safety
check and upstream client as the chat pages. The history a client sends is the client's:
it is forwarded as sent (trimmed to the model's window only when the request asks with
``"parley": {"trim_to_context_window": true}``) and stored only when its owner turned
on "Keep API conversations". Usage is counted per user and model either way.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and
status codes, so the official SDKs raise their usual exceptions. Their messages are
always English (``config.i18n.API_LANGUAGE``), whatever the caller's Accept-Language.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.api_tokens import authenticate_api_token
from accounts.usage import QuotaExceeded, check_token_quota, record_usage
from chat import search
from chat.models import ChatSession, Message, MessageRole, MessageStatus
from chat.services import ChatRejected, check_rate_limit, make_title
from chat.streaming import clean_text
from chat.tokens import REPLY_PRIMING, count_message_tokens
from chat.window import context_budget, select_window
from config.i18n import API_LANGUAGE, in_language
from models_registry.client import StreamDelta, StreamFinish, UpstreamClient, UpstreamError
from models_registry.models import PERSONAL_ID_PREFIX, ApiKeyUnreadable, ModelConfig
from models_registry.services import upstream_client_for
from models_registry.upstream_types import ErrorKind

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
API_ERROR = "api_error"
ROLES = {"system", "user", "assistant", "developer"}
# Parameters passed to the upstream as given (after their type and range are checked).
NUMBER_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call")
MAX_STOP_SEQUENCES = 4

# How an upstream failure reaches the API caller. The provider refusing Parley's key is
# not the caller's fault (their token was accepted): a 502, never a 401.
UPSTREAM_STATUS = {
    ErrorKind.BAD_KEY: (502, API_ERROR, "upstream_auth_failed"),
    ErrorKind.MODEL_NOT_FOUND: (502, API_ERROR, "upstream_model_not_found"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_exceeded", "upstream_rate_limited"),
    ErrorKind.CONTEXT_TOO_LONG: (400, INVALID_REQUEST, "context_length_exceeded"),
    ErrorKind.UNREACHABLE: (502, API_ERROR, "upstream_unreachable"),
    ErrorKind.TIMED_OUT: (504, API_ERROR, "upstream_timeout"),
    ErrorKind.UPSTREAM_ERROR: (502, API_ERROR, "upstream_error"),
    ErrorKind.BAD_RESPONSE: (502, API_ERROR, "upstream_bad_response"),
}


class ApiError(Exception):
    """A refusal in OpenAI's error shape, with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = str(message)
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def upstream_api_error(error: UpstreamError) -> ApiError:
    status, type_, code = UPSTREAM_STATUS.get(error.kind, (502, API_ERROR, "upstream_error"))
    return ApiError(status, str(error.user_message), type_=type_, code=code)


# -- who is asking ------------------------------------------------------------------------


def authenticate(authorization: str) -> User:
    """The user a ``Bearer`` token belongs to; 401 for anything else."""
    scheme, _sep, raw = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(
            401,
            _("Send your Parley API token as 'Authorization: Bearer <token>'."),
            code="missing_api_key",
        )
    token = authenticate_api_token(raw.strip())
    if token is None:
        raise ApiError(
            401,
            _("This API token is not valid: it may be mistyped, revoked or expired."),
            code="invalid_api_key",
        )
    return token.user


# -- models -------------------------------------------------------------------------------


def usable_models(user: User) -> list[ModelConfig]:
    """Active system models, then the user's own active ones: what the token may use."""
    models = ModelConfig.objects.visible_to(user).active().order_by("owner_id", "name", "id")
    return sorted(models, key=lambda m: (not m.is_system, m.name.lower(), m.pk))


def model_object(model_config: ModelConfig) -> dict[str, Any]:
    return {
        "id": model_config.public_id,
        "object": "model",
        "created": int(model_config.created_at.timestamp()),
        "owned_by": "parley" if model_config.is_system else "you",
        "name": model_config.name,
        "context_window": model_config.context_window,
        "max_output_tokens": model_config.max_output_tokens,
    }


def find_model(user: User, public_id: object) -> ModelConfig:
    """The model a request names by its public id; 404 in OpenAI's words otherwise."""
    if not isinstance(public_id, str) or not public_id.strip():
        raise ApiError(400, _("Name a model: 'model' is required."), param="model")
    wanted = public_id.strip()
    if "\x00" in wanted:  # no id has one, and PostgreSQL refuses it in a query
        raise _model_not_found(wanted)
    models = ModelConfig.objects.visible_to(user).active()
    if wanted.startswith(PERSONAL_ID_PREFIX):
        found = models.filter(owner=user, api_id__iexact=wanted.removeprefix(PERSONAL_ID_PREFIX))
    else:
        found = models.filter(owner__isnull=True, api_id__iexact=wanted)
    model_config = found.first()
    if model_config is None:
        raise _model_not_found(wanted)
    return model_config


def _model_not_found(wanted: str) -> ApiError:
    return ApiError(
        404,
        _("The model '%(model)s' does not exist or you do not have access to it.")
        % {"model": wanted[:100].replace("\x00", "")},
        param="model",
        code="model_not_found",
    )


# -- the request --------------------------------------------------------------------------


@dataclass
class CompletionRequest:
    model_config: ModelConfig
    messages: list[dict[str, str]]
    params: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    trim: bool = False
    prompt_tokens: int | None = None  # counted here when trimming, else only if needed


def parse_request(user: User, body: bytes) -> CompletionRequest:
    """Check an OpenAI chat-completions body; every problem is a 4xx naming the field."""
    try:
        data = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, _("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ApiError(400, _("The request body must be a JSON object."))
    model_config = find_model(user, data.get("model"))
    for name in UNSUPPORTED:
        if data.get(name):
            raise ApiError(
                400,
                _("Parley's API does not support '%(name)s' (tool calling).") % {"name": name},
                param=name,
                code="unsupported_parameter",
            )
    n = data.get("n", 1)
    if n is not None and (type(n) is not int or n != 1):
        raise ApiError(400, _("Parley answers with one choice: 'n' must be 1."), param="n")
    request = CompletionRequest(
        model_config=model_config,
        messages=_messages(data.get("messages")),
        params=_params(data, model_config),
        stream=_boolean(data, "stream"),
    )
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise ApiError(400, _("'stream_options' must be an object."), param="stream_options")
        if not request.stream:
            raise ApiError(
                400,
                _("'stream_options' is only allowed when 'stream' is true."),
                param="stream_options",
            )
        request.include_usage = _boolean(options, "include_usage", param="stream_options")
    parley = data.get("parley")
    if parley is not None:
        if not isinstance(parley, dict):
            raise ApiError(400, _("'parley' must be an object."), param="parley")
        request.trim = _boolean(parley, "trim_to_context_window", param="parley")
    if request.trim:
        _trim_to_window(request)
    return request


def _boolean(data: dict[str, Any], name: str, *, param: str | None = None) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(
            400, _("'%(name)s' must be true or false.") % {"name": name}, param=param or name
        )
    return value


def _messages(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(
            400, _("'messages' must be a non-empty array of messages."), param="messages"
        )
    messages = []
    for index, item in enumerate(value):
        param = f"messages[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, _("Each message must be an object."), param=param)
        role = item.get("role")
        if role == "tool" or item.get("tool_calls"):
            raise ApiError(
                400,
                _("Parley's API does not support tool calling messages."),
                param=param,
                code="unsupported_parameter",
            )
        if role not in ROLES:
            raise ApiError(
                400,
                _("A message's role must be system, developer, user or assistant."),
                param=f"{param}.role",
            )
        # "developer" is OpenAI's newer name for system; most other servers know only system.
        messages.append(
            {
                "role": "system" if role == "developer" else role,
                "content": _content(item.get("content"), f"{param}.content"),
            }
        )
    return messages


def _content(value: object, param: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ApiError(400, _("Only text content parts are supported."), param=param)
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(400, _("A text part needs a 'text' string."), param=param)
            parts.append(text)
        return "".join(parts)
    raise ApiError(400, _("A message's content must be a string or text parts."), param=param)


def _params(data: dict[str, Any], model_config: ModelConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (low, high) in NUMBER_RANGES.items():
        value = data.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ApiError(
                400,
                _("'%(name)s' must be a number from %(low)g to %(high)g.")
                % {"name": name, "low": low, "high": high},
                param=name,
            )
        params[name] = value
    # The answer's length: the caller's limit, never above the model's own.
    limit = model_config.max_output_tokens
    for name in ("max_completion_tokens", "max_tokens"):
        value = data.get(name)
        if value is None:
            continue
        if type(value) is not int or value < 1:
            raise ApiError(
                400, _("'%(name)s' must be a positive integer.") % {"name": name}, param=name
            )
        limit = min(limit, value)
    params["max_tokens"] = limit
    stop = data.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise ApiError(400, _("'stop' must be a string or up to 4 strings."), param="stop")
        params["stop"] = stops
    seed = data.get("seed")
    if seed is not None:
        if type(seed) is not int:
            raise ApiError(400, _("'seed' must be an integer."), param="seed")
        params["seed"] = seed
    return params


def _trim_to_window(request: CompletionRequest) -> None:
    """Keep the system messages and the newest others that fit the model's window."""
    model_config = request.model_config
    system = [m for m in request.messages if m["role"] == "system"]
    others = [m for m in request.messages if m["role"] != "system"]
    system_tokens = sum(count_message_tokens(m["role"], m["content"]) for m in system)
    counts = [count_message_tokens(m["role"], m["content"]) for m in others]
    budget = context_budget(
        context_window=model_config.context_window,
        max_output_tokens=request.params["max_tokens"],
        system_prompt_tokens=system_tokens,
    )
    window = select_window(((i, counts[i]) for i in reversed(range(len(others)))), budget)
    if others and not window.kept_ids:
        raise ApiError(
            400,
            _("The last message alone does not fit %(model)s's context window.")
            % {"model": model_config.public_id},
            param="messages",
            code="context_length_exceeded",
        )
    kept = set(window.kept_ids)
    request.messages = system + [m for i, m in enumerate(others) if i in kept]
    request.prompt_tokens = system_tokens + window.tokens + REPLY_PRIMING


def counted_prompt_tokens(request: CompletionRequest) -> int:
    if request.prompt_tokens is None:
        request.prompt_tokens = REPLY_PRIMING + sum(
            count_message_tokens(m["role"], m["content"]) for m in request.messages
        )
    return request.prompt_tokens


# -- limits and the upstream --------------------------------------------------------------


def check_limits(user: User) -> None:
    """The daily token quota, then the per-minute message limit of the chat pages."""
    try:
        check_token_quota(user)
    except QuotaExceeded as exceeded:
        raise ApiError(
            429, str(exceeded), type_="insufficient_quota", code="insufficient_quota"
        ) from None
    try:
        check_rate_limit(user)
    except ChatRejected as rejection:
        raise ApiError(
            rejection.status,
            rejection.message,
            type_="rate_limit_exceeded" if rejection.status == 429 else INVALID_REQUEST,
            code="rate_limit_exceeded" if rejection.status == 429 else None,
            headers={"Retry-After": "60"} if rejection.status == 429 else None,
        ) from None


def client_for(model_config: ModelConfig) -> UpstreamClient:
    try:
        return upstream_client_for(model_config)
    except ApiKeyUnreadable:
        message = _("This model cannot be used right now: its provider key cannot be read.")
    except ValidationError:
        message = _("This model cannot be used right now: its server address is not allowed.")
    raise ApiError(503, message, type_=API_ERROR, code="model_unavailable")


@dataclass
class Answer:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def text(self) -> str:
        return clean_text("".join(self.content))

    def usage(self, request: CompletionRequest) -> dict[str, int]:
        prompt = self.prompt_tokens
        if prompt is None:
            prompt = counted_prompt_tokens(request)
        completion = self.completion_tokens
        if completion is None:
            completion = (
                count_message_tokens(MessageRole.ASSISTANT, self.text) if self.content else 0
            )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


def complete(user: User, request: CompletionRequest) -> dict[str, Any]:
    """One whole answer (``stream: false``) in OpenAI's ``chat.completion`` shape."""
    client = client_for(request.model_config)
    try:
        reply = client.complete(
            model=request.model_config.model, messages=request.messages, **request.params
        )
    except UpstreamError as error:
        raise upstream_api_error(error) from None
    answer = Answer(
        content=[reply.content],
        reasoning=[reply.reasoning],
        finish_reason=reply.finish_reason,
        prompt_tokens=reply.usage.prompt_tokens if reply.usage else None,
        completion_tokens=reply.usage.completion_tokens if reply.usage else None,
    )
    usage = finish(user, request, answer)
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if reply.reasoning:
        message["reasoning_content"] = clean_text(reply.reasoning)
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model_config.public_id,
        "choices": [
            {"index": 0, "message": message, "finish_reason": answer.finish_reason or "stop"}
        ],
        "usage": usage,
    }


def open_stream(user: User, request: CompletionRequest) -> Iterator[bytes]:
    """Server-sent ``chat.completion.chunk`` events, ending with ``data: [DONE]``.

    The upstream's first item is awaited before this returns, so a failure to reach the
    model is an HTTP error status, not a stream that starts and fails.
    """
    client = client_for(request.model_config)
    items = client.stream(
        model=request.model_config.model, messages=request.messages, **request.params
    )
    try:
        first = next(items)
    except UpstreamError as error:
        raise upstream_api_error(error) from None
    except StopIteration:
        first = StreamFinish(None, None)
    # Iterated after the view returns: its error events must stay English too.
    return in_language(_chunks(user, request, items, first), API_LANGUAGE)


def _chunks(
    user: User, request: CompletionRequest, items: Iterator[Any], first: Any
) -> Iterator[bytes]:
    answer = Answer()
    ident, created, model = completion_id(), int(time.time()), request.model_config.public_id

    def chunk(
        delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any
    ) -> bytes:
        """One chunk event; ``delta=None`` is the choice-less chunk that carries the usage."""
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        )
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return sse(body)

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        for item in itertools.chain([first], items):
            if isinstance(item, StreamDelta):
                answer.content.append(item.content)
                answer.reasoning.append(item.reasoning)
                delta: dict[str, Any] = {}
                if item.content:
                    delta["content"] = item.content
                if item.reasoning:
                    delta["reasoning_content"] = item.reasoning
                if delta:
                    yield chunk(delta)
            elif isinstance(item, StreamFinish):
                answer.finish_reason = item.finish_reason
                if item.usage is not None:
                    answer.prompt_tokens = item.usage.prompt_tokens
                    answer.completion_tokens = item.usage.completion_tokens
        usage = finish(user, request, answer)
        finished = True
        yield chunk({}, answer.finish_reason or "stop")
        if request.include_usage:
            yield chunk(None, usage=usage)
        yield b"data: [DONE]\n\n"
    except UpstreamError as error:
        yield sse(upstream_api_error(error).payload())
    finally:
        items.close()
        if not finished:
            # Cut off (the caller went away, or the upstream failed): count what was used.
            finish(user, request, answer, store=False)


def finish(
    user: User, request: CompletionRequest, answer: Answer, *, store: bool = True
) -> dict[str, int]:
    """Record the usage (and keep the conversation if its owner asked); returns the usage."""
    usage = answer.usage(request)
    record_usage(
        user=user,
        model_config=request.model_config,
        source="api",
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
    )
    if store and user.store_api_chats:
        # Its own transaction: a conversation that cannot be kept never costs the caller
        # the answer, nor the usage already counted.
        try:
            with transaction.atomic():
                _store_conversation(user, request, answer, usage)
        except DatabaseError:
            logger.exception("could not keep an API conversation of user %s", user.pk)
    return usage


def _store_conversation(
    user: User, request: CompletionRequest, answer: Answer, usage: dict[str, int]
) -> None:
    """The request's user/assistant messages and the answer, as one new chat."""
    kept = [m for m in request.messages if m["role"] in (MessageRole.USER, MessageRole.ASSISTANT)]
    first_question = next((m["content"] for m in kept if m["role"] == MessageRole.USER), "")
    session = ChatSession.objects.create(
        user=user,
        model_config=request.model_config,
        title=_kept_chat_title(user, first_question),
        message_count=len(kept) + 1,
    )
    rows = [
        Message(
            session=session,
            role=m["role"],
            content=m["content"],
            token_count=count_message_tokens(m["role"], m["content"]),
            status=MessageStatus.COMPLETE,
        )
        for m in kept
    ]
    rows.append(
        Message(
            session=session,
            role=MessageRole.ASSISTANT,
            content=answer.text,
            reasoning=clean_text("".join(answer.reasoning)),
            token_count=count_message_tokens(MessageRole.ASSISTANT, answer.text),
            status=MessageStatus.COMPLETE,
            finish_reason=answer.finish_reason or "",
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
        )
    )
    Message.objects.bulk_create(rows)
    search.index_messages((m.pk, session.pk, user.pk, m.content) for m in rows)


def _kept_chat_title(user: User, first_question: str) -> str:
    """The kept chat's title; a made-up one in its owner's language (the API is English)."""
    with translation.override(user.language or settings.LANGUAGE_CODE):
        return make_title(first_question) or _("API conversation")


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def sse(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()
