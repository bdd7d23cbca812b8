"""Which language a page speaks (the user's choice, the cookie, the browser) and the
switcher in the top bar (`POST /accounts/language/`)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User

URL = "/accounts/language/"
COOKIE = settings.LANGUAGE_COOKIE_NAME


def language_of(response) -> str:
    return response["Content-Language"]


# --- Choosing the language ---------------------------------------------------------------


def test_the_middleware_sits_right_after_authentication():
    middleware = settings.MIDDLEWARE
    position = middleware.index("accounts.middleware.UserLanguageMiddleware")
    assert middleware[position - 1] == "django.contrib.auth.middleware.AuthenticationMiddleware"
    assert middleware.index("django.middleware.locale.LocaleMiddleware") < position


@pytest.mark.django_db
def test_without_a_choice_the_browser_decides(bob_client):
    assert language_of(bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="zh-Hans")) == "zh-hans"
    assert language_of(bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="en")) == "en"
    assert language_of(bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="de")) == "en"


@pytest.mark.django_db
@pytest.mark.parametrize(("saved", "browser"), [("zh-hans", "en"), ("en", "zh-Hans")])
def test_the_users_saved_language_beats_accept_language_and_the_cookie(
    bob, bob_client, saved, browser
):
    User.objects.filter(pk=bob.pk).update(language=saved)
    bob_client.cookies[COOKIE] = browser.lower()
    response = bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE=browser)
    assert language_of(response) == saved
    html = response.content.decode()
    assert f'<html lang="{saved}"' in html
    assert ("你的账号" in html) == (saved == "zh-hans")


@pytest.mark.django_db
def test_the_cookie_beats_the_browser_when_the_user_has_no_choice(bob_client):
    bob_client.cookies[COOKIE] = "zh-hans"
    assert language_of(bob_client.get("/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-hans"


@pytest.mark.django_db
def test_responses_say_what_they_vary_on(bob, bob_client):
    User.objects.filter(pk=bob.pk).update(language="zh-hans")
    response = bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="en")
    vary = {part.strip().lower() for part in response["Vary"].split(",")}
    assert {"accept-language", "cookie"} <= vary
    assert language_of(response) == "zh-hans"


@pytest.mark.django_db
def test_single_user_mode_uses_the_local_users_choice(settings):
    settings.PARLEY_SINGLE_USER = True
    client = Client()
    client.get("/accounts/")  # creates the local admin
    User.objects.filter(username=settings.PARLEY_SINGLE_USER_NAME).update(language="zh-hans")
    response = client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="en")
    assert language_of(response) == "zh-hans"


# --- The switcher --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_switcher_is_in_every_pages_top_bar_for_visitors_too(client, bob_client):
    for page in (client.get("/accounts/login/"), bob_client.get("/")):
        html = page.content.decode()
        assert f'action="{URL}"' in html
        assert '<label for="language-select" class="visually-hidden">Language</label>' in html
        assert '<select name="language" id="language-select">' in html
        assert '<option value="en" lang="en" selected>English</option>' in html
        assert '<option value="zh-hans" lang="zh-hans">简体中文</option>' in html
        assert ">Change</button>" in html
        assert "js/language" in html  # the script that submits on change (no inline script)
        assert '<input type="hidden" name="next"' in html


@pytest.mark.django_db
def test_switching_saves_the_users_choice_and_sets_the_cookie(bob, bob_client):
    with CaptureQueriesContext(connection) as queries:
        response = bob_client.post(URL, {"language": "zh-hans", "next": "/chats/?q=x"})
    assert response.status_code == 302
    assert response["Location"] == "/chats/?q=x"
    cookie = response.cookies[COOKIE]
    assert cookie.value == "zh-hans"
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == settings.LANGUAGE_COOKIE_AGE
    bob.refresh_from_db()
    assert bob.language == "zh-hans"
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and '"language"' in updates[0] and '"theme"' not in updates[0]
    page = bob_client.get("/accounts/", HTTP_ACCEPT_LANGUAGE="en")
    assert "你的账号" in page.content.decode()
    assert '<option value="zh-hans" lang="zh-hans" selected>' in page.content.decode()


@pytest.mark.django_db
def test_a_visitor_gets_the_cookie_only(client):
    response = client.post(URL, {"language": "zh-hans", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert response.cookies[COOKIE].value == "zh-hans"
    html = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans"' in html and "登录" in html
    assert not User.objects.exists()


@pytest.mark.django_db
def test_the_choice_survives_log_out_through_the_cookie(bob, bob_client):
    bob_client.post(URL, {"language": "zh-hans"})
    bob_client.post("/accounts/logout/")
    page = bob_client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert language_of(page) == "zh-hans"


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["fr", "zh", "", "zh-hant", "en-us", "<script>"])
def test_an_unknown_language_is_refused(bob, bob_client, code):
    response = bob_client.post(URL, {"language": code, "next": "/"})
    assert response.status_code == 400
    assert COOKIE not in response.cookies
    bob.refresh_from_db()
    assert bob.language == ""


@pytest.mark.django_db
def test_switching_is_post_only(bob_client):
    assert bob_client.get(URL, {"language": "zh-hans"}).status_code == 405


@pytest.mark.django_db
def test_switching_needs_the_csrf_token(bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.post(URL, {"language": "zh-hans"}).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("next_url", "referer", "expected"),
    [
        ("/chats/1/", "", "/chats/1/"),
        ("https://evil.example/", "", "/"),
        ("//evil.example/", "", "/"),
        ("javascript:alert(1)", "", "/"),
        ("", "http://testserver/models/?page=2", "/models/?page=2"),
        ("https://evil.example/", "http://testserver/accounts/", "/accounts/"),
        ("", "https://evil.example/phish", "/"),
        ("", "", "/"),
    ],
)
def test_it_goes_back_only_to_this_site(bob_client, next_url, referer, expected):
    headers = {"HTTP_REFERER": referer} if referer else {}
    response = bob_client.post(URL, {"language": "en", "next": next_url}, **headers)
    assert response.status_code == 302
    assert response["Location"] == expected


@pytest.mark.django_db
def test_an_account_waiting_for_approval_can_switch_too(make_user):
    waiting = make_user("wendy", approved=False)
    client = Client()
    client.force_login(waiting)
    response = client.post(URL, {"language": "zh-hans", "next": "/accounts/pending/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/pending/"
    waiting.refresh_from_db()
    assert waiting.language == "zh-hans"
    page = client.get("/accounts/pending/")
    assert "等待批准" in page.content.decode()
