"""Pictures of the four layers of virtualization, drawn from a snapshot.

Pure functions: a :class:`kit.view.picture.Snapshot` goes in, a
``graphviz.Digraph`` comes out, and :func:`render_svg` turns it into inline
SVG.  Nothing here talks to QEMU, so every picture can be tested from a
snapshot built by hand.

Three promises shape the code:

- **The layout stays put.**  A learner watching a guest pause must see the
  *same* picture change colour, not boxes jump around.  So the graph's
  structure (its nodes, edges and clusters, in their order) depends only on
  which guests there are and what they contain (services, doors, folders,
  links); a state change alters attributes only, and every label keeps the
  same number of lines in every state.
- **State reads without colour.**  Each state has its own line style, fill
  and words (``❚❚ paused``, ``✖ crashed``...), on a colour-blind-safe
  palette (Okabe-Ito), so the picture reads in greyscale, on a projector and
  for colour-blind learners.
- **Several diagrams on one page do not clash.**  Every element gets an
  ``id`` that starts with the diagram's ``graph_id``.
- **Every word is readable.**  All text is :data:`FONT_SIZE` units tall, and
  :func:`min_width_px` says how wide the picture must stay for that to be
  at least :data:`MIN_TEXT_PX` CSS pixels; every label has at least 4.5:1
  contrast against what is behind it, in the light palette and in its dark
  twin (:mod:`kit.view.colours`), faded layers included: a layer is faded
  by paler fills, borders and a grey text, never by translucency.
- **It can be read without seeing it.**  :func:`describe` says in words what
  the picture shows, and :func:`accessible` puts that in the SVG's
  ``<title>`` and ``<desc>``.
"""

from __future__ import annotations

import html
import itertools
import re
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from xml.etree import ElementTree

import graphviz

from kit.core.errors import InvalidInput, KitError, SetupError
from kit.core.state import GuestState
from kit.hypervisor.doors import Opening
from kit.view import colours
from kit.view.markup import escape
from kit.view.picture import (
    GuestSnapshot,
    HostSnapshot,
    LinkPicture,
    Move,
    Service,
    SharedFolder,
    Snapshot,
)

LAYERS = ("infrastructure", "hypervisor", "guest", "applications")
LAYER_TITLES = {
    "infrastructure": "INFRASTRUCTURE · this host",
    "hypervisor": "HYPERVISOR · one QEMU process per guest",
    "guest": "GUEST OS · each guest's own kernel",
    "applications": "APPLICATIONS · services inside the guests",
}
INSTALL_HINT = "Install Graphviz, which draws the diagrams: sudo apt-get install graphviz"
GRAPH_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
FONT = "Helvetica"
FONT_SIZE = 11  # every text, in SVG units; a picture shown at 1 px per unit has 11 px text
MIN_TEXT_PX = 11  # the smallest text a learner should have to read, in CSS pixels
PT_TO_PX = 4 / 3  # Graphviz sizes SVGs in points

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
BLACK, ORANGE, SKY, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
BLUE, VERMILLION, PURPLE, GREY = "#0072B2", "#D55E00", "#CC79A7", "#8C8C8C"
# The same hues dark enough for text on their own pale fills (4.5:1 and more).
DARK_BLUE, DARK_GREEN, DARK_VERMILLION = "#00578A", "#00684C", "#A33F00"
WHITE = "#FFFFFF"
# A faded part: fills and borders this far toward white, its text this grey.
FADE = 0.6
FADED_TEXT = "#595959"


@dataclass(frozen=True)
class Look:
    """How one state is drawn: line style, fill and words, never colour alone."""

    mark: str
    word: str
    style: str
    color: str
    fillcolor: str
    fontcolor: str = BLACK
    penwidth: str = "1.5"
    peripheries: str = "1"

    @property
    def text(self) -> str:
        return f"{self.mark} {self.word}"

    def attrs(self) -> dict[str, str]:
        return {"style": self.style, "color": self.color, "fillcolor": self.fillcolor,
                "fontcolor": self.fontcolor, "penwidth": self.penwidth,
                "peripheries": self.peripheries}


_PAUSED_STRIPES = ":".join(["#F9E7BF", "#FFFFFF"] * 6)

LOOKS: dict[str, Look] = {
    "running": Look("▶", "running", "filled", GREEN, "#CCECE3"),
    "paused": Look("❚❚", "paused", "striped,dashed", ORANGE, _PAUSED_STRIPES, penwidth="2"),
    "booting": Look("◌", "booting", "filled,dotted", BLUE, "#DDF0FA", penwidth="2"),
    "crashed": Look("✖", "crashed", "filled,bold", VERMILLION, "#F5D7BF", penwidth="2.5",
                    peripheries="2"),
    "stopped": Look("■", "stopped", "rounded,dotted", GREY, WHITE, fontcolor="#595959"),
    "stopping": Look("◐", "stopping", "rounded,filled,dotted", PURPLE, "#F5E4ED", penwidth="2"),
    "created": Look("○", "not started", "rounded,dashed", GREY, WHITE, fontcolor="#595959"),
}
_LOOK_TEXTS = tuple(state_look.text for state_look in LOOKS.values())
LEGEND_STATES = ("running", "booting", "paused", "crashed", "stopping", "stopped", "created")

