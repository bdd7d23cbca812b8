"""Token usage: recording it (chat pages and the /v1 gateway), the daily quota, the reports.

Usage is kept per (user, model, day, source) in `TokenUsage`, one row incremented in place by
an atomic upsert, so concurrent answers never lose a count and the table grows with days and
models, not with requests. "Today" is `timezone.localdate()`: the day turns at midnight in
the server's TIME_ZONE, which is what the quota message tells users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from accounts.models import TokenUsage, UsageSource
from config.services import get_system_setting

if TYPE_CHECKING:
    from accounts.models import User
    from models_registry.models import ModelConfig

ACCOUNT_DAYS = 30
REPORT_DAYS = 14

_MODEL_NAME_MAX = TokenUsage._meta.get_field("model_name").max_length


def _upsert_sql() -> str:
    """INSERT ... SELECT ... ON CONFLICT DO UPDATE: the same text on SQLite >= 3.24 and PostgreSQL.

    The row is selected from the user and (LEFT JOIN) the model as they are now, so a model
    deleted while its answer streamed gives a row without a model but with its name, and a
    deleted user gives no row: never a foreign key that fails at COMMIT (they are deferred)
    and takes the caller's transaction, say the answer being saved, down with it.
    In DO UPDATE the existing row's columns are qualified with the table name (PostgreSQL
    requires it); `excluded` is the row we tried to add. The WHERE clause also keeps
    SQLite's parser from reading ON CONFLICT as part of the join.
    """
    quote = connection.ops.quote_name
    table = quote(TokenUsage._meta.db_table)
    users = quote(TokenUsage._meta.get_field("user").related_model._meta.db_table)
    models = quote(TokenUsage._meta.get_field("model_config").related_model._meta.db_table)
    columns = ", ".join(
        quote(c)
        for c in (
            "user_id",
            "model_config_id",
            "model_name",
            "day",
            "source",
            "requests",
            "prompt_tokens",
            "completion_tokens",
        )
    )
    key = ", ".join(quote(c) for c in ("user_id", "model_config_id", "day", "source"))
    name, pk = quote("name"), quote("id")

    def add(column: str, amount: str) -> str:
        return f"{quote(column)} = {table}.{quote(column)} + {amount}"

    return (
        f"INSERT INTO {table} ({columns}) "  # noqa: S608 - identifiers only, values are params
        f"SELECT u.{pk}, m.{pk}, COALESCE(m.{name}, %s), %s, %s, 1, %s, %s "
        f"FROM {users} u LEFT JOIN {models} m ON m.{pk} = %s "
        f"WHERE u.{pk} = %s "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"{add('requests', '1')}, "
        f"{add('prompt_tokens', 'excluded.' + quote('prompt_tokens'))}, "
        f"{add('completion_tokens', 'excluded.' + quote('completion_tokens'))}, "
        f"{quote('model_name')} = excluded.{quote('model_name')}"
    )


def _count(value: int | None) -> int:
    return max(int(value or 0), 0)


def record_usage(
    *,
    user: User,
    model_config: ModelConfig | None,
    source: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> None:
    """Add one request and its tokens to today's row for (user, model, source).

    One statement, atomic on its own, so it may run inside or outside a transaction; two
    concurrent calls both count. None or negative token counts count as 0. The row keeps
    the model's name, for display after the model is deleted; a model deleted meanwhile
    (the instance still has its pk) is recorded without a model, under that name. With
    `model_config=None` there is nothing to name, and nothing is recorded. Database errors
    propagate: a caller inside a transaction that must survive them wraps the call in its
    own `transaction.atomic()` (a savepoint).
    """
    if model_config is None:
        return
    source = UsageSource(source).value  # a wrong source fails here, not at the CHECK
    params = [
        (model_config.name or "")[:_MODEL_NAME_MAX],
        connection.ops.adapt_datefield_value(timezone.localdate()),
        source,
        _count(prompt_tokens),
        _count(completion_tokens),
        model_config.pk,
        user.pk,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), params)


_TOTAL = F("prompt_tokens") + F("completion_tokens")


def tokens_used_today(user: User) -> int:
    """Prompt + completion tokens of `user` today, over every model and source: one query."""
    result = TokenUsage.objects.filter(user=user, day=timezone.localdate()).aggregate(
        total=Coalesce(Sum(_TOTAL), 0)
    )
    return int(result["total"])


class QuotaExceeded(Exception):
    """The user has used the daily token quota; str() is the message to show them."""

    def __init__(self, *, limit: int, used: int) -> None:
        super().__init__(limit, used)
        self.limit = limit
        self.used = used

    def __str__(self) -> str:
        # Formatted when shown, so it follows the language of the request that shows it.
        return _(
            "You have used today's allowance of %(limit)s tokens. It resets at midnight "
            "(server time)."
        ) % {"limit": number_format(self.limit, force_grouping=True)}


def check_token_quota(user: User) -> None:
    """Raise QuotaExceeded when a daily quota is set and `user` has reached it today.

    The quota is checked before a request, so the request that crosses it is still
    answered in full; the next one is refused.
    """
    limit = get_system_setting().daily_token_quota
    if not limit:
        return
    used = tokens_used_today(user)
    if used >= limit:
        raise QuotaExceeded(limit=limit, used=used)


@dataclass(frozen=True)
class UsageTotals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UserUsage:
    """What the account page shows: rows newest day first, their totals, today's tokens."""

    rows: list[TokenUsage]
    totals: UsageTotals
    today_tokens: int
    days: int
    since: date


