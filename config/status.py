"""The admin's System status page: sizes, counts, backups, slow queries, activity, usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.health import check_health
from config.slow_queries import recent_slow_queries

CHART_DAYS = 30
RATIO_SAMPLE = 500


@dataclass(frozen=True)
class DatabaseSize:
    vendor: str
    file_bytes: int | None
    wal_bytes: int | None
    free_pages_bytes: int | None


def database_size() -> DatabaseSize:
    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return DatabaseSize(connection.vendor, cursor.fetchone()[0], None, None)
    path = Path(connection.settings_dict["NAME"])
    wal = Path(f"{path}-wal")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA page_size")
        page_size = cursor.fetchone()[0]
        cursor.execute("PRAGMA freelist_count")
        free_pages = cursor.fetchone()[0]
    return DatabaseSize(
        "sqlite",
        path.stat().st_size if path.exists() else None,
        wal.stat().st_size if wal.exists() else 0,
        free_pages * page_size,
    )


# The row counts' labels on the page, in the reader's language.
ROW_LABELS = {
    "users": _("Users"),
    "models": _("Models"),
    "chats": _("Chats"),
    "messages": _("Messages"),
    "audit events": _("Audit events"),
}


def row_counts() -> dict[str, int]:
    from accounts.models import AuditEvent, User
    from chat.models import ChatSession, Message
    from models_registry.models import ModelConfig

    return {
        "users": User.objects.count(),
        "models": ModelConfig.objects.count(),
        "chats": ChatSession.objects.count(),
        "messages": Message.objects.count(),
        "audit events": AuditEvent.objects.count(),
    }


def compression_ratio() -> float | None:
    """Stored bytes / text bytes over the newest messages (a sample keeps the page fast)."""
    from chat.models import Message

    length = (
        "octet_length(content)"
        if connection.vendor == "postgresql"
        else ("length(CAST(content AS BLOB))")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {length} FROM chat_message ORDER BY id DESC LIMIT %s",  # noqa: S608
            [RATIO_SAMPLE],
        )
        stored = dict(cursor.fetchall())
    if not stored:
        return None
    texts = Message.objects.filter(id__in=stored).values_list("id", "content")
    text_bytes = sum(len(text.encode("utf-8")) for _, text in texts)
    return round(sum(v or 0 for v in stored.values()) / text_bytes, 3) if text_bytes else None


def messages_per_day(days: int = CHART_DAYS) -> list[tuple[Any, int]]:
    from chat.models import Message

    since = timezone.now() - timedelta(days=days - 1)
    counts = dict(
        Message.objects.filter(created_at__gte=since.replace(hour=0, minute=0, second=0))
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    today = timezone.now().date()
    return [
        (day, counts.get(day, 0))
        for day in (today - timedelta(days=i) for i in range(days - 1, -1, -1))
    ]


def activity_chart(
    points: list[tuple[Any, int]], width: int = 600, height: int = 120
) -> dict[str, Any]:
    """Bars for an inline SVG drawn by the template: no script, no CDN."""
    peak = max((n for _, n in points), default=0) or 1
    bar = width / max(len(points), 1)
    bars = [
        {
            "x": round(i * bar + 1, 1),
            "width": round(bar - 2, 1),
            "height": round(n / peak * (height - 20), 1),
            "y": round(height - n / peak * (height - 20), 1),
            "day": day,
            "count": n,
        }
        for i, (day, n) in enumerate(points)
    ]
    return {"width": width, "height": height, "bars": bars, "peak": peak}


def status_context() -> dict[str, Any]:
    from accounts.usage import usage_report
    from config.backups import latest_backups

    report = check_health(alert=True)
    counts = row_counts()
    return {
        "health": report,
        "db": database_size(),
        "free_disk": report.free_disk_bytes,
        "counts": counts,
        "count_rows": [(ROW_LABELS[name], n) for name, n in counts.items()],
        "ratio": compression_ratio(),
        "backups": latest_backups(),
        "slow_queries": recent_slow_queries(),
        "slow_query_ms": settings.PARLEY_SLOW_QUERY_MS,
        "chart": activity_chart(messages_per_day()),
        "token_usage": usage_report(),
    }
