"""The chat pages in a real browser (Debian's Chromium driven by Playwright), end to end.

A fresh Parley under gunicorn and the mock model; everything a person does goes through
the pages, found by accessible names (they are the contract): sign up, switch on
private endpoints in the admin, add a personal model, chat, stop, regenerate, edit,
rename, delete, load earlier messages, read a Markdown answer, and chat without
JavaScript. Every page must log no console error (CSP violations included).

Without /usr/bin/chromium these tests skip, unless PARLEY_REQUIRE_BROWSER=1 (CI), where
they fail. `PARLEY_SCREENSHOTS=1` also refreshes docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chat.tests.live import (
    ONLY_IN_SQLITE_PASS,
    PASSWORD,
    ROOT,
    LiveParley,
    ScriptedUpstream,
)
from models_registry.mock_llm import MockLLMServer, make_server

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    expect = sync_playwright = None

pytestmark = [pytest.mark.slow, ONLY_IN_SQLITE_PASS]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 10_000
ADMIN = "ada"
MARKDOWN_ANSWER = (
    "Here is **bold** text and a snippet:\n\n"
    "```python\n"
    "def greet(name):\n"
    '    print(f"hi {name}")  # a comment\n'
    "```\n\n"
    "- one\n- two\n"
)
LONG_MESSAGE = " ".join(f"word{i}" for i in range(50))


def _require_browser() -> None:
    """Skip without a browser; fail instead under PARLEY_REQUIRE_BROWSER=1 (CI)."""
    required = os.environ.get("PARLEY_REQUIRE_BROWSER") == "1"
    missing = None
    if sync_playwright is None:
        missing = "the playwright package is not installed (requirements-dev.txt)"
    elif not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing and required:
        pytest.fail(f"PARLEY_REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(f"browser tests skipped: {missing}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, MockLLMServer | ScriptedUpstream]]:
    """The mock model, slow enough to watch an answer grow, and a Markdown-speaking one."""
    mock = make_server(delay_ms=40)
    mock.serve_in_thread()
    markdown = ScriptedUpstream(MARKDOWN_ANSWER, delay=0.03)
    yield {"Mock": mock, "Markdown": markdown}
    mock.stop()
    markdown.stop()


class ConsoleErrors:
    """Console errors (CSP violations among them) and uncaught exceptions of its pages."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Any) -> Any:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    def _console(self, page: Any, message: Any) -> None:
        if message.type != "error":
            return
        source = message.location.get("url", "")
        if source.endswith("/favicon.ico") and "/admin/" in page.url:
            return  # Django's admin pages name no icon, so the browser asks for this one
        self.errors.append(f"{page.url}: {message.text} ({source})")

    def assert_none(self) -> None:
        assert self.errors == [], "the browser logged errors:\n" + "\n".join(self.errors)


