"""A planted API key never leaves: pages, forms, admin, logs, audit, reports, exports, files."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.views.debug import ExceptionReporter

from accounts.models import AuditEvent, User
from config.services import get_system_setting
from conftest import every_admin_url
from models_registry import services
from models_registry.client import UpstreamClient
from models_registry.models import ModelConfig

SYSTEM_SECRET = "sk-systemplanted-012345-6789abcdXy9f"
PERSONAL_SECRET = "sk-personalplanted-98765-4321zyxWq2c"
SECRETS = (SYSTEM_SECRET, PERSONAL_SECRET)
MIDDLES = tuple(secret[3:-4] for secret in SECRETS)  # what a partial leak would show


def assert_no_secret(text: str, where: str) -> None:
    for fragment in (*SECRETS, *MIDDLES):
        assert fragment not in text, f"API key material in {where}"


@pytest.fixture
def planted(alice, bob, mock_llm):
    """A system model and alice's personal model, both with keys, both pointing at the mock."""
    setting = get_system_setting()
    setting.allow_private_endpoints = True
    setting.save()
    admin = Client()
    admin.force_login(alice)
    form = {
        "name": "Team mock",
        "api_url": mock_llm.base_url,
        "api_key": SYSTEM_SECRET,
        "model": "mock-model",
        "context_window": "8192",
        "max_output_tokens": "512",
        "is_active": "on",
    }
    assert admin.post("/admin/models_registry/modelconfig/add/", form).status_code == 302
    assert (
        admin.post("/models/add/", {**form, "name": "Mine", "api_key": PERSONAL_SECRET}).status_code
        == 302
    )
    return ModelConfig.objects.get(owner=None), ModelConfig.objects.get(owner=alice)


@pytest.mark.django_db
def test_no_page_or_form_shows_a_key(planted, alice_client, bob_client, alice, bob):
    system_model, personal = planted
    admin_pages = every_admin_url(
        {User: bob.pk, ModelConfig: system_model.pk, AuditEvent: AuditEvent.objects.first().pk}
    )
    site_pages = [
        "/",
        "/models/",
        "/models/add/",
        f"/models/{personal.pk}/edit/",
        f"/models/{personal.pk}/delete/",
        "/accounts/password/",
    ]
    for client, pages in ((alice_client, site_pages + admin_pages), (bob_client, site_pages[:3])):
        for url in pages:
            response = client.get(url)
            assert response.status_code in (200, 302, 403, 404), url
            assert_no_secret(response.content.decode(), url)
    # A form re-shown with an error must not echo the typed key back either.
    again = alice_client.post(
        "/models/add/", {"name": "", "api_url": "bad", "api_key": PERSONAL_SECRET, "model": ""}
    )
    assert again.status_code == 200
    assert_no_secret(again.content.decode(), "re-shown form")


@pytest.mark.django_db
def test_keys_reach_the_upstream_as_bearer_only(planted, mock_llm):
    system_model, personal = planted
    assert services.check_connection(system_model).ok
    assert services.check_connection(personal).ok
    sent = [request.headers.get("authorization") for request in mock_llm.requests]
    assert f"Bearer {SYSTEM_SECRET}" in sent
    assert f"Bearer {PERSONAL_SECRET}" in sent


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["http_401", "http_500", "error_mid_stream", "disconnect"])
def test_failing_upstream_calls_log_no_key(planted, caplog, fault):
    system_model, personal = planted
    caplog.set_level(logging.DEBUG)
    for model in (system_model, personal):
        model.model = f"mock-{fault}"
        result = services.check_connection(model)
        assert not result.ok
        assert_no_secret(result.message, "the user-facing error")
        client = services.upstream_client_for(model)
        with pytest.raises(Exception) as raised:  # noqa: PT011 - any upstream failure
            list(client.stream(model=model.model, messages=[{"role": "user", "content": "hi"}]))
        assert_no_secret(str(raised.value), "the exception text")
        assert_no_secret(repr(raised.value), "the exception repr")
        assert_no_secret(repr(client), "the client repr")
    assert caplog.records, "the failures were logged"
    assert_no_secret(caplog.text, "the log")


@pytest.mark.django_db
def test_exception_reports_hide_the_key(planted, monkeypatch, rf):
    system_model, _ = planted

    def explode(self, **kwargs):
        raise RuntimeError("boom while talking upstream")

    monkeypatch.setattr(UpstreamClient, "complete", explode)
    try:
        services.check_connection(system_model)
    except RuntimeError:
        exc_info = sys.exc_info()
    else:
        pytest.fail("the patched call should have raised")
    request = rf.post("/models/1/test/", {"api_key": SYSTEM_SECRET})
    reporter = ExceptionReporter(request, *exc_info)
    assert_no_secret(reporter.get_traceback_text(), "the text exception report")
    assert_no_secret(reporter.get_traceback_html(), "the HTML exception report")


@pytest.mark.django_db
def test_audit_and_exports_hold_no_key(planted):
    details = str(list(AuditEvent.objects.values_list("detail", "target")))
    assert_no_secret(details, "the audit log")
    out = io.StringIO()
    call_command("dumpdata", "models_registry", "config", stdout=out)
    assert_no_secret(out.getvalue(), "dumpdata")
    for model in ModelConfig.objects.all():
        assert_no_secret(repr(model) + str(model), "repr/str")


@pytest.mark.django_db(transaction=True)
def test_database_and_wal_bytes_hold_no_key(alice, mock_llm):
    if connection.vendor != "sqlite":
        pytest.skip("file bytes are SQLite's")
    model = ModelConfig(name="Scan-marker", api_url=mock_llm.base_url, model="mock-model")
    model.set_api_key(SYSTEM_SECRET)
    model.save()
    model.set_api_key(PERSONAL_SECRET)  # replaced: the old ciphertext may linger, never plaintext
    model.save()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA database_list")
        db_path = Path(cursor.fetchone()[2])
    blobs = b"".join(p.read_bytes() for p in (db_path, Path(f"{db_path}-wal")) if p.exists())
    assert b"Scan-marker" in blobs
    for fragment in (*SECRETS, *MIDDLES):
        assert fragment.encode() not in blobs
