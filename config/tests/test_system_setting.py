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


def in_a_request(view):
    """Run ``view`` the way a request runs: inside SystemSettingPerRequestMiddleware."""
    from config.services import SystemSettingPerRequestMiddleware

    return SystemSettingPerRequestMiddleware(lambda request: view())(None)


def counting_cache_reads(monkeypatch) -> list[str]:
    from config import services

    reads: list[str] = []
    real_get = services.cache.get
    monkeypatch.setattr(
        services.cache, "get", lambda key, *args: reads.append(key) or real_get(key, *args)
    )
    return reads


@pytest.mark.django_db
def test_a_request_reads_the_settings_from_the_cache_once(monkeypatch):
    get_system_setting()  # the row exists and is cached
    reads = counting_cache_reads(monkeypatch)
    seen = in_a_request(lambda: [get_system_setting() for _ in range(4)])
    assert len(reads) == 1
    assert all(setting is seen[0] for setting in seen)
    get_system_setting()
    get_system_setting()
    assert len(reads) == 3  # outside a request every call reads the shared cache


@pytest.mark.django_db
def test_a_change_made_during_a_request_is_seen_by_the_rest_of_it():
    from config.services import system_setting_update

    def view():
        setting = SystemSetting.objects.get()
        assert get_system_setting().site_name != "Renamed"
        setting.site_name = "Renamed"
        system_setting_update(setting=setting, changed_fields=["site_name"], actor=None)
        return get_system_setting().site_name

    assert in_a_request(view) == "Renamed"


@pytest.mark.django_db
def test_another_process_changing_the_settings_is_seen_by_the_next_request():
    from django.core.cache import cache

    from config.services import SYSTEM_SETTING_CACHE_KEY

    assert in_a_request(lambda: get_system_setting().max_message_chars) != 1234
    SystemSetting.objects.update(max_message_chars=1234)  # as another process would
    cache.delete(SYSTEM_SETTING_CACHE_KEY)
    assert in_a_request(lambda: get_system_setting().max_message_chars) == 1234


@pytest.mark.django_db
def test_a_signed_in_page_reads_the_settings_once(bob_client, monkeypatch):
    from config.services import SYSTEM_SETTING_CACHE_KEY

    reads = counting_cache_reads(monkeypatch)
    assert bob_client.get("/").status_code == 200
    assert reads.count(SYSTEM_SETTING_CACHE_KEY) == 1
