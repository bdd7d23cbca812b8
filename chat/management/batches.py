"""What the commands that walk every message in batches share: --batch-size, --dry-run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.i18n import TranslatedHelpCommand


class BatchCommand(TranslatedHelpCommand):
    """A command that reads (and maybe writes) messages by id, a batch at a time."""

    dry_run_help: str | Promise  # what --dry-run does for this command

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help=gettext_lazy("messages per batch (default %(default)s)"),
        )
        parser.add_argument("--dry-run", action="store_true", help=self.dry_run_help)

    def batch_size(self, options: dict[str, Any]) -> int:
        if options["batch_size"] < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        return options["batch_size"]
