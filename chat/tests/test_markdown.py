"""Markdown answers as HTML: what the page needs renders, nothing that runs or loads does."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.utils.safestring import SafeString

from chat.markdown import HIGHLIGHT_BUDGET_CHARS, render_markdown

FORBIDDEN_TAGS = {
    "script", "svg", "math", "iframe", "frame", "object", "embed", "form", "input", "button",
    "textarea", "img", "image", "video", "audio", "source", "style", "link", "meta", "base",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_safe(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            assert name not in {"style", "src", "srcset", "formaction", "action", "xlink:href"}
            assert "javascript:" not in (value or "").lower(), html
        if "href" in attrs:
            assert urlsplit(attrs["href"] or "").scheme.lower() in SAFE_SCHEMES, html
            assert attrs.get("rel") == "noopener noreferrer nofollow", html


XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<img src=x onerror="alert(1)">',
    "<body onload=alert(1)>",
    '<div onmouseover="alert(1)">hover</div>',
    '<a href="#" onclick="alert(1)">click</a>',
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    '<input autofocus onfocus="alert(1)">',
    "<svg onload=alert(1)><script>alert(1)</script></svg>",
    "<svg><a xlink:href='javascript:alert(1)'><text>x</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
    '<embed src="javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<p style="background:url(javascript:alert(1))">styled</p>',
    "<style>body { background: red }</style>",
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<!-- <script>alert(1)</script> -->",
    "<!--><img src=x onerror=alert(1)>-->",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1)  )",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](%6A%61%76%61%73%63%72%69%70%74:alert(1))",
    "[x](\\u006Aavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)",
    '[x](https://ok.example/ "title\\" onmouseover=\\"alert(1)")',
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](https://evil.example/tracking-pixel.png)",
    '![x" onerror="alert(1)](https://evil.example/a.png)',
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "![x][img]\n\n[img]: https://evil.example/pixel.gif",
    "[x][ref]\n\n[ref]: data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    '```"><script>alert(1)</script>\ncode\n```',
    '```python onload="alert(1)"\nx = 1\n```',
    "    <img src=x onerror=alert(1)>",
    "**<img src=x onerror=alert(1)>**",
    "> <iframe src=https://evil.example></iframe>",
    "- [a](javascript:alert(1))\n- <svg/onload=alert(1)>",
    "| a |\n|---|\n| <script>alert(1)</script> [x](javascript:alert(1)) |",
    "[<img src=x onerror=alert(1)>](https://ok.example)",
    "[![x](https://evil.example/a.png)](javascript:alert(1))",
    "\\<script\\>alert(1)\\</script\\>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\u003cscript\u003ealert(1)\u003c/script\u003e",
    "<a href='https://ok.example' style='position:fixed;top:0'>overlay</a>",
    "<<script>alert(1)//<</script>",
    '<a href="java&#x09;script:alert(1)">x</a>',
]


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_nothing_in_the_xss_corpus_survives(payload):
    assert_safe(render_markdown(payload))


def test_the_corpus_is_large_enough():
    assert len(XSS_CORPUS) >= 30


def test_the_output_is_marked_safe_for_templates():
    assert isinstance(render_markdown("hi"), SafeString)


def test_raw_html_is_shown_as_text_not_dropped():
    html = render_markdown("Use <b>bold</b> and <script>x</script>")
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html


def test_tables_render():
    html = render_markdown("| Name | Qty |\n|:-----|----:|\n| tea | 2 |\n")
    tags = [tag for tag, _ in elements(html)]
    assert tags == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
    assert "<td>tea</td>" in html
    assert "style" not in html  # markdown-it's text-align styles are dropped


def test_fenced_python_is_highlighted_inside_a_copyable_block():
    html = render_markdown("```python\ndef greet(name):\n    return f'hi {name}'\n```")
    found = elements(html)
    assert found[0] == ("div", {"class": "code-block", "data-lang": "python"})
    assert ("div", {"class": "highlight"}) in found
    assert ("span", {"class": "k"}) in found  # keyword: def, return
    assert ("span", {"class": "nf"}) in found  # function name
    assert "greet" in html


def test_unknown_or_missing_language_is_plain_escaped_code():
    html = render_markdown("```klingon\n<b>Qapla'</b>\n```\n\n```\nx < y\n```")
    assert '<div class="code-block" data-lang="klingon"><pre><code>&lt;b&gt;' in html
    assert '<div class="code-block"><pre><code>x &lt; y' in html
    assert "span" not in html


def test_indented_code_is_a_copyable_block_too():
    html = render_markdown("text\n\n    indented <code>\n")
    assert '<div class="code-block"><pre><code>indented &lt;code&gt;' in html


def test_highlighting_stops_after_the_budget_but_blocks_stay_blocks():
    half = "x = 1\n" * (HIGHLIGHT_BUDGET_CHARS * 6 // 10 // 6)
    html = render_markdown(f"```python\n{half}```\n\n```python\n{half}```\n\n```python\ny\n```")
    assert html.count('<div class="code-block" data-lang="python">') == 3
    # The first fits the budget; the second would exceed it and is plain; the third fits.
    first, second, third = html.split('<div class="code-block" data-lang="python">')[1:]
    assert 'class="highlight"' in first
    assert second.startswith("<pre><code>x = 1\n")
    assert 'class="highlight"' in third


def test_headings_lists_quotes_and_emphasis():
    html = render_markdown(
        "# Title\n\n### Sub\n\n- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n"
        "**bold** *em* ~~gone~~\n\n---\n"
    )
    for fragment in (
        "<h1>Title</h1>",
        "<h3>Sub</h3>",
        "<ul>\n<li>one</li>",
        '<ol start="3">',
        "<blockquote>",
        "<strong>bold</strong>",
        "<em>em</em>",
        "<s>gone</s>",
        "<hr>",
    ):
        assert fragment in html


def test_inline_code_is_escaped():
    html = render_markdown("Call `a < b && <div>` now")
    assert "<code>a &lt; b &amp;&amp; &lt;div&gt;</code>" in html


def test_links_keep_their_url_and_get_rel():
    html = render_markdown(
        '[docs](https://example.com/a?b=1&c=2 "The docs") and <https://x.example>'
    )
    links = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert links == [
        {
            "href": "https://example.com/a?b=1&c=2",
            "title": "The docs",
            "rel": "noopener noreferrer nofollow",
        },
        {"href": "https://x.example", "rel": "noopener noreferrer nofollow"},
    ]


def test_mailto_links_are_kept():
    html = render_markdown("<mailto:someone@example.com>")
    assert 'href="mailto:someone@example.com"' in html


def test_relative_links_lose_their_href():
    # Relative to our own site they could point at /admin/ actions; they are not needed.
    links = [attrs for tag, attrs in elements(render_markdown("[x](/logout/)")) if tag == "a"]
    assert links == [{"rel": "noopener noreferrer nofollow"}]


def test_remote_images_become_links_and_are_never_loaded():
    html = render_markdown('![a cat](https://example.com/cat.png "Cat")')
    assert "<img" not in html
    assert [a for tag, a in elements(html) if tag == "a"] == [
        {
            "href": "https://example.com/cat.png",
            "title": "Cat",
            "rel": "noopener noreferrer nofollow",
        }
    ]
    assert "image: a cat" in html


def test_images_that_are_not_http_become_plain_text():
    html = render_markdown("![chart](data:image/png;base64,iVBORw0KGgo=)")
    assert "<a" not in html and "<img" not in html
    assert "image: chart" in html


def test_cjk_and_emoji_text_is_intact():
    text = "日本語の文章です。中文段落。한국어 문장. 😀👩‍👩‍👧"
    assert render_markdown(text) == f"<p>{text}</p>\n"


def test_a_100kb_answer_highlights_only_up_to_the_budget():
    """Rendering time lives in bench/; here: past the highlight budget code stays plain."""
    code = "```python\n" + "def f(x):\n    return [i * x for i in range(10)]  # comment\n" * 40
    text = (code + "```\n\n") * 40  # ~100 KB of code
    html = render_markdown(text)
    assert html.count('class="code-block"') == 40
    highlighted = html.count('<div class="highlight">')
    assert 0 < highlighted < 40


def test_a_linked_image_is_one_link_labelled_as_the_image():
    html = render_markdown("[![logo](https://example.com/logo.png)](https://example.com/)")
    assert html == (
        '<p><a href="https://example.com/" rel="noopener noreferrer nofollow">image: logo</a></p>\n'
    )


@pytest.mark.parametrize(
    ("fence", "expected"),
    [
        ("```c++\n", 'data-lang="c++"'),
        ("```objective-c {.numberLines}\n", 'data-lang="objective-c"'),
        ('```"><b>\n', '<div class="code-block"><pre>'),
    ],
)
def test_the_language_name_is_kept_only_when_it_looks_like_one(fence, expected):
    assert expected in render_markdown(f"{fence}x\n```")
