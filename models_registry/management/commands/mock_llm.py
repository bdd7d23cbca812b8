"""``manage.py mock_llm``: serve the OpenAI-compatible mock model until Ctrl-C."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.i18n import TranslatedHelpCommand
from models_registry.mock_llm import FAULTS, make_server


class Command(TranslatedHelpCommand):
    help = format_lazy(
        gettext_lazy(
            "Serve an OpenAI-compatible mock model (no provider, no network) so Parley can be "
            "tried and tested offline. Answers are deterministic; faults are chosen per request "
            "with an X-Mock-Fault header, a [mock:FAULT] directive in the message or the model "
            "id mock-FAULT. Faults: {faults}."
        ),
        faults=", ".join(FAULTS),
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help=gettext_lazy("Address to listen on.")
        )
        parser.add_argument(
            "--port", type=int, default=9999, help=gettext_lazy("Port (0 picks a free one).")
        )
        parser.add_argument(
            "--delay-ms",
            type=int,
            default=0,
            help=gettext_lazy("Pause between streamed tokens, in ms."),
        )
        parser.add_argument(
            "--tokens",
            type=int,
            default=None,
            help=gettext_lazy("Make every answer exactly N word tokens."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["delay_ms"] < 0:
            raise CommandError(_("--delay-ms must be 0 or more."))
        if options["tokens"] is not None and options["tokens"] < 1:
            raise CommandError(_("--tokens must be 1 or more."))
        try:
            server = make_server(
                options["host"],
                options["port"],
                delay_ms=options["delay_ms"],
                tokens=options["tokens"],
                log_requests=options["verbosity"] >= 2,
            )
        except OSError as exc:
            raise CommandError(
                _("Cannot listen on %(host)s:%(port)s: %(error)s")
                % {"host": options["host"], "port": options["port"], "error": exc.strerror}
            ) from exc
        # SIGTERM (docker stop, a test's terminate()) stops as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self.stdout.write(
            _(
                "Mock LLM listening on %(url)s - point a model at API base URL %(url)s, model "
                "mock-model, any API key. Ctrl-C stops it."
            )
            % {"url": server.base_url}
        )
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        self.stdout.write(_("Mock LLM stopped."))
