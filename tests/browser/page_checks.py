"""What the browser tests measure in a lesson's page, beyond what it says (issue 17).

Each check runs in the page (one JavaScript function), on what Chromium
actually laid out and painted, and returns plain data that the test turns
into a message:

* :func:`contrast_problems`: every visible text of the cells' outputs (HTML
  text and the diagrams' SVG ``text``) against what is painted behind it,
  in WCAG 2's contrast ratio: at least 4.5:1, or 3:1 for large text (24 px,
  or bold from 18.66 px).  Behind an HTML text: the backgrounds of its
  element and ancestors, composited (each colour of a gradient); behind an
  SVG text: the shape the browser hit-tests at seven points along it.
  Visible means laid out and shown (``checkVisibility``: not in a closed
  ``<details>``); disabled buttons are exempt, as WCAG exempts inactive
  controls.  :func:`set_theme` switches JupyterLab Light / Dark.
  ``test_page_checks.py`` holds these measures to known answers.
* :func:`cut_off_labels`: buttons whose label does not fit (scrollWidth >
  clientWidth).
* :func:`small_diagram_text`: diagram words drawn below 11 CSS px.
* :func:`console_answer`: where a console's answer is, relative to its
  scrolling box.
* :func:`widget_outputs_in_model`: the widget outputs the notebook's model
  holds now (what the kernel displayed), whatever a save then drops.

The page is JupyterLab's, started with ``expose_app_in_browser`` so that
``window.jupyterapp`` runs its commands, as the menus do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page

LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"
THEME_TIMEOUT_S = 30.0
TRANSITIONS_S = 0.5  # JupyterLab eases some colours in, for up to 0.4 s
MIN_RATIO, MIN_RATIO_LARGE = 4.5, 3.0
MIN_DIAGRAM_TEXT_PX = 11.0

# Colours as the page computes them (rgb(), rgba(), color(srgb ...), anything else
# through a canvas), composited as the browser paints them, and WCAG 2's ratio.
_COLOUR_JS = r"""
const canvas = document.createElement('canvas');
canvas.width = canvas.height = 1;
const ctx = canvas.getContext('2d', {willReadFrequently: true});
function parse(value) {
  if (!value || value === 'none' || value === 'transparent') return null;
  let m = value.match(/^rgba?\(([^)]*)\)$/);
  if (m) {
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(
      (v) => v.endsWith('%') ? parseFloat(v) / 100 : parseFloat(v));
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  m = value.match(/^color\(srgb\s+([^)]*)\)$/);
  if (m) {
    const p = m[1].split(/[\s\/]+/).filter(Boolean).map(parseFloat);
    return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1];
  }
  if (value.startsWith('url(')) return null;
  ctx.clearRect(0, 0, 1, 1);
  ctx.fillStyle = 'rgba(0, 0, 0, 0)';
  ctx.fillStyle = value;
  ctx.fillRect(0, 0, 1, 1);
  const d = ctx.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2], d[3] / 255];
}
function over(top, bottom) {  // top painted over an opaque bottom
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
}
function lum(c) {
  const ch = (v) => {
    v /= 255;
    return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2]);
}
function ratio(a, b) {
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
function hex(c) {
  return '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
}
function gradientStops(image) {  // the colours of a CSS gradient, e.g. the paused stripes
  return (image.match(/(rgba?\([^)]*\)|color\(srgb[^)]*\))/g) || []).map(parse).filter(Boolean);
}
// Every colour that may be painted behind an element: its own background and its
// ancestors', composited down to the first opaque one (a gradient gives each stop).
function backgrounds(element) {
  const layers = [];
  for (let e = element; e; e = e.parentElement) {
    const style = getComputedStyle(e);
    if (style.backgroundImage && style.backgroundImage.includes('gradient')) {
      const stops = gradientStops(style.backgroundImage);
      if (stops.length) { layers.push(stops); if (stops.every((s) => s[3] >= 1)) break; }
    }
    const colour = parse(style.backgroundColor);
    if (colour && colour[3] > 0) { layers.push([colour]); if (colour[3] >= 1) break; }
  }
  let below = [[255, 255, 255, 1]];  // the canvas under an unpainted page
  for (const layer of layers.reverse()) {
    const next = [];
    for (const top of layer) for (const bottom of below) next.push(over(top, bottom));
    below = next;
  }
  return below;
}
function opacityUpTo(element, stop) {
  let opacity = 1;
  for (let e = element; e && e !== stop; e = e.parentElement) {
    opacity *= parseFloat(getComputedStyle(e).opacity);
  }
  return opacity;
}
function describe(element, root) {
  const parts = [];
  for (let e = element; e && e !== root && parts.length < 5; e = e.parentElement) {
    const classes = [...e.classList].filter(
      (c) => !c.startsWith('lm-') && !['jupyter-widgets', 'widget-container'].includes(c)
    ).slice(0, 3);
    parts.unshift(e.tagName.toLowerCase() + classes.map((c) => '.' + c).join(''));
  }
  return parts.join(' > ');
}
"""

CONTRAST_JS = "(args) => {" + _COLOUR_JS + r"""
const [minRatio, minLarge] = args;
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
const outputs = [...notebook.querySelectorAll('.jp-OutputArea-output')];
const cells = [...notebook.querySelectorAll('.jp-Cell')];
const found = [];
let measured = 0;
const behind = new Map();  // element -> the colours behind it, worked out once
function backgroundsOf(element) {
  if (!behind.has(element)) behind.set(element, backgrounds(element));
  return behind.get(element);
}
const DISABLED = 'button:disabled, .mod-disabled, [aria-disabled="true"]';
function required(style) {
  const size = parseFloat(style.fontSize);
  const bold = parseInt(style.fontWeight, 10) >= 700;
  return size >= 24 || (bold && size >= 18.66) ? minLarge : minRatio;
}
function record(output, element, words, fg, bgs, need) {
  measured += 1;
  for (const bg of bgs) {
    const painted = over(fg, bg);
    const r = ratio(painted, bg);
    if (r < need) {
      found.push({cell: cells.findIndex((c) => c.contains(output)) + 1,  // as JupyterLab counts
                  where: describe(element, output),
                  text: words.trim().replace(/\s+/g, ' ').slice(0, 80),
                  ratio: Math.round(r * 100) / 100, need, fg: hex(painted), bg: hex(bg)});
    }
  }
}
function shown(element) {  // laid out, not hidden, not inside a closed <details>
  return element.checkVisibility({contentVisibilityAuto: true, visibilityProperty: true,
                                  checkVisibilityCSS: true});
}
function inView(rect) {
  return rect.top >= 0 && rect.left >= 0 && rect.bottom <= innerHeight && rect.right <= innerWidth;
}
for (const output of outputs) {
  // HTML text: the text nodes, each against its element's own and ancestors' backgrounds.
  const walker = document.createTreeWalker(output, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.data.trim()) continue;
    const element = node.parentElement;
    if (!element || element.closest('svg, style, script, template, title, noscript')) continue;
    if (element.closest(DISABLED)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0 && r.height > 0);
    const style = getComputedStyle(element);
    if (!rects.length || !shown(element)) continue;
    const colour = parse(style.color);
    if (!colour) continue;
    const opacity = opacityUpTo(element, null);
    if (opacity < 0.05) continue;
    colour[3] *= opacity;
    record(output, element, node.data, colour, backgroundsOf(element), required(style));
  }
  // SVG text: its fill against the shapes painted under it (hit-tested at points
  // along it), else against the page behind the picture.
  for (const text of output.querySelectorAll('svg text')) {
    if (!text.textContent.trim() || text.closest(DISABLED)) continue;
    const style = getComputedStyle(text);
    if (!shown(text)) continue;
    let rect = text.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    if (!inView(rect)) {
      text.scrollIntoView({block: 'center', inline: 'center'});
      rect = text.getBoundingClientRect();
    }
    const fill = parse(style.fill);
    if (!fill) continue;
    fill[3] *= parseFloat(style.fillOpacity) * opacityUpTo(text, null);
    const svg = text.ownerSVGElement;
    const bgs = [];
    const y = rect.top + rect.height / 2;
    for (let k = 1; k < 8; k++) {
      const x = rect.left + rect.width * k / 8;
      let under = null;
      for (const hit of document.elementsFromPoint(x, y)) {
        if (hit === text || !svg.contains(hit) || text.contains(hit)) continue;
        if (!['path', 'polygon', 'rect', 'ellipse', 'circle', 'polyline'].includes(
            hit.tagName.toLowerCase())) continue;
        const shapeFill = parse(getComputedStyle(hit).fill);
        if (shapeFill && shapeFill[3] > 0) { under = shapeFill; break; }
      }
      const page = backgroundsOf(svg);
      for (const bg of under ? page.map((p) => over(under, p)) : page) {
        if (!bgs.some((b) => hex(b) === hex(bg))) bgs.push(bg);
      }
    }
    record(output, text, text.textContent, fill, bgs, required(style));
  }
}
return {measured, found};
}"""

CUT_OFF_JS = r"""() => {
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
const cut = [...notebook.querySelectorAll('button.widget-button, .widget-toggle-button')]
  .filter((b) => b.checkVisibility() && b.clientWidth > 0 && b.scrollWidth > b.clientWidth);
if (cut.length) cut[0].scrollIntoView({block: 'center'});  // for the failure's screenshot
return cut.map((b) => {
    const range = document.createRange();
    range.selectNodeContents(b);
    const style = getComputedStyle(b);
    const room = b.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return {label: b.textContent.trim(), scroll: b.scrollWidth, client: b.clientWidth,
            label_px: Math.round(range.getBoundingClientRect().width * 100) / 100, room_px: room};
  });
}"""

DIAGRAM_TEXT_JS = r"""() => {
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
const sizes = [];
for (const text of notebook.querySelectorAll('.kit-live-diagram svg text')) {
  const rect = text.getBoundingClientRect();
  if (!text.textContent.trim() || rect.width === 0 || !text.checkVisibility()) continue;
  const m = text.getScreenCTM();
  const px = parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.c, m.d);
  sizes.push({text: text.textContent.trim().slice(0, 60), px: Math.round(px * 100) / 100,
              height: Math.round(rect.height * 100) / 100});
}
return sizes;
}"""

# From a console's input line: its scrolling box, and where ``answer`` (its last
# occurrence) is drawn, against the box and the window.
CONSOLE_JS = r"""([placeholder, answer]) => {
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
const input = notebook.querySelector(`input[placeholder^="${placeholder}"]`);
let box = null;
for (let e = input; e && !box; e = e.parentElement) box = e.querySelector('.kit-log');
if (!box) return null;
const rect = (r) => ({top: r.top, bottom: r.bottom, left: r.left, right: r.right});
let line = null;
const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const at = answer ? node.data.lastIndexOf(answer) : -1;
  if (at < 0) continue;
  const range = document.createRange();
  range.setStart(node, at);
  range.setEnd(node, at + answer.length);
  line = rect(range.getBoundingClientRect());
}
const pre = box.querySelector('pre');
return {box: rect(box.getBoundingClientRect()), line, scrollTop: box.scrollTop,
        scrollHeight: box.scrollHeight, clientHeight: box.clientHeight,
        preOverflowY: pre ? getComputedStyle(pre).overflowY : null,
        window: {width: innerWidth, height: innerHeight}};
}"""

SCROLL_CONSOLE_JS = r"""([placeholder, top]) => {
const notebook = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
const input = notebook.querySelector(`input[placeholder^="${placeholder}"]`);
let box = null;
for (let e = input; e && !box; e = e.parentElement) box = e.querySelector('.kit-log');
box.scrollTop = top;
return box.scrollTop;
}"""

WIDGET_OUTPUTS_JS = r"""([path, mime]) => {
const app = window.jupyterapp;
for (const widget of app.shell.widgets('main')) {
  if (!widget.context || widget.context.path !== path || !widget.content.model) continue;
  const cells = widget.content.model.cells;
  let count = 0;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (let j = 0; j < cell.outputs.length; j++) {
      const data = cell.outputs.get(j).data;
      if (data && mime in data) count += 1;
    }
  }
  return count;
}
return null;
}"""


# -- contrast ------------------------------------------------------------------------


@dataclass(frozen=True)
class LowContrast:
    theme: str
    cell: int
    where: str
    text: str
    ratio: float
    need: float
    fg: str
    bg: str

    def __str__(self) -> str:
        return (f"[{self.theme}] cell {self.cell}: {self.ratio:.2f}:1 (needs {self.need}:1) "
                f"{self.fg} on {self.bg} — {self.text!r} in {self.where}")


@dataclass
class ContrastReport:
    measured: dict[str, int]
    problems: list[LowContrast]

    def worst(self, count: int = 8) -> list[str]:
        """The worst offenders, one line each for a kind (theme, place, colours), with counts."""
        kinds: dict[tuple[str, str, str, str], list[LowContrast]] = {}
        for problem in self.problems:
            kinds.setdefault((problem.theme, problem.where, problem.fg, problem.bg),
                             []).append(problem)
        ranked = sorted(kinds.values(), key=lambda same: min(p.ratio for p in same))
        lines = []
        for same in ranked[:count]:
            worst = min(same, key=lambda p: p.ratio)
            more = f" (and {len(same) - 1} more like it)" if len(same) > 1 else ""
            lines.append(f"{worst}{more}")
        if len(ranked) > count:
            lines.append(f"… {len(ranked) - count} more kinds")
        return lines


def measure_contrast(page: Page, theme: str) -> tuple[int, list[LowContrast]]:
    result: dict[str, Any] = page.evaluate(CONTRAST_JS, [MIN_RATIO, MIN_RATIO_LARGE])
    return result["measured"], [LowContrast(theme=theme, **found) for found in result["found"]]


def contrast_problems(page: Page) -> ContrastReport:
    """Measure in Light, then in Dark, then go back to Light (the lab keeps the choice)."""
    report = ContrastReport({}, [])
    try:
        for theme in (LIGHT, DARK):
            set_theme(page, theme)
            measured, problems = measure_contrast(page, theme)
            report.measured[theme] = measured
            report.problems += problems
    finally:
        set_theme(page, LIGHT)
    return report


def set_theme(page: Page, theme: str) -> None:
    """Settings → Theme, by its command; wait until the page shows the theme's colours."""
    if page.evaluate("() => document.body.dataset.jpThemeName") == theme:
        return  # as it is: no redraw, nothing easing in
    page.evaluate("(theme) => window.jupyterapp.commands.execute("
                  "'apputils:change-theme', {theme})", theme)
    light = "true" if theme == LIGHT else "false"
    page.wait_for_function(
        """([theme, light]) => document.body.dataset.jpThemeName === theme
             && document.body.dataset.jpThemeLight === light
             && getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim() !== ''
             && !document.getElementById('jupyterlab-splash')
        """, arg=[theme, light], timeout=THEME_TIMEOUT_S * 1000)
    # The theme's stylesheet is in, and the splash screen that covers the page while it
    # loads is gone (removed 200 ms after: a second change before that makes JupyterLab
    # remove it twice, a page error).  Two frames more, and the page is painted with it.
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => "
                  "requestAnimationFrame(done)))")
    time.sleep(TRANSITIONS_S)


# -- the rest --------------------------------------------------------------------------


def cut_off_labels(page: Page) -> list[dict[str, Any]]:
    labels: list[dict[str, Any]] = page.evaluate(CUT_OFF_JS)
    return labels


def diagram_text_sizes(page: Page) -> list[dict[str, Any]]:
    sizes: list[dict[str, Any]] = page.evaluate(DIAGRAM_TEXT_JS)
    return sizes


def small_diagram_text(page: Page) -> list[dict[str, Any]]:
    return [size for size in diagram_text_sizes(page) if size["px"] < MIN_DIAGRAM_TEXT_PX - 0.05]


def console_answer(page: Page, placeholder: str, answer: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = page.evaluate(CONSOLE_JS, [placeholder, answer])
    return found


def scroll_console(page: Page, placeholder: str, top: float) -> float:
    return float(page.evaluate(SCROLL_CONSOLE_JS, [placeholder, top]))


def widget_outputs_in_model(page: Page, path: str, mime: str) -> int | None:
    count: int | None = page.evaluate(WIDGET_OUTPUTS_JS, [path, mime])
    return count
