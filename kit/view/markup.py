"""Small HTML pieces shared by the lesson widgets: text markup and verdict boxes.

ipywidgets gives an ``HTML`` widget the line height of a button (28 px), so
every piece here sets its own, or a table of short lines would look
double-spaced.

Everything a learner reads says its meaning in words and marks (✔ ✖ ⚠), and
boxes differ by border style too, so the page reads in greyscale, on a
projector, and for colour-blind learners; colour only adds to it.

Colours come from JupyterLab's theme (its ``--jp-*`` CSS variables), so every
piece reads in JupyterLab Light and Dark alike; each variable carries the
light theme's value as a fallback, for pages without JupyterLab's styles.
A tinted background is the box's accent mixed into the theme's own
background (``color-mix``), never a fixed pale colour under theme-coloured
text.
"""

from __future__ import annotations

import html
import re

MONOSPACE = "var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, " \
    "'DejaVu Sans Mono', monospace)"

# JupyterLab's theme variables, with the light theme's values as fallbacks.
BACKGROUND = "var(--jp-layout-color0, #ffffff)"
TEXT = "var(--jp-content-font-color1, rgba(0, 0, 0, 0.87))"
QUIET_TEXT = "var(--jp-content-font-color2, rgba(0, 0, 0, 0.54))"
BORDER = "var(--jp-border-color2, #e0e0e0)"
CODE_BACKGROUND = "var(--jp-cell-editor-background, #f5f5f5)"
ERROR_BACKGROUND = "var(--jp-rendermime-error-background, #fdd)"


def tint(accent: str, percent: int = 12) -> str:
    """CSS declarations: a background of ``accent`` mixed into the theme's background.

    The first declaration is the fallback for a browser without ``color-mix``.
    """
    return (f"background:{BACKGROUND};"
            f"background:color-mix(in srgb, {accent} {percent}%, {BACKGROUND});")


def escape(text: object) -> str:
    """Text made safe to put inside the HTML of an ``ipywidgets.HTML``."""
    return html.escape(str(text), quote=True)


def plain_text(text: str) -> str:
    """Monospace text, wrapped, in the theme's colours: the inside of a scrolling box.

    JupyterLab gives every ``pre`` in an output ``overflow: auto``: a ``pre``
    inside a box of ours would become a second scroller (shrunk by a flex
    box, it scrolls by itself and starts at its top).  So the ``pre`` here is
    told not to scroll and not to shrink: the box around it scrolls.
    """
    return (f'<pre style="margin:0;padding:4px 6px;overflow:visible;flex:none;'
            f"font-family:{MONOSPACE};font-size:12px;line-height:1.3;white-space:pre-wrap;"
            f'word-break:break-all;color:{TEXT};background:transparent">{escape(text)}</pre>')


def pre(text: str, max_height: str = "16em", *, stick_to_bottom: bool = False) -> str:
    """A scrollable monospace block.

    ``stick_to_bottom`` uses a reversed flex column, so the browser shows the
    newest lines without any script (a console's last line is what matters).
    The block is rebuilt each time the widget's value changes, so it starts
    at its newest line again: for text that keeps arriving, use
    :class:`kit.widgets.base.LogView`, whose box survives the updates (and a
    learner who scrolled up to read stays there).
    """
    flex = "display:flex;flex-direction:column-reverse;" if stick_to_bottom else ""
    return (
        f'<div style="{flex}max-height:{max_height};overflow:auto;'
        f'border:1px solid {BORDER};border-radius:3px;background:{CODE_BACKGROUND}">'
        f"{plain_text(text)}</div>"
    )


LINE_HEIGHT = "1.4"
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

# kind: (mark, word, border, accent): the accent tints the box's background (see tint).
BOXES = {
    "passed": ("✔", "Passed", "6px solid #009E73", "#009E73"),
    "failed": ("✖", "Not yet", "6px dashed #D55E00", "#D55E00"),
    "error": ("⚠", "The check could not run", "6px double #8C8C8C", "#8C8C8C"),
    "right": ("✔", "Right", "6px solid #009E73", "#009E73"),
    "wrong": ("✖", "Not quite", "6px dashed #D55E00", "#D55E00"),
    "pending": ("○", "Not checked yet", "6px solid #BBBBBB", "#BBBBBB"),
    "todo": ("✎", "Your turn", "6px solid #E69F00", "#E69F00"),
    "demo": ("▶", "Demo", "6px solid #56B4E9", "#56B4E9"),
    "hint": ("☞", "Hint", "4px dotted #0072B2", "#0072B2"),
    "solution": ("✎", "Solution", "4px solid #0072B2", "#0072B2"),
}


def inline(text: str) -> str:
    """Plain text with `code` and **bold** marked up, everything else escaped."""
    marked = _CODE.sub(
        lambda m: f'<code style="font-family:{MONOSPACE}">{m.group(1)}</code>', escape(text))
    return _BOLD.sub(r"<b>\1</b>", marked).replace("\n", "<br>")


def box(kind: str, body_html: str, word: str | None = None) -> str:
    """A boxed message: mark and word first, then the body."""
    mark, default_word, border, accent = BOXES[kind]
    style = (f"border-left:{border};{tint(accent)}color:{TEXT};padding:4px 8px;"
             f"margin:4px 0;line-height:{LINE_HEIGHT}")
    return (f'<div role="status" style="{style}"><b>{mark} {escape(word or default_word)}</b> '
            f"{body_html}</div>")


def code_block(code: str) -> str:
    return (f'<pre style="font-family:{MONOSPACE};background:{CODE_BACKGROUND};color:{TEXT};'
            f'padding:4px 6px;margin:4px 0;white-space:pre-wrap">{escape(code)}</pre>')


def table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table of already-escaped cells, first row as header."""
    head = "".join(f'<th style="text-align:left;padding:2px 10px 2px 0">{h}</th>'
                   for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left;vertical-align:top;padding:2px 10px 2px 0">'
                         f"{cell}</td>" for cell in row) + "</tr>"
        for row in rows)
    return (f'<table style="line-height:{LINE_HEIGHT};border-collapse:collapse"><thead>'
            f"<tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text(body_html: str) -> str:
    """A block of prose at a reading line height."""
    return f'<div style="line-height:{LINE_HEIGHT}">{body_html}</div>'