# What the hypervisor layer shows: the QEMU process lives on while its guest
# is paused or crashed, which is itself a lesson.
_PROCESS_LOOK = {"paused": "running", "crashed": "running", "created": "stopped"}
_PROCESS_WORDS = {  # two short lines each: the process, then what runs in it
    "running": ("process running", "vCPUs running"),
    "booting": ("process running", "guest booting"),
    "paused": ("process running", "vCPUs ❚❚ stopped"),
    "crashed": ("process running", "guest ✖ panicked"),
    "stopping": ("process ◐ ending", "guest shutting down"),
    "stopped": ("■ no process", "nothing runs"),
    "created": ("○ no process yet", "nothing runs"),
}


def look(state: str) -> Look:
    """The look of ``state``; an unknown state is drawn plainly, with its own name."""
    return LOOKS.get(state) or Look("?", state, "dashed", GREY, WHITE)


def layers(snapshot: Snapshot, *, highlight: str | None = None,
           graph_id: str = "kit") -> graphviz.Digraph:
    """The four layers of ``snapshot`` as nested clusters, infrastructure at the bottom.

    ``highlight`` (one of :data:`LAYERS`) emphasises one layer and fades the
    others, for the lesson that talks about it.  ``graph_id`` prefixes every
    element id, so several diagrams can share a page.
    """
    drawing = _Drawing(_check_graph_id(graph_id), check_highlight(highlight))
    return drawing.draw(snapshot)


def render_svg(graph: graphviz.Digraph) -> str:
    """Inline SVG text of ``graph``: no XML prolog or doctype, ready for an HTML page."""
    try:
        svg = graph.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise SetupError("Graphviz's dot program is not installed, so diagrams cannot be "
                         "drawn.", hint=INSTALL_HINT) from None
    except (graphviz.CalledProcessError, subprocess.CalledProcessError) as error:
        stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) \
            else str(error.stderr or "")
        raise KitError(f"Graphviz could not draw the diagram (exit code {error.returncode}).",
                       log=stderr, hint="This is a bug in the kit: please report it with "
                       "the log above.") from None
    return strip_prolog(svg)


def shown_state(svg: str, guest: str, graph_id: str = "kit") -> str | None:
    """The state a rendered diagram shows for ``guest`` (read from its words), if any.

    Tests, benchmarks and checkpoints ask what the learner actually sees,
    not what the kit believes.
    """
    node = next((element for element in ElementTree.fromstring(svg).iter()
                 if element.get("id") == f"{graph_id}_os_{guest}"), None)
    if node is None:
        return None
    text = " ".join("".join(node.itertext()).split())
    return next((state for state, state_look in LOOKS.items() if state_look.text in text), None)


def strip_prolog(svg: str) -> str:
    """Drop the XML prolog, doctype and comments: inline SVG needs none of them.

    Comments (one per node and edge) are a fifth of the text, and a widget
    sends the whole text to the browser on every redraw.
    """
    start = svg.find("<svg")
    return _COMMENT.sub("", svg[start:] if start >= 0 else svg)


_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)


# -- size, words and theme ------------------------------------------------------

