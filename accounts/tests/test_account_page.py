"""The account page: who you are, your own token usage (never anyone else's), the quota, and
the "Keep API conversations" setting."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import TokenUsage, UsageSource
from accounts.usage import record_usage
from config.services import get_system_setting
from config.tests.test_accessible_names import assert_all_controls_named
from models_registry.models import ModelConfig

ACCOUNT_URL = "/accounts/"
CHECKBOX = re.compile(r'<input type="checkbox" name="store_api_chats"[^>]*>')


@pytest.fixture
def model(db) -> ModelConfig:
    return ModelConfig.objects.create(
        name="GPT mini", api_url="https://api.example.com/v1", model="gpt-4o-mini"
    )


def use(user, model, prompt: int, completion: int, source: str = UsageSource.CHAT) -> None:
    record_usage(
        user=user,
        model_config=model,
        source=source,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


@pytest.mark.django_db
def test_the_page_shows_who_you_are_and_where_to_go(bob_client):
    response = bob_client.get(ACCOUNT_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Your account</h1>" in html
    for text in ("bob", "bob@example.com", "User", "No usage yet."):
        assert text in html, text
    assert '<a href="/accounts/password/">Change password</a>' in html
    assert '<a href="/accounts/tokens/">API tokens</a>' in html
    assert '<a href="/accounts/">Account</a>' in html  # the top navigation


@pytest.mark.django_db
def test_every_control_has_a_name(bob, bob_client, model):
    use(bob, model, 1, 1)
    assert_all_controls_named(bob_client, ACCOUNT_URL)


@pytest.mark.django_db
def test_no_change_password_link_without_a_usable_password(bob, client):
    bob.set_unusable_password()
    bob.save(update_fields=["password"])
    client.force_login(bob)
    html = client.get(ACCOUNT_URL).content.decode()
    assert "Change password" not in html


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(ACCOUNT_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_the_page_shows_your_own_usage_and_never_another_users(alice, bob, bob_client, model):
    use(bob, model, 12_345, 678)
    use(bob, model, 100, 10, source=UsageSource.API)
    use(alice, model, 987_654, 3_210)
    html = bob_client.get(ACCOUNT_URL).content.decode()
    assert "13,133 tokens used today." in html
    assert (
        '<caption id="usage-caption">Your usage in the last 30 days, newest first</caption>' in html
    )
    for text in ("GPT mini", "Chat pages", "API", "12,345", "678", "13,023"):
        assert text in html, text
    assert "987,654" not in html
    assert "990,864" not in html


@pytest.mark.django_db
def test_the_quota_line_counts_against_the_limit(bob, bob_client, model):
    setting = get_system_setting()
    setting.daily_token_quota = 50_000
    setting.save()
    use(bob, model, 1_000, 234)
    html = bob_client.get(ACCOUNT_URL).content.decode()
    assert "1,234 of 50,000 tokens used today." in html


@pytest.mark.django_db
def test_older_usage_is_listed_until_thirty_days(bob, bob_client, model):
    today = timezone.localdate()
    TokenUsage.objects.bulk_create(
        TokenUsage(
            user=bob,
            model_config=model,
            model_name=model.name,
            day=today - timedelta(days=days_ago),
            source=UsageSource.CHAT,
            requests=1,
            prompt_tokens=1_000 + days_ago,
        )
        for days_ago in (3, 29, 30)
    )
    html = bob_client.get(ACCOUNT_URL).content.decode()
    assert "0 tokens used today." in html
    assert (today - timedelta(days=3)).isoformat() in html
    assert (today - timedelta(days=29)).isoformat() in html
    assert (today - timedelta(days=30)).isoformat() not in html


@pytest.mark.django_db
def test_the_page_is_a_fixed_number_of_queries(
    bob, bob_client, model, django_assert_max_num_queries
):
    get_system_setting()
    bob_client.get(ACCOUNT_URL)  # the session is warm, as on a running server
    today = timezone.localdate()

    def add_rows(count: int) -> None:
        TokenUsage.objects.filter(user=bob).delete()
        TokenUsage.objects.bulk_create(
            TokenUsage(
                user=bob,
                model_config=model,
                model_name=model.name,
                day=today - timedelta(days=n),
                source=UsageSource.CHAT,
                requests=n + 1,
                prompt_tokens=100,
            )
            for n in range(count)
        )

    add_rows(1)
    with django_assert_max_num_queries(4) as few:
        assert bob_client.get(ACCOUNT_URL).status_code == 200
    add_rows(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = bob_client.get(ACCOUNT_URL)
    assert len(response.context["usage"].rows) == 30


# --- The "Keep API conversations" setting -------------------------------------------------


@pytest.mark.django_db
def test_the_setting_is_off_by_default_and_saved_by_the_form(bob, bob_client):
    page = bob_client.get(ACCOUNT_URL).content.decode()
    assert not CHECKBOX.search(page).group(0).endswith(" checked>")
    assert "Keep API conversations" in page
    assert not bob.store_api_chats
    response = bob_client.post(ACCOUNT_URL, {"store_api_chats": "on"}, follow=True)
    assert response.redirect_chain == [(ACCOUNT_URL, 302)]
    assert "Conversations made through the API will be kept." in response.content.decode()
    bob.refresh_from_db()
    assert bob.store_api_chats
    assert CHECKBOX.search(response.content.decode()).group(0).endswith(" checked>")
    # An unticked checkbox is simply absent from the POST: it turns the setting off.
    response = bob_client.post(ACCOUNT_URL, {}, follow=True)
    assert "will not be kept" in response.content.decode()
    bob.refresh_from_db()
    assert not bob.store_api_chats


@pytest.mark.django_db
def test_the_setting_changes_only_your_own_account(alice, bob, bob_client):
    bob_client.post(ACCOUNT_URL, {"store_api_chats": "on"})
    alice.refresh_from_db()
    assert not alice.store_api_chats


@pytest.mark.django_db
def test_anonymous_posts_change_nothing(client, bob):
    response = client.post(ACCOUNT_URL, {"store_api_chats": "on"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    bob.refresh_from_db()
    assert not bob.store_api_chats