def _sum(rows: list[TokenUsage]) -> UsageTotals:
    return UsageTotals(
        requests=sum(r.requests for r in rows),
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows),
    )


def usage_for_user(user: User, *, days: int = ACCOUNT_DAYS) -> UserUsage:
    """The user's own usage over the last `days` days (today included): one query."""
    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    rows = list(
        TokenUsage.objects.filter(user=user, day__gte=since).order_by(
            "-day", "model_name", "source", "id"
        )
    )
    return UserUsage(
        rows=rows,
        totals=_sum(rows),
        today_tokens=sum(r.total_tokens for r in rows if r.day == today),
        days=days,
        since=since,
    )


@dataclass(frozen=True)
class UsageLine:
    """One line of the admin report: a user, a model or a day, and its sums."""

    label: object  # a username, a model name or a date
    totals: UsageTotals


@dataclass(frozen=True)
class UsageReport:
    per_user: list[UsageLine] = field(default_factory=list)
    per_model: list[UsageLine] = field(default_factory=list)
    per_day: list[UsageLine] = field(default_factory=list)
    days: int = REPORT_DAYS
    since: date | None = None


_SUMS = {
    "n_requests": Sum("requests"),
    "n_prompt": Sum("prompt_tokens"),
    "n_completion": Sum("completion_tokens"),
    "n_total": Sum(_TOTAL),
}


def _line(label: object, row: dict[str, object]) -> UsageLine:
    return UsageLine(
        label=label,
        totals=UsageTotals(
            requests=int(row["n_requests"] or 0),
            prompt_tokens=int(row["n_prompt"] or 0),
            completion_tokens=int(row["n_completion"] or 0),
        ),
    )


def usage_report(*, days: int = REPORT_DAYS) -> UsageReport:
    """Every user's usage over the last `days` days, for admins: three grouped queries.

    Users and models are sorted by total tokens, most first; days newest first. A model
    renamed within the period shows once per name it was used under.
    """
    since = timezone.localdate() - timedelta(days=days - 1)
    recent = TokenUsage.objects.filter(day__gte=since).order_by()
    per_user = (
        recent.values("user_id", "user__username")
        .annotate(**_SUMS)
        .order_by("-n_total", "user__username")
    )
    per_model = (
        recent.values("model_config_id", "model_name")
        .annotate(**_SUMS)
        .order_by("-n_total", "model_name")
    )
    per_day = recent.values("day").annotate(**_SUMS).order_by("-day")
    return UsageReport(
        per_user=[_line(row["user__username"], row) for row in per_user],
        per_model=[_line(row["model_name"], row) for row in per_model],
        per_day=[_line(row["day"], row) for row in per_day],
        days=days,
        since=since,
    )