@dataclass
class Site:
    server: LiveParley
    browser: Any
    storage_state: dict

    def url(self, path: str) -> str:
        return self.server.url(path)

    def context(self, **options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        return self.browser.new_context(
            base_url=self.server.base_url, storage_state=self.storage_state, **options
        )


@pytest.fixture(scope="module")
def site(browser, parley_server, upstreams) -> Site:
    """The first person signs up (and so is the admin), allows private endpoints for
    personal models in the System settings, and adds two personal models."""
    console = ConsoleErrors()
    context = browser.new_context(base_url=parley_server.base_url)
    page = console.watch(context.new_page())

    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(parley_server.url("/"))
    expect(page.get_by_role("link", name="Admin")).to_be_visible()  # the first account is ADMIN

    page.goto("/admin/config/systemsetting/")
    page.get_by_label("Personal models may use private-network endpoints").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("was changed successfully")).to_be_visible()

    for name, upstream in upstreams.items():
        page.goto("/models/add/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("API base URL").fill(upstream.base_url)
        page.get_by_label("API key", exact=True).fill("sk-browser-0000")
        page.get_by_label("Upstream model id").fill("mock-model")
        page.get_by_role("button", name="Save", exact=True).click()
        page.wait_for_url(parley_server.url("/models/"))
        expect(page.get_by_text(f"Saved {name}.")).to_be_visible()

    console.assert_none()
    state = context.storage_state()
    context.close()
    return Site(parley_server, browser, state)


@pytest.fixture
def console() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(site: Site, console: ConsoleErrors) -> Iterator[Any]:
    """A logged-in page; the test fails if any page it opened logged an error."""
    context = site.context()
    context.on("page", console.watch)
    yield context.new_page()
    context.close()
    console.assert_none()


def assistant(page: Any) -> Any:
    return page.locator(".msg-assistant").last


def answered(page: Any, action: Callable[[], Any]) -> None:
    """Do ``action``, then wait for the page the server renders once the answer is saved
    (the script loads the chat again when its stream ends; a plain form redirects)."""
    with page.expect_event("load", timeout=20_000):  # a new document, not a replaceState
        action()
    expect(page).to_have_url(re.compile(r"/chats/\d+/#message-\d+$"))
    expect(page.locator(".msg-assistant .badge", has_text="writing")).to_have_count(0)


def start_chat(page: Any, model: str, text: str, *, wait: bool = True) -> None:
    page.goto("/")
    page.get_by_role("combobox", name="Model").select_option(label=model)
    page.get_by_role("textbox", name="Message", exact=True).fill(text)
    send = page.get_by_role("button", name="Send")
    if wait:
        answered(page, send.click)
    else:
        send.click()


def watch_text_grow(page: Any, seconds: float = 8) -> list[int]:
    """Distinct lengths of the answer's text seen while it streams (until three)."""
    lengths: list[int] = []
    body = assistant(page).locator(".msg-body")
    body.wait_for()
    deadline = time.monotonic() + seconds
    while len(lengths) < 3 and time.monotonic() < deadline:
        length = len(body.inner_text())
        if length and (not lengths or length != lengths[-1]):
            lengths.append(length)
        page.wait_for_timeout(15)
    return lengths


def test_the_first_account_is_admin_and_sees_its_personal_models(page, site):
    page.goto("/")
    options = page.get_by_role("combobox", name="Model").locator("option").all_inner_texts()
    assert options == ["Markdown", "Mock"]
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Administration", exact=True)).to_be_visible()


def test_an_answer_grows_and_stop_keeps_the_text_so_far(page, site):
    start_chat(page, "Mock", LONG_MESSAGE, wait=False)
    expect(assistant(page).locator(".badge", has_text="writing")).to_be_visible()
    lengths = watch_text_grow(page)
    assert len(lengths) == 3 and lengths == sorted(lengths), lengths  # three steps, growing

    answered(page, page.get_by_role("button", name="Stop").click)
    answer = assistant(page)
    expect(answer.locator(".badge", has_text="stopped")).to_be_visible()
    stopped_text = answer.locator(".msg-body").inner_text()
    assert stopped_text.startswith("Received 1 message.")
    assert "word49" not in stopped_text  # cut short
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)  # nothing left to stop

    page.reload()
    answer = assistant(page)
    expect(answer.locator(".badge", has_text="stopped")).to_be_visible()
    assert answer.locator(".msg-body").inner_text() == stopped_text

    # Retry (the answer did not finish) writes the whole answer this time.
    answered(page, page.get_by_role("button", name="Retry").click)
    answer = assistant(page)
    assert answer.locator(".msg-body").inner_text().endswith("word49")
    expect(answer.locator(".badge")).to_have_count(0)
    expect(page.locator(".msg")).to_have_count(2)


def test_regenerate_and_edit_and_resend(page, site):
    start_chat(page, "Mock", "First version")
    first_answer_id = assistant(page).get_attribute("id")

    answered(page, page.get_by_role("button", name="Regenerate").click)
    assert assistant(page).get_attribute("id") != first_answer_id  # a new answer
    expect(page.locator(".msg")).to_have_count(2)
    assert assistant(page).locator(".msg-body").inner_text().endswith("First version")

    page.locator(".msg-user").last.get_by_text("Edit", exact=True).click()
    page.get_by_label("Edited message").fill("Second version")
    answered(page, page.get_by_role("button", name="Save and resend").click)
    assert page.locator(".msg-user .msg-body").all_inner_texts() == ["Second version"]
    assert assistant(page).locator(".msg-body").inner_text() == (
        "Received 1 message. Last user message: Second version"
    )


