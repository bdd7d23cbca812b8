"""Every control on every page has a visible label or an accessible name."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client

from accounts.models import User
from config.models import SignupMode
from config.services import get_system_setting


class ControlAudit(HTMLParser):
    """Collects form controls, labels and the text inside buttons and links."""

    def __init__(self) -> None:
        super().__init__()
        self.label_targets: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.open_named: list[dict[str, str | None]] = []  # buttons/links awaiting their text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        if tag == "input" and attributes.get("type") == "hidden":
            return
        if tag in {"input", "select", "textarea", "button", "a"}:
            control = {"tag": tag, **attributes, "text": ""}
            self.controls.append(control)
            if tag in {"button", "a"}:
                self.open_named.append(control)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"button", "a"} and self.open_named:
            self.open_named.pop()

    def handle_data(self, data: str) -> None:
        for control in self.open_named:
            control["text"] = (control["text"] or "") + data.strip()

    def unnamed(self) -> list[dict[str, str | None]]:
        missing = []
        for control in self.controls:
            named = (
                control.get("aria-label")
                or control.get("aria-labelledby")
                or control.get("title")
                or (control["tag"] in {"button", "a"} and control["text"])
                or (control.get("id") in self.label_targets)
            )
            if not named:
                missing.append(control)
        return missing


def assert_all_controls_named(client: Client, url: str, expected_status: int = 200) -> None:
    response = client.get(url)
    assert response.status_code == expected_status, url
    audit = ControlAudit()
    audit.feed(response.content.decode())
    assert audit.controls, f"{url} has no controls to check"
    assert audit.unnamed() == [], url


@pytest.mark.django_db
def test_anonymous_pages(client, alice):
    assert_all_controls_named(client, "/accounts/login/")
    setting = get_system_setting()
    setting.signup_mode = SignupMode.OPEN
    setting.save()
    assert_all_controls_named(client, "/accounts/signup/")
    setting.signup_mode = SignupMode.CLOSED
    setting.save()
    assert_all_controls_named(client, "/accounts/signup/", expected_status=403)


@pytest.mark.django_db
def test_signed_in_pages(bob_client, alice_client):
    for client in (bob_client, alice_client):
        assert_all_controls_named(client, "/")
        assert_all_controls_named(client, "/accounts/password/")
        assert_all_controls_named(client, "/missing/", expected_status=404)


@pytest.mark.django_db
def test_waiting_page(client, alice):
    User.objects.create_user(username="wanda", password="a-long-passphrase-7", approved=False)
    client.login(username="wanda", password="a-long-passphrase-7")
    assert_all_controls_named(client, "/accounts/pending/")


def test_the_checker_notices_an_unlabelled_control():
    audit = ControlAudit()
    audit.feed('<label for="a">A</label><input id="a"><input id="b"><button></button>')
    assert [c.get("id") for c in audit.unnamed()] == ["b", None]
