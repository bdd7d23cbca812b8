"""Log-in, log-out, throttling and the session key."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from accounts import throttle
from accounts.models import AuditAction, AuditEvent
from conftest import PASSWORD


def log_in(client: Client, username: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


@pytest.mark.django_db
def test_login_rotates_the_session_key_and_logout_kills_it(client, bob):
    session = client.session
    session["before"] = "anonymous"
    session.save()
    before = session.session_key

    response = log_in(client, "bob", PASSWORD)
    assert response.status_code == 302
    after = client.session.session_key
    assert after and after != before

    from django.contrib.sessions.models import Session

    assert Session.objects.filter(session_key=after).exists()
    assert client.post("/accounts/logout/").status_code == 302
    assert not Session.objects.filter(session_key=after).exists()
    assert client.get("/")["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_logout_by_get_is_refused(bob_client):
    assert bob_client.get("/accounts/logout/").status_code == 405
    assert bob_client.get("/").status_code == 200


@pytest.mark.django_db
def test_wrong_password_says_so_and_is_audited(client, bob):
    response = log_in(client, "bob", "not-the-password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert event.target == "bob"
    assert "not-the-password" not in str(event.detail)


@pytest.mark.django_db
def test_successful_login_is_audited(client, bob):
    log_in(client, "bob", PASSWORD)
    event = AuditEvent.objects.get(action=AuditAction.LOGIN)
    assert (event.actor, event.ip) == (bob, "127.0.0.1")


@pytest.mark.django_db
@override_settings(PARLEY_LOGIN_FAILURE_LIMIT=3, PARLEY_LOGIN_LOCKOUT_SECONDS=600)
def test_throttling_locks_after_repeated_failures_then_unlocks(client, bob, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(throttle, "_now", lambda: clock[0])

    for _ in range(2):
        assert log_in(client, "bob", "wrong").status_code == 200
    # The failure that reaches the limit already answers with the lock-out.
    assert log_in(client, "bob", "wrong").status_code == 429
    locked = log_in(client, "bob", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed log-in attempts" in locked.content.decode()
    assert int(locked["Retry-After"]) == 600
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_LOCKED).count() == 1

    clock[0] += 599
    assert log_in(client, "bob", PASSWORD).status_code == 429

    clock[0] += 2
    response = log_in(client, "bob", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(bob.pk)


@pytest.mark.django_db
@override_settings(PARLEY_LOGIN_FAILURE_LIMIT=3)
def test_lockout_is_per_username_and_ip(client, bob, carol):
    for _ in range(3):
        log_in(client, "bob", "wrong")
    assert log_in(client, "bob", PASSWORD).status_code == 429
    # Another account from the same address, and the same account from elsewhere, still work.
    assert log_in(Client(), "carol", PASSWORD).status_code == 302
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert log_in(elsewhere, "bob", PASSWORD).status_code == 302


@pytest.mark.django_db
@override_settings(PARLEY_LOGIN_FAILURE_LIMIT=3)
def test_a_success_resets_the_failure_count(client, bob):
    log_in(client, "bob", "wrong")
    log_in(client, "bob", "wrong")
    assert log_in(client, "bob", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    log_in(client, "bob", "wrong")
    log_in(client, "bob", "wrong")
    assert log_in(client, "bob", PASSWORD).status_code == 302


@pytest.mark.django_db
@override_settings(PARLEY_LOGIN_FAILURE_LIMIT=2)
def test_admin_login_is_throttled_too(client, alice):
    for _ in range(2):
        log_in(client, "alice", "wrong", "/admin/login/")
    response = log_in(client, "alice", PASSWORD, "/admin/login/")
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_inactive_account_cannot_log_in(client, bob):
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    response = log_in(client, "bob", PASSWORD)
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_password_change_keeps_the_session_and_is_audited(bob_client, bob):
    page = bob_client.get("/accounts/password/")
    assert page.status_code == 200
    for field in ("old_password", "new_password1", "new_password2"):
        assert f'name="{field}"' in page.content.decode()
    new = "another-long-passphrase-42"
    response = bob_client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert bob_client.get("/").status_code == 200
    bob.refresh_from_db()
    assert bob.check_password(new)
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGE, actor=bob).count() == 1


@pytest.mark.django_db
def test_password_change_with_a_wrong_old_password_changes_nothing(bob_client, bob):
    response = bob_client.post(
        "/accounts/password/",
        {
            "old_password": "nope",
            "new_password1": "x-long-pass-99",
            "new_password2": "x-long-pass-99",
        },
    )
    assert response.status_code == 200
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)
