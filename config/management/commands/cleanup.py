"""manage.py cleanup: retention of chats and audit events, expired sessions, database upkeep."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.cleanup import BATCH_SIZE, run_cleanup
from config.i18n import TranslatedHelpCommand


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Delete chats whose last activity is older than the chat retention setting (with "
        "their messages), audit events older than the audit retention setting (0 days keeps "
        "either forever) and expired log-in sessions; mark answers left 'streaming' by a dead "
        "worker 'interrupted'; then run PRAGMA optimize and, on SQLite, VACUUM when at least "
        "a tenth of the file (and 1 MiB), or 64 MiB, is free pages and the disk has room. "
        "Deletes run in short batches. Records one 'cleanup' audit event. --dry-run only "
        "counts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=gettext_lazy("Count what would go; change nothing."),
        )
        parser.add_argument(
            "--no-vacuum",
            action="store_true",
            help=gettext_lazy("Skip VACUUM (it holds the write lock while it rewrites the file)."),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=gettext_lazy("Rows deleted per transaction (default %(default)s)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        # The header and progress lines at the default verbosity; what was done always.
        progress = self.stdout.write if options["verbosity"] >= 1 else None
        report = run_cleanup(
            dry_run=options["dry_run"],
            vacuum=not options["no_vacuum"],
            batch_size=options["batch_size"],
            progress=progress,
        )
        for line in report.lines():
            self.stdout.write(line)
