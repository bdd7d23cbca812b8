"""The colour theme: a per-user choice (system, light, dark) saved from the account page's
"Appearance" form and rendered as <html data-theme> on every page."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import Theme, User
from chat.models import ChatSession

ACCOUNT_URL = "/accounts/"
THEME_URL = "/accounts/theme/"
HTML_TAG = re.compile(r"<html [^>]*>")


def html_attrs(html: str) -> tuple[str, str]:
    """(data-theme of <html>, content of <meta name="color-scheme">)."""
    theme = re.search(r'data-theme="([^"]*)"', HTML_TAG.search(html).group(0)).group(1)
    scheme = re.search(r'<meta name="color-scheme" content="([^"]*)">', html).group(1)
    return theme, scheme


# --- The field and the service ----------------------------------------------------------


@pytest.mark.django_db
def test_a_new_account_follows_the_system(bob):
    bob.refresh_from_db()
    assert bob.theme == Theme.SYSTEM
    assert Theme.values == ["system", "light", "dark"]


@pytest.mark.django_db
def test_the_database_refuses_an_unknown_theme(bob):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=bob.pk).update(theme="neon")


@pytest.mark.django_db
def test_the_service_saves_only_the_theme(bob):
    with CaptureQueriesContext(connection) as queries:
        services.user_set_theme(user=bob, theme=Theme.DARK)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert '"theme"' in updates[0]
    assert '"store_api_chats"' not in updates[0] and '"password"' not in updates[0]
    bob.refresh_from_db()
    assert bob.theme == Theme.DARK


@pytest.mark.django_db
def test_the_service_writes_nothing_when_nothing_changes(bob, django_assert_num_queries):
    with django_assert_num_queries(0):
        services.user_set_theme(user=bob, theme=Theme.SYSTEM)


@pytest.mark.django_db
def test_the_service_refuses_an_unknown_theme(bob):
    with pytest.raises(ValidationError):
        services.user_set_theme(user=bob, theme="neon")
    bob.refresh_from_db()
    assert bob.theme == Theme.SYSTEM


# --- The account page's "Appearance" form -------------------------------------------------


@pytest.mark.django_db
def test_the_account_page_offers_the_three_themes(bob_client):
    html = bob_client.get(ACCOUNT_URL).content.decode()
    assert '<h2 id="appearance-heading">Appearance</h2>' in html
    assert f'action="{THEME_URL}"' in html
    assert '<label for="id_theme">Theme</label>' in html
    select = re.search(r'<select name="theme".*?</select>', html, re.S).group(0)
    options = re.findall(r'<option value="(\w+)"( selected)?>(\w+)</option>', select)
    assert options == [
        ("system", " selected", "System"),
        ("light", "", "Light"),
        ("dark", "", "Dark"),
    ]


@pytest.mark.django_db
def test_saving_a_theme_redirects_to_the_account_page_which_then_uses_it(bob, bob_client):
    response = bob_client.post(THEME_URL, {"theme": "dark"}, follow=True)
    assert response.redirect_chain == [(ACCOUNT_URL, 302)]
    html = response.content.decode()
    assert "Your theme is saved." in html
    assert html_attrs(html) == ("dark", "dark")
    assert '<option value="dark" selected>Dark</option>' in html
    bob.refresh_from_db()
    assert bob.theme == Theme.DARK

    bob_client.post(THEME_URL, {"theme": "light"})
    assert html_attrs(bob_client.get("/models/").content.decode()) == ("light", "light")


@pytest.mark.django_db
def test_the_theme_form_leaves_the_other_setting_alone(bob, bob_client):
    bob_client.post(ACCOUNT_URL, {"store_api_chats": "on"})
    bob_client.post(THEME_URL, {"theme": "dark"})
    bob.refresh_from_db()
    assert bob.store_api_chats and bob.theme == Theme.DARK


@pytest.mark.django_db
def test_an_unknown_theme_is_refused_with_the_page_and_the_reason(bob, bob_client):
    response = bob_client.post(THEME_URL, {"theme": "neon"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice." in html
    assert "Keep API conversations" in html  # the whole account page, not a bare error
    bob.refresh_from_db()
    assert bob.theme == Theme.SYSTEM


@pytest.mark.django_db
def test_the_theme_url_takes_only_posts(bob_client):
    assert bob_client.get(THEME_URL).status_code == 405


@pytest.mark.django_db
def test_the_theme_changes_only_your_own_account(alice, bob_client):
    bob_client.post(THEME_URL, {"theme": "dark"})
    alice.refresh_from_db()
    assert alice.theme == Theme.SYSTEM


@pytest.mark.django_db
def test_anonymous_posts_change_nothing(client, bob):
    response = client.post(THEME_URL, {"theme": "dark"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    bob.refresh_from_db()
    assert bob.theme == Theme.SYSTEM


# --- <html data-theme> on every page -----------------------------------------------------


@pytest.mark.django_db
def test_anonymous_pages_follow_the_system(client):
    assert html_attrs(client.get("/accounts/login/").content.decode()) == ("system", "light dark")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("theme", "scheme"), [("system", "light dark"), ("light", "light"), ("dark", "dark")]
)
@pytest.mark.parametrize("url", ["/", "/models/", ACCOUNT_URL, "/accounts/tokens/", "/nowhere/"])
def test_every_page_carries_the_users_theme(bob, bob_client, url, theme, scheme):
    services.user_set_theme(user=bob, theme=theme)
    assert html_attrs(bob_client.get(url).content.decode()) == (theme, scheme)


# --- The chat list drawer's button ------------------------------------------------------


@pytest.mark.django_db
def test_pages_with_the_chat_list_have_the_drawer_button_and_script(bob, bob_client):
    session = ChatSession.objects.create(user=bob, title="Drawer")
    for url in ("/", f"/chats/{session.pk}/", "/chats/"):
        html = bob_client.get(url).content.decode()
        assert 'id="sidebar"' in html, url
        assert re.search(
            r'<button type="button" class="button drawer-toggle" id="drawer-toggle" '
            r'aria-controls="sidebar" aria-expanded="false">Chats</button>',
            html,
        ), url
        assert re.search(r'<script src="/static/js/drawer\.[0-9a-f.]*js"></script>', html), url
    for url in (ACCOUNT_URL, "/models/"):
        html = bob_client.get(url).content.decode()
        assert "drawer-toggle" not in html and "drawer." not in html, url
