"""Sessions and the signed-in user, loaded by precompiled SELECTs (accounts.sessions and
accounts.backends): the same outcomes as Django's database sessions and ModelBackend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.backends import PARLEY_BACKEND
from accounts.models import User
from accounts.sessions import DJANGO_MODEL_BACKEND, SessionStore
from conftest import PASSWORD

ACCOUNT_URL = "/accounts/"


def signed_in(client: Client) -> bool:
    return client.get(ACCOUNT_URL).status_code == 200


@pytest.fixture
def bob_signed_in(bob) -> Client:
    client = Client()
    assert (
        client.post("/accounts/login/", {"username": "bob", "password": PASSWORD}).status_code
        == 302
    )
    return client


def test_signing_in_stores_parleys_backend_and_keeps_the_user_signed_in(bob_signed_in):
    key = bob_signed_in.cookies[settings.SESSION_COOKIE_NAME].value
    assert SessionStore(key).load()[BACKEND_SESSION_KEY] == PARLEY_BACKEND
    assert signed_in(bob_signed_in)


def rewrite_stored_session(client: Client, **changes: str) -> None:
    """Change the signed-in session's stored data, as another version of Parley wrote it."""
    row = Session.objects.get(pk=client.cookies[settings.SESSION_COOKIE_NAME].value)
    data = SessionStore().decode(row.session_data)
    data.update(changes)
    row.session_data = SessionStore().encode(data)
    row.save()


def test_a_session_signed_in_before_the_upgrade_stays_signed_in(bob, bob_signed_in):
    rewrite_stored_session(bob_signed_in, **{BACKEND_SESSION_KEY: DJANGO_MODEL_BACKEND})
    assert signed_in(bob_signed_in)


def test_an_expired_session_signs_out(bob_signed_in):
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert not signed_in(bob_signed_in)


def test_a_deleted_session_signs_out(bob_signed_in):
    Session.objects.all().delete()
    assert not signed_in(bob_signed_in)


def test_a_tampered_session_signs_out(bob_signed_in):
    Session.objects.update(session_data="not-signed-data")
    assert not signed_in(bob_signed_in)


@pytest.mark.parametrize("cookie", ["short", "x" * 40 + "!", "é" * 32, "0" * 4096])
def test_a_malformed_session_cookie_is_just_signed_out(db, cookie):
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert client.get(ACCOUNT_URL).status_code == 302


def test_a_deactivated_user_is_signed_out_on_the_next_request(bob, bob_signed_in):
    User.objects.filter(pk=bob.pk).update(is_active=False)
    assert not signed_in(bob_signed_in)


def test_a_deleted_user_is_signed_out(bob, bob_signed_in):
    bob.delete()
    assert not signed_in(bob_signed_in)


@pytest.mark.parametrize("user_id", ["0", "-3", str(2**63), str(10**30)])
def test_a_session_naming_an_impossible_user_id_is_signed_out(bob_signed_in, user_id):
    rewrite_stored_session(bob_signed_in, **{SESSION_KEY: user_id})
    assert not signed_in(bob_signed_in)


def test_a_password_change_elsewhere_signs_this_session_out(bob, bob_signed_in):
    bob.set_password("another-long-passphrase-1")
    bob.save()
    assert not signed_in(bob_signed_in)


def test_a_signed_in_request_loads_session_and_user_in_one_query_each(bob_signed_in):
    with CaptureQueriesContext(connection) as queries:
        assert signed_in(bob_signed_in)
    sessions = [q for q in queries.captured_queries if "django_session" in q["sql"]]
    users = [q for q in queries.captured_queries if 'FROM "accounts_user"' in q["sql"]]
    assert len(sessions) == 1
    assert len(users) == 1
