"""Token usage: one row per user, model, day and source, counted atomically; the daily quota;
the reports. Runs on PostgreSQL too (PARLEY_TEST_DATABASE_URL), where the upsert differs most."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import TokenUsage, UsageSource, User
from accounts.usage import (
    QuotaExceeded,
    check_token_quota,
    record_usage,
    tokens_used_today,
    usage_for_user,
    usage_report,
)
from config.services import get_system_setting
from models_registry.models import ModelConfig


@pytest.fixture
def model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="GPT mini", api_url="https://api.example.com/v1", model="gpt-4o-mini"
    )


@pytest.fixture
def other_model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="Local llama", api_url="https://llm.example.com/v1", model="llama3"
    )


def set_quota(tokens: int) -> None:
    setting = get_system_setting()
    setting.daily_token_quota = tokens
    setting.save()


def freeze_day(monkeypatch, day: date) -> None:
    monkeypatch.setattr(timezone, "localdate", lambda *a, **k: day)


def chat_usage(user, model, prompt: int, completion: int, source=UsageSource.CHAT) -> None:
    record_usage(
        user=user,
        model_config=model,
        source=source,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


@pytest.mark.django_db(transaction=True)
def test_two_calls_add_up_in_one_row(bob, model):
    chat_usage(bob, model, 100, 20)  # outside any transaction
    with transaction.atomic():
        chat_usage(bob, model, 50, 5)  # and inside one
    row = TokenUsage.objects.get()
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (2, 150, 25)
    assert row.day == timezone.localdate()
    assert row.model_name == "GPT mini"
    assert row.source == UsageSource.CHAT
    assert tokens_used_today(bob) == 175


@pytest.mark.django_db
def test_each_model_source_and_user_has_its_own_row(bob, carol, model, other_model):
    chat_usage(bob, model, 10, 1)
    chat_usage(bob, model, 10, 1, source=UsageSource.API)
    chat_usage(bob, other_model, 10, 1)
    chat_usage(carol, model, 1000, 100)
    assert TokenUsage.objects.filter(user=bob).count() == 3
    assert tokens_used_today(bob) == 33
    assert tokens_used_today(carol) == 1100


@pytest.mark.django_db
def test_a_new_day_starts_a_new_row(bob, model, monkeypatch):
    today = timezone.localdate()
    freeze_day(monkeypatch, today - timedelta(days=1))
    chat_usage(bob, model, 300, 30)
    freeze_day(monkeypatch, today)
    chat_usage(bob, model, 7, 3)
    rows = list(TokenUsage.objects.order_by("day").values_list("day", "requests", "prompt_tokens"))
    assert rows == [(today - timedelta(days=1), 1, 300), (today, 1, 7)]
    assert tokens_used_today(bob) == 10


@pytest.mark.django_db
def test_missing_or_negative_counts_count_as_zero(bob, model):
    record_usage(
        user=bob, model_config=model, source="api", prompt_tokens=None, completion_tokens=-5
    )
    row = TokenUsage.objects.get()
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 0, 0)


@pytest.mark.django_db
def test_an_unknown_source_is_refused_before_the_database(bob, model):
    with pytest.raises(ValueError, match="web"):
        chat_usage(bob, model, 1, 1, source="web")
    assert not TokenUsage.objects.exists()


@pytest.mark.django_db
def test_a_deleted_model_keeps_its_usage_and_name(bob, model):
    chat_usage(bob, model, 40, 2)
    model.delete()
    row = TokenUsage.objects.get()
    assert row.model_config_id is None
    assert row.model_name == "GPT mini"
    assert tokens_used_today(bob) == 42
    assert [r.model_name for r in usage_for_user(bob).rows] == ["GPT mini"]


@pytest.mark.django_db(transaction=True)
def test_a_model_deleted_meanwhile_is_recorded_under_its_name(bob, model):
    ModelConfig.objects.filter(pk=model.pk).delete()  # the caller's instance keeps its pk
    with transaction.atomic():  # foreign keys are checked at COMMIT: it must still succeed
        chat_usage(bob, model, 30, 3)
    row = TokenUsage.objects.get()
    assert (row.model_config_id, row.model_name) == (None, "GPT mini")
    assert tokens_used_today(bob) == 33


@pytest.mark.django_db(transaction=True)
def test_a_user_deleted_meanwhile_records_nothing(bob, model):
    User.objects.filter(pk=bob.pk).delete()
    with transaction.atomic():
        chat_usage(bob, model, 30, 3)
    assert not TokenUsage.objects.exists()


@pytest.mark.django_db
def test_the_row_follows_a_renamed_model(bob, model):
    chat_usage(bob, model, 1, 1)
    model.name = "GPT mini (2025)"
    model.save()
    chat_usage(bob, model, 1, 1)
    assert TokenUsage.objects.get().model_name == "GPT mini (2025)"


@pytest.mark.django_db
def test_without_a_model_nothing_is_recorded(bob):
    record_usage(user=bob, model_config=None, source="chat", prompt_tokens=5, completion_tokens=5)
    assert not TokenUsage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_lose_no_count(bob, model):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers; the race this guards against is PostgreSQL's")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                chat_usage(bob, model, 3, 1)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    row = TokenUsage.objects.get()
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (40, 120, 40)


# --- The quota -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_quota_means_no_limit(bob, model, django_assert_num_queries):
    chat_usage(bob, model, 10**9, 10**9)
    get_system_setting()
    with django_assert_num_queries(0):
        check_token_quota(bob)


@pytest.mark.django_db
def test_the_quota_refuses_at_the_limit_with_a_readable_message(bob, model):
    set_quota(50_000)
    chat_usage(bob, model, 40_000, 9_999)
    check_token_quota(bob)  # one token left: still allowed
    chat_usage(bob, model, 0, 1)
    with pytest.raises(QuotaExceeded) as raised:
        check_token_quota(bob)
    assert (raised.value.limit, raised.value.used) == (50_000, 50_000)
    assert str(raised.value) == (
        "You have used today's allowance of 50,000 tokens. It resets at midnight (server time)."
    )


@pytest.mark.django_db
def test_the_quota_is_per_user_and_per_day(bob, carol, model, monkeypatch):
    set_quota(100)
    today = timezone.localdate()
    freeze_day(monkeypatch, today - timedelta(days=1))
    chat_usage(bob, model, 500, 0)
    freeze_day(monkeypatch, today)
    check_token_quota(bob)  # yesterday's usage does not count today
    chat_usage(carol, model, 100, 0, source=UsageSource.API)
    check_token_quota(bob)  # nor does someone else's
    with pytest.raises(QuotaExceeded):
        check_token_quota(carol)  # the API counts like the chat pages


@pytest.mark.django_db
def test_the_quota_check_is_one_query(bob, model, django_assert_num_queries):
    set_quota(1_000)
    chat_usage(bob, model, 10, 10)
    get_system_setting()
    with django_assert_num_queries(1):
        check_token_quota(bob)


# --- Selectors -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_usage_for_user_is_newest_first_within_the_period(bob, carol, model, monkeypatch):
    today = timezone.localdate()
    for days_ago in (0, 1, 29, 30):
        freeze_day(monkeypatch, today - timedelta(days=days_ago))
        chat_usage(bob, model, 100, 10)
    freeze_day(monkeypatch, today)
    chat_usage(bob, model, 1, 1, source=UsageSource.API)
    chat_usage(carol, model, 5_000, 5_000)
    usage = usage_for_user(bob)
    assert [(r.day, r.source) for r in usage.rows] == [
        (today, "api"),
        (today, "chat"),
        (today - timedelta(days=1), "chat"),
        (today - timedelta(days=29), "chat"),
    ]
    assert usage.totals.requests == 4  # the row of 30 days ago is outside the period
    assert usage.totals.total_tokens == 3 * 110 + 2
    assert usage.today_tokens == 112


@pytest.mark.django_db
def test_usage_report_sums_per_user_model_and_day(alice, bob, model, other_model, monkeypatch):
    today = timezone.localdate()
    chat_usage(bob, model, 100, 10)
    chat_usage(bob, other_model, 5, 5, source=UsageSource.API)
    chat_usage(alice, model, 1_000, 1)
    freeze_day(monkeypatch, today - timedelta(days=2))
    chat_usage(bob, model, 1, 1)
    freeze_day(monkeypatch, today - timedelta(days=14))
    chat_usage(bob, model, 10**6, 0)  # outside the 14 days
    freeze_day(monkeypatch, today)
    report = usage_report()
    per_user = {line.label: line.totals for line in report.per_user}
    assert [line.label for line in report.per_user] == ["alice", "bob"]  # most tokens first
    assert (per_user["bob"].requests, per_user["bob"].total_tokens) == (3, 122)
    per_model = {line.label: line.totals.total_tokens for line in report.per_model}
    assert per_model == {"GPT mini": 1_113, "Local llama": 10}
    per_day = [(line.label, line.totals.total_tokens) for line in report.per_day]
    assert per_day == [(today, 1_121), (today - timedelta(days=2), 2)]


@pytest.mark.django_db
def test_usage_report_is_three_queries(bob, model, django_assert_num_queries):
    chat_usage(bob, model, 1, 1)
    with django_assert_num_queries(3):
        usage_report()


@pytest.mark.django_db
def test_the_admin_sets_the_quota_and_it_applies_at_once(alice_client, bob, model):
    chat_usage(bob, model, 600, 0)
    check_token_quota(bob)  # no quota yet; the settings are now cached
    page = alice_client.get("/admin/config/systemsetting/1/change/")
    assert "Daily token quota per user" in page.content.decode()
    assert "chat pages and the API both count" in page.content.decode()
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items() if v is not False}
    data["daily_token_quota"] = "500"
    response = alice_client.post("/admin/config/systemsetting/1/change/", data)
    assert response.status_code == 302
    with pytest.raises(QuotaExceeded) as raised:
        check_token_quota(bob)
    assert raised.value.limit == 500
