"""The audit trail is complete: every security-relevant action, done the way a user or an
operator does it (pages, the admin, manage.py), leaves exactly one event of its kind, with a
sensible actor, target and IP, and never a secret or message content in it."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Max, QuerySet
from django.test import Client
from django.utils import timezone

from accounts.api_tokens import create_api_token
from accounts.models import ApiToken, AuditAction, AuditEvent, Role, User
from chat.models import ChatSession, Message, MessageRole
from config.services import get_system_setting
from conftest import PASSWORD
from models_registry import crypto
from models_registry.models import ModelConfig

NEW_PASSWORD = "a-brand-new-passphrase-42"
WRONG_PASSWORD = "definitely-not-the-password-17"
API_KEY = "sk-trail-0123456789abcdef-5e1f"
OTHER_API_KEY = "sk-trail-fedcba9876543210-77aa"
CONTENT = "Planted message content: the treasure is under the old oak"
PUBLIC_URL = "https://93.184.216.34/v1"  # a literal public address: no DNS, never contacted
SECRETS = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, API_KEY, OTHER_API_KEY, CONTENT]
LOCAL_IP = "127.0.0.1"
A_YEAR = timedelta(days=365)

# Every action a test below performs; backup and restore are tested with their commands.
TESTED_HERE = {
    AuditAction.LOGIN,
    AuditAction.LOGIN_FAILED,
    AuditAction.LOGIN_LOCKED,
    AuditAction.LOGOUT,
    AuditAction.SIGNUP,
    AuditAction.APPROVAL,
    AuditAction.ROLE_CHANGE,
    AuditAction.ACTIVE_CHANGE,
    AuditAction.PASSWORD_CHANGE,
    AuditAction.USER_CREATE,
    AuditAction.MODEL_CREATE,
    AuditAction.MODEL_UPDATE,
    AuditAction.MODEL_DELETE,
    AuditAction.API_KEY_SET,
    AuditAction.KEY_ROTATION,
    AuditAction.SETTING_CHANGE,
    AuditAction.CHAT_DELETE,
    AuditAction.EXPORT,
    AuditAction.CLEANUP,
    AuditAction.API_TOKEN_CREATE,
    AuditAction.API_TOKEN_REVOKE,
}


class Trail:
    """The audit events written since the last look, checked for secrets every time."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = list(secrets)
        self.mark()

    def mark(self) -> None:
        self.last_id = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0

    def new(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(id__gt=self.last_id).order_by("id")

    def one(self, action: AuditAction) -> AuditEvent:
        """The single new event of `action`; every new event must be free of secrets."""
        new = list(self.new())
        for event in new:
            self.assert_clean(event)
        matching = [event for event in new if event.action == action]
        assert len(matching) == 1, (action, [(e.action, e.target) for e in new])
        return matching[0]

    def none(self, action: AuditAction) -> None:
        assert not self.new().filter(action=action).exists(), action

    def assert_clean(self, event: AuditEvent) -> None:
        fields = [json.dumps(event.detail, ensure_ascii=False), event.target, event.actor_username]
        text = " ".join(fields)
        for secret in self.secrets:
            assert secret not in text, (event.action, secret)


@pytest.fixture
def trail(db) -> Trail:
    return Trail(SECRETS)


def log_in(client: Client, username: str, password: str, path: str = "/accounts/login/"):
    return client.post(path, {"username": username, "password": password, "next": "/admin/"})


def user_change_data(user: User, **changes: str) -> dict[str, str]:
    data = {
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "approved": "on" if user.approved else "",
        "is_active": "on" if user.is_active else "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def model_form(**changes: str) -> dict[str, str]:
    data = {
        "name": "Trail model",
        "api_url": PUBLIC_URL,
        "api_key": "",
        "model": "trail-1",
        "context_window": "8192",
        "max_output_tokens": "1024",
        "system_prompt": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


def make_chat(user: User) -> ChatSession:
    chat = ChatSession.objects.create(user=user, title="Treasure", message_count=2)
    Message.objects.create(session=chat, role=MessageRole.USER, content=CONTENT)
    Message.objects.create(session=chat, role=MessageRole.ASSISTANT, content=CONTENT.upper())
    return chat


def assert_request_event(event: AuditEvent, *, actor: User | None, target: str) -> None:
    assert (event.actor, event.target, event.ip) == (actor, target, LOCAL_IP)
    assert event.actor_username == (actor.username if actor else "")


def test_every_action_has_a_trail_test_here_or_with_its_command():
    assert set(AuditAction.values) - TESTED_HERE == {AuditAction.BACKUP, AuditAction.RESTORE}


# --- Log-in, log-out, sign-up -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_log_in(client, alice, trail, path):
    assert log_in(client, "alice", PASSWORD, path).status_code == 302
    assert_request_event(trail.one(AuditAction.LOGIN), actor=alice, target="alice")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_failed_log_in(client, alice, trail, path):
    assert log_in(client, "alice", WRONG_PASSWORD, path).status_code == 200
    event = trail.one(AuditAction.LOGIN_FAILED)
    assert_request_event(event, actor=None, target="alice")
    trail.none(AuditAction.LOGIN)


@pytest.mark.django_db
def test_log_in_lock_out(client, bob, trail, settings):
    settings.PARLEY_LOGIN_FAILURE_LIMIT = 2
    log_in(client, "bob", WRONG_PASSWORD)
    trail.one(AuditAction.LOGIN_FAILED)
    trail.mark()
    assert log_in(client, "bob", WRONG_PASSWORD).status_code == 429
    assert_request_event(trail.one(AuditAction.LOGIN_LOCKED), actor=None, target="bob")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/logout/", "/admin/logout/"])
def test_log_out(alice_client, alice, trail, path):
    assert alice_client.post(path).status_code in (200, 302)
    assert_request_event(trail.one(AuditAction.LOGOUT), actor=alice, target="alice")


@pytest.mark.django_db
def test_sign_up(client, alice, trail):
    response = client.post(
        "/accounts/signup/",
        {"username": "erin", "email": "", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    erin = User.objects.get(username="erin")
    event = trail.one(AuditAction.SIGNUP)
    assert_request_event(event, actor=erin, target="erin")
    assert event.detail == {"role": "user", "approved": False, "first_account": False}


# --- Accounts in the admin ----------------------------------------------------------------


@pytest.mark.django_db
def test_approval_by_the_admin_action(alice_client, alice, make_user, trail):
    waiting = make_user("wanda", approved=False)
    trail.mark()
    alice_client.post(
        "/admin/accounts/user/", {"action": "approve_users", "_selected_action": [waiting.pk]}
    )
    event = trail.one(AuditAction.APPROVAL)
    assert_request_event(event, actor=alice, target="wanda")
    assert event.detail == {"approved": True}


@pytest.mark.django_db
def test_approval_in_the_change_form(alice_client, alice, make_user, trail):
    waiting = make_user("wanda", approved=False)
    trail.mark()
    response = alice_client.post(
        f"/admin/accounts/user/{waiting.pk}/change/", user_change_data(waiting, approved="on")
    )
    assert response.status_code == 302
    assert_request_event(trail.one(AuditAction.APPROVAL), actor=alice, target="wanda")


@pytest.mark.django_db
def test_role_change(alice_client, alice, bob, trail):
    response = alice_client.post(
        f"/admin/accounts/user/{bob.pk}/change/", user_change_data(bob, role=Role.ADMIN)
    )
    assert response.status_code == 302
    event = trail.one(AuditAction.ROLE_CHANGE)
    assert_request_event(event, actor=alice, target="bob")
    assert event.detail == {"from": "user", "to": "admin"}


@pytest.mark.django_db
def test_promoting_a_waiting_user_is_one_role_change_and_approves(
    alice_client, alice, make_user, trail
):
    waiting = make_user("wanda", approved=False)
    trail.mark()
    alice_client.post(
        f"/admin/accounts/user/{waiting.pk}/change/", user_change_data(waiting, role=Role.ADMIN)
    )
    waiting.refresh_from_db()
    assert (waiting.role, waiting.approved) == (Role.ADMIN, True)
    assert_request_event(trail.one(AuditAction.ROLE_CHANGE), actor=alice, target="wanda")
    trail.none(AuditAction.APPROVAL)


@pytest.mark.django_db
def test_active_change_in_the_change_form(alice_client, alice, bob, trail):
    alice_client.post(f"/admin/accounts/user/{bob.pk}/change/", user_change_data(bob, is_active=""))
    event = trail.one(AuditAction.ACTIVE_CHANGE)
    assert_request_event(event, actor=alice, target="bob")
    assert event.detail == {"is_active": False}


@pytest.mark.django_db
def test_active_change_by_the_admin_action(alice_client, alice, bob, trail):
    alice_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [bob.pk]}
    )
    assert_request_event(trail.one(AuditAction.ACTIVE_CHANGE), actor=alice, target="bob")


@pytest.mark.django_db
def test_user_created_by_the_admin(alice_client, alice, trail):
    response = alice_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "erin",
            "email": "",
            "role": Role.USER,
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert_request_event(trail.one(AuditAction.USER_CREATE), actor=alice, target="erin")


# --- Passwords -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_password_change_on_the_site(bob_client, bob, trail):
    response = bob_client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert_request_event(trail.one(AuditAction.PASSWORD_CHANGE), actor=bob, target="bob")


@pytest.mark.django_db
def test_password_change_of_the_admin_in_the_admin(alice_client, alice, trail):
    response = alice_client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert_request_event(trail.one(AuditAction.PASSWORD_CHANGE), actor=alice, target="alice")


@pytest.mark.django_db
def test_password_set_by_the_admin_for_a_user(alice_client, alice, bob, trail):
    response = alice_client.post(
        f"/admin/accounts/user/{bob.pk}/password/",
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)
    assert_request_event(trail.one(AuditAction.PASSWORD_CHANGE), actor=alice, target="bob")


@pytest.mark.django_db
def test_a_refused_password_form_records_nothing(alice_client, bob, trail):
    mismatch = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": PASSWORD}
    assert (
        alice_client.post(f"/admin/accounts/user/{bob.pk}/password/", mismatch).status_code == 200
    )
    # Django redirects this conflicting submission without saving anything.
    conflicting = {"usable_password": "false", "password1": "", "password2": ""}
    alice_client.post(f"/admin/accounts/user/{bob.pk}/password/", conflicting)
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)
    trail.none(AuditAction.PASSWORD_CHANGE)


# --- Models and keys -----------------------------------------------------------------------


@pytest.fixture
def bobs_model(bob) -> ModelConfig:
    model = ModelConfig(owner=bob, name="Trail model", api_url=PUBLIC_URL, model="trail-1")
    model.set_api_key(API_KEY)
    model.save()
    return model


@pytest.mark.django_db
def test_model_create_on_the_site(bob_client, bob, trail):
    response = bob_client.post("/models/add/", model_form(api_key=API_KEY))
    assert response.status_code == 302
    model = ModelConfig.objects.get()
    target = f"model {model.pk}: Trail model"
    assert_request_event(trail.one(AuditAction.MODEL_CREATE), actor=bob, target=target)
    assert_request_event(trail.one(AuditAction.API_KEY_SET), actor=bob, target=target)


@pytest.mark.django_db
def test_system_model_create_in_the_admin(alice_client, alice, trail):
    response = alice_client.post(
        "/admin/models_registry/modelconfig/add/", model_form(api_key=API_KEY)
    )
    assert response.status_code == 302
    model = ModelConfig.objects.get()
    target = f"model {model.pk}: Trail model"
    event = trail.one(AuditAction.MODEL_CREATE)
    assert_request_event(event, actor=alice, target=target)
    assert event.detail == {"scope": "system", "model_id": model.pk}
    assert_request_event(trail.one(AuditAction.API_KEY_SET), actor=alice, target=target)


@pytest.mark.django_db
def test_model_update(bob_client, bob, bobs_model, trail):
    response = bob_client.post(f"/models/{bobs_model.pk}/edit/", model_form(name="Renamed"))
    assert response.status_code == 302
    event = trail.one(AuditAction.MODEL_UPDATE)
    assert_request_event(event, actor=bob, target=f"model {bobs_model.pk}: Renamed")
    assert event.detail["changed"] == ["name"]
    trail.none(AuditAction.API_KEY_SET)


@pytest.mark.django_db
def test_model_delete(bob_client, bob, bobs_model, trail):
    response = bob_client.post(f"/models/{bobs_model.pk}/delete/")
    assert response.status_code == 302
    assert not ModelConfig.objects.exists()
    event = trail.one(AuditAction.MODEL_DELETE)
    assert_request_event(event, actor=bob, target=f"model {bobs_model.pk}: Trail model")


@pytest.mark.django_db
def test_api_key_replaced(bob_client, bob, bobs_model, trail):
    response = bob_client.post(f"/models/{bobs_model.pk}/edit/", model_form(api_key=OTHER_API_KEY))
    assert response.status_code == 302
    bobs_model.refresh_from_db()
    assert bobs_model.get_api_key() == OTHER_API_KEY
    event = trail.one(AuditAction.API_KEY_SET)
    assert_request_event(event, actor=bob, target=f"model {bobs_model.pk}: Trail model")
    assert event.detail["removed"] is False
    trail.none(AuditAction.MODEL_UPDATE)


@pytest.mark.django_db
def test_key_rotation(fresh_keyring, bobs_model, trail):
    old_key = fresh_keyring.read_text().strip()
    new_key = crypto.generate_key()
    trail.secrets += [old_key, new_key]
    call_command("rotate_encryption_key", f"--new-key={new_key}", stdout=io.StringIO())
    assert new_key in fresh_keyring.read_text()
    event = trail.one(AuditAction.KEY_ROTATION)
    assert (event.actor, event.ip, event.target) == (None, None, "API-key encryption")
    assert event.detail == {"reencrypted": 1, "unreadable": 0}


# --- Settings, chats, clean-up -------------------------------------------------------------


@pytest.mark.django_db
def test_setting_change_in_the_admin(alice_client, alice, trail):
    page = alice_client.get("/admin/config/systemsetting/1/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    # Unticked boxes are left out, as a browser does; a 0 (no daily token quota) is sent.
    data = {k: v for k, v in data.items() if v is not None and v is not False}
    data.update(site_name="Trail site", chat_retention_days="90")
    trail.mark()
    response = alice_client.post("/admin/config/systemsetting/1/change/", data)
    assert response.status_code == 302
    assert get_system_setting().chat_retention_days == 90
    event = trail.one(AuditAction.SETTING_CHANGE)
    assert_request_event(event, actor=alice, target="system settings")
    assert event.detail == {"changed": ["chat_retention_days", "site_name"]}
    assert "Trail site" not in json.dumps(event.detail)


@pytest.mark.django_db
def test_chat_deletion(bob_client, bob, trail):
    chat = make_chat(bob)
    trail.mark()
    assert bob_client.post(f"/chats/{chat.pk}/delete/").status_code == 302
    assert not ChatSession.objects.exists()
    event = trail.one(AuditAction.CHAT_DELETE)
    assert_request_event(event, actor=bob, target=f"chat {chat.pk}")
    assert "Treasure" not in event.target


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["md", "json"])
def test_export(bob_client, bob, trail, fmt):
    chat = make_chat(bob)
    trail.mark()
    response = bob_client.get(f"/chats/{chat.pk}/export.{fmt}")
    assert CONTENT in response.content.decode()
    event = trail.one(AuditAction.EXPORT)
    assert_request_event(event, actor=bob, target=f"chat {chat.pk}")
    assert event.detail == {"format": fmt, "messages": 2}


@pytest.mark.django_db
def test_cleanup(bob, trail):
    setting = get_system_setting()
    setting.chat_retention_days = 30
    setting.save()
    chat = make_chat(bob)
    ChatSession.objects.filter(pk=chat.pk).update(updated_at=timezone.now() - timedelta(days=31))
    trail.mark()
    call_command("cleanup", "--dry-run", stdout=io.StringIO())
    trail.none(AuditAction.CLEANUP)
    call_command("cleanup", stdout=io.StringIO())
    event = trail.one(AuditAction.CLEANUP)
    assert (event.actor, event.ip, event.target) == (None, None, "database")
    assert (event.detail["chats"], event.detail["messages"]) == (1, 2)


# --- API tokens ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_token_create_on_the_site(bob_client, bob, trail):
    response = bob_client.post("/accounts/tokens/", {"name": "Laptop", "expires_in_days": ""})
    assert response.status_code == 200
    token = ApiToken.objects.get()
    trail.secrets += [response.context["raw_token"], token.token_hash]
    event = trail.one(AuditAction.API_TOKEN_CREATE)
    assert_request_event(event, actor=bob, target=f"api token {token.pk}")
    assert event.detail["prefix_shown"] == token.prefix


@pytest.mark.django_db
def test_api_token_create_by_the_command(bob, trail):
    out = io.StringIO()
    call_command("create_api_token", "bob", "--name=CI", stdout=out, stderr=io.StringIO())
    token = ApiToken.objects.get()
    trail.secrets += [out.getvalue().strip(), token.token_hash]
    event = trail.one(AuditAction.API_TOKEN_CREATE)
    assert (event.actor, event.ip, event.target) == (bob, None, f"api token {token.pk}")
    assert event.detail["via"] == "command"


@pytest.mark.django_db
def test_api_token_revoke_on_the_site(bob_client, bob, trail):
    token, raw_token = create_api_token(user=bob, name="Laptop")
    trail.secrets += [raw_token, token.token_hash]
    trail.mark()
    assert bob_client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    assert_request_event(
        trail.one(AuditAction.API_TOKEN_REVOKE), actor=bob, target=f"api token {token.pk}"
    )


@pytest.mark.django_db
def test_api_token_revoke_by_the_admin_action(alice_client, alice, bob, trail):
    token, raw_token = create_api_token(user=bob, name="Laptop")
    trail.secrets += [raw_token, token.token_hash]
    trail.mark()
    alice_client.post(
        "/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}
    )
    event = trail.one(AuditAction.API_TOKEN_REVOKE)
    assert_request_event(event, actor=alice, target=f"api token {token.pk}")
    assert event.detail["owner"] == "bob"


# --- The audit log in the admin ------------------------------------------------------------


@pytest.mark.django_db
def test_the_changelist_filters_by_action_and_date_and_searches_by_actor(alice_client, bob, carol):
    log_in(Client(), "bob", PASSWORD)
    log_in(Client(), "bob", WRONG_PASSWORD)
    alice_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [carol.pk]}
    )
    old = AuditEvent.objects.create(action=AuditAction.LOGIN, target="bob")
    # The queryset refuses update(); the plain one backdates this test's own row.
    QuerySet.update(AuditEvent.objects.filter(pk=old.pk), created_at=timezone.now() - A_YEAR)

    def listed(query: dict[str, str]) -> list[tuple[str, str, str]]:
        response = alice_client.get("/admin/accounts/auditevent/", query)
        assert response.status_code == 200
        return sorted(
            (e.action, e.actor_username, e.target) for e in response.context["cl"].result_list
        )

    # alice_client's force_login is a log-in too.
    assert listed({"action__exact": AuditAction.LOGIN}) == [
        (AuditAction.LOGIN, "", "bob"),
        (AuditAction.LOGIN, "alice", "alice"),
        (AuditAction.LOGIN, "bob", "bob"),
    ]
    assert listed({"action__exact": AuditAction.LOGIN_FAILED}) == [
        (AuditAction.LOGIN_FAILED, "", "bob")
    ]
    assert listed({"q": "alice"}) == [
        (AuditAction.ACTIVE_CHANGE, "alice", "carol"),
        (AuditAction.LOGIN, "alice", "alice"),
    ]
    # The query "Past 7 days" of the date filter (aware datetimes, as the admin links them).
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    this_week = {
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
        "action__exact": AuditAction.LOGIN,
    }
    assert listed(this_week) == [
        (AuditAction.LOGIN, "alice", "alice"),
        (AuditAction.LOGIN, "bob", "bob"),
    ]


@pytest.mark.django_db
def test_the_audit_log_cannot_be_changed_in_the_admin(alice_client):
    event = AuditEvent.objects.create(action=AuditAction.LOGIN, target="x")
    page = f"/admin/accounts/auditevent/{event.pk}/change/"
    assert alice_client.post(page, {"target": "rewritten"}).status_code == 403
    assert alice_client.post(f"/admin/accounts/auditevent/{event.pk}/delete/").status_code == 403
    assert alice_client.post("/admin/accounts/auditevent/add/", {}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).target == "x"
