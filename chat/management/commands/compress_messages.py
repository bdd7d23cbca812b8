"""manage.py compress_messages: compress long message text stored before compression."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.compression import CompressionProgress, compress_stored_messages


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class Command(BaseCommand):
    help = (
        "Compress the content and reasoning of existing messages that are stored plain and "
        "whose UTF-8 is longer than the compression threshold in the system settings, when "
        "compressing makes them smaller. Walks messages by id in batches, each written in "
        "its own short transaction; a message edited meanwhile is skipped (run again). "
        "New messages are compressed when written: run this once after upgrading, or after "
        "lowering the threshold. Safe to repeat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="messages per batch (default 500)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be compressed, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        dry_run = options["dry_run"]
        verb = "would compress" if dry_run else "compressed"

        def report(batch: CompressionProgress) -> None:
            self.stdout.write(
                f"batch {batch.batch}: up to message {batch.last_id} of {batch.max_id}, "
                f"{verb} {batch.values_rewritten} value(s) in {batch.rows_rewritten} message(s), "
                f"{_size(batch.bytes_before)} -> {_size(batch.bytes_after)}"
            )

        total = compress_stored_messages(
            batch_size=options["batch_size"], dry_run=dry_run, on_batch=report
        )
        saved = 1 - total.bytes_after / total.bytes_before if total.bytes_before else 0.0
        summary = (
            f"{'Dry run: would rewrite' if dry_run else 'Rewrote'} {total.rows_rewritten} "
            f"message(s) ({total.values_rewritten} value(s)): {_size(total.bytes_before)} -> "
            f"{_size(total.bytes_after)} (saved {saved:.0%})."
        )
        if total.left_plain:
            summary += (
                f" {total.left_plain} long value(s) stay plain: compressing them saves nothing."
            )
        if total.changed_meanwhile:
            summary += (
                f" {total.changed_meanwhile} value(s) changed while this ran and were left "
                "alone: run it again."
            )
        self.stdout.write(self.style.SUCCESS(summary))