def test_rename_and_delete_a_chat(page, site):
    start_chat(page, "Mock", "A chat to rename")
    chat_url = page.url.split("#")[0]

    page.locator("summary", has_text="Rename").click()
    page.get_by_label("Title").fill("Renamed in the browser")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Renamed in the browser")).to_be_visible()
    sidebar = page.get_by_role("navigation", name="Chats")
    expect(sidebar.get_by_role("link", name="Renamed in the browser")).to_be_visible()

    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete “Renamed in the browser”?")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(site.url("/"))
    expect(page.get_by_text("Chat deleted.")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Renamed in the browser")).to_have_count(0)
    assert page.request.get(chat_url).status == 404  # gone, not just hidden


LONG_CHAT = """
import json
from accounts.models import User
from chat.models import ChatSession, Message
from models_registry.models import ModelConfig

user = User.objects.get(username={username!r})
session = ChatSession.objects.create(
    user=user, model_config=ModelConfig.objects.get(owner=user, name="Mock"),
    title="A long chat", message_count=60,
)
Message.objects.bulk_create(
    Message(session=session, role="user" if i % 2 else "assistant", content=f"Old message {{i}}")
    for i in range(1, 61)
)
print(json.dumps(session.pk))
"""


def test_load_earlier_shows_older_messages(page, site):
    chat_id = site.server.shell(LONG_CHAT.format(username=ADMIN))
    page.goto(f"/chats/{chat_id}/")
    messages = page.locator("#messages > .msg")
    expect(messages).to_have_count(50)
    expect(page.get_by_text("Old message 1", exact=True)).to_have_count(0)

    page.get_by_role("link", name="Load earlier").click()
    page.get_by_text("Old message 1", exact=True).wait_for()
    expect(messages).to_have_count(60)
    bodies = page.locator("#messages > .msg .msg-body").all_inner_texts()
    assert bodies == [f"Old message {i}" for i in range(1, 61)]  # in order, none twice
    expect(page.get_by_role("link", name="Load earlier")).to_have_count(0)


def test_a_markdown_answer_is_rendered(page, site, browser):
    start_chat(page, "Markdown", "Show me some Markdown")
    body = assistant(page).locator(".msg-body")
    assert body.locator("strong").inner_text() == "bold"
    highlighted = body.locator(".code-block .highlight")
    expect(highlighted).to_have_count(1)
    assert highlighted.locator("span").count() >= 5  # Pygments' token spans
    assert "def greet(name):" in highlighted.inner_text()
    assert body.locator("li").all_inner_texts() == ["one", "two"]
    expect(page.get_by_role("button", name="Copy code")).to_be_visible()

    if os.environ.get("PARLEY_SCREENSHOTS") == "1":
        save_screenshots(site, page.url.split("#")[0])


def test_a_chat_fits_a_phone_screen(site, console):
    context = site.context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = console.watch(context.new_page())
    start_chat(page, "Markdown", "Markdown on a phone")
    expect(assistant(page).locator(".code-block")).to_be_visible()
    # Nothing wider than the screen: a long code line scrolls inside its block instead.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.get_by_role("button", name="Send").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    context.close()
    console.assert_none()


def save_screenshots(site: Site, chat_url: str) -> None:
    """docs/screenshots/chat-{desktop,mobile}-{light,dark}.png of a chat page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sizes = {"desktop": (1280, 800), "mobile": (390, 844)}
    for size, (width, height) in sizes.items():
        for scheme in ("light", "dark"):
            context = site.context(
                viewport={"width": width, "height": height},
                color_scheme=scheme,
                is_mobile=size == "mobile",
                has_touch=size == "mobile",
            )
            shot = context.new_page()
            shot.goto(chat_url)
            shot.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the latest answer
            shot.screenshot(path=SCREENSHOTS / f"chat-{size}-{scheme}.png")
            context.close()


def test_the_chat_works_without_javascript(site, console):
    context = site.context(java_script_enabled=False)
    page = console.watch(context.new_page())
    page.goto("/")
    page.get_by_role("combobox", name="Model").select_option(label="Mock")
    page.get_by_role("textbox", name="Message", exact=True).fill("No script here")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/chats/\d+/#message-\d+$"))
    answer = assistant(page)
    assert answer.locator(".msg-body").inner_text() == (
        "Received 1 message. Last user message: No script here"
    )
    expect(answer.locator(".badge")).to_have_count(0)

    page.get_by_role("textbox", name="Message", exact=True).fill("Still no script")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/chats/\d+/#message-\d+$"))
    assert assistant(page).locator(".msg-body").inner_text() == (
        "Received 3 messages. Last user message: Still no script"
    )
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    context.close()
    console.assert_none()


def test_a_token_made_in_the_browser_works_with_the_sdk_and_shows_up_as_usage(page, site):
    import openai

    page.goto("/accounts/tokens/")
    page.get_by_label("Name").fill("browser laptop")
    page.get_by_role("button", name="Create token").click()
    token_field = page.get_by_label("New API token")
    expect(token_field).to_have_value(re.compile(r"^prly_"))
    expect(page.get_by_role("button", name="Copy")).to_be_visible()  # the script showed it
    raw = token_field.input_value()

    client = openai.OpenAI(base_url=site.url("/v1"), api_key=raw, max_retries=0)
    model = next(m.id for m in client.models.list() if m.id == "personal/mock")
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello from a laptop"}]
    )
    assert "Hello" in reply.choices[0].message.content

    page.goto("/accounts/tokens/")
    expect(page.get_by_label("New API token")).to_have_count(0)  # shown once only
    page.goto("/accounts/")
    usage = page.get_by_role("table", name=re.compile("Your usage"))
    expect(usage).to_contain_text("Mock")
    expect(usage).to_contain_text("API")
    expect(usage).to_contain_text(f"{reply.usage.total_tokens:,}")

    page.goto("/accounts/tokens/")
    page.get_by_role("button", name="Revoke browser laptop").click()
    expect(page.get_by_text("Revoked").first).to_be_visible()
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


# --- Themes, phones and accessibility ----------------------------------------------------

AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core 4, vendored: no network
SET_THEME = """
from accounts.models import User
User.objects.filter(username={username!r}).update(theme={theme!r})
print("null")
"""
CODE_CHAT = """
import json
from accounts.models import User
from chat.models import ChatSession, Message
from models_registry.models import ModelConfig

user = User.objects.get(username={username!r})
session = ChatSession.objects.create(
    user=user, model_config=ModelConfig.objects.get(owner=user, name="Markdown"),
    title="Long lines", message_count=2,
)
url = "https://example.com/" + "a-very-long-path-segment/" * 12 + "?q=" + "x" * 80
Message.objects.create(session=session, role="user", content="Show me " + url)
Message.objects.create(
    session=session, role="assistant",
    content=(
        "Read " + url + " and this [link](" + url + "):\\n\\n"
        "```python\\n"
        "def long_line():\\n"
        "    return " + repr("y" * 300) + "  # a comment that does not wrap\\n"
        "```\\n\\n"
        "`" + "inline_code_without_spaces_" * 8 + "`\\n"
    ),
)
print(json.dumps(session.pk))
"""
PHONE = {"width": 375, "height": 812}
NARROW = 360


def set_theme(site: Site, theme: str) -> None:
    site.server.shell(SET_THEME.format(username=ADMIN, theme=theme))


@pytest.fixture(scope="module")
def code_chat(site: Site) -> str:
    """A chat whose answer holds a long code line, a long URL and long inline code."""
    return f"/chats/{site.server.shell(CODE_CHAT.format(username=ADMIN))}/"


@pytest.fixture
def system_theme_after(site: Site) -> Iterator[None]:
    """The admin's theme is back to "system" after the test, whatever it chose."""
    yield
    set_theme(site, "system")


def luminance(css_colour: str) -> float:
    """WCAG relative luminance of a computed `rgb(r, g, b)` colour."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css_colour)[:3]]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def background(page: Any, selector: str = "body") -> float:
    return luminance(page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor"))


def is_dark(page: Any) -> bool:
    return background(page) < 0.05  # the light palette's page is above 0.9


def test_a_dark_theme_chosen_on_the_account_page_is_applied_and_remembered(
    site, console, system_theme_after
):
    context = site.context(color_scheme="light")
    page = console.watch(context.new_page())
    page.goto("/accounts/")
    assert page.evaluate("document.documentElement.dataset.theme") == "system"
    assert not is_dark(page)
    appearance = page.get_by_role("region", name="Appearance")
    theme = appearance.get_by_role("combobox", name="Theme")
    expect(theme).to_have_value("system")
    theme.select_option(label="Dark")
    appearance.get_by_role("button", name="Save").click()
    page.wait_for_url(site.url("/accounts/"))  # POST, then redirect, then GET
    expect(page.get_by_text("Your theme is saved.")).to_be_visible()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert is_dark(page)  # though the device asks for light
    expect(theme).to_have_value("dark")

    page.goto("/models/")  # the next page load
    assert is_dark(page)
    context.close()

    context = site.context(color_scheme="light")  # a new browser context, same user
    page = console.watch(context.new_page())
    page.goto("/")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert is_dark(page)
    context.close()
    console.assert_none()


def test_the_system_theme_follows_the_device_code_colours_included(
    site, console, code_chat, system_theme_after
):
    set_theme(site, "system")
    seen = {}
    for scheme in ("dark", "light"):
        context = site.context(color_scheme=scheme)
        page = console.watch(context.new_page())
        page.goto(code_chat)
        assert page.evaluate("document.documentElement.dataset.theme") == "system"
        seen[scheme] = (background(page), background(page, ".highlight"))
        context.close()
    assert seen["dark"][0] < 0.05 and seen["dark"][1] < 0.05  # page and code both dark
    assert seen["light"][0] > 0.9 and seen["light"][1] > 0.9

    # A theme chosen by the user wins over the device's preference, code colours included.
    set_theme(site, "light")
    context = site.context(color_scheme="dark")
    page = console.watch(context.new_page())
    page.goto(code_chat)
    assert background(page) > 0.9 and background(page, ".highlight") > 0.9
    context.close()
    console.assert_none()


def test_on_a_phone_the_chat_list_is_a_drawer(site, console, code_chat):
    context = site.context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = console.watch(context.new_page())
    page.goto(code_chat)
    sidebar = page.locator("#sidebar")
    toggle = page.get_by_role("button", name="Chats")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_have_attribute("aria-controls", "sidebar")
    box = toggle.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44

    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    current = sidebar.get_by_role("link", name="Long lines")
    expect(current).to_be_focused()  # focus moves into the list, to the open chat
    link_box = current.bounding_box()
    assert link_box is not None and link_box["height"] >= 44

    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()  # back where the person was

    toggle.press("Enter")  # the keyboard opens it too
    expect(sidebar).to_be_visible()
    toggle.click()  # and the button closes it
    expect(sidebar).to_be_hidden()

    # The composer is thumb-sized.
    for control in (
        page.get_by_role("textbox", name="Message", exact=True),
        page.get_by_role("button", name="Send"),
    ):
        box = control.bounding_box()
        assert box is not None and box["height"] >= 44, control

    context.close()

    # On a wide screen there is no drawer: the list is always there.
    context = site.context()
    page = console.watch(context.new_page())
    page.goto(code_chat)
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.get_by_role("button", name="Chats")).to_be_hidden()
    context.close()
    console.assert_none()


def test_without_javascript_the_chat_list_stays_reachable_on_a_phone(site, console, code_chat):
    context = site.context(viewport=PHONE, is_mobile=True, java_script_enabled=False)
    page = console.watch(context.new_page())
    page.goto(code_chat)
    expect(page.locator("#sidebar")).to_be_visible()  # above the chat, nothing to press
    expect(page.get_by_role("button", name="Chats")).to_be_hidden()
    nav = page.get_by_role("navigation", name="Chats")
    expect(nav.get_by_role("link", name="Long lines")).to_be_visible()
    expect(page.get_by_role("heading", name="Long lines", level=1)).to_be_visible()
    context.close()
    console.assert_none()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_page_scrolls_sideways_at_360_pixels(site, console, code_chat, theme):
    context = site.context(
        viewport={"width": NARROW, "height": 780}, is_mobile=True, has_touch=True
    )
    page = console.watch(context.new_page())
    page.goto("/accounts/tokens/")  # a token on the page: its table and the new-token field
    page.get_by_label("Name").fill(f"phone {theme}")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("New API token")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW, "new token"
    for path in ("/", code_chat, "/models/", "/accounts/", "/accounts/tokens/", "/chats/"):
        page.goto(path)
        if path == code_chat:
            expect(page.locator(".code-block .highlight")).to_be_visible()
            page.get_by_role("button", name="Chats").click()  # the open drawer fits too
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= NARROW, f"{path} is {width}px wide"
    context.close()
    console.assert_none()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ["violations"]});
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_serious_problem(site, code_chat, theme, system_theme_after):
    """axe-core on every main page, in both themes, on a wide screen and on a phone. The
    script is injected, so the CSP is bypassed here (and only here)."""
    set_theme(site, theme)
    problems: dict[str, list[dict[str, Any]]] = {}

    def check(page: Any, label: str) -> None:
        assert page.evaluate("document.documentElement.dataset.theme") in (theme, "system")
        assert is_dark(page) == (theme == "dark"), label
        violations = axe_violations(page)
        if violations:
            problems[label] = violations

    for viewport in ({"width": 1280, "height": 800}, PHONE):
        context = site.context(viewport=viewport, bypass_csp=True, color_scheme="light")
        page = context.new_page()
        for path in ("/", code_chat, "/models/", "/accounts/", "/accounts/tokens/"):
            page.goto(path)
            check(page, f"{path} at {viewport['width']}px")
        if viewport is PHONE:
            page.goto(code_chat)
            page.get_by_role("button", name="Chats").click()
            check(page, "the open drawer")
        context.close()

    # The log-in page: nobody is logged in, so the theme is "system", here as the device.
    anonymous = site.browser.new_context(
        base_url=site.server.base_url, bypass_csp=True, color_scheme=theme
    )
    page = anonymous.new_page()
    page.goto("/accounts/login/")
    check(page, "/accounts/login/")
    anonymous.close()
    assert problems == {}, "axe found:\n" + "\n".join(
        f"{where}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
        for where, violations in problems.items()
        for v in violations
    )


SEARCHABLE_CHAT = """
import json
from accounts.models import User
from chat import search
from chat.models import ChatSession, Message
from models_registry.models import ModelConfig

user = User.objects.get(username={username!r})
session = ChatSession.objects.create(
    user=user, model_config=ModelConfig.objects.get(owner=user, name="Mock"),
    title="Notes from the zoo", message_count=80,
)
rows = Message.objects.bulk_create(
    Message(
        session=session,
        role="user" if i % 2 else "assistant",
        # Long enough to be stored compressed: search must look inside compressed text.
        content=(
            "A snow leopard, 雪豹, was seen today. " + "The keepers wrote a long report. " * 60
            if i == 3
            else f"Zoo message {{i}}"
        ),
    )
    for i in range(1, 81)
)
search.index_stored(Message.objects.filter(session=session))  # written past the services
stranger, _ = User.objects.get_or_create(username="stranger")
theirs = ChatSession.objects.create(user=stranger, title="Stranger's zoo", message_count=1)
Message.objects.create(session=theirs, role="user", content="雪豹 zoo")
search.index_stored(Message.objects.filter(session=theirs))
from chat.fields import stored_kind
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT content FROM chat_message WHERE id = %s", [rows[2].pk])
    assert stored_kind(bytes(cursor.fetchone()[0])) == 1  # zlib
print(json.dumps([session.pk, rows[2].pk]))
"""


def test_search_finds_an_old_message_and_jumps_to_it(page, site, browser):
    chat_id, message_id = site.server.shell(SEARCHABLE_CHAT.format(username=ADMIN))
    page.goto("/")
    box = page.get_by_role("searchbox", name="Search chats")
    box.fill("雪豹")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/chats/\?q="))
    expect(page.get_by_role("heading", name="In messages")).to_be_visible()
    hit = page.locator(".search-hit a", has_text="Notes from the zoo")
    expect(hit.locator("mark")).to_have_text("雪豹")
    expect(page.get_by_text("Stranger")).to_have_count(0)  # another user's chat never shows
    hit.click()
    # 77 newer messages: the page around it, not the newest 50, is opened.
    expect(page).to_have_url(re.compile(rf"/chats/{chat_id}/\?before=\d+#message-{message_id}$"))
    target = page.locator(f"#message-{message_id}")
    expect(target).to_contain_text("snow leopard")
    expect(target).to_be_in_viewport()

    # A title match, and the results page has no serious accessibility problem.
    context = site.context(bypass_csp=True)
    checker = context.new_page()
    checker.goto("/chats/?q=zoo")
    expect(checker.get_by_role("heading", name="In chat titles")).to_be_visible()
    expect(checker.locator(".search-hit a mark").first).to_have_text("zoo")
    expect(checker.get_by_text("Stranger")).to_have_count(0)
    assert axe_violations(checker) == []
    context.close()


RESET_LANGUAGE = """
import json
from accounts.models import User
User.objects.filter(username={username!r}).update(language="")
print(json.dumps(True))
"""


def switch_language(page: Any, label: str, code: str) -> None:
    """Choose a language in the top bar: the script submits at once (no button to press)."""
    with page.expect_event("load"):
        page.get_by_label(label, exact=True).select_option(code)


def test_the_language_switch_changes_the_whole_page(page, site):
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("option", name="简体中文")).to_have_count(1)  # named in itself
    expect(page.get_by_role("button", name="Change")).to_be_hidden()  # language.js submits
    try:
        switch_language(page, "Language", "zh-hans")
        expect(page).to_have_url(site.url("/"))  # back where the switch was made
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.get_by_role("heading", name="新建会话", level=1)).to_be_visible()
        nav = page.get_by_role("navigation", name="账号")
        for link in ("会话", "模型", "API 令牌", "账号", "管理后台"):
            expect(nav.get_by_role("link", name=link, exact=True)).to_be_visible()
        expect(nav.get_by_role("button", name="退出登录")).to_be_visible()
        expect(page.get_by_role("combobox", name="模型")).to_be_visible()
        expect(page.get_by_role("textbox", name="消息", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="发送")).to_be_visible()
        expect(page.get_by_label("语言", exact=True)).to_have_value("zh-hans")
        for english in ("New chat", "Send", "Log out", "Models", "Skip to content"):
            expect(page.get_by_text(english, exact=True)).to_have_count(0)

        page.reload()  # the choice is saved: the page stays Chinese
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.get_by_role("button", name="发送")).to_be_visible()
        page.goto("/accounts/")
        expect(page.get_by_role("heading", name="你的账号", level=1)).to_be_visible()

        switch_language(page, "语言", "en")
        expect(page).to_have_url(site.url("/accounts/"))
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("heading", name="Your account", level=1)).to_be_visible()
        expect(page.get_by_role("link", name="Chats", exact=True).first).to_be_visible()
    finally:
        site.server.shell(RESET_LANGUAGE.format(username=ADMIN))  # "" again: follow the browser
