"""Database-level rules of the accounts tables."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from accounts.audit import audit_record
from accounts.models import AuditAction, AuditEvent, Role, User


@pytest.mark.django_db
def test_role_must_be_a_known_value(bob):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=bob.pk).update(role="owner")


@pytest.mark.django_db
def test_staff_flags_cannot_drift_from_the_role(bob, alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=bob.pk).update(is_staff=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=alice.pk).update(is_superuser=False)


@pytest.mark.django_db
def test_saving_a_role_sets_the_flags(bob):
    bob.role = Role.ADMIN
    bob.save(update_fields=["role"])
    bob.refresh_from_db()
    assert bob.is_staff and bob.is_superuser


@pytest.mark.django_db
def test_audit_action_must_be_known():
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(action="made_up")


@pytest.mark.django_db
def test_audit_events_are_append_only(bob):
    event = audit_record(AuditAction.LOGIN, actor=bob, target="bob")
    event.target = "someone else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        AuditEvent.objects.update(target="rewritten")


@pytest.mark.django_db
def test_audit_refuses_a_secret_in_its_detail(bob):
    with pytest.raises(ValueError, match="api_key"):
        audit_record(AuditAction.API_KEY_SET, actor=bob, detail={"api_key": "sk-secret"})


@pytest.mark.django_db
def test_audit_keeps_the_actor_name_after_the_account_is_deleted(bob):
    audit_record(AuditAction.LOGIN, actor=bob, target="bob")
    bob.delete()
    event = AuditEvent.objects.get()
    assert event.actor is None
    assert event.actor_username == "bob"
