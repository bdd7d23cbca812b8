"""Model answers as safe HTML: markdown-it-py (raw HTML off), Pygments, then nh3.

The renderer never passes raw HTML through, but the sanitiser runs anyway and allows
only what the renderer itself produces: a renderer bug or a crafted link must still
not reach the page as script, style, a frame or a remote image (a tracking pixel
in an answer would tell a third party who reads it and when).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Code characters highlighted per answer; blocks past the budget are shown plain.
# Highlighting is a nicety: Pygments lexes real code at roughly 0.5-1 MB/s here, and
# a code-heavy (or hostile) answer must not hold up the page.
HIGHLIGHT_BUDGET_CHARS = 32_000
# A language name worth a data-lang attribute ("python", "c++", "objective-c", "c#").
LANG_PATTERN = re.compile(r"[\w+#.-]{1,40}")

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "del", "code", "pre", "span", "div", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "div": {"data-lang"},
}
# Classes are listed, not free: only Pygments' token classes and our two wrappers.
ALLOWED_CLASSES = {
    "div": {"highlight", "code-block"},
    "span": {cls for cls in STANDARD_TYPES.values() if cls},
}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"


def _code_block(code: str, lang: str, env: dict[str, Any]) -> str:
    """A code block: highlighted when Pygments knows ``lang`` and budget is left, else plain."""
    body = ""
    budget = env.get("highlight_budget", HIGHLIGHT_BUDGET_CHARS)
    if lang and len(code) <= budget:
        try:
            lexer = get_lexer_by_name(lang)
        except ClassNotFound:
            lexer = None
        if lexer is not None:
            body = highlight(code, lexer, _formatter())
            env["highlight_budget"] = budget - len(code)
    if not body:
        body = f"<pre><code>{escapeHtml(code)}</code></pre>"
    lang_attr = f' data-lang="{escapeHtml(lang)}"' if lang else ""
    # The wrapper is the hook for the page's copy button.
    return f'<div class="code-block"{lang_attr}>{body}</div>\n'


def _render_fence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip() if token.info else ""
    lang = info.split(maxsplit=1)[0] if info else ""
    if not LANG_PATTERN.fullmatch(lang):
        lang = ""  # not a language name: a plain block
    return _code_block(token.content, lang, env)


def _render_code_block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _code_block(tokens[idx].content, "", env)


def _render_image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image becomes a link to it: nothing is fetched unless the reader clicks."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    label = escapeHtml(f"image: {alt}" if alt else "image")
    if env.get("link_depth", 0) > 0:
        return label  # [![alt](img)](url): the outer link already leads somewhere
    if src.split(":", 1)[0].lower() not in {"http", "https"}:
        return label  # data:, relative, anything else: a dead link is no better than text
    title = token.attrGet("title")
    title_attr = f' title="{escapeHtml(str(title))}"' if title else ""
    return f'<a href="{escapeHtml(src)}"{title_attr}>{label}</a>'


def _render_link_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # Inline tokens render in order, so a counter tells the image rule it is inside a link.
    env["link_depth"] = env.get("link_depth", 0) + 1
    return self.renderToken(tokens, idx, options, env)


def _render_link_close(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    env["link_depth"] = env.get("link_depth", 0) - 1
    return self.renderToken(tokens, idx, options, env)


@functools.cache
def _formatter() -> HtmlFormatter:
    # Classes only (the colours live in static/css/pygments.css), never inline styles.
    return HtmlFormatter(cssclass="highlight", wrapcode=True)


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_code_block)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("link_close", _render_link_close)
    return md


@functools.cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_markdown(text: str) -> SafeString:
    """Render an answer's markdown to HTML that is safe to put in the page as is."""
    html = _markdown().render(text, {"highlight_budget": HIGHLIGHT_BUDGET_CHARS})
    return mark_safe(_cleaner().clean(html))  # noqa: S308 - sanitised by nh3 just above


@functools.lru_cache(maxsize=512)
def render_markdown_cached(text: str) -> SafeString:
    """`render_markdown` for page views: a stored answer is rendered once per process.

    Derived data only (same text, same HTML), so a per-process cache is safe with any
    number of workers.
    """
    return render_markdown(text)


# Stored HTML carries the renderer's version: when the renderer or its sanitiser rules
# change, bump it and older stored HTML is simply rendered again on view.
RENDER_VERSION = "1"
_STORED_MARK = f"<!--parley-md:{RENDER_VERSION}-->"


def html_to_store(text: str) -> str:
    """What `Message.rendered_html` keeps for a final answer (rendered once, at save)."""
    return _STORED_MARK + render_markdown(text)


def message_html(content: str, stored: str) -> SafeString:
    """The answer's HTML: the stored rendering when it is current, else rendered now."""
    if stored.startswith(_STORED_MARK):
        return mark_safe(stored[len(_STORED_MARK) :])  # noqa: S308 - sanitised before storing
    return render_markdown_cached(content)
