"""What the upstream client returns and raises: plain values, no HTTP in sight."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class ErrorKind(StrEnum):
    BAD_KEY = "bad_key"
    MODEL_NOT_FOUND = "model_not_found"
    RATE_LIMITED = "rate_limited"
    CONTEXT_TOO_LONG = "context_too_long"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed_out"
    UPSTREAM_ERROR = "upstream_error"
    BAD_RESPONSE = "bad_response"


USER_MESSAGES = {
    ErrorKind.BAD_KEY: _("The API key was refused by the provider."),
    ErrorKind.MODEL_NOT_FOUND: _("The model was not found at the provider."),
    ErrorKind.RATE_LIMITED: _("The provider is rate limiting requests; try again shortly."),
    ErrorKind.CONTEXT_TOO_LONG: _("The conversation is too long for this model's context window."),
    ErrorKind.UNREACHABLE: _("Could not reach the model's server."),
    ErrorKind.TIMED_OUT: _("The model's server took too long to answer."),
    ErrorKind.UPSTREAM_ERROR: _("The model's server returned an error."),
    ErrorKind.BAD_RESPONSE: _("The model's server sent a reply Parley could not read."),
}


class UpstreamError(Exception):
    """A failed call: ``user_message`` is for the page, ``detail`` for the log."""

    def __init__(self, kind: ErrorKind, detail: str, *, status: int | None = None) -> None:
        self.kind = kind
        self.status = status
        self.detail = detail
        # Lazy: rendered in the language of whoever reads it, and importable without settings.
        self.user_message: str = USER_MESSAGES[kind]
        super().__init__(f"{kind.value}: {detail}")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class StreamDelta:
    content: str = ""
    reasoning: str = ""


@dataclass(frozen=True)
class StreamFinish:
    finish_reason: str | None
    usage: Usage | None


StreamItem = StreamDelta | StreamFinish


@dataclass(frozen=True)
class Completion:
    content: str
    reasoning: str
    finish_reason: str | None
    usage: Usage | None
