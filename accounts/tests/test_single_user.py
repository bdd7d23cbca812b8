"""Single-user mode: no log-in, everyone is the one local ADMIN; warned when exposed."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from accounts.models import Role, User


@pytest.mark.django_db
@override_settings(PARLEY_SINGLE_USER=True)
def test_every_visitor_is_the_local_admin_without_logging_in(client):
    response = client.get("/")
    assert response.status_code == 200
    local = User.objects.get(username="admin")
    assert local.role == Role.ADMIN and local.is_staff
    assert not local.has_usable_password()
    assert client.get("/admin/").status_code == 200
    assert client.get("/accounts/login/")["Location"] == "/"
    assert client.get("/accounts/signup/")["Location"] == "/"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_single_user_mode_is_off_by_default(client):
    assert client.get("/")["Location"].startswith("/accounts/login/")
    assert not User.objects.exists()


@pytest.mark.django_db
@override_settings(PARLEY_SINGLE_USER=True, ALLOWED_HOSTS=["chat.example.com", "localhost"])
def test_a_check_warns_when_single_user_mode_is_reachable_from_outside():
    messages = [m for m in run_checks() if m.id == "parley.W001"]
    assert len(messages) == 1
    assert "chat.example.com" in messages[0].msg


@pytest.mark.django_db
@override_settings(PARLEY_SINGLE_USER=True, ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"])
def test_no_warning_for_a_local_only_single_user_instance():
    assert not [m for m in run_checks() if m.id == "parley.W001"]
