"""Health (/healthz), alerts to the admins, slow-query logging and the System status page."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from config import health
from config.slow_queries import recent_slow_queries, record_slow_queries


@pytest.fixture
def fresh_backup(monkeypatch):
    """Pretend the newest backup finished `age` ago (the backups themselves are tested apart)."""

    def set_age(age: timedelta | None) -> None:
        finished = None if age is None else timezone.now() - age
        monkeypatch.setattr(health, "newest_backup_time", lambda: finished)

    set_age(timedelta(hours=1))
    return set_age


@pytest.mark.django_db
def test_healthz_reports_disk_and_backup_age(client, fresh_backup):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["free_disk_bytes"] > 0
    assert body["free_disk_ok"] is True
    assert 3500 <= body["last_backup_age_seconds"] <= 3700
    assert body["problems"] == []


@pytest.mark.django_db
def test_healthz_is_503_when_free_disk_is_below_the_threshold(client, fresh_backup, settings):
    settings.PARLEY_MIN_FREE_DISK_MB = 10**9  # a petabyte: never available here
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["free_disk_ok"] is False
    assert "below the" in response.json()["problems"][0]


@pytest.mark.django_db
def test_a_stale_backup_warns_at_every_check_but_keeps_the_probe_green(
    client, fresh_backup, caplog
):
    fresh_backup(timedelta(days=3))
    caplog.set_level(logging.WARNING, logger="parley.health")
    for _ in range(2):
        assert client.get("/healthz").status_code == 200
    warnings = [r for r in caplog.records if "older than" in r.getMessage()]
    assert len(warnings) == 2


@pytest.mark.django_db
def test_admins_are_mailed_at_most_once_a_day(client, fresh_backup, settings, alice):
    settings.EMAIL_URL_CONFIGURED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fresh_backup(None)
    for _ in range(3):
        client.get("/healthz")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "No backup has been taken yet" in mail.outbox[0].subject


@pytest.mark.django_db
def test_no_mail_without_email_configuration(client, fresh_backup, settings, alice):
    settings.EMAIL_URL_CONFIGURED = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fresh_backup(None)
    client.get("/healthz")
    assert mail.outbox == []


def test_slow_queries_are_logged_with_their_sql_and_kept_for_the_status_page(settings, caplog):
    settings.PARLEY_SLOW_QUERY_MS = 0
    caplog.set_level(logging.WARNING, logger="parley.slow_queries")
    result = record_slow_queries(lambda *a: "rows", "SELECT  42\n FROM x", None, False, {})
    assert result == "rows"
    assert "slow query" in caplog.text and "SELECT 42 FROM x" in caplog.text
    assert recent_slow_queries()[0]["sql"] == "SELECT 42 FROM x"


@pytest.mark.django_db
def test_the_wrapper_is_installed_on_real_connections(settings, caplog):
    settings.PARLEY_SLOW_QUERY_MS = 0
    caplog.set_level(logging.WARNING, logger="parley.slow_queries")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 7")
    assert "SELECT 7" in caplog.text


@pytest.mark.django_db
def test_the_status_page_shows_the_servers_state(alice_client, bob, fresh_backup, monkeypatch):
    from chat.models import ChatSession, Message
    from config import status

    chat = ChatSession.objects.create(user=bob, title="t")
    Message.objects.create(session=chat, role="user", content="x" * 5000, token_count=10)
    summary = SimpleNamespace(
        name="20261204-full",
        kind="full",
        finished_at=timezone.now(),
        size_bytes=2048,
        verified=True,
    )
    monkeypatch.setattr(
        "config.backups.latest_backups", lambda *a, **k: {"full": summary, "incremental": None}
    )
    page = alice_client.get("/admin/status/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in (
        "Database size",
        "Free disk",
        "Compression ratio",
        "messages",
        "20261204-full",
        "Messages per day",
        "<svg",
        "Slow queries",
    ):
        assert text in html, text
    assert page.context["counts"]["messages"] == 1
    assert page.context["chart"]["bars"][-1]["count"] == 1
    assert status.compression_ratio() is not None
    assert "System status" in alice_client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_users_cannot_see_the_status_page(bob_client):
    response = bob_client.get("/admin/status/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
