"""manage.py sweep_streams: answers left `streaming` by a killed worker become `interrupted`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat.streaming import STALE_AFTER_SECONDS, sweep_stale_streams
from config.i18n import TranslatedHelpCommand


class Command(TranslatedHelpCommand):
    help = format_lazy(
        gettext_lazy(
            "Mark answers still 'streaming' whose row has not moved for --older-than seconds "
            "(default {seconds}; live streams touch theirs every few seconds) as "
            "'interrupted', keeping their partial text. Run at start-up and by cleanup."
        ),
        seconds=f"{STALE_AFTER_SECONDS:.0f}",
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=STALE_AFTER_SECONDS,
            help=gettext_lazy("Seconds a streaming answer's row must have stood still."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = sweep_stale_streams(older_than_seconds=options["older_than"])
        self.stdout.write(_("Marked %(count)d interrupted answer(s).") % {"count": count})
