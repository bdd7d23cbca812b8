"""The admin's System status page sums the token usage of the last 14 days, for admins only,
in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import TokenUsage, UsageSource
from accounts.usage import record_usage
from models_registry.models import ModelConfig

STATUS_URL = "/admin/status/"


@pytest.fixture(autouse=True)
def no_backups(monkeypatch):
    monkeypatch.setattr("config.backups.latest_backups", lambda *a, **k: {})


@pytest.fixture
def model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="GPT mini", api_url="https://api.example.com/v1", model="gpt-4o-mini"
    )


def section(html: str) -> str:
    start = html.index('<h2 id="token-usage">')
    return html[start : html.index("<h2", start + 1)]


@pytest.mark.django_db
def test_the_status_page_sums_usage_per_user_model_and_day(alice_client, alice, bob, model):
    record_usage(
        user=bob, model_config=model, source="chat", prompt_tokens=12_000, completion_tokens=345
    )
    record_usage(
        user=alice, model_config=model, source="api", prompt_tokens=10, completion_tokens=5
    )
    response = alice_client.get(STATUS_URL)
    assert response.status_code == 200
    usage = section(response.content.decode())
    assert "Token usage (last 14 days)" in usage
    for caption in ("Per user", "Per model", "Per day"):
        assert f"<caption>{caption}</caption>" in usage
    assert '<th scope="row">bob</th><td>1</td><td>12,000</td><td>345</td><td>12,345</td>' in usage
    assert '<th scope="row">GPT mini</th><td>2</td><td>12,010</td><td>350</td><td>12,360</td>' in (
        usage
    )
    today = timezone.localdate().isoformat()
    assert f'<th scope="row">{today}</th><td>2</td>' in usage


@pytest.mark.django_db
def test_without_usage_the_section_says_so(alice_client):
    usage = section(alice_client.get(STATUS_URL).content.decode())
    assert "No token usage recorded yet." in usage
    assert "<table>" not in usage


@pytest.mark.django_db
def test_users_cannot_see_the_usage_of_anyone(bob_client, bob, model):
    record_usage(user=bob, model_config=model, source="chat", prompt_tokens=1, completion_tokens=1)
    response = bob_client.get(STATUS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_the_status_page_queries_do_not_grow_with_the_rows(alice_client, model, make_user):
    users = [make_user(f"user{n}") for n in range(30)]
    today = timezone.localdate()

    def add_rows(count: int) -> None:
        TokenUsage.objects.all().delete()
        TokenUsage.objects.bulk_create(
            TokenUsage(
                user=users[n],
                model_config=model,
                model_name=f"model {n}",
                day=today - timedelta(days=n % 14),
                source=UsageSource.API,
                requests=1,
                prompt_tokens=n,
            )
            for n in range(count)
        )

    alice_client.get(STATUS_URL)  # warm caches and the session
    counts = []
    for rows in (1, 30):
        add_rows(rows)
        with CaptureQueriesContext(connection) as captured:
            response = alice_client.get(STATUS_URL)
        counts.append(len(captured.captured_queries))
    assert len(response.context["token_usage"].per_user) == 30
    assert counts[0] == counts[1]
