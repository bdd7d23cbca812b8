"""manage.py compress_messages: compress long message text stored before compression."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat.compression import CompressionProgress, compress_stored_messages
from chat.management.batches import BatchCommand


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class Command(BatchCommand):
    help = gettext_lazy(
        "Compress the content and reasoning of existing messages that are stored plain and "
        "whose UTF-8 is longer than the compression threshold in the system settings, when "
        "compressing makes them smaller. Walks messages by id in batches, each written in "
        "its own short transaction; a message edited meanwhile is skipped (run again). "
        "New messages are compressed when written: run this once after upgrading, or after "
        "lowering the threshold. Safe to repeat."
    )

    dry_run_help = gettext_lazy("report what would be compressed, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = self.batch_size(options)
        dry_run = options["dry_run"]
        verb = "would compress" if dry_run else "compressed"

        def report(batch: CompressionProgress) -> None:
            self.stdout.write(
                f"batch {batch.batch}: up to message {batch.last_id} of {batch.max_id}, "
                f"{verb} {batch.values_rewritten} value(s) in {batch.rows_rewritten} message(s), "
                f"{_size(batch.bytes_before)} -> {_size(batch.bytes_after)}"
            )

        total = compress_stored_messages(batch_size=batch_size, dry_run=dry_run, on_batch=report)
        saved = 1 - total.bytes_after / total.bytes_before if total.bytes_before else 0.0
        counts = {
            "rows": total.rows_rewritten,
            "values": total.values_rewritten,
            "before": _size(total.bytes_before),
            "after": _size(total.bytes_after),
            "saved": f"{saved:.0%}",
        }
        if dry_run:
            summary = _(
                "Dry run: would rewrite %(rows)d message(s) (%(values)d value(s)): %(before)s -> "
                "%(after)s (saved %(saved)s)."
            )
        else:
            summary = _(
                "Rewrote %(rows)d message(s) (%(values)d value(s)): %(before)s -> %(after)s "
                "(saved %(saved)s)."
            )
        summary %= counts
        if total.left_plain:
            summary += " " + _(
                "%(count)d long value(s) stay plain: compressing them saves nothing."
            ) % {"count": total.left_plain}
        if total.changed_meanwhile:
            summary += " " + _(
                "%(count)d value(s) changed while this ran and were left alone: run it again."
            ) % {"count": total.changed_meanwhile}
        self.stdout.write(self.style.SUCCESS(summary))
