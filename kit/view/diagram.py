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
"""

from __future__ import annotations

import html
import itertools
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from xml.etree import ElementTree

import graphviz

from kit.core.errors import InvalidInput, KitError, SetupError
from kit.core.state import GuestState
from kit.hypervisor.doors import Opening
from kit.view.picture import (
    GuestSnapshot,
    HostSnapshot,
    LinkPicture,
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

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
BLACK, ORANGE, SKY, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
BLUE, VERMILLION, PURPLE, GREY = "#0072B2", "#D55E00", "#CC79A7", "#8C8C8C"
FADED_ALPHA = "55"


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
    "stopped": Look("■", "stopped", "rounded,dotted", GREY, "#FFFFFF", fontcolor="#666666"),
    "stopping": Look("◐", "stopping", "rounded,filled,dotted", PURPLE, "#F5E4ED", penwidth="2"),
    "created": Look("○", "not started", "rounded,dashed", GREY, "#FFFFFF", fontcolor="#666666"),
}
_LOOK_TEXTS = tuple(state_look.text for state_look in LOOKS.values())
LEGEND_STATES = ("running", "booting", "paused", "crashed", "stopping", "stopped", "created")

# What the hypervisor layer shows: the QEMU process lives on while its guest
# is paused or crashed, which is itself a lesson.
_PROCESS_LOOK = {"paused": "running", "crashed": "running", "created": "stopped"}
_PROCESS_WORDS = {
    "running": "process running, vCPUs running",
    "booting": "process running, guest booting",
    "paused": "process running, vCPUs ❚❚ stopped",
    "crashed": "process running, guest ✖ panicked",
    "stopping": "process ◐ shutting down",
    "stopped": "■ no process",
    "created": "○ no process yet",
}


def look(state: str) -> Look:
    """The look of ``state``; an unknown state is drawn plainly, with its own name."""
    return LOOKS.get(state) or Look("?", state, "dashed", GREY, "#FFFFFF")


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


def _label(title: str, *lines: str, size: int = 10) -> str:
    """An HTML-like label: a bold title, then smaller detail lines."""
    parts = [f"<B>{html.escape(title)}</B>"]
    parts += [f'<FONT POINT-SIZE="{size}">{html.escape(line)}</FONT>' for line in lines]
    return "<" + '<BR ALIGN="CENTER"/>'.join(parts) + ">"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MiB"


def _host_lines(host: HostSnapshot, free_mb: int) -> tuple[str, list[str]]:
    return (f"this host: {host.hostname}",
            [host.cpu_model,
             f"{host.cpus} CPUs · {host.memory_total_mb} MiB memory, {free_mb} MiB free",
             f"accelerator: {host.accelerator_label}", f"KVM: {host.kvm}"])


def _host_node(host: HostSnapshot) -> dict[str, str]:
    """The host's label, in a box sized for the most free memory it could show."""
    title, lines = _host_lines(host, host.memory_available_mb)
    _, widest = _host_lines(host, host.memory_total_mb)
    return {"label": _label(title, *lines), **_box_size("running", 5, title, *widest)}


def _qemu_label(guest: GuestSnapshot) -> str:
    pid = "—" if guest.pid is None else str(guest.pid)
    threads = "—" if guest.threads is None else str(guest.threads)
    return _label(
        f"QEMU · {guest.name}",
        f"PID {pid} · {(guest.accelerator or '—').upper()}",
        f"RSS {_mib(guest.rss_mb)} · {threads} threads",
        _PROCESS_WORDS.get(guest.state, guest.state),
    )


def _os_lines(guest: GuestSnapshot) -> tuple[str, list[str]]:
    vcpus = "vCPU" if guest.cpus == 1 else "vCPUs"
    return (f"{guest.name}: Linux {guest.kernel or '?'}",
            [f"{guest.arch} · {guest.memory_mb} MiB · {guest.cpus} {vcpus}",
             look(guest.state).text])


def _service_lines(service: Service, state: str) -> tuple[str, list[str]]:
    reach = (f"{service.name} :{service.guest_port} ← 127.0.0.1:{service.host_port}"
             if service.host_port else f"{service.name} :{service.guest_port}")
    door = "through a door from the host" if service.host_port else "no door from the host"
    return reach, [door, look(state).text]


