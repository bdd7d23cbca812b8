"""Personal API tokens: shown once, only a hash at rest, refused the moment they stop being
valid, each user's own, read-only but revocable in the admin, and audited."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.api_tokens import (
    authenticate_api_token,
    create_api_token,
    get_token_for_user,
    revoke_api_token,
    tokens_for_user,
)
from accounts.models import ApiToken, AuditAction, AuditEvent, TokenStatus, User

TOKENS_URL = "/accounts/tokens/"
NEW_TOKEN = re.compile(r'<input[^>]*id="new-api-token"[^>]*>')
VALUE = re.compile(r'value="([^"]*)"')


def revoke_url(token: ApiToken) -> str:
    return f"/accounts/tokens/{token.pk}/revoke/"


def shown_token(response) -> str:
    field = NEW_TOKEN.search(response.content.decode())
    assert field, "the new token is shown in its field"
    assert " readonly" in field.group(0)
    return VALUE.search(field.group(0)).group(1)


def updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


@pytest.fixture
def alices_token(alice) -> tuple[ApiToken, str]:
    return create_api_token(user=alice, name="Laptop scripts")


# --- The page ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_token_is_shown_once(bob_client, bob):
    response = bob_client.post(TOKENS_URL, {"name": "Laptop scripts", "expires_in_days": ""})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    raw_token = shown_token(response)
    assert re.fullmatch(r"prly_[A-Za-z0-9_-]{43}", raw_token)
    assert html.count(raw_token) == 1
    assert '<label for="new-api-token">New API token</label>' in html
    assert 'data-copy-target="new-api-token"' in html
    assert "js/copy_field.js" in html
    assert "Copy it now: it will not be shown again." in html
    assert authenticate_api_token(raw_token).user == bob

    again = bob_client.get(TOKENS_URL)
    listing = again.content.decode()
    assert again.status_code == 200
    assert raw_token not in listing
    assert raw_token[5:] not in listing
    assert "Laptop scripts" in listing
    assert f"{raw_token[:12]}…" in listing
    assert "Copy it now" not in listing


@pytest.mark.django_db
def test_the_list_shows_dates_and_status(bob_client, bob):
    create_api_token(user=bob, name="Active one")
    expiring, _ = create_api_token(
        user=bob, name="Expiring one", expires_at=timezone.now() + timedelta(days=1)
    )
    revoked, _ = create_api_token(user=bob, name="Revoked one")
    revoke_api_token(token=revoked, actor=bob)
    ApiToken.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - timedelta(days=1))

    response = bob_client.get(TOKENS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>API tokens</h1>" in html
    rows = {row.name: row.status for row in response.context["tokens"]}
    assert rows == {
        "Active one": TokenStatus.ACTIVE,
        "Expiring one": TokenStatus.EXPIRED,
        "Revoked one": TokenStatus.REVOKED,
    }
    for label in ("Active", "Expired", "Revoked", "Never"):
        assert f">{label}<" in html, label
    # Only a token that still works has a Revoke button.
    assert 'aria-label="Revoke Active one"' in html
    assert "Revoke Expiring one" not in html
    assert "Revoke Revoked one" not in html


@pytest.mark.django_db
def test_the_page_says_how_to_use_a_token(bob_client):
    html = bob_client.get(TOKENS_URL).content.decode()
    assert "http://testserver/v1" in html
    assert "from openai import OpenAI" in html
    assert "OpenAI(" in html and 'base_url="http://testserver/v1"' in html


@pytest.mark.django_db
def test_the_nav_links_to_the_page(bob_client):
    html = bob_client.get("/models/").content.decode()
    assert f'<a href="{TOKENS_URL}">API tokens</a>' in html


@pytest.mark.django_db
def test_an_expiry_choice_sets_the_date(bob_client, bob):
    bob_client.post(TOKENS_URL, {"name": "Month", "expires_in_days": "30"})
    token = ApiToken.objects.get(user=bob)
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert token.is_active and not token.is_expired


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "expires_in_days": ""}, "This field is required."),
        ({"name": "   ", "expires_in_days": ""}, "This field is required."),
        ({"name": "x" * 101, "expires_in_days": ""}, "at most 100 characters"),
        ({"name": "Odd", "expires_in_days": "12"}, "Select a valid choice."),
        ({"name": "Odd", "expires_in_days": "-7"}, "Select a valid choice."),
    ],
)
def test_an_invalid_form_creates_nothing(bob_client, data, error):
    response = bob_client.post(TOKENS_URL, data)
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html
    assert "The token was not created: check the form." in html
    assert "new-api-token" not in html
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE).exists()


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client, alices_token):
    token, _ = alices_token
    for response in (client.get(TOKENS_URL), client.post(revoke_url(token))):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    token.refresh_from_db()
    assert token.is_active


@pytest.mark.django_db
def test_revoking_works_at_once(alice_client, alices_token):
    token, raw_token = alices_token
    assert authenticate_api_token(raw_token) is not None
    response = alice_client.post(revoke_url(token), follow=True)
    assert response.redirect_chain == [(TOKENS_URL, 302)]
    assert "Revoked the token Laptop scripts" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None and token.status == TokenStatus.REVOKED
    assert authenticate_api_token(raw_token) is None
    # Revoking again is harmless.
    assert alice_client.post(revoke_url(token)).status_code == 302


@pytest.mark.django_db
def test_a_stranger_neither_sees_nor_revokes_a_token(bob_client, bob, alice, alices_token):
    token, raw_token = alices_token
    html = bob_client.get(TOKENS_URL).content.decode()
    assert "Laptop scripts" not in html and token.prefix not in html
    assert bob_client.post(revoke_url(token)).status_code == 404
    token.refresh_from_db()
    assert token.is_active and authenticate_api_token(raw_token) is not None
    assert list(tokens_for_user(bob)) == []
    assert list(tokens_for_user(alice)) == [token]
    with pytest.raises(Exception, match="No ApiToken matches") as raised:
        get_token_for_user(bob, token.pk)
    assert type(raised.value).__name__ == "Http404"


@pytest.mark.django_db
def test_revoke_refuses_get(alice_client, alices_token):
    token, _ = alices_token
    assert alice_client.get(revoke_url(token)).status_code == 405
    token.refresh_from_db()
    assert token.is_active


# --- Storage ---------------------------------------------------------------------------------


def database_files() -> list[Path]:
    """The SQLite database file and its WAL, when the tests run on a file; else none."""
    if connection.vendor != "sqlite":
        return []
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return []
    return [path for path in (Path(name), Path(f"{name}-wal")) if path.exists()]


@pytest.mark.django_db(transaction=True)
def test_only_a_hash_is_stored(bob):
    _, raw_token = create_api_token(user=bob, name="At rest")
    secret_part = raw_token[12:]
    expected_hash = hashlib.sha256(raw_token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    assert len(rows) == 1
    values = dict(zip(columns, rows[0], strict=True))
    assert values["token_hash"] == expected_hash
    assert values["prefix"] == raw_token[:12]
    for column, value in values.items():
        assert raw_token not in str(value), column
        assert secret_part not in str(value), column
    # The committed rows on disk: the scan finds the hash (so it reads the data), not the token.
    files = database_files()
    if files:
        stored = b"".join(path.read_bytes() for path in files)
        assert expected_hash.encode() in stored
        assert secret_part.encode() not in stored


@pytest.mark.django_db
def test_the_model_never_prints_its_hash(alices_token):
    token, raw_token = alices_token
    for text in (str(token), repr(token)):
        assert token.token_hash not in text
        assert raw_token[12:] not in text
        assert "Laptop scripts" in text and token.prefix in text


# --- Authentication ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_fresh_token_authenticates_with_its_user_loaded(alice, alices_token):
    token, raw_token = alices_token
    found = authenticate_api_token(raw_token)
    assert found == token
    with CaptureQueriesContext(connection) as queries:
        assert found.user == alice
    assert len(queries) == 0


@pytest.mark.django_db
def test_an_expired_token_is_refused(alices_token):
    token, raw_token = alices_token
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert authenticate_api_token(raw_token) is None
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    assert authenticate_api_token(raw_token) == token


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"is_active": False}, {"approved": False}])
def test_the_token_of_an_inactive_or_unapproved_user_is_refused(bob, change):
    _, raw_token = create_api_token(user=bob, name="Bob's")
    User.objects.filter(pk=bob.pk).update(**change)
    assert authenticate_api_token(raw_token) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        "",
        "prly_",
        "prly_" + "A" * 43,
        "sk-" + "A" * 45,
        "prly_" + "A" * 300,
        "prly_\ud800broken",
        "prly_ünïcode",
        None,
        42,
        b"prly_bytes",
        ["prly_"],
    ],
)
def test_malformed_or_unknown_input_is_refused_quietly(alices_token, raw):
    assert authenticate_api_token(raw) is None


@pytest.mark.django_db
def test_near_misses_of_a_real_token_are_refused(alices_token):
    _, raw_token = alices_token
    for near in (raw_token.upper(), raw_token[:-1], raw_token + "A", f" {raw_token}"):
        assert authenticate_api_token(near) is None, near


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute(alices_token):
    token, raw_token = alices_token
    assert token.last_used_at is None
    with CaptureQueriesContext(connection) as first:
        authenticate_api_token(raw_token)
    token.refresh_from_db()
    assert token.last_used_at is not None
    first_use = token.last_used_at
    assert len(updates(first)) == 1

    with CaptureQueriesContext(connection) as second:
        assert authenticate_api_token(raw_token) is not None
    assert updates(second) == []
    token.refresh_from_db()
    assert token.last_used_at == first_use

    a_minute_ago = timezone.now() - timedelta(seconds=61)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=a_minute_ago)
    with CaptureQueriesContext(connection) as later:
        authenticate_api_token(raw_token)
    assert len(updates(later)) == 1
    token.refresh_from_db()
    assert token.last_used_at > a_minute_ago


@pytest.mark.django_db
def test_the_list_shows_when_a_token_was_last_used(bob_client, bob):
    _, raw_token = create_api_token(user=bob, name="Used")
    assert ">Never<" in bob_client.get(TOKENS_URL).content.decode()
    authenticate_api_token(raw_token)
    used_at = timezone.localtime(ApiToken.objects.get().last_used_at)
    html = bob_client.get(TOKENS_URL).content.decode()
    assert f"{used_at:%Y-%m-%d %H:%M}" in html


# --- The service's own rules -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_service_refuses_bad_names_past_expiry_and_inactive_users(bob, make_user):
    past = timezone.now() - timedelta(minutes=1)
    with pytest.raises(ValidationError, match="name"):
        create_api_token(user=bob, name="  ")
    with pytest.raises(ValidationError, match="name"):
        create_api_token(user=bob, name="x" * 101)
    with pytest.raises(ValidationError, match="future"):
        create_api_token(user=bob, name="Late", expires_at=past)
    with pytest.raises(ValidationError, match="inactive"):
        create_api_token(user=make_user("ivan", is_active=False), name="Ivan's")
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE).exists()


# --- Audit -------------------------------------------------------------------------------------


def audit_table_text() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_auditevent")
        return json.dumps(cursor.fetchall(), default=str, ensure_ascii=False)


@pytest.mark.django_db
def test_one_audit_event_per_create_and_revoke_and_never_the_token(bob_client, bob):
    raw_token = shown_token(bob_client.post(TOKENS_URL, {"name": "Audited"}))
    token = ApiToken.objects.get()
    created = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATE)
    assert (created.actor, created.target, created.ip) == (
        bob,
        f"api token {token.pk}",
        "127.0.0.1",
    )
    assert created.detail == {
        "owner": "bob",
        "name": "Audited",
        "prefix_shown": raw_token[:12],
        "expires_at": None,
    }
    bob_client.post(revoke_url(token))
    bob_client.post(revoke_url(token))
    revoke_api_token(token=token, actor=bob)
    revoked = AuditEvent.objects.get(action=AuditAction.API_TOKEN_REVOKE)
    assert (revoked.actor, revoked.target) == (bob, f"api token {token.pk}")
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE).count() == 1
    text = audit_table_text()
    assert raw_token not in text and raw_token[12:] not in text
    assert token.token_hash not in text


# --- The admin -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_sees_tokens_but_never_their_hash(alice_client, bob):
    token, raw_token = create_api_token(user=bob, name="Bob laptop")
    listing = alice_client.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Bob laptop" in html and token.prefix in html
    assert "Revoke selected tokens" in html
    assert "Delete selected" not in html
    change = alice_client.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    for page in (html, change.content.decode()):
        assert token.token_hash not in page and raw_token[12:] not in page
    assert alice_client.get("/admin/accounts/apitoken/add/").status_code == 403
    search = alice_client.get("/admin/accounts/apitoken/", {"q": "bob"})
    assert list(search.context["cl"].result_list) == [token]


@pytest.mark.django_db
def test_the_admin_filters_tokens_by_status(alice_client, bob):
    active, _ = create_api_token(user=bob, name="Active")
    revoked, _ = create_api_token(user=bob, name="Revoked")
    revoke_api_token(token=revoked, actor=bob)
    expired, _ = create_api_token(user=bob, name="Expired")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    for status, expected in (("active", active), ("revoked", revoked), ("expired", expired)):
        response = alice_client.get("/admin/accounts/apitoken/", {"status": status})
        assert list(response.context["cl"].result_list) == [expected], status


@pytest.mark.django_db
def test_the_admin_revoke_action_revokes_and_is_audited(alice_client, alice, bob, carol):
    bobs, bobs_raw = create_api_token(user=bob, name="Bob's")
    carols, carols_raw = create_api_token(user=carol, name="Carol's")
    response = alice_client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [bobs.pk, carols.pk]},
        follow=True,
    )
    assert "2 tokens revoked." in response.content.decode()
    assert authenticate_api_token(bobs_raw) is None
    assert authenticate_api_token(carols_raw) is None
    events = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKE)
    assert sorted((e.actor_username, e.detail["owner"]) for e in events) == [
        ("alice", "bob"),
        ("alice", "carol"),
    ]


@pytest.mark.django_db
def test_a_user_cannot_use_the_admin_for_tokens(bob_client, alices_token):
    token, _ = alices_token
    response = bob_client.post(
        "/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    token.refresh_from_db()
    assert token.is_active


@pytest.mark.django_db
def test_deleting_a_token_in_the_admin_revokes_it_on_the_record(alice_client, bob):
    token, _ = create_api_token(user=bob, name="Doomed")
    response = alice_client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKE).count() == 1


@pytest.mark.django_db
def test_deleting_a_user_in_the_admin_deletes_their_tokens(alice_client, carol):
    create_api_token(user=carol, name="Carol's")
    response = alice_client.post(f"/admin/accounts/user/{carol.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(username="carol").exists()
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_the_list_costs_the_same_queries_for_many_tokens(bob_client, bob):
    create_api_token(user=bob, name="One")
    bob_client.get(TOKENS_URL)  # warms the per-process caches (site settings)
    with CaptureQueriesContext(connection) as few:
        bob_client.get(TOKENS_URL)
    for n in range(5):
        create_api_token(user=bob, name=f"More {n}")
    with CaptureQueriesContext(connection) as many:
        bob_client.get(TOKENS_URL)
    assert len(many) == len(few)
