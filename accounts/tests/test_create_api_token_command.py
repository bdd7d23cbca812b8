"""manage.py create_api_token: the token alone on stdout, a working token, clean errors."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.api_tokens import authenticate_api_token
from accounts.models import ApiToken, AuditAction, AuditEvent


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_it_prints_only_a_working_token(bob):
    out, err = run("bob", "--name", "CI")
    assert out.count("\n") == 1
    raw_token = out.strip()
    token = authenticate_api_token(raw_token)
    assert token is not None and token.user == bob and token.name == "CI"
    assert token.expires_at is None
    assert err.count("\n") == 1
    assert "Created API token 'CI'" in err and "never expires" in err
    assert raw_token not in err
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATE)
    assert (event.actor, event.ip) == (bob, None)
    assert event.detail["via"] == "command"
    assert raw_token not in str(event.detail)


@pytest.mark.django_db
def test_expires_days(bob):
    out, err = run("bob", "--name=Week", "--expires-days=7")
    token = ApiToken.objects.get()
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert "expires" in err and authenticate_api_token(out.strip()) == token


@pytest.mark.django_db
def test_an_unapproved_user_gets_a_token_and_a_note(make_user):
    make_user("wanda", approved=False)
    out, err = run("wanda", "--name", "Later")
    assert "once the account is approved" in err
    assert authenticate_api_token(out.strip()) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--name", "X"], "No account is named 'nobody'"),
        (["ivan", "--name", "X"], "'ivan' is inactive"),
        (["bob", "--name", "X", "--expires-days", "0"], "--expires-days must be"),
        (["bob", "--name", "X", "--expires-days", "-3"], "--expires-days must be"),
        (["bob", "--name", "X", "--expires-days", "soon"], "--expires-days must be"),
        (["bob", "--name", "X", "--expires-days", "99999999"], "--expires-days must be"),
        (["bob", "--name", "  "], "needs a name"),
        (["bob", "--name", "x" * 101], "needs a name"),
        (["bob"], "--name"),
    ],
)
def test_errors_are_clear_and_create_nothing(bob, make_user, args, message):
    make_user("ivan", is_active=False)
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE).exists()