def _box_size(state: str, lines: int, title: str, *details: str) -> dict[str, str]:
    """A size that fits a ``lines``-line label in *every* state, so nothing moves.

    Graphviz grows a node to fit its label; giving each node a size a little
    larger than its widest possible label (estimated from character counts)
    keeps its size, and so the whole layout, the same when its state changes.
    A double border (crashed) is drawn outside the size: it is taken off.
    """
    width = max(len(title) * 0.105, max(map(len, details), default=0) * 0.08) + 0.4
    height = 0.139 * lines + 0.25
    ring = (int(look(state).peripheries) - 1) * 8 / 72
    return {"width": f"{width - ring:.3f}", "height": f"{height - ring:.3f}"}


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
            node_attr={"shape": "box", "fontname": FONT, "fontsize": "11", "margin": "0.12,0.06"},
            edge_attr={"fontname": FONT, "fontsize": "9", "color": GREY, "arrowsize": "0.6"},
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
        self._legend(graph)
        return graph

    def _graph_attrs(self) -> dict[str, str]:
        return {"id": self.gid, "rankdir": "BT", "fontname": FONT, "fontsize": "11",
                "nodesep": "0.25", "ranksep": "0.45", "bgcolor": "#FFFFFF", "pad": "0.15",
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
        attrs = {"id": self._id("layer", layer), "label": LAYER_TITLES[layer],
                 "labelloc": "t", "style": "filled", "margin": "10", "fontname": FONT}
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
                    "fontcolor": BLUE, "fontname": f"{FONT} Bold"}
        return {"color": "#D0D0D0", "fillcolor": "#FDFDFD", "penwidth": "1",
                "fontcolor": "#B0B0B0"}

    def _node(self, graph: graphviz.Digraph, name: str, layer: str,
              **attrs: str) -> None:
        """A node of ``layer``, faded when another layer is highlighted."""
        if self.highlight is not None and layer != self.highlight:
            attrs = _faded(attrs)
        graph.node(name, id=self._id(*name.split("/")), **attrs)

    def _infrastructure(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        """The host, and the host's ends of the doors and folders."""
        self._node(graph, "host", "infrastructure", **_host_node(snapshot.host),
                   style="filled", color=BLACK, fillcolor="#FFFFFF", penwidth="1.5")
        for guest in snapshot.guests:
            for service in _doors(guest):
                self._door(graph, guest, service)
            for index, folder in enumerate(guest.shared_folders):
                self._node(graph, _folder_node(guest, index), "infrastructure",
                           label=_folder_label(folder), shape="folder", style="filled",
                           color=PURPLE, fillcolor="#F5E4ED", penwidth="1.5")
            for door in guest.other_doors:
                self._node(graph, _other_door_node(guest, door), "infrastructure",
                           label=_label(f"{door.kind} door", door.words), shape="box",
                           style="rounded,filled" if door.is_open else "rounded,dotted",
                           color=BLUE if door.is_open else GREY, fillcolor="#FFFFFF",
                           penwidth="1.5")

    def _door(self, graph: graphviz.Digraph, guest: GuestSnapshot, service: Service) -> None:
        open_ = _process_alive(guest.state)
        self._node(graph, _door_node(guest, service), "infrastructure",
                   label=_door_label(service), shape="box",
                   style="rounded,filled" if open_ else "rounded,dotted",
                   color=BLUE if open_ else GREY, fillcolor="#DDEBF5" if open_ else "#FFFFFF",
                   penwidth="1.5")

    def _hypervisor(self, graph: graphviz.Digraph, snapshot: Snapshot) -> None:
        if not snapshot.guests:
            self._placeholder(graph, "no-qemu", "hypervisor",
                              "no guests yet: kit.Guest('web1').start() starts one")
        for guest in snapshot.guests:
            state = _PROCESS_LOOK.get(guest.state, guest.state)
            size = _box_size(state, 4, f"QEMU · {guest.name}", "PID 4194304 · TCG",
                             "RSS 99999 MiB · 999 threads", *_PROCESS_WORDS.values())
            self._node(graph, _qemu_node(guest), "hypervisor", label=_qemu_label(guest),
                       **size, **look(state).attrs())

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
        self._node(graph, name, layer, label=text, shape="plaintext", fontcolor="#666666",
                   fontsize="10")

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
        self._keep_order(graph, [_qemu_node(guest) for guest in snapshot.guests])
        self._keep_order(graph, _host_row(snapshot.guests))
        if not any(guest.services for guest in snapshot.guests):
            graph.edge(_os_node(snapshot.guests[0]), "no-apps", id=self._id("runs", "no-apps"),
                       style="invis")

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
        graph.edge(f"os/{link.a}", f"os/{link.b}", id=self._id("link", link.a, link.b),
                   xlabel=" link up " if link.up else " ✖ link down ", dir="both",
                   arrowhead="dot", arrowtail="dot", constraint="false",
                   style="solid" if link.up else "dashed", penwidth="2" if link.up else "1.5",
                   color=GREEN if link.up else VERMILLION,
                   fontcolor="#00684C" if link.up else VERMILLION)

    # -- legend --

    def _legend(self, graph: graphviz.Digraph) -> None:
        attrs = {"id": self._id("legend"), "label": "LEGEND", "labelloc": "b", "style": "rounded",
                 "color": "#999999", "fontcolor": "#333333", "fontsize": "10", "margin": "8"}
        with graph.subgraph(name="cluster_legend", graph_attr=attrs) as legend:
            entries = [*(f"legend/{state}" for state in LEGEND_STATES), "legend/lines"]
            rows = [entries[i:i + 2] for i in range(0, len(entries), 2)]
            for row in rows:
                with legend.subgraph(graph_attr={"rank": "same"}) as same:
                    for entry in row:
                        self._legend_entry(same, entry.split("/")[1])
                    if len(row) == 2:
                        same.edge(row[0], row[1], style="invis",
                                  id=self._id("legend", "row", row[1].split("/")[1]))
        for high, low in itertools.pairwise(rows):  # top to bottom, column by column
            for top, bottom in zip(high, low, strict=False):
                graph.edge(bottom, top, style="invis",
                           id=self._id("legend", "order", top.split("/")[1]))

    def _legend_entry(self, graph: graphviz.Digraph, entry: str) -> None:
        if entry == "lines":
            graph.node("legend/lines", id=self._id("legend", "lines"), shape="plaintext",
                       fontsize="9", label=_LEGEND_LINES)
            return
        state_look = look(entry)
        graph.node(f"legend/{entry}", id=self._id("legend", entry), label=state_look.text,
                   fontsize="10", width="1.3", height="0.3", **state_look.attrs())


_LEGEND_LINES = (
    '<<TABLE BORDER="0" CELLSPACING="1" CELLPADDING="1">'
    '<TR><TD ALIGN="LEFT">—— runs on</TD></TR>'
    '<TR><TD ALIGN="LEFT"><FONT COLOR="#0072B2">━━ door: host port → guest</FONT></TD></TR>'
    '<TR><TD ALIGN="LEFT"><FONT COLOR="#CC79A7">→ shared folder, read-only</FONT></TD></TR>'
    '<TR><TD ALIGN="LEFT"><FONT COLOR="#CC79A7">↔ shared folder, writable</FONT></TD></TR>'
    '<TR><TD ALIGN="LEFT"><FONT COLOR="#009E73">●—● link up</FONT></TD></TR>'
    '<TR><TD ALIGN="LEFT"><FONT COLOR="#D55E00">●- -● link down</FONT></TD></TR>'
    "</TABLE>>"
)


# -- names and helpers ----------------------------------------------------------


@contextmanager
def _row(cluster: graphviz.Digraph) -> Iterator[graphviz.Digraph]:
    """One layer's own nodes on one row, so flat edges can keep the columns in order."""
    with cluster.subgraph(graph_attr={"rank": "same"}) as row:
        yield row


def _qemu_node(guest: GuestSnapshot) -> str:
    return f"qemu/{guest.name}"


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
    """The same attributes with translucent colours: present but in the background."""
    faded = dict(attrs)
    for key in ("color", "fillcolor", "fontcolor"):
        if key in faded:
            faded[key] = ":".join(_translucent(c) for c in faded[key].split(":"))
    faded.setdefault("fontcolor", BLACK + FADED_ALPHA)
    faded.setdefault("color", BLACK + FADED_ALPHA)
    return faded


def _translucent(colour: str) -> str:
    return colour + FADED_ALPHA if re.fullmatch(r"#[0-9A-Fa-f]{6}", colour) else colour
