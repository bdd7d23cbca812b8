"""The XSS corpus typed by a user and sent back by a model: nothing runs on the chat page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from chat.models import ChatSession, Message
from chat.tests.test_markdown import XSS_CORPUS

DANGEROUS_TAGS = {
    "script",
    "svg",
    "math",
    "iframe",
    "object",
    "embed",
    "form",
    "img",
    "style",
    "link",
    "meta",
    "base",
    "frame",
    "video",
    "audio",
    "source",
}
OUR_FORMS = {"/chats/"}  # the page's own forms all post to chat URLs


class LiveElements(HTMLParser):
    """Collects what would be live in a browser: handlers, dangerous tags, script URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.in_messages = 0
        self.findings: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id") == "messages":
            self.in_messages = 1
            return
        if not self.in_messages:
            return
        if tag in DANGEROUS_TAGS and not (
            tag == "form" and (attributes.get("action") or "").startswith(tuple(OUR_FORMS))
        ):
            self.findings.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in {"style", "srcdoc", "formaction"}:
                self.findings.append(f"{tag}[{name}]")
            if name in {"href", "src", "action", "xlink:href"} and value:
                scheme = value.strip().lower().split(":", 1)[0]
                if ":" in value and scheme not in {"http", "https", "mailto"}:
                    self.findings.append(f"{tag}[{name}={value[:30]}]")


@pytest.mark.django_db
def test_no_payload_is_live_on_the_chat_page(bob_client, bob):
    assert len(XSS_CORPUS) >= 30
    chat = ChatSession.objects.create(user=bob, title="<script>alert(1)</script>")
    for payload in XSS_CORPUS:
        Message.objects.create(session=chat, role="user", content=payload, token_count=5)
        Message.objects.create(session=chat, role="assistant", content=payload, token_count=5)
    shown = 0
    url = f"/chats/{chat.pk}/"
    while url:
        html = bob_client.get(url).content.decode()
        earlier = re.search(r'id="load-earlier" href="([^"]+)"', html)
        url = earlier.group(1) if earlier else None
        messages = html[html.index('<div class="messages-list" id="messages"') :]
        messages = messages[: messages.index('id="context-info"')]
        shown += messages.count('class="msg ')
        parser = LiveElements()
        parser.feed(messages)
        assert parser.findings == []
        assert "<script>alert(1)</script>" not in html  # the title is escaped too
    assert shown == chat.messages.count()  # every payload was on one of the pages


def test_the_checker_finds_live_markup():
    parser = LiveElements()
    parser.feed('<div id="messages"><img src=x onerror=alert(1)><a href="javascript:x">a</a></div>')
    assert parser.findings == ["<img>", "img[onerror]", "a[href=javascript:x]"]
