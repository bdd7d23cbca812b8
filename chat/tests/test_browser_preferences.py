"""The Preferences page in a real browser (Chromium): Enter-to-send and the default model.

Reuses the browser fixtures of chat/tests/test_browser.py, on a live server of its own.
"""

from __future__ import annotations

import pytest

from chat.tests.live import ONLY_IN_SQLITE_PASS
from chat.tests.test_browser import browser, console, site, upstreams  # noqa: F401
from chat.tests.test_browser import page as page  # a fixture, used by name

pytestmark = [pytest.mark.slow, ONLY_IN_SQLITE_PASS]


def test_enter_to_send_off_makes_enter_a_new_line_and_ctrl_enter_send(page):
    from playwright.sync_api import expect

    page.goto("/accounts/preferences/")
    page.get_by_label("Enter sends the message").uncheck()
    page.get_by_label("Default model").select_option(label="Mock")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your preferences are saved.")).to_be_visible()

    page.goto("/")
    expect(page.get_by_label("Model")).to_have_value(
        page.get_by_label("Model").locator("option", has_text="Mock").get_attribute("value")
    )
    box = page.get_by_role("textbox", name="Message")
    box.fill("first line")
    box.press("Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")  # Enter did not send
    box.press("Control+Enter")
    page.wait_for_url("**/chats/*/**", timeout=20_000)
    expect(page.locator(".msg-user").last).to_contain_text("second line")
