"""SystemSetting: one typed row, cached, invalidated on save, edited as one admin page."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from accounts.models import AuditAction, AuditEvent
from config.models import SignupMode, SystemSetting
from config.services import get_system_setting


@pytest.mark.django_db
def test_a_second_row_is_refused_by_the_database():
    get_system_setting()
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemSetting.objects.create(id=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemSetting.objects.create(id=1)
    assert SystemSetting.objects.count() == 1


@pytest.mark.django_db
def test_the_row_cannot_be_deleted():
    setting = get_system_setting()
    with pytest.raises(PermissionError):
        setting.delete()
    with pytest.raises(PermissionError):
        SystemSetting.objects.all().delete()
    assert SystemSetting.objects.count() == 1


@pytest.mark.django_db
def test_bad_values_are_refused_by_the_database():
    get_system_setting()
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemSetting.objects.update(signup_mode="sometimes")
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemSetting.objects.update(max_message_chars=0)


@pytest.mark.django_db
def test_reads_come_from_the_cache_and_a_save_invalidates_it(django_assert_num_queries):
    get_system_setting()
    with django_assert_num_queries(0):
        assert get_system_setting().site_name == "Parley"
    setting = SystemSetting.objects.get()
    setting.site_name = "Family chat"
    setting.save()
    assert get_system_setting().site_name == "Family chat"


@pytest.mark.django_db
def test_admin_edits_the_one_row_and_records_what_changed(alice_client):
    listing = alice_client.get("/admin/config/systemsetting/")
    assert listing.status_code == 302
    assert listing["Location"].endswith("/admin/config/systemsetting/1/change/")
    page = alice_client.get("/admin/config/systemsetting/1/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data.update(site_name="Our team", signup_mode=SignupMode.CLOSED)
    for flag in ("allow_personal_models", "allow_private_endpoints"):
        if data[flag] is False:
            data.pop(flag)
    response = alice_client.post("/admin/config/systemsetting/1/change/", data)
    assert response.status_code == 302
    assert get_system_setting().site_name == "Our team"
    event = AuditEvent.objects.get(action=AuditAction.SETTING_CHANGE)
    assert event.actor_username == "alice"
    assert event.detail == {"changed": ["signup_mode", "site_name"]}
    assert "Our team" in alice_client.get("/").content.decode()


@pytest.mark.django_db
def test_admin_offers_no_add_and_no_delete(alice_client):
    get_system_setting()
    assert alice_client.get("/admin/config/systemsetting/add/").status_code == 403
    assert alice_client.get("/admin/config/systemsetting/1/delete/").status_code == 403
    assert (
        alice_client.post("/admin/config/systemsetting/1/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert SystemSetting.objects.count() == 1
