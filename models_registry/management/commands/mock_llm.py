"""``manage.py mock_llm``: serve the OpenAI-compatible mock model until Ctrl-C."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from models_registry.mock_llm import FAULTS, make_server


class Command(BaseCommand):
    help = (
        "Serve an OpenAI-compatible mock model (no provider, no network) so Parley can be "
        "tried and tested offline. Answers are deterministic; faults are chosen per request "
        "with an X-Mock-Fault header, a [mock:FAULT] directive in the message or the model "
        f"id mock-FAULT. Faults: {', '.join(FAULTS)}."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=9999, help="Port (0 picks a free one).")
        parser.add_argument(
            "--delay-ms", type=int, default=0, help="Pause between streamed tokens, in ms."
        )
        parser.add_argument(
            "--tokens", type=int, default=None, help="Make every answer exactly N word tokens."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["delay_ms"] < 0:
            raise CommandError("--delay-ms must be 0 or more.")
        if options["tokens"] is not None and options["tokens"] < 1:
            raise CommandError("--tokens must be 1 or more.")
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
                f"Cannot listen on {options['host']}:{options['port']}: {exc.strerror}"
            ) from exc
        # SIGTERM (docker stop, a test's terminate()) stops as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        self.stdout.write(
            f"Mock LLM listening on {server.base_url} - point a model at API base URL "
            f"{server.base_url}, model mock-model, any API key. Ctrl-C stops it."
        )
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        self.stdout.write("Mock LLM stopped.")
