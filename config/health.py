"""What /healthz, the admin status page and the alerts know about the server's health.

The checks are cheap (one `SELECT 1`, one statvfs, reading backup manifests), so the
container's HEALTHCHECK can run them every 30 s. Problems are logged at every check and
mailed to the admins at most once a day per problem (when e-mail is configured).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import DatabaseError, connection
from django.utils import timezone

logger = logging.getLogger("parley.health")


@dataclass(frozen=True)
class HealthReport:
    database_ok: bool
    free_disk_bytes: int
    min_free_disk_bytes: int
    last_backup_at: datetime | None
    problems: dict[str, str] = field(default_factory=dict)  # kind -> message

    @property
    def disk_ok(self) -> bool:
        return self.free_disk_bytes >= self.min_free_disk_bytes

    @property
    def healthy(self) -> bool:
        """Whether /healthz answers 200: a stale backup warns but does not fail the probe."""
        return self.database_ok and self.disk_ok

    @property
    def last_backup_age_seconds(self) -> int | None:
        if self.last_backup_at is None:
            return None
        return max(0, int((timezone.now() - self.last_backup_at).total_seconds()))


def database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.error("health: the database does not answer: %s", error)
        return False
    return True


def free_disk_bytes(path: Path | None = None) -> int:
    return shutil.disk_usage(path or settings.DATA_DIR).free


def newest_backup_time() -> datetime | None:
    """When the newest backup of any kind finished, from the manifests (None: never)."""
    try:
        from config.backups import latest_backups

        summaries = [s for s in latest_backups().values() if s is not None]
    except Exception:  # a broken backup folder must not break the health probe
        logger.exception("health: could not read the backup manifests")
        return None
    return max((s.finished_at for s in summaries), default=None)


def check_health(*, alert: bool = True) -> HealthReport:
    database_ok = database_answers()
    free = free_disk_bytes()
    minimum = settings.PARLEY_MIN_FREE_DISK_MB * 1024 * 1024
    last_backup = newest_backup_time()
    problems: dict[str, str] = {}
    if not database_ok:
        problems["database"] = "The database does not answer."
    if free < minimum:
        problems["disk"] = (
            f"Free disk in {settings.DATA_DIR} is {free // (1024 * 1024)} MB, below the "
            f"{settings.PARLEY_MIN_FREE_DISK_MB} MB threshold."
        )
    max_age = timedelta(hours=settings.PARLEY_BACKUP_MAX_AGE_HOURS)
    if last_backup is None:
        problems["backup"] = "No backup has been taken yet (manage.py backup)."
    elif timezone.now() - last_backup > max_age:
        problems["backup"] = (
            f"The newest backup is from {last_backup:%Y-%m-%d %H:%M} UTC, older than "
            f"{settings.PARLEY_BACKUP_MAX_AGE_HOURS} hours."
        )
    report = HealthReport(database_ok, free, minimum, last_backup, problems)
    if alert:
        raise_alerts(report)
    return report


def raise_alerts(report: HealthReport) -> None:
    """Log every problem at every check; mail the admins once a day per kind of problem."""
    for message in report.problems.values():
        logger.warning("health: %s", message)
    if not settings.EMAIL_URL_CONFIGURED:
        return
    today = timezone.now().date().isoformat()
    for kind, message in report.problems.items():
        if kind == "database":
            continue  # the mail itself would need the database for the recipients
        if cache.add(f"health-mailed:{kind}:{today}", 1, timeout=26 * 3600):
            _mail_admins(message)


def _mail_admins(message: str) -> None:
    from accounts.models import Role, User

    recipients = list(
        User.objects.filter(role=Role.ADMIN, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not recipients:
        return
    try:
        send_mail(
            subject="[Parley] " + message[:120],
            message=message + "\n\nSee the System status page in the admin.",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    except Exception:
        logger.exception("health: could not e-mail the admins")
