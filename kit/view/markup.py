"""Small HTML pieces shared by the lesson widgets: text markup and verdict boxes.

ipywidgets gives an ``HTML`` widget the line height of a button (28 px), so
every piece here sets its own, or a table of short lines would look
double-spaced.

Everything a learner reads says its meaning in words and marks (✔ ✖ ⚠), and
boxes differ by border style too, so the page reads in greyscale, on a
projector, and for colour-blind learners; colour only adds to it.
"""

from __future__ import annotations

import html
import re

MONOSPACE = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"


def escape(text: object) -> str:
    """Text made safe to put inside the HTML of an ``ipywidgets.HTML``."""
    return html.escape(str(text), quote=True)


def pre(text: str, max_height: str = "16em", *, stick_to_bottom: bool = False) -> str:
    """A scrollable monospace block.

    ``stick_to_bottom`` uses a reversed flex column, so the browser shows the
    newest lines without any script (a console's last line is what matters).
    """
    flex = "display:flex;flex-direction:column-reverse;" if stick_to_bottom else ""
    return (
        f'<div style="{flex}max-height:{max_height};overflow:auto;'
        'border:1px solid #bbb;border-radius:3px;background:#fafafa">'
        f'<pre style="margin:0;padding:4px 6px;font-family:{MONOSPACE};font-size:12px;'
        f'line-height:1.3;white-space:pre-wrap;word-break:break-all">{escape(text)}</pre></div>'
    )


LINE_HEIGHT = "1.4"
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

# kind: (mark, word, border, background)
BOXES = {
    "passed": ("✔", "Passed", "6px solid #009E73", "#e8f5ef"),
    "failed": ("✖", "Not yet", "6px dashed #D55E00", "#fdf0e8"),
    "error": ("⚠", "The check could not run", "6px double #8C8C8C", "#f2f2f2"),
    "right": ("✔", "Right", "6px solid #009E73", "#e8f5ef"),
    "wrong": ("✖", "Not quite", "6px dashed #D55E00", "#fdf0e8"),
    "pending": ("○", "Not checked yet", "6px solid #BBBBBB", "#fafafa"),
    "todo": ("✎", "Your turn", "6px solid #E69F00", "#fff8e6"),
    "demo": ("▶", "Demo", "6px solid #56B4E9", "#eef7fc"),
    "hint": ("☞", "Hint", "4px dotted #0072B2", "#eef5fb"),
    "solution": ("✎", "Solution", "4px solid #0072B2", "#eef5fb"),
}


def inline(text: str) -> str:
    """Plain text with `code` and **bold** marked up, everything else escaped."""
    marked = _CODE.sub(
        lambda m: f'<code style="font-family:{MONOSPACE}">{m.group(1)}</code>', escape(text))
    return _BOLD.sub(r"<b>\1</b>", marked).replace("\n", "<br>")


def box(kind: str, body_html: str, word: str | None = None) -> str:
    """A boxed message: mark and word first, then the body."""
    mark, default_word, border, background = BOXES[kind]
    style = (f"border-left:{border};background:{background};color:#222;padding:4px 8px;"
             f"margin:4px 0;line-height:{LINE_HEIGHT}")
    return (f'<div role="status" style="{style}"><b>{mark} {escape(word or default_word)}</b> '
            f"{body_html}</div>")


def code_block(code: str) -> str:
    return (f'<pre style="font-family:{MONOSPACE};background:#f6f6f6;padding:4px 6px;'
            f'margin:4px 0;white-space:pre-wrap">{escape(code)}</pre>')


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
