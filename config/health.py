"""What /healthz, the admin status page and the alerts know about the server's health.

The checks are cheap (one `SELECT 1`, one statvfs, reading backup manifests), so the
container's HEALTHCHECK can run them every 30 s. Problems are logged at every check and
mailed to the admins at most once a day per problem (when e-mail is configured).

A problem's text is translated when it is shown: the status page in its reader's
language, the log and /healthz in the operator's (LANGUAGE_CODE), each admin's e-mail in
that admin's own language.
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
from django.utils import timezone, translation
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_noop

logger = logging.getLogger("parley.health")


def _translate(message: str, params: dict[str, object]) -> str:
    return gettext(message) % params


# `problem(gettext_noop("... %(x)s ..."), x=1)`: a message translated each time it is shown.
_lazy_problem = lazy(_translate, str)


def problem(message: str, **params: object) -> str:
    return _lazy_problem(message, params)


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
        problems["database"] = problem(gettext_noop("The database does not answer."))
    if free < minimum:
        problems["disk"] = problem(
            gettext_noop(
                "Free disk in %(path)s is %(free)d MB, below the %(minimum)d MB threshold."
            ),
            path=str(settings.DATA_DIR),
            free=free // (1024 * 1024),
            minimum=settings.PARLEY_MIN_FREE_DISK_MB,
        )
    max_age = timedelta(hours=settings.PARLEY_BACKUP_MAX_AGE_HOURS)
    if last_backup is None:
        problems["backup"] = problem(
            gettext_noop("No backup has been taken yet (manage.py backup).")
        )
    elif timezone.now() - last_backup > max_age:
        problems["backup"] = problem(
            gettext_noop("The newest backup is from %(time)s UTC, older than %(hours)d hours."),
            time=f"{last_backup:%Y-%m-%d %H:%M}",
            hours=settings.PARLEY_BACKUP_MAX_AGE_HOURS,
        )
    report = HealthReport(database_ok, free, minimum, last_backup, problems)
    if alert:
        raise_alerts(report)
    return report


def raise_alerts(report: HealthReport) -> None:
    """Log every problem at every check; mail the admins once a day per kind of problem."""
    with translation.override(settings.LANGUAGE_CODE):
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
    """One e-mail per language the admins chose (none chosen: LANGUAGE_CODE)."""
    from accounts.models import Role, User

    by_language: dict[str, list[str]] = {}
    admins = (
        User.objects.filter(role=Role.ADMIN, is_active=True)
        .exclude(email="")
        .values_list("email", "language")
    )
    for email, language in admins:
        by_language.setdefault(language or settings.LANGUAGE_CODE, []).append(email)
    for language, recipients in by_language.items():
        try:
            with translation.override(language):
                text = str(message)
                send_mail(
                    subject="[Parley] " + text[:120],
                    message=text + "\n\n" + gettext("See the System status page in the admin."),
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=recipients,
                )
        except Exception:
            logger.exception("health: could not e-mail the admins")
