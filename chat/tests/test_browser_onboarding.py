"""Onboarding in a real browser: an empty Parley to the first answer in under a minute.

A fresh server whose demo-model address is a running mock model (what `make demo` starts);
the first person signs up (and so is the admin), adds the demo model with one click and
gets an answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.tests.live import ONLY_IN_SQLITE_PASS, LiveParley, start_live_parley
from chat.tests.test_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require_browser
from models_registry.mock_llm import make_server

pytestmark = [pytest.mark.slow, ONLY_IN_SQLITE_PASS]


@pytest.fixture(scope="module")
def empty_parley(
    tmp_path_factory: pytest.TempPathFactory, live_static_root: Path
) -> Iterator[LiveParley]:
    mock = make_server(delay_ms=20)
    mock.serve_in_thread()
    server = start_live_parley(
        tmp_path_factory.mktemp("onboarding"),
        live_static_root,
        PARLEY_DEMO_MODEL_URL=mock.base_url,
    )
    try:
        yield server
    finally:
        server.stop()
        mock.stop()


def test_an_empty_instance_leads_the_first_admin_to_a_first_answer(empty_parley):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(base_url=empty_parley.base_url)
        started = time.monotonic()

        page.goto("/")  # an empty instance sends a newcomer to sign up
        page.get_by_role("link", name="Sign up").first.click()
        page.get_by_label("Username").fill("founder")
        page.get_by_label("Password", exact=True).fill("a-long-founder-passphrase-1")
        page.get_by_label("Password confirmation").fill("a-long-founder-passphrase-1")
        page.get_by_role("button", name="Sign up").click()

        expect(
            page.get_by_role("heading", name="Welcome to Parley: set up a model")
        ).to_be_visible()
        page.get_by_role("button", name="Add the demo model").click()
        expect(page.get_by_text("The demo model is ready")).to_be_visible()
        page.get_by_role("textbox", name="Message").fill("Hello, Parley!")
        page.get_by_role("button", name="Send").click()
        expect(page.locator(".msg-assistant").last).to_contain_text("Hello")
        expect(page.locator(".msg-assistant.status-complete")).to_have_count(1)
        elapsed = time.monotonic() - started
        browser.close()
    # The human-scale bound for the whole walk-through (it takes ~3 s here), not a
    # speed benchmark.
    assert elapsed < 60, f"{elapsed:.1f} s from an empty instance to the first answer"
