"""The admin is for the ADMIN role only, and its saves go through the services."""

from __future__ import annotations

import pytest

from accounts.models import AuditAction, AuditEvent, Role, User
from accounts.services import user_set_role
from config.services import get_system_setting
from conftest import every_admin_url
from models_registry.models import ModelConfig


@pytest.fixture
def admin_urls(alice, bob):
    get_system_setting()
    system_model = ModelConfig.objects.create(
        name="GPT", api_url="https://api.example.com/v1", model="gpt-4o-mini"
    )
    event = AuditEvent.objects.create(action=AuditAction.LOGIN, target="alice")
    return every_admin_url({User: bob.pk, ModelConfig: system_model.pk, AuditEvent: event.pk})


@pytest.mark.django_db
def test_a_user_reaches_no_admin_page(bob_client, admin_urls):
    assert len(admin_urls) > 20
    for url in admin_urls:
        response = bob_client.get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), url
    index = bob_client.get("/admin/", follow=True)
    assert "Site administration" not in index.content.decode()
    assert "You are authenticated as bob, but are not authorized" in index.content.decode()


@pytest.mark.django_db
def test_a_user_cannot_post_admin_actions(bob_client, carol):
    response = bob_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [carol.pk]}
    )
    assert response.status_code == 302
    carol.refresh_from_db()
    assert carol.is_active


@pytest.mark.django_db
def test_an_admin_reaches_the_admin(alice_client):
    assert alice_client.get("/admin/").status_code == 200
    for url in ("/admin/accounts/user/", "/admin/models_registry/modelconfig/"):
        assert alice_client.get(url).status_code == 200
    assert alice_client.get("/admin/accounts/auditevent/").status_code == 200


@pytest.mark.django_db
def test_anonymous_visitors_get_the_admin_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def user_change_data(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": user.role,
        "approved": "on" if user.approved else "",
        "is_active": "on" if user.is_active else "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_role_change_in_the_admin_drives_staff_flags_and_is_audited(alice_client, bob):
    response = alice_client.post(
        f"/admin/accounts/user/{bob.pk}/change/", user_change_data(bob, role=Role.ADMIN)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    bob.refresh_from_db()
    assert (bob.role, bob.is_staff, bob.is_superuser) == (Role.ADMIN, True, True)
    event = AuditEvent.objects.get(action=AuditAction.ROLE_CHANGE)
    assert (event.actor_username, event.target, event.detail) == (
        "alice",
        "bob",
        {"from": "user", "to": "admin"},
    )


@pytest.mark.django_db
def test_deactivation_in_the_admin_is_audited(alice_client, bob):
    alice_client.post(f"/admin/accounts/user/{bob.pk}/change/", user_change_data(bob, is_active=""))
    bob.refresh_from_db()
    assert bob.is_active is False
    assert AuditEvent.objects.filter(action=AuditAction.ACTIVE_CHANGE, target="bob").count() == 1


@pytest.mark.django_db
def test_the_last_admin_cannot_demote_or_deactivate_themselves(alice_client, alice):
    response = alice_client.post(
        f"/admin/accounts/user/{alice.pk}/change/", user_change_data(alice, role=Role.USER)
    )
    assert response.status_code == 200
    assert "This is the last active admin" in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == Role.ADMIN
    response = alice_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [alice.pk]}
    )
    alice.refresh_from_db()
    assert alice.is_active


@pytest.mark.django_db
def test_deactivate_action(alice_client, bob, carol):
    alice_client.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [bob.pk, carol.pk]},
    )
    assert not User.objects.filter(username__in=["bob", "carol"], is_active=True).exists()


@pytest.mark.django_db
def test_admin_can_add_a_user_who_is_approved_at_once(alice_client):
    response = alice_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "erin",
            "email": "erin@example.com",
            "role": Role.USER,
            "usable_password": "true",
            "password1": "erin-long-passphrase-1",
            "password2": "erin-long-passphrase-1",
        },
    )
    assert response.status_code == 302
    erin = User.objects.get(username="erin")
    assert erin.approved and erin.role == Role.USER and not erin.is_staff
    assert AuditEvent.objects.filter(action=AuditAction.USER_CREATE, target="erin").count() == 1


@pytest.mark.django_db
def test_promoting_through_the_service_also_approves(alice, make_user):
    waiting = make_user("wanda", approved=False)
    user_set_role(user=waiting, role=Role.ADMIN, actor=alice)
    waiting.refresh_from_db()
    assert waiting.approved and waiting.is_staff


@pytest.mark.django_db
def test_audit_events_are_read_only_in_the_admin(alice_client):
    event = AuditEvent.objects.create(action=AuditAction.LOGIN, target="x")
    assert alice_client.get("/admin/accounts/auditevent/add/").status_code == 403
    assert alice_client.get(f"/admin/accounts/auditevent/{event.pk}/delete/").status_code == 403
    page = alice_client.get(f"/admin/accounts/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
