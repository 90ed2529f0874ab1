"""Every word of the layer diagram can be read: its size, its contrast, in both themes.

These tests read the SVG the way a learner's eyes do.  For each ``<text>``
they find what is painted behind it (the topmost filled shape drawn before
it, sampled along the text's width: a striped fill has two colours), and
compute the WCAG 2 contrast ratio of the text's colour against each.  They
do it for the light palette as Graphviz wrote it, and again for the dark
palette the CSS switches to under JupyterLab's dark theme, parsing that CSS
as a browser would apply it.  The WCAG formula is written out here again on
purpose, not taken from :mod:`kit.view.colours`.

Sizes are checked against the width the live diagram gives the picture: it
never shows it narrower than its ``min-width``, so every font size, scaled
to that width, must be at least 11 CSS pixels.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from xml.etree import ElementTree

import pytest

from kit.view import colours, diagram
from kit.view.picture import LinkPicture, Move, SharedFolder, Snapshot
from kit.widgets.live_diagram import framed, scaled
from tests.view.test_diagram import HOST, STATES, guest, snap

NS = "{http://www.w3.org/2000/svg}"
MIN_CONTRAST = 4.5
MIN_TEXT_PX = 11.0
PAGES = {"light": "#ffffff", "dark": "#111111"}  # JupyterLab's --jp-layout-color0
SMALL_SHAPE = 150.0  # arrowheads and link dots: not what a label sits on
LESSON4_BESIDE_PX = 476  # the width a diagram got beside a panel in lesson 4 (issue 17)

LONG_CPU = dataclasses.replace(HOST, cpu_model="Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")


def _scenes() -> dict[str, Snapshot]:
    folder = SharedFolder("/home/me/site", "/mnt", writable=False)
    scenes = {
        "no guests": snap(),
        "one guest": snap(guest(host_port=8080)),
        "two guests, linked": dataclasses.replace(snap(
            guest("alpha", host_port=8080, services=2),
            guest("beta", "paused", host_port=8081, services=2),
            links=(LinkPicture("alpha", "beta"),)), host=LONG_CPU),
        "three guests, link down, a folder": snap(
            guest("a", "crashed", host_port=8080, folders=(folder,)), guest("b", "booting"),
            guest("c", "stopped", services=2), links=(LinkPicture("a", "b", up=False),)),
    }
    moving = dataclasses.replace(guest("web", host_port=8080), move=Move(4321, 4400, False))
    moved = dataclasses.replace(guest("web", host_port=8080), move=Move(4300, 4321, True, 87.0))
    scenes["a guest moving, another moved"] = snap(moving, dataclasses.replace(moved, name="db"))
    scenes["every state"] = snap(*(guest(f"g{i}", str(state))
                                   for i, state in enumerate(STATES)))
    return scenes


SCENES = _scenes()
HIGHLIGHTS = [None, *diagram.LAYERS]


# -- reading colours, as WCAG defines them --------------------------------------------


def channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    r, g, b = (channel(int(colour[i:i + 2], 16)) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_formula_gives_wcags_own_figures() -> None:
    assert ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert colours.contrast("#767676", "#ffffff") == pytest.approx(ratio("#767676", "#ffffff"))


# -- reading the SVG -------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    order: int
    fill: str
    box: tuple[float, float, float, float]

    def holds(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.box
        return x0 <= x <= x1 and y0 <= y <= y1


@dataclass(frozen=True)
class Text:
    order: int
    words: str
    fill: str | None
    size: float
    samples: tuple[tuple[float, float], ...]
    element: ElementTree.Element


NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _box(element: ElementTree.Element) -> tuple[float, float, float, float] | None:
    tag = element.tag.removeprefix(NS)
    if tag == "ellipse":
        cx, cy, rx, ry = (float(element.get(k, "0")) for k in ("cx", "cy", "rx", "ry"))
        return cx - rx, cy - ry, cx + rx, cy + ry
    source = element.get("points") if tag in ("polygon", "polyline") else element.get("d")
    numbers = [float(n) for n in NUMBER.findall(source or "")]
    if len(numbers) < 4:
        return None
    xs, ys = numbers[0::2], numbers[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def read(svg: str) -> tuple[list[Shape], list[Text], ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    shapes: list[Shape] = []
    texts: list[Text] = []
    for order, element in enumerate(root.iter()):
        tag = element.tag.removeprefix(NS)
        if tag in ("polygon", "polyline", "path", "ellipse"):
            fill = element.get("fill", "none")
            box = _box(element)
            if fill in ("none", "transparent") or box is None:
                continue
            if (box[2] - box[0]) * (box[3] - box[1]) < SMALL_SHAPE:
                continue
            shapes.append(Shape(order, fill.lower(), box))
        elif tag == "text":
            words = "".join(element.itertext())
            size = float(element.get("font-size", "14"))
            x, y = float(element.get("x", "0")), float(element.get("y", "0"))
            width = len(words) * 0.55 * size
            anchor = element.get("text-anchor", "start")
            left = x - {"start": 0.0, "middle": width / 2, "end": width}[anchor]
            middle = y - 0.35 * size
            samples = tuple((left + width * k / 8, middle) for k in range(1, 8))
            texts.append(Text(order, words, element.get("fill"), size, samples, element))
    return shapes, texts, root


def behind(text: Text, shapes: list[Shape], page: str,
           paint: dict[str, str] | None = None) -> set[str]:
    """The colours painted under ``text``, at points along its width."""
    found = set()
    for x, y in text.samples:
        under = [s for s in shapes if s.order < text.order and s.holds(x, y)]
        fill = max(under, key=lambda s: s.order).fill if under else page
        found.add((paint or {}).get(fill, fill))
    return found


def dark_paint(css: str) -> dict[str, str]:
    """``{light colour: dark colour}`` as the dark-theme CSS rules repaint fills."""
    rules = re.findall(r'body\[data-jp-theme-light="false"\] \S+ \[fill="(#[0-9a-f]{6})" i\]'
                       r"\{fill:(#[0-9a-f]{6})\}", css)
    return dict(rules)


def drawn(scene: str, highlight: str | None) -> str:
    return scaled(diagram.render_svg(diagram.layers(SCENES[scene], highlight=highlight,
                                                    graph_id="t")))


def low_contrast(svg: str, palette: str) -> list[str]:
    shapes, texts, _ = read(svg)
    css = re.search(r"<style>(.*?)</style>", framed(svg), re.DOTALL)
    assert css is not None
    paint = dark_paint(css.group(1)) if palette == "dark" else {}
    page = PAGES[palette]
    failures = []
    for text in texts:
        assert text.fill is not None, f"{text.words!r} has no colour of its own"
        colour = paint.get(text.fill.lower(), text.fill.lower())
        for background in behind(text, shapes, page, paint):
            if ratio(colour, background) < MIN_CONTRAST:
                failures.append(f"{text.words!r}: {colour} on {background} = "
                                f"{ratio(colour, background):.2f}:1")
    return failures


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("palette", list(PAGES))
@pytest.mark.parametrize("highlight", HIGHLIGHTS)
@pytest.mark.parametrize("scene", list(SCENES))
def test_every_label_has_4_5_to_1_against_what_is_behind_it(
        scene: str, highlight: str | None, palette: str) -> None:
    assert low_contrast(drawn(scene, highlight), palette) == []


@pytest.mark.parametrize("highlight", HIGHLIGHTS)
@pytest.mark.parametrize("scene", list(SCENES))
def test_nothing_is_faded_by_translucency(scene: str, highlight: str | None) -> None:
    svg = drawn(scene, highlight)
    assert not re.search(r"\b(opacity|fill-opacity|stroke-opacity)=", svg)
    assert not re.search(r'(fill|stroke)="#[0-9a-fA-F]{8}"', svg)


def test_the_dark_palette_repaints_every_colour_used() -> None:
    for scene in SCENES:
        svg = drawn(scene, "guest")
        used = set(re.findall(r'\b(fill|stroke)="(#[0-9a-f]{6})"', svg.lower()))
        rules = set(re.findall(r'\[(fill|stroke)="(#[0-9a-f]{6})" i\]\{\1:#[0-9a-f]{6}\}',
                               framed(svg)))
        assert used and used <= rules, (scene, used - rules)
    assert colours.dark("#ffffff") < "#202020" and colours.dark("#000000") > "#e0e0e0"


@pytest.mark.parametrize("scene", list(SCENES))
def test_no_text_is_smaller_than_11_px_at_the_width_it_is_given(scene: str) -> None:
    svg = drawn(scene, "hypervisor")
    root = ElementTree.fromstring(svg)
    style = dict(part.split(":", 1) for part in root.get("style", "").split(";") if part)
    narrowest = float(style["min-width"].removesuffix("px"))
    scale = narrowest / diagram.viewbox_width(svg)
    sizes = [float(t.get("font-size", "14")) for t in root.iter(f"{NS}text")]
    assert sizes and min(sizes) * scale >= MIN_TEXT_PX - 0.05, (min(sizes), scale)
    assert style["width"] == "100%"  # wider when the page has room
    assert float(style["max-width"].removesuffix("px")) >= narrowest


def test_one_guest_fits_beside_a_panel_without_scrolling() -> None:
    for highlight in HIGHLIGHTS:
        assert diagram.min_width_px(drawn("one guest", highlight)) <= LESSON4_BESIDE_PX


def test_two_guests_fit_a_notebooks_width() -> None:
    """Lesson 4's picture was 1,032 units wide, drawn in 476 px: text 5 to 7 px tall.

    Now it needs less than a notebook's width for 11 px text; beside a
    panel the live diagram wraps onto its own row instead of shrinking.
    """
    assert diagram.min_width_px(drawn("two guests, linked", "guest")) <= 800


def test_the_picture_says_what_it_shows() -> None:
    scene = SCENES["two guests, linked"]
    summary = diagram.describe(scene, "guest")
    for words in ("2 guests: alpha, beta", "guest OS layer is highlighted",
                  "alpha runs Linux 6.1.0-kit", "beta runs Linux", "paused", "running",
                  "128 MiB", "1 vCPU", "web server on port 80", "127.0.0.1:8080",
                  "A network link joins alpha and beta: up", "accelerator TCG"):
        assert words in summary, words
    svg = diagram.accessible(diagram.render_svg(diagram.layers(scene, graph_id="t")), "t",
                             "Layer diagram: alpha running, beta paused", summary)
    root = ElementTree.fromstring(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "t_title t_desc"
    assert root.find(f"{NS}title").text == "Layer diagram: alpha running, beta paused"
    assert root.find(f"{NS}desc").text == summary
    assert "<title>t</title>" not in svg  # Graphviz's own, the graph's bare name


def test_an_empty_picture_says_so() -> None:
    assert "No guests yet" in diagram.describe(snap())