_VIEWBOX = re.compile(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ([\d.]+)"')
_FONT_SIZES = re.compile(r'font-size="([\d.]+)"')


def viewbox_width(svg: str) -> float:
    """The picture's width in its own units (Graphviz's points)."""
    found = _VIEWBOX.search(svg)
    if found is None:
        raise ValueError("not a Graphviz SVG: it has no viewBox")
    return float(found.group(1))


def min_width_px(svg: str, min_text_px: float = MIN_TEXT_PX) -> float:
    """The narrowest the picture may be shown for its smallest text to be ``min_text_px`` tall.

    Shown narrower, a learner could not read it: a view gives the picture at
    least this width, and scrolls sideways if the page is narrower still.
    """
    smallest = min((float(size) for size in _FONT_SIZES.findall(svg)), default=FONT_SIZE)
    return viewbox_width(svg) * min_text_px / smallest


def natural_width_px(svg: str) -> float:
    """The width Graphviz meant (its points, in CSS pixels): there is no need to grow past it."""
    return viewbox_width(svg) * PT_TO_PX


def accessible(svg: str, graph_id: str, title: str, summary: str) -> str:
    """The SVG as an image with a name (``title``) and a description (``summary``).

    Screen readers read these instead of the hundred bits of text inside the
    picture, which make no sense in document order.  Graphviz's own title
    (the graph's name) is dropped: it would be the tooltip of the whole picture.
    """
    head = svg.find(">", svg.find("<svg")) + 1
    if head <= 0:
        raise ValueError("not an SVG")
    ids = f"{graph_id}_title {graph_id}_desc"
    opening = svg[:head].replace("<svg ", f'<svg role="img" aria-labelledby="{ids}" ', 1)
    rest = svg[head:].replace(f"<title>{html.escape(graph_id)}</title>\n", "", 1)
    return (f'{opening}\n<title id="{graph_id}_title">{escape(title)}</title>'
            f'\n<desc id="{graph_id}_desc">{escape(summary)}</desc>{rest}')


def describe(snapshot: Snapshot, highlight: str | None = None) -> str:
    """What the picture of ``snapshot`` shows, in plain sentences (its text alternative)."""
    host = snapshot.host
    guests = snapshot.guests
    names = ", ".join(g.name for g in guests)
    lines = [f"The four layers of virtualization, {len(guests)} guest"
             f"{'' if len(guests) == 1 else 's'}{': ' + names if guests else ''}."
             + (f" The {LAYER_NAMES[highlight]} layer is highlighted." if highlight else "")]
    lines.append(
        f"Infrastructure: this host, {host.hostname}, {host.cpus} CPUs, "
        f"{host.memory_total_mb} MiB memory ({host.memory_available_mb} MiB free); "
        f"accelerator {host.accelerator_label}; KVM {host.kvm}.")
    for guest in guests:
        state = look(guest.state)
        process = " ".join(_PROCESS_WORDS.get(guest.state, (guest.state,))).strip()
        pid = f", process id {guest.pid}" if guest.pid is not None else ""
        rss = f", holding {guest.rss_mb:.0f} MiB" if guest.rss_mb is not None else ""
        lines.append(f"Hypervisor: QEMU for {guest.name}{pid}{rss}: {process}.")
        if guest.move is not None:
            lines.append(_move_words(guest.name, guest.move))
        vcpus = "vCPU" if guest.cpus == 1 else "vCPUs"
        lines.append(f"Guest OS: {guest.name} runs Linux {guest.kernel or '?'} "
                     f"({guest.arch}, {guest.memory_mb} MiB, {guest.cpus} {vcpus}): "
                     f"{state.word}.")
        for service in guest.services:
            reach = (f", reached from the host at 127.0.0.1:{service.host_port}"
                     if service.host_port else ", no door from the host")
            lines.append(f"Application in {guest.name}: {service.name} on port "
                         f"{service.guest_port}{reach}: {state.word}.")
        for folder in guest.shared_folders:
            mode = "writable" if folder.writable else "read-only"
            lines.append(f"Shared folder of {guest.name}: {folder.host_path} on the host is "
                         f"{folder.guest_path} in the guest, {mode}.")
        for door in guest.other_doors:
            lines.append(f"A {door.kind} door of {guest.name}: {door.words}.")
    shown = {g.name for g in guests}
    for link in snapshot.links:
        if link.a in shown and link.b in shown:
            lines.append(f"A network link joins {link.a} and {link.b}: "
                         f"{'up' if link.up else 'down'}.")
    if not guests:
        lines.append("No guests yet: the hypervisor, guest OS and applications layers are "
                     "empty.")
    return "\n".join(lines)


def _move_words(name: str, move: Move) -> str:
    if not move.done:
        return (f"Live migration: {name} is moving from QEMU process {move.old_pid} to a new "
                f"QEMU process {move.new_pid}, which is receiving the machine.")
    paused = "" if move.paused_ms is None else f", paused for {move.paused_ms:.0f} ms"
    return (f"Live migration: {name} moved from QEMU process {move.old_pid}, which has ended, "
            f"to process {move.new_pid}{paused}.")


LAYER_NAMES = {"infrastructure": "infrastructure", "hypervisor": "hypervisor",
               "guest": "guest OS", "applications": "applications"}
LEGEND_LINES = (  # (CSS line sample, colour, words)
    ("solid", GREY, "runs on"),
    ("solid", BLUE, "door: host port → guest"),
    ("solid", PURPLE, "→ shared folder, read-only; ↔ writable"),
    ("solid", GREEN, "●—● link up"),
    ("dashed", VERMILLION, "●- -● link down"),
    ("solid", ORANGE, "→ a guest moved live to a new QEMU"),
)


def state_class(state: str) -> str:
    """The CSS class :func:`state_css` styles ``state`` with."""
    return f"kit-state-{state if state in LOOKS else 'unknown'}"


def state_css(scope: str = "", states: tuple[str, ...] | None = None) -> str:
    """CSS for HTML swatches of ``states`` (default: all), as the diagram draws them.

    A badge or a legend entry with :func:`state_class` looks like the
    diagram's box of that state: same fill, border style and text colour,
    and the dark twins of them under JupyterLab's dark theme.
    """
    rules = []
    chosen = [*LOOKS, "unknown"] if states is None else [
        state if state in LOOKS else "unknown" for state in states]
    for state in dict.fromkeys(chosen):
        state_look = LOOKS.get(state) or look("?")
        cls = f"{scope} .{state_class(state)}".strip()
        fill = state_look.fillcolor.split(":")
        for palette, paint in (("", lambda c: c), (colours.DARK_SELECTOR, colours.dark)):
            stripes = ",".join(paint(c) for c in fill[:2])
            background = (f"repeating-linear-gradient(135deg,{stripes.split(',')[0]} 0 6px,"
                          f"{stripes.split(',')[1]} 6px 12px)" if len(fill) > 1
                          else paint(fill[0]))
            rules.append(f"{palette} {cls}{{background:{background};"
                         f"border-color:{paint(state_look.color)};"
                         f"color:{paint(state_look.fontcolor)}}}".strip())
    return "\n".join(rules)


def _css_border(state_look: Look) -> str:
    if state_look.peripheries != "1":
        kind = "double"
    else:
        kind = next((k for k in ("dotted", "dashed") if k in state_look.style), "solid")
    # Width and style only: the colour comes from state_css (a shorthand would reset it).
    return f"border-width:{'4px' if kind == 'double' else '2px'};border-style:{kind}"


def swatch(state: str, text: str | None = None, *, role: str = "") -> str:
    """A state's mark and word in a box styled like the diagram's (see :func:`state_css`)."""
    state_look = look(state)
    role_attr = f' role="{role}"' if role else ""
    return (f'<span{role_attr} class="{state_class(state)}" style="display:inline-block;'
            f"padding:1px 10px;border-radius:12px;{_css_border(state_look)};"
            f'font-weight:bold">{escape(text or state_look.text)}</span>')


def legend_html() -> str:
    """The diagram's legend, as page text under the picture: it wraps, and never shrinks.

    Drawn inside the SVG, it took a third of the picture's width and was
    scaled down with it.
    """
    states = " ".join(swatch(state) for state in LEGEND_STATES)
    lines = " ".join(
        f'<span style="white-space:nowrap;margin-right:12px"><span aria-hidden="true" '
        f'style="display:inline-block;width:2.2em;vertical-align:middle;'
        f'border-top:3px {style} {colour}"></span> {escape(words)}</span>'
        for style, colour, words in LEGEND_LINES)
    return (f'<div class="kit-diagram-legend" style="line-height:2;font-size:12px">'
            f"<b>Legend</b> {states}<br>{lines}</div>")


# -- checks -----------------------------------------------------------------


def _check_graph_id(graph_id: str) -> str:
    if not isinstance(graph_id, str) or not GRAPH_ID_PATTERN.match(graph_id):
        raise InvalidInput(
            f"{graph_id!r} cannot be a diagram id.",
            hint="Use a letter followed by letters, digits, '-' or '_', e.g. 'lesson1'.",
        )
    return graph_id


def check_highlight(highlight: str | None) -> str | None:
    """``highlight`` if it names a layer (or is None); else a plain-words error."""
    if highlight is not None and highlight not in LAYERS:
        raise InvalidInput(
            f"{highlight!r} is not a layer.",
            hint=f"Highlight one of {', '.join(map(repr, LAYERS))}, or None.",
        )
    return highlight


# -- labels -------------------------------------------------------------------


def _label(title: str, *lines: str) -> str:
    """An HTML-like label: a bold title, then detail lines, all of one readable size."""
    parts = [f"<B>{html.escape(title)}</B>"]
    parts += [html.escape(line) for line in lines]
    return "<" + '<BR ALIGN="CENTER"/>'.join(parts) + ">"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MiB"


HOST_LINE_CHARS = 26  # the host's long lines (its CPU model) wrap here: the box stays narrow


def _host_lines(host: HostSnapshot, free_mb: int) -> tuple[str, list[str]]:
    name, _, how = host.accelerator_label.partition(" (")
    return (f"this host: {host.hostname}",
            [*textwrap.wrap(host.cpu_model, HOST_LINE_CHARS),
             f"{host.cpus} CPUs · {host.memory_total_mb} MiB memory",
             f"{free_mb} MiB free",
             f"accelerator: {name}", *([f"({how}"] if how else []), f"KVM: {host.kvm}"])


def _host_node(host: HostSnapshot) -> dict[str, str]:
    """The host's label, in a box sized for the most free memory it could show."""
    title, lines = _host_lines(host, host.memory_available_mb)
    _, widest = _host_lines(host, host.memory_total_mb)
    return {"label": _label(title, *lines),
            **_box_size("running", len(lines) + 1, title, *widest)}


def _qemu_label(guest: GuestSnapshot) -> str:
    pid = "—" if guest.pid is None else str(guest.pid)
    threads = "—" if guest.threads is None else str(guest.threads)
    return _label(
        f"QEMU · {guest.name}",
        f"PID {pid} · {(guest.accelerator or '—').upper()}",
        f"RSS {_mib(guest.rss_mb)} · {threads} threads",
        *_PROCESS_WORDS.get(guest.state, (guest.state, "")),
    )


def _os_lines(guest: GuestSnapshot) -> tuple[str, list[str]]:
    vcpus = "vCPU" if guest.cpus == 1 else "vCPUs"
    return (f"{guest.name}: Linux {guest.kernel or '?'}",
            [f"{guest.arch} · {guest.memory_mb} MiB · {guest.cpus} {vcpus}",
             look(guest.state).text])


def _service_lines(service: Service, state: str) -> tuple[str, list[str]]:
    door = (f"door: 127.0.0.1:{service.host_port}" if service.host_port
            else "no door from the host")
    return f"{service.name} :{service.guest_port}", [door, look(state).text]


def _box_size(state: str, lines: int, title: str, *details: str) -> dict[str, str]:
    """A size that fits a ``lines``-line label in *every* state, so nothing moves.

    Graphviz grows a node to fit its label; giving each node a size a little
    larger than its widest possible label (estimated from character counts)
    keeps its size, and so the whole layout, the same when its state changes.
    A double border (crashed) is drawn outside the size: it is taken off.
    """
    width = max(len(title) * 0.094, max(map(len, details), default=0) * 0.083) + 0.3
    height = 0.16 * lines + 0.24
    ring = (int(look(state).peripheries) - 1) * 8 / 72
    return {"width": f"{width - ring:.3f}", "height": f"{height - ring:.3f}"}


DOOR_LINE_CHARS, DOOR_LINES = 22, 6  # a door's own words, wrapped: open or closed, one size


def _other_door_box(door: Opening) -> dict[str, str]:
    """A door of a kind the diagram has no drawing for: its words wrapped into a fixed box.

    Its words change when it opens or closes (and may be long); wrapped
    into :data:`DOOR_LINES` lines of :data:`DOOR_LINE_CHARS` characters, in
    a box sized for that, the door keeps its size and the layout stays put.
    """
    lines = textwrap.wrap(door.words, DOOR_LINE_CHARS) or [""]
    if len(lines) > DOOR_LINES:
        lines = [*lines[:DOOR_LINES - 1], lines[DOOR_LINES - 1] + " …"]
    title = f"{door.kind} door"
    return {"label": _label(title, *lines),
            **_box_size("running", DOOR_LINES + 1, title, "m" * DOOR_LINE_CHARS)}


def _door_label(service: Service) -> str:
    return _label(f"door 127.0.0.1:{service.host_port}", f"forwarded to :{service.guest_port}")


def _folder_label(folder: SharedFolder) -> str:
    mode = "writable" if folder.writable else "read-only"
    return _label("shared folder", f"{folder.host_path} → {folder.guest_path}", mode)


# -- the drawing ----------------------------------------------------------------


class _Drawing:
    """One diagram being built; keeps the id prefix and the highlight in one place."""

    def __init__(self, graph_id: str, highlight: str | None) -> None:
        self.gid = graph_id
        self.highlight = highlight

    def draw(self, snapshot: Snapshot) -> graphviz.Digraph:
        graph = graphviz.Digraph(
            name=self.gid, graph_attr=self._graph_attrs(),
            node_attr={"shape": "box", "fontname": FONT, "fontsize": str(FONT_SIZE),
                       "fontcolor": BLACK, "margin": "0.1,0.05"},
            edge_attr={"fontname": FONT, "fontsize": str(FONT_SIZE), "fontcolor": BLACK,
                       "color": GREY, "arrowsize": "0.6"},
        )
        with self._layer(graph, "infrastructure") as infra:
            with _row(infra) as row:
                self._infrastructure(row, snapshot)
            with self._layer(infra, "hypervisor") as hypervisor:
                with _row(hypervisor) as row:
                    self._hypervisor(row, snapshot)
                with self._layer(hypervisor, "guest") as guest_os:
                    with _row(guest_os) as row:
                        self._guest_os(row, snapshot)
                    with self._layer(guest_os, "applications") as apps, _row(apps) as row:
                        self._applications(row, snapshot)
        self._edges(graph, snapshot)
        return graph

    def _graph_attrs(self) -> dict[str, str]:
        # No background of its own: the page's shows (white, or JupyterLab Dark's).
        return {"id": self.gid, "rankdir": "BT", "fontname": FONT, "fontsize": str(FONT_SIZE),
                "nodesep": "0.16", "ranksep": "0.4", "bgcolor": "transparent", "pad": "0.05",
                "labeljust": "l", "newrank": "true",
                # A second crossing pass across clusters ignores the flat ordering edges.
                "remincross": "false"}

    def _id(self, *parts: str) -> str:
        return "_".join((self.gid, *parts))

    # -- layers --

    @contextmanager
    def _layer(self, parent: graphviz.Digraph, layer: str) -> Iterator[graphviz.Digraph]:
        # Under rankdir=BT, "t" puts a cluster's label at its bottom: beside its own row.
        # Every attribute is set on every layer: a nested cluster inherits its parent's.
        title = html.escape(LAYER_TITLES[layer])
        attrs = {"id": self._id("layer", layer), "label": f"<<B>{title}</B>>",
                 "labelloc": "t", "style": "filled", "margin": "7", "fontname": FONT}
        attrs.update(self._layer_emphasis(layer))
        with parent.subgraph(name=f"cluster_{layer}", graph_attr=attrs) as cluster:
            yield cluster

    def _layer_emphasis(self, layer: str) -> dict[str, str]:
        if self.highlight is None:
            shade = {"infrastructure": "#F0F0F0", "hypervisor": "#F6F6F6",
                     "guest": "#FBFBFB", "applications": "#FFFFFF"}[layer]
            return {"color": "#666666", "fillcolor": shade, "penwidth": "1",
                    "fontcolor": "#333333"}
        if layer == self.highlight:
            return {"color": BLUE, "fillcolor": "#E3F0F8", "penwidth": "3.5",
                    "fontcolor": DARK_BLUE}
        return {"color": "#C4C4C4", "fillcolor": "#FCFCFC", "penwidth": "1",
                "fontcolor": FADED_TEXT}

    def _node(self, graph: graphviz.Digraph, name: str, layer: str,
              **attrs: str) -> None:
        """A node of ``layer``, faded when another layer is highlighted."""
        if self.highlight is not None and layer != self.highlight:
            attrs = _faded(attrs)
        graph.node(name, id=self._id(*name.split("/")), **attrs)

    def _infrastructure(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        """The host, and the host's ends of the doors and folders."""
        self._node(graph, "host", "infrastructure", **_host_node(snapshot.host),
                   style="filled", color=BLACK, fillcolor=WHITE, penwidth="1.5")
        for guest in snapshot.guests:
            for service in _doors(guest):
                self._door(graph, guest, service)
            for index, folder in enumerate(guest.shared_folders):
                self._node(graph, _folder_node(guest, index), "infrastructure",
                           label=_folder_label(folder), shape="folder", style="filled",
                           color=PURPLE, fillcolor="#F5E4ED", penwidth="1.5")
            for door in guest.other_doors:
                self._node(graph, _other_door_node(guest, door), "infrastructure",
                           **_other_door_box(door), shape="box",
                           style="rounded,filled" if door.is_open else "rounded,dotted",
                           color=BLUE if door.is_open else GREY, fillcolor=WHITE,
                           penwidth="1.5")

    def _door(self, graph: graphviz.Digraph, guest: GuestSnapshot, service: Service) -> None:
        open_ = _process_alive(guest.state)
        self._node(graph, _door_node(guest, service), "infrastructure",
                   label=_door_label(service), shape="box",
                   style="rounded,filled" if open_ else "rounded,dotted",
                   color=BLUE if open_ else GREY, fillcolor="#DDEBF5" if open_ else WHITE,
                   penwidth="1.5")

    def _hypervisor(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        if not snapshot.guests:
            self._placeholder(graph, "no-qemu", "hypervisor",
                              "no guests yet: kit.Guest('web1').start() starts one")
        for guest in snapshot.guests:
            state = _PROCESS_LOOK.get(guest.state, guest.state)
            size = _box_size(state, 5, f"QEMU · {guest.name}", "PID 4194304 · TCG",
                             "RSS 9999 MiB · 99 threads",
                             *itertools.chain.from_iterable(_PROCESS_WORDS.values()))
            self._node(graph, _qemu_node(guest), "hypervisor", label=_qemu_label(guest),
                       **size, **look(state).attrs())
            if guest.move is not None:
                self._other_qemu(graph, guest, guest.move, size)

    def _other_qemu(self, graph: graphviz.Digraph, guest: GuestSnapshot, move: Move,
                    size: dict[str, str]) -> None:
        """A live migration's other QEMU: the one receiving the guest, or the one it left."""
        if move.done:
            paused = "" if move.paused_ms is None else f"guest paused {move.paused_ms:.0f} ms"
            label = _label(f"QEMU · {guest.name} (before)", f"PID {move.old_pid} · ended",
                           f"moved to PID {move.new_pid}", paused)
            self._node(graph, _moved_node(guest), "hypervisor", label=label, **size,
                       **_faded(look("stopped").attrs()))
        else:
            label = _label(f"QEMU · {guest.name} (new)", f"PID {move.new_pid}",
                           "receiving the machine", "its vCPUs wait")
            self._node(graph, _moved_node(guest), "hypervisor", label=label, **size,
                       **look("paused").attrs())

    def _guest_os(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        if not snapshot.guests:
            self._placeholder(graph, "no-os", "guest", "no guest kernels")
        for guest in snapshot.guests:
            title, details = _os_lines(guest)
            size = _box_size(guest.state, 3, title, *details, *_LOOK_TEXTS)
            self._node(graph, _os_node(guest), "guest", label=_label(title, *details),
                       **size, **look(guest.state).attrs())

    def _applications(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        if not any(guest.services for guest in snapshot.guests):
            self._placeholder(graph, "no-apps", "applications", "no applications")
        for guest in snapshot.guests:
            for service in guest.services:
                title, details = _service_lines(service, guest.state)
                size = _box_size(guest.state, 3, title, *details[:-1], *_LOOK_TEXTS)
                self._node(graph, _service_node(guest, service), "applications",
                           label=_label(title, *details), **size, **look(guest.state).attrs())

    def _placeholder(self, graph: graphviz.Digraph, name: str, layer: str, text: str) -> None:
        self._node(graph, name, layer, label=text, shape="plaintext", fontcolor=FADED_TEXT)

    # -- edges --

    def _edges(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        """Edges live at the top level: one inside a cluster would pull its nodes in."""
        self._stack_edges(graph, snapshot)
        for guest in snapshot.guests:
            for service in _doors(guest):
                self._door_edge(graph, guest, service)
            for index, folder in enumerate(guest.shared_folders):
                self._folder_edge(graph, guest, index, folder)
            for door in guest.other_doors:
                self._path(graph, [_other_door_node(guest, door), _qemu_node(guest),
                                   _os_node(guest)],
                           ("door", guest.name, door.kind, door.key), both=door.guest_can_write,
                           color=BLUE if door.is_open else GREY,
                           style="bold" if door.is_open else "dotted")
            if guest.move is not None:
                self._move_edge(graph, guest, guest.move)
        names = {guest.name for guest in snapshot.guests}
        for link in snapshot.links:
            if link.a in names and link.b in names:
                self._link_edge(graph, link)

    def _stack_edges(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        """What runs on what: these edges stack each guest's column vertically."""
        if not snapshot.guests:
            for low, high in (("host", "no-qemu"), ("no-qemu", "no-os"), ("no-os", "no-apps")):
                graph.edge(low, high, id=self._id("runs", high), style="invis")
            return
        for guest in snapshot.guests:
            column = [("host", _qemu_node(guest)), (_qemu_node(guest), _os_node(guest))]
            column += [(_os_node(guest), _service_node(guest, s)) for s in guest.services]
            for low, high in column:
                # From the host's top edge: many guests fan out instead of knotting.
                port = {"tailport": "n"} if low == "host" else {}
                graph.edge(low, high, id=self._id("runs", *high.split("/")), weight="8",
                           dir="none", penwidth="1.2", **port)
        self._keep_order(graph, _hypervisor_row(snapshot.guests))
        self._keep_order(graph, _host_row(snapshot.guests))
        if not any(guest.services for guest in snapshot.guests):
            graph.edge(_os_node(snapshot.guests[0]), "no-apps", id=self._id("runs", "no-apps"),
                       style="invis")

    def _move_edge(self, graph: graphviz.Digraph, guest: GuestSnapshot, move: Move) -> None:
        """The arrow of a live migration: from the QEMU the guest leaves to the one it enters."""
        old, new = ((_moved_node(guest), _qemu_node(guest)) if move.done
                    else (_qemu_node(guest), _moved_node(guest)))
        graph.edge(old, new, id=self._id("move", guest.name), color=ORANGE, penwidth="2.4",
                   style="solid" if move.done else "dashed",
                   label=" moved live " if move.done else " moving… ")

    def _keep_order(self, graph: graphviz.Digraph, row: list[str]) -> None:
        """Flat invisible edges: on one row, each tail stays left of its head."""
        for left, right in itertools.pairwise(row):
            graph.edge(left, right, style="invis", id=self._id("order", *right.split("/")))

    def _door_edge(self, graph: graphviz.Digraph, guest: GuestSnapshot, service: Service) -> None:
        """Host port → QEMU (which listens on it) → guest kernel → the service."""
        open_ = _process_alive(guest.state)
        hops = [_door_node(guest, service), _qemu_node(guest), _os_node(guest),
                _service_node(guest, service)]
        self._path(graph, hops, ("forward", guest.name, str(service.host_port)), both=False,
                   color=BLUE if open_ else GREY, style="bold" if open_ else "dotted")

    def _folder_edge(self, graph: graphviz.Digraph, guest: GuestSnapshot, index: int,
                     folder: SharedFolder) -> None:
        """Host folder → QEMU (its 9p server) → the guest kernel that mounts it."""
        hops = [_folder_node(guest, index), _qemu_node(guest), _os_node(guest)]
        self._path(graph, hops, ("folder", guest.name, str(index)), both=folder.writable,
                   color=PURPLE, penwidth="1.5")

    def _path(self, graph: graphviz.Digraph, hops: list[str], id_parts: tuple[str, ...],
              *, both: bool, **attrs: str) -> None:
        """One edge per layer crossed, so the path follows its guest's column.

        A single long edge would cut across the nested clusters and push the
        columns out of order; hop by hop, it runs beside the "runs on" edges.
        The arrowheads sit at the ends only: where the data goes.
        """
        last = len(hops) - 2
        for step, (low, high) in enumerate(itertools.pairwise(hops)):
            graph.edge(low, high, id=self._id(*id_parts, str(step)), weight="1",
                       dir="both", arrowhead="normal" if step == last else "none",
                       arrowtail="normal" if both and step == 0 else "none", **attrs)

    def _link_edge(self, graph: graphviz.Digraph, link: LinkPicture) -> None:
        # A label of one fixed size, up or down: dot makes room for it between the
        # two guests (an xlabel would sit on their boxes), and nothing moves.
        words = "link up" if link.up else "✖ link down"
        label = ('<<TABLE BORDER="0" CELLPADDING="0" CELLSPACING="0" FIXEDSIZE="TRUE" '
                 f'WIDTH="90" HEIGHT="18"><TR><TD>{words}</TD></TR></TABLE>>')
        graph.edge(f"os/{link.a}", f"os/{link.b}", id=self._id("link", link.a, link.b),
                   label=label, dir="both",
                   arrowhead="dot", arrowtail="dot", constraint="false",
                   style="solid" if link.up else "dashed", penwidth="2" if link.up else "1.5",
                   color=GREEN if link.up else VERMILLION,
                   fontcolor=DARK_GREEN if link.up else DARK_VERMILLION)


# -- names and helpers ----------------------------------------------------------


@contextmanager
def _row(cluster: graphviz.Digraph) -> Iterator[graphviz.Digraph]:
    """One layer's own nodes on one row, so flat edges can keep the columns in order."""
    with cluster.subgraph(graph_attr={"rank": "same"}) as row:
        yield row


def _qemu_node(guest: GuestSnapshot) -> str:
    return f"qemu/{guest.name}"


def _moved_node(guest: GuestSnapshot) -> str:
    """A live migration's other QEMU process (see :meth:`_Drawing._other_qemu`)."""
    return f"qemu-moved/{guest.name}"


def _hypervisor_row(guests: tuple[GuestSnapshot, ...]) -> list[str]:
    """The QEMU processes left to right; a move reads left to right, old to new."""
    row: list[str] = []
    for guest in guests:
        if guest.move is None:
            row.append(_qemu_node(guest))
        elif guest.move.done:
            row += [_moved_node(guest), _qemu_node(guest)]
        else:
            row += [_qemu_node(guest), _moved_node(guest)]
    return row


def _os_node(guest: GuestSnapshot) -> str:
    return f"os/{guest.name}"


def _service_node(guest: GuestSnapshot, service: Service) -> str:
    return f"app/{guest.name}/{service.guest_port}"


def _door_node(guest: GuestSnapshot, service: Service) -> str:
    return f"door/{guest.name}/{service.host_port}"


def _folder_node(guest: GuestSnapshot, index: int) -> str:
    return f"folder/{guest.name}/{index}"


def _other_door_node(guest: GuestSnapshot, door: Opening) -> str:
    """A door of a kind with no drawing of its own (any door added to the kit later)."""
    return f"door/{guest.name}/{door.kind}/{door.key}"


def _host_row(guests: tuple[GuestSnapshot, ...]) -> list[str]:
    """Each guest's doors and folders under its column, the host in the middle."""
    ends = [[*(_door_node(g, s) for s in _doors(g)),
             *(_folder_node(g, i) for i in range(len(g.shared_folders))),
             *(_other_door_node(g, d) for d in g.other_doors)] for g in guests]
    half = len(guests) // 2
    return [*(n for column in ends[:half] for n in column), "host",
            *(n for column in ends[half:] for n in column)]


def _doors(guest: GuestSnapshot) -> list[Service]:
    return [service for service in guest.services if service.host_port]


def _process_alive(state: str) -> bool:
    return GuestState(state).has_process


def _faded(attrs: dict[str, str]) -> dict[str, str]:
    """The same attributes, paler: present but in the background, and still readable.

    Fills and borders are mixed toward white (:data:`FADE`); the text turns
    a grey that keeps 4.5:1 against the paler fill.  Nothing is translucent.
    """
    faded = dict(attrs)
    for key in ("color", "fillcolor"):
        if key in faded:
            faded[key] = ":".join(_paler(c) for c in faded[key].split(":"))
    faded.setdefault("color", _paler(BLACK))
    faded["fontcolor"] = FADED_TEXT
    return faded


def _paler(colour: str) -> str:
    return colours.mix(colour, WHITE, FADE) if colours.HEX.match(colour) else colour
