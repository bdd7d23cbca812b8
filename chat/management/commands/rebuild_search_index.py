"""manage.py rebuild_search_index: rebuild the message search index from the messages."""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import search
from chat.management.batches import BatchCommand
from chat.models import Message, MessageStatus


class Command(BatchCommand):
    help = gettext_lazy(
        "Rebuild the message search index (chat/search.py) from the messages table. First "
        "empties the index in one transaction; then walks every message by id in batches "
        "(--batch-size, default 500), decompressing its text, and indexes each message whose "
        "text is not empty and final (any status but 'streaming'); each batch is read and "
        "written in its own short transaction, so the server keeps running (a search finds "
        "only what is indexed so far; new messages are indexed as usual). On SQLite it then "
        "merges the FTS5 index ('optimize', one transaction). Prints a line per batch and a "
        "summary. --dry-run counts what would be indexed and changes nothing. Run it if "
        "searches miss messages they should find, or after the logs report a failed purge."
    )

    dry_run_help = gettext_lazy("count what would be indexed, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = self.batch_size(options)
        started = time.monotonic()
        if options["dry_run"]:
            total = Message.objects.count()
            indexable = (
                Message.objects.exclude(status=MessageStatus.STREAMING).exclude(content="").count()
            )
            self.stdout.write(
                self.style.SUCCESS(
                    _(
                        "Dry run: would index %(indexable)s of %(total)s messages (%(skipped)s "
                        "empty or still streaming); nothing changed."
                    )
                    % {
                        "indexable": f"{indexable:,}",
                        "total": f"{total:,}",
                        "skipped": f"{total - indexable:,}",
                    }
                )
            )
            return
        search.reset_index()
        # Read after the reset: newer messages are indexed by the write paths themselves.
        max_id = Message.objects.aggregate(top=Max("id"))["top"] or 0
        last, batch, read, indexed = 0, 0, 0, 0
        while True:
            with transaction.atomic():
                rows = list(
                    Message.objects.filter(id__gt=last, id__lte=max_id)
                    .order_by("id")
                    .values_list("id", "session_id", "session__user_id", "status", "content")[
                        :batch_size
                    ]
                )
                if not rows:
                    break
                done = search.index_messages(
                    (pk, session, user, text)
                    for pk, session, user, status, text in rows
                    if status != MessageStatus.STREAMING
                )
            batch, last = batch + 1, rows[-1][0]
            read, indexed = read + len(rows), indexed + done
            self.stdout.write(
                f"batch {batch}: up to message {last} of {max_id}, indexed {done} of {len(rows)}"
            )
        search.optimize_index()
        size = search.index_size_bytes()
        counts = {
            "indexed": f"{indexed:,}",
            "read": f"{read:,}",
            "skipped": f"{read - indexed:,}",
            "seconds": f"{time.monotonic() - started:.1f}",
            "size": f"{size:,}" if size is not None else "",
        }
        if size is not None:
            summary = _(
                "Indexed %(indexed)s of %(read)s messages (%(skipped)s empty or still streaming) "
                "in %(seconds)s s; the index takes %(size)s bytes."
            )
        else:
            summary = _(
                "Indexed %(indexed)s of %(read)s messages (%(skipped)s empty or still streaming) "
                "in %(seconds)s s."
            )
        self.stdout.write(self.style.SUCCESS(summary % counts))
