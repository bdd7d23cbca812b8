"""Sign-up: the first account is ADMIN, later ones follow the sign-up setting."""

from __future__ import annotations

import pytest

from accounts.models import AuditAction, AuditEvent, Role, User
from config.models import SignupMode, SystemSetting
from config.services import get_system_setting

PASSWORD = "a-long-and-unusual-passphrase"


def set_signup_mode(mode: str) -> None:
    setting = get_system_setting()
    setting.signup_mode = mode
    setting.save()


def sign_up(client, username: str, **extra):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra},
    )


@pytest.mark.django_db
def test_first_account_is_admin_and_second_is_user(client):
    response = sign_up(client, "first")
    assert response.status_code == 302
    first = User.objects.get(username="first")
    assert (first.role, first.is_staff, first.is_superuser, first.approved) == (
        Role.ADMIN,
        True,
        True,
        True,
    )
    client.post("/accounts/logout/")
    set_signup_mode(SignupMode.OPEN)
    sign_up(client, "second")
    second = User.objects.get(username="second")
    assert (second.role, second.is_staff, second.is_superuser) == (Role.USER, False, False)


@pytest.mark.django_db
def test_signing_up_logs_in_and_lands_on_the_chats(client):
    response = sign_up(client, "first", email="first@example.com")
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert User.objects.get(username="first").email == "first@example.com"


@pytest.mark.django_db
def test_passwords_are_hashed_with_argon2(client):
    sign_up(client, "first")
    assert User.objects.get(username="first").password.startswith("argon2$argon2id$")


@pytest.mark.django_db
def test_closed_signup_answers_403_with_a_page_saying_so(client, alice):
    set_signup_mode(SignupMode.CLOSED)
    page = client.get("/accounts/signup/")
    assert page.status_code == 403
    assert "Sign-up is closed" in page.content.decode()
    response = sign_up(client, "intruder")
    assert response.status_code == 403
    assert not User.objects.filter(username="intruder").exists()


@pytest.mark.django_db
def test_closed_signup_still_lets_the_very_first_admin_in(client):
    SystemSetting.objects.update_or_create(pk=1, defaults={"signup_mode": SignupMode.CLOSED})
    assert client.get("/accounts/signup/").status_code == 200
    sign_up(client, "owner")
    assert User.objects.get(username="owner").role == Role.ADMIN


@pytest.mark.django_db
def test_open_signup_creates_an_approved_user(client, alice):
    set_signup_mode(SignupMode.OPEN)
    response = sign_up(client, "dave")
    assert response["Location"] == "/"
    assert User.objects.get(username="dave").approved is True


@pytest.mark.django_db
def test_approval_mode_holds_new_accounts_on_the_waiting_page(client, alice, alice_client):
    set_signup_mode(SignupMode.APPROVAL)
    response = sign_up(client, "dave")
    assert response["Location"] == "/accounts/pending/"
    dave = User.objects.get(username="dave")
    assert dave.approved is False

    waiting = client.get("/accounts/pending/")
    assert waiting.status_code == 200
    assert "Waiting for approval" in waiting.content.decode()
    for url in ("/", "/accounts/password/", "/admin/"):
        assert client.get(url)["Location"] == "/accounts/pending/"

    approve = alice_client.post(
        "/admin/accounts/user/",
        {"action": "approve_users", "_selected_action": [dave.pk]},
    )
    assert approve.status_code == 302
    dave.refresh_from_db()
    assert dave.approved is True
    assert client.get("/").status_code == 200
    assert client.get("/accounts/pending/")["Location"] == "/"
    assert AuditEvent.objects.filter(action=AuditAction.APPROVAL, target="dave").count() == 1


@pytest.mark.django_db
def test_waiting_account_can_still_log_out(client, alice):
    set_signup_mode(SignupMode.APPROVAL)
    sign_up(client, "dave")
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_signup_rejects_bad_input_with_messages_and_keeps_the_form(client, alice):
    set_signup_mode(SignupMode.OPEN)
    response = client.post(
        "/accounts/signup/", {"username": "alice", "password1": "123", "password2": "456"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "A user with that username already exists." in html
    assert "The two password fields didn" in html
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_signup_is_audited_without_the_password(client):
    sign_up(client, "first")
    event = AuditEvent.objects.get(action=AuditAction.SIGNUP)
    assert event.actor_username == "first"
    assert event.ip == "127.0.0.1"
    assert PASSWORD not in str(event.detail)


@pytest.mark.django_db
def test_createsuperuser_makes_an_admin(monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command(
        "createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com"
    )
    root = User.objects.get(username="root")
    assert (root.role, root.is_staff, root.is_superuser, root.approved) == (
        Role.ADMIN,
        True,
        True,
        True,
    )
