"""The small HTML pieces: theme colours only, and scrolling boxes that JupyterLab cannot undo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kit.view import markup

ROOT = Path(__file__).resolve().parents[2]
# The files whose HTML this suite vouches for (the diagram's own palette is tested apart).
HTML_MAKERS = ["kit/view/markup.py", "kit/widgets/base.py", "kit/widgets/console_view.py",
               "kit/widgets/live_diagram.py", "kit/widgets/host_view.py",
               "kit/widgets/guest_panel.py", "kit/widgets/dashboard.py",
               "kit/widgets/command_form.py", "kit/lesson/machine.py",
               "kit/lesson/lesson00_welcome.py", "kit/lesson/lesson01_what_is_a_vm.py"]
FIXED_COLOUR = re.compile(r"(?<![-\w])(color|background(-color)?)\s*:\s*(#[0-9a-fA-F]{3,8}|white|"
                          r"black|rgb)", re.IGNORECASE)


def styles(html: str) -> list[dict[str, str]]:
    """Every inline style in ``html``, as {property: value} (the last one of a name wins)."""
    found = []
    for style in re.findall(r'style="([^"]*)"', html):
        declarations = [part.split(":", 1) for part in style.split(";") if ":" in part]
        found.append({name.strip(): value.strip() for name, value in declarations})
    return found


def themed(value: str) -> bool:
    return value.startswith(("var(--jp-", "color-mix(in srgb,", "transparent"))


PIECES = {
    "pre": markup.pre("some text"),
    "pre, stuck to the bottom": markup.pre("text", stick_to_bottom=True),
    "plain text": markup.plain_text("text"),
    "code block": markup.code_block("qemu-system-x86_64 -m 128"),
    **{f"box {kind}": markup.box(kind, "body") for kind in markup.BOXES},
}


@pytest.mark.parametrize("name", list(PIECES))
def test_text_and_backgrounds_take_the_themes_colours(name: str) -> None:
    for style in styles(PIECES[name]):
        for key in ("color", "background", "background-color"):
            if key in style:
                assert themed(style[key]), (name, key, style[key])


def test_a_tinted_box_keeps_a_plain_background_for_old_browsers() -> None:
    style = re.search(r'style="([^"]*)"', markup.box("passed", "x"))
    assert style is not None
    first, second = re.findall(r"background:([^;]*);", style.group(1))
    assert first == markup.BACKGROUND and second.startswith("color-mix(in srgb, #009E73")


def test_the_text_inside_a_scrolling_box_does_not_scroll_by_itself() -> None:
    """JupyterLab gives output ``pre`` elements ``overflow: auto``: ours says otherwise."""
    inner = styles(markup.plain_text("a\nb"))[0]
    assert inner["overflow"] == "visible" and inner["flex"] == "none"
    outer, inner = styles(markup.pre("a\nb", "9em", stick_to_bottom=True))
    assert outer["max-height"] == "9em" and outer["overflow"] == "auto"
    assert outer["flex-direction"] == "column-reverse"
    assert inner["overflow"] == "visible" and inner["flex"] == "none"


def test_text_is_escaped() -> None:
    assert "&lt;b&gt;" in markup.plain_text("<b>") and "<b>" not in markup.plain_text("<b>")


@pytest.mark.parametrize("path", HTML_MAKERS)
def test_no_fixed_text_or_background_colour_in_the_kits_html(path: str) -> None:
    """Border accents may keep their colour; text and backgrounds follow the theme."""
    source = (ROOT / path).read_text()
    assert FIXED_COLOUR.findall(source) == [], path
