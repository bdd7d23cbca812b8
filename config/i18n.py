"""Languages beyond Django's own machinery: streams that keep the language they began in,
and management commands whose help is translated.

A streamed response is iterated after its view has returned, by whichever thread the
server uses, with whatever language that thread has active by then. ``in_language``
makes every item of a stream in the language chosen when the stream was created (the
chat page's: the reader's; the /v1 API's: English), and puts the thread's own back
between items. docs/i18n.md says how Parley chooses a language.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandParser
from django.utils import translation

T = TypeVar("T")

# The /v1 API speaks English whatever the caller's Accept-Language: its messages are part
# of an OpenAI-compatible contract, read by programs more often than by people.
API_LANGUAGE = "en"


def in_language(items: Iterator[T], language: str | None) -> Iterator[T]:
    """``items`` with ``language`` active while each one is made (None: translations off)."""
    while True:
        with _speaking(language):
            try:
                item = next(items)
            except StopIteration:
                return
        try:
            yield item
        except GeneratorExit:
            # Closed early (the client went away): the stream's clean-up speaks it too.
            with _speaking(language):
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            raise


def _speaking(language: str | None) -> AbstractContextManager[object]:
    """``translation.override(language)``, or nothing when the thread speaks it already
    (the usual case: the request's own thread; a switch costs two writes per event)."""
    if translation.get_language() == language:
        return nullcontext()
    return translation.override(language)


class TranslatedHelpCommand(BaseCommand):
    """A management command whose ``help`` is lazy (``gettext_lazy``).

    argparse wraps the description with a regular expression, which needs a real str: it
    is made here, in the language active when the parser is built (LANGUAGE_CODE for
    ``manage.py``). Argument ``help`` may stay lazy: argparse formats those with ``%``.
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if parser.description is not None:
            parser.description = str(parser.description)
        return parser
