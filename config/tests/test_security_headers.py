"""Security headers on every page, CSP without inline script, CSRF on every POST."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/healthz"])
def test_security_headers_are_sent(client, url):
    response = client.get(url)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


@pytest.mark.django_db
def test_pages_carry_no_inline_script(client, alice_client):
    for page in (client.get("/accounts/login/"), alice_client.get("/")):
        html = page.content.decode()
        assert "<script>" not in html
        assert " on" + "click=" not in html


@pytest.mark.django_db
def test_post_without_csrf_token_is_refused_with_a_readable_page(bob):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "bob", "password": "whatever"})
    assert response.status_code == 403
    assert "Reload the page and try again" in response.content.decode()


@pytest.mark.django_db
def test_logout_without_csrf_token_keeps_the_session(bob):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    response = strict.post("/accounts/logout/")
    assert response.status_code == 403
    assert strict.get("/").status_code == 200
