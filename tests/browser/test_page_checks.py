"""The measures of ``page_checks.py`` against a page whose answers are known.

No JupyterLab and no guest: a small page in Chromium with the class names
the checks look for, and texts whose contrast ratios are WCAG's own
examples (#777777 on white is 4.48:1, #767676 is 4.54:1).  What passes,
what fails and what is not measured at all (hidden, disabled) is decided
here, so a check that measures nothing, or the wrong thing, fails here
first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser import page_checks
from tests.browser.conftest import VIEWPORT, Chromium

pytestmark = [pytest.mark.browser]

OUTPUT = """<div class="jp-Cell"><div class="jp-OutputArea-output">{}</div></div>"""
PAGE = """<!doctype html><html><body style="margin:0;background:#fff;font:14px sans-serif">
<div class="jp-NotebookPanel"><div class="jp-Notebook">{}</div></div></body></html>"""

HTML_TEXTS = OUTPUT.format("""
<p style="color:#777777">grey 777</p>
<p style="color:#767676">grey 767676</p>
<p style="color:#949494;font-size:24px">large grey</p>
<p style="color:#949494;font-size:19px;font-weight:bold">bold grey</p>
<p style="color:#949494;font-size:19px">not bold grey</p>
<div style="background:#404040"><p style="color:rgba(255,255,255,0.5)">half white</p></div>
<div style="background:color-mix(in srgb, #0097a7 100%, white)">
  <span style="color:#fff">white on teal</span></div>
<div style="background:repeating-linear-gradient(90deg,#ffffff 0 6px,#000000 6px 12px)">
  <span style="color:#000">black on stripes</span></div>
<button disabled style="color:#ccc;background:#fff">disabled</button>
<p style="display:none;color:#fff">hidden</p>
<details><summary style="color:#000">words</summary><p style="color:#fff">folded</p></details>
""")

SVG_TEXTS = OUTPUT.format("""
<svg width="400" height="100" viewBox="0 0 400 100">
  <rect x="0" y="0" width="200" height="100" fill="#0097a7"/>
  <text x="20" y="50" font-size="16" fill="#ffffff">white on teal</text>
  <text x="220" y="50" font-size="16" fill="#000000">black on page</text>
</svg>""")

SIZES = OUTPUT.format("""
<div class="kit-live-diagram"><svg style="width:500px" viewBox="0 0 1000 100">
  <text x="10" y="50" font-size="20">small</text>
  <text x="500" y="50" font-size="24">big enough</text>
</svg></div>
<button class="widget-button" style="width:50px;overflow:hidden;white-space:nowrap">
  a label far too long</button>
<button class="widget-button" style="width:auto">fits</button>
""")


@pytest.fixture
def page(chromium: Chromium) -> Iterator[Page]:
    context = chromium.browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def found(page: Page, body: str) -> tuple[int, dict[str, page_checks.LowContrast]]:
    page.set_content(PAGE.format(body))
    measured, problems = page_checks.measure_contrast(page, "test")
    return measured, {problem.text: problem for problem in problems}


def test_html_text_is_measured_against_what_is_behind_it(page: Page) -> None:
    measured, low = found(page, HTML_TEXTS)
    assert measured == 9  # not the disabled button, the hidden or the folded text
    assert low["grey 777"].ratio == pytest.approx(4.48, abs=0.01)
    assert low["grey 777"].need == 4.5
    assert "grey 767676" not in low
    assert "large grey" not in low and "bold grey" not in low  # 3.03:1 is enough for them
    assert low["not bold grey"].need == 4.5
    assert low["half white"].fg == "#a0a0a0"  # the text's alpha, blended: 3.98:1
    assert low["white on teal"].ratio == pytest.approx(3.51, abs=0.01)
    assert low["black on stripes"].bg == "#000000"  # each colour of a gradient
    assert set(low) == {"grey 777", "not bold grey", "half white", "white on teal",
                        "black on stripes"}


def test_svg_text_is_measured_against_the_shape_under_it(page: Page) -> None:
    measured, low = found(page, SVG_TEXTS)
    assert measured == 2
    assert set(low) == {"white on teal"}
    assert low["white on teal"].bg == "#0097a7"


def test_small_diagram_text_and_cut_off_labels_are_found(page: Page) -> None:
    page.set_content(PAGE.format(SIZES))
    sizes = {size["text"]: size["px"] for size in page_checks.diagram_text_sizes(page)}
    assert sizes == {"small": 10.0, "big enough": 12.0}
    assert [size["text"] for size in page_checks.small_diagram_text(page)] == ["small"]
    assert [cut["label"] for cut in page_checks.cut_off_labels(page)] == ["a label far too long"]
