"""Branded error pages: a person sees where they are and how to get back."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.views.defaults import permission_denied, server_error


@pytest.mark.django_db
def test_unknown_page_is_a_branded_404(bob_client):
    response = bob_client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert "Back to your chats" in html
    assert "Parley" in html


def test_server_error_page_is_branded_and_needs_no_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert "parley" in html.lower()


@pytest.mark.django_db
def test_permission_denied_page_is_branded():
    request = RequestFactory().get("/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    response = permission_denied(request, PermissionError())
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()
