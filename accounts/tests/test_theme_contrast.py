"""Both palettes meet WCAG 2.x AA: the colour pairs the stylesheet uses, read from
static/css/parley.css (and the code colours from static/css/pygments.css), checked with
WCAG's relative-luminance formula. Text needs 4.5:1; focus rings and control boundaries
(non-text, WCAG 1.4.11) need 3:1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

CSS = Path(settings.BASE_DIR) / "static" / "css"
TEXT, NON_TEXT = 4.5, 3.0

# (foreground, background, minimum): every pair the stylesheet puts together.
PAIRS = [
    *((fg, bg, TEXT) for fg in ("text", "muted", "accent", "danger") for bg in ("bg", "surface")),
    ("accent-text", "accent", TEXT),  # primary buttons
    ("danger-text", "danger", TEXT),  # the Delete button
    *(
        (fg, bg, NON_TEXT)
        for fg in ("focus", "control-border", "success")
        for bg in ("bg", "surface")
    ),
]


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rgb or #rrggbb colour."""
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = []
    for i in (0, 2, 4):
        c = int(hex_digits[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(a: str, b: str) -> float:
    lighter, darker = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def custom_properties(css: str, selector: str) -> dict[str, str]:
    """The `--name: #colour` declarations of the first rule whose selector is `selector`."""
    match = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", css)
    assert match, f"no rule for {selector} in parley.css"
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})\s*;", match.group(1)))


def palettes() -> dict[str, dict[str, str]]:
    css = (CSS / "parley.css").read_text(encoding="utf-8")
    system = re.search(r"@media \(prefers-color-scheme: dark\)\s*\{(.*?)\n\}", css, re.S)
    assert system, "no dark palette for data-theme=system in parley.css"
    return {
        "light": custom_properties(css, ":root"),
        "dark": custom_properties(css, '[data-theme="dark"]'),
        "system-dark": custom_properties(
            system.group(1), '[data-theme="system"], :root:not([data-theme])'
        ),
    }


def test_the_formula_matches_known_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just fails AA
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # just passes
    assert contrast_ratio("#fff", "#000") == contrast_ratio("#000000", "#ffffff")


def test_dark_by_choice_and_dark_by_the_system_are_the_same_palette():
    found = palettes()
    assert found["system-dark"] == found["dark"]
    # Every colour of the light palette is redefined for dark, so nothing light leaks through.
    assert set(found["dark"]) == set(found["light"])


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("fg", "bg", "minimum"), PAIRS, ids=lambda v: str(v))
def test_every_colour_pair_meets_wcag_aa(theme, fg, bg, minimum):
    palette = palettes()[theme]
    ratio = contrast_ratio(palette[fg], palette[bg])
    assert ratio >= minimum, f"{theme}: --{fg} on --{bg} is {ratio:.2f}:1, needs {minimum}:1"


def code_colours(css: str, prefix: str) -> tuple[str, list[tuple[str, str, str]]]:
    """The code block's background and (token class, colour, background) under `prefix`."""
    start = r"^\s*" + re.escape(f"{prefix}.highlight")  # a rule's whole selector, no more
    block = re.search(start + r" \{ background: (#\w+);", css, re.M)
    assert block, f"no {prefix}.highlight rule in pygments.css"
    tokens = []
    for name, body in re.findall(start + r" \.(\w+) \{([^}]*)\}", css, re.M):
        colour = re.search(r"(?<![-\w])color: (#\w+)", body)
        own_background = re.search(r"background-color: (#\w+)", body)
        if colour:
            background = own_background.group(1) if own_background else block.group(1)
            tokens.append((name, colour.group(1), background))
    return block.group(1), tokens


@pytest.mark.parametrize(
    "prefix", ["", '[data-theme="dark"] ', ':root:not([data-theme="light"]) '], ids=repr
)
def test_code_highlighting_is_readable_in_every_theme(prefix):
    css = (CSS / "pygments.css").read_text(encoding="utf-8")
    _background, tokens = code_colours(css, prefix)
    assert len(tokens) > 40
    weak = [
        f"{name} {colour} on {background}: {contrast_ratio(colour, background):.2f}"
        for name, colour, background in tokens
        if name != "w"  # whitespace: nothing to read
        and contrast_ratio(colour, background) < TEXT
    ]
    assert weak == []


def test_the_dark_code_colours_apply_to_the_system_theme_too():
    """pygments.css picks dark code by data-theme=dark, and under prefers-color-scheme:
    dark for every page not explicitly light: data-theme="system" included."""
    css = (CSS / "pygments.css").read_text(encoding="utf-8")
    chosen = code_colours(css, '[data-theme="dark"] ')
    by_system = code_colours(css, ':root:not([data-theme="light"]) ')
    assert chosen == by_system
    media = css.index("@media (prefers-color-scheme: dark)")
    assert css.index(':root:not([data-theme="light"]) .highlight') > media
