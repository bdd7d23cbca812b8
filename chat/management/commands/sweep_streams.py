"""manage.py sweep_streams: answers left `streaming` by a killed worker become `interrupted`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.streaming import STALE_AFTER_SECONDS, sweep_stale_streams


class Command(BaseCommand):
    help = (
        "Mark answers still 'streaming' whose row has not moved for --older-than seconds "
        f"(default {STALE_AFTER_SECONDS:.0f}; live streams touch theirs every few seconds) as "
        "'interrupted', keeping their partial text. Run at start-up and by cleanup."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, default=STALE_AFTER_SECONDS)

    def handle(self, *args: Any, **options: Any) -> None:
        count = sweep_stale_streams(older_than_seconds=options["older_than"])
        self.stdout.write(f"Marked {count} interrupted answer(s).")
