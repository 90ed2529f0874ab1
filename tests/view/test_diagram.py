"""The layer diagram, from snapshots built by hand: no QEMU needed (Graphviz is)."""

from __future__ import annotations

import dataclasses
import re
from xml.etree import ElementTree

import pytest

from kit.core.errors import InvalidInput, SetupError
from kit.core.state import GuestState
from kit.hypervisor.doors import Opening
from kit.view import diagram
from kit.view.picture import (
    GuestSnapshot,
    HostSnapshot,
    LinkPicture,
    Move,
    Service,
    SharedFolder,
    Snapshot,
)

STATES = tuple(GuestState)
MAIN_STATES = ("running", "paused", "booting", "crashed", "stopped")

HOST = HostSnapshot(
    hostname="lab1", cpu_model="Some CPU @ 2.90GHz", cpus=2, memory_total_mb=7940,
    memory_available_mb=5120, accelerator="tcg", accelerator_label="TCG (software emulation)",
    kvm="broken",
)


def guest(name: str = "web1", state: str = "running", *, host_port: int | None = None,
          folders: tuple[SharedFolder, ...] = (), services: int = 1) -> GuestSnapshot:
    alive = state not in ("created", "stopped")
    return GuestSnapshot(
        name=name, state=state, accelerator="tcg", memory_mb=128, cpus=1,
        pid=4321 if alive else None, kernel="6.1.0-kit", rss_mb=98.4 if alive else None,
        threads=5 if alive else None,
        services=(Service("web server", 80, host_port), Service("database", 5432))[:services],
        shared_folders=folders,
    )


def snap(*guests: GuestSnapshot, links: tuple[LinkPicture, ...] = ()) -> Snapshot:
    return Snapshot(host=HOST, guests=guests, links=links)


def dot(snapshot: Snapshot, **options: str | None) -> str:
    return str(diagram.layers(snapshot, **options).source)  # type: ignore[arg-type]


def line_of(source: str, name: str) -> str:
    """The DOT statement that declares node ``name`` (not an edge that mentions it)."""
    pattern = re.compile(rf'^\s*"?{re.escape(name)}"? \[')
    found = [line for line in source.splitlines() if pattern.match(line)]
    assert len(found) == 1, (name, found)
    return found[0]


def attr(line: str, key: str) -> str | None:
    match = re.search(rf'\b{key}=("(?:[^"\\]|\\.)*"|<.*>(?= \w+=|\]$)|[^\s\]]+)', line)
    return match.group(1).strip('"') if match else None


def structure(source: str) -> list[str]:
    """The graph's statements with their attribute lists removed: nodes, edges, clusters."""
    return [re.sub(r"\s*\[.*\]\s*$", "", line) for line in source.splitlines()]


def svg_ids(svg: str) -> list[str]:
    return [e.get("id", "") for e in ElementTree.fromstring(svg).iter() if e.get("id")]


# -- states -----------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_each_state_is_drawn_with_its_own_look(state: str) -> None:
    source = dot(snap(guest(state=state)))
    node = line_of(source, "os/web1")
    look = diagram.look(state)
    assert look.text in node
    assert attr(node, "style") == look.style
    assert attr(node, "peripheries") == look.peripheries
    assert look.text in line_of(source, "app/web1/80")


def test_states_differ_without_colour() -> None:
    """Greyscale: each state has its own line style (and fill, border count) and words."""
    looks = [diagram.look(state) for state in STATES]
    assert len({(frozenset(lk.style.split(",")), lk.peripheries) for lk in looks}) == len(looks)
    assert len({frozenset(diagram.look(s).style.split(",")) for s in MAIN_STATES}) == 5
    assert len({lk.word for lk in looks}) == len(looks)
    assert "dashed" in diagram.look("paused").style
    assert "dotted" in diagram.look("booting").style
    assert "dotted" in diagram.look("stopped").style
    assert diagram.look("crashed").peripheries == "2"
    assert diagram.look("crashed").text == "✖ crashed"
    assert diagram.look("stopped").text == "■ stopped"
    assert "paused" in diagram.look("paused").text


def test_the_hypervisor_process_lives_on_while_its_guest_is_paused() -> None:
    source = dot(snap(guest(state="paused")))
    qemu = line_of(source, "qemu/web1")
    assert attr(qemu, "style") == diagram.look("running").style
    assert "vCPUs ❚❚ stopped" in qemu and "PID 4321" in qemu and "RSS 98 MiB" in qemu
    assert "5 threads" in qemu and "TCG" in qemu
    stopped = line_of(dot(snap(guest(state="stopped"))), "qemu/web1")
    assert attr(stopped, "style") == diagram.look("stopped").style
    assert "no process" in stopped and "PID —" in stopped


def test_unknown_state_is_still_drawn_with_its_name() -> None:
    assert "weird" in line_of(dot(snap(guest(state="weird"))), "os/web1")


# -- the layers ---------------------------------------------------------------


def test_layers_are_nested_clusters_with_infrastructure_at_the_bottom() -> None:
    source = dot(snap(guest()))
    assert "rankdir=BT" in source
    openings = [line.strip() for line in source.splitlines() if "subgraph cluster_" in line]
    assert openings == [f"subgraph cluster_{layer} {{" for layer in diagram.LAYERS]
    depth = [len(line) - len(line.lstrip("\t")) for line in source.splitlines()
             if "subgraph cluster_" in line]
    assert depth[:4] == [1, 2, 3, 4]  # each layer inside the one below it


def test_host_facts_are_shown() -> None:
    host = line_of(dot(snap()), "host")
    for fact in ("lab1", "Some CPU @ 2.90GHz", "2 CPUs", "7940 MiB", "5120 MiB free",
                 "accelerator: TCG", "(software emulation)", "KVM: broken"):
        assert fact in host


def test_a_long_cpu_model_wraps_so_the_host_stays_narrow() -> None:
    long_name = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    host = line_of(dot(Snapshot(dataclasses.replace(HOST, cpu_model=long_name))), "host")
    assert "Intel(R) Xeon(R) Platinum" in host and "8375C CPU @ 2.90GHz" in host
    assert long_name not in host


def test_guest_os_facts_are_shown() -> None:
    node = line_of(dot(snap(guest())), "os/web1")
    for fact in ("Linux 6.1.0-kit", "x86_64", "128 MiB", "1 vCPU", "▶ running"):
        assert fact in node


def test_each_guest_column_is_stacked_host_qemu_os_services() -> None:
    source = dot(snap(guest(services=2)))
    for low, high in (("host", '"qemu/web1"'), ('"qemu/web1"', '"os/web1"'),
                      ('"os/web1"', '"app/web1/80"'), ('"os/web1"', '"app/web1/5432"')):
        assert f"\t{low} -> {high} [" in source


def test_labels_are_escaped() -> None:
    odd = GuestSnapshot("web1", "running", "tcg", 128, 1, services=(Service("<b>&", 80),))
    node = line_of(dot(snap(odd)), "app/web1/80")
    assert "&lt;b&gt;&amp;" in node and "<b>&" not in node


# -- optional elements ------------------------------------------------------------


def test_a_forward_is_a_door_from_the_host_to_the_service() -> None:
    source = dot(snap(guest(host_port=8080)))
    assert "web server :80" in line_of(source, "app/web1/80")
    assert "door: 127.0.0.1:8080" in line_of(source, "app/web1/80")
    door = line_of(source, "door/web1/8080")
    assert "door 127.0.0.1:8080" in door and attr(door, "style") == "rounded,filled"
    hops = re.findall(r"(\S+) -> (\S+) \[.*id=kit_forward_web1_8080_\d", source)
    assert hops == [('"door/web1/8080"', '"qemu/web1"'), ('"qemu/web1"', '"os/web1"'),
                    ('"os/web1"', '"app/web1/80"')]


def test_a_door_closes_when_the_guest_stops() -> None:
    source = dot(snap(guest(state="stopped", host_port=8080)))
    assert attr(line_of(source, "door/web1/8080"), "style") == "rounded,dotted"
    assert "style=dotted" in next(line for line in source.splitlines()
                                  if "id=kit_forward_web1_8080_0" in line)


def test_without_a_forward_there_is_no_door() -> None:
    source = dot(snap(guest(host_port=None)))
    assert "door/" not in source
    assert "no door from the host" in line_of(source, "app/web1/80")


@pytest.mark.parametrize(("writable", "mode", "arrowtail"),
                         [(False, "read-only", "none"), (True, "writable", "normal")])
def test_shared_folder_read_only_or_writable(writable: bool, mode: str, arrowtail: str) -> None:
    folder = SharedFolder("/home/me/site", "/mnt", writable=writable)
    source = dot(snap(guest(folders=(folder,))))
    node = line_of(source, "folder/web1/0")
    assert "/home/me/site → /mnt" in node and mode in node
    assert attr(node, "shape") == "folder"
    first_hop = next(line for line in source.splitlines() if "id=kit_folder_web1_0_0" in line)
    assert first_hop.startswith('\t"folder/web1/0" -> "qemu/web1"')
    assert attr(first_hop, "arrowtail") == arrowtail


@pytest.mark.parametrize(("up", "style", "words"), [(True, "solid", "link up"),
                                                    (False, "dashed", "✖ link down")])
def test_link_between_guests_up_or_down(up: bool, style: str, words: str) -> None:
    source = dot(snap(guest("a"), guest("b"), links=(LinkPicture("a", "b", up=up),)))
    edge = next(line for line in source.splitlines() if "id=kit_link_a_b" in line)
    assert edge.startswith('\t"os/a" -> "os/b"')
    assert attr(edge, "style") == style and words in edge
    assert 'FIXEDSIZE="TRUE"' in edge  # one size up or down: nothing moves


def test_a_door_of_another_kind_keeps_its_size_open_or_closed() -> None:
    """Its words are wrapped into a box of one size: opening it moves nothing."""
    def with_door(is_open: bool, words: str) -> Snapshot:
        door = Opening("internet", "internet", is_open, "the host's networks", "eth1", words)
        return snap(dataclasses.replace(guest(), other_doors=(door,)), guest("b"))

    def placed(snapshot: Snapshot) -> list[str]:
        plain = diagram.layers(snapshot).pipe(format="plain", encoding="utf-8")
        return [" ".join(line.split()[:6]) for line in plain.splitlines()
                if line.startswith(("graph", "node"))]

    closed = with_door(False, "closed: the guest reaches nothing outside itself")
    opened = with_door(True, "open: the guest reaches what this host reaches, through "
                             "10.0.2.2 (outbound NAT; the host's own 127.0.0.1 included)")
    assert placed(opened) == placed(closed)
    node = line_of(dot(opened), "door/web1/internet/internet")
    assert "open: the guest<BR" in node and "10.0.2.2 (outbound" in node


def test_a_link_to_a_guest_not_shown_is_left_out() -> None:
    assert "kit_link" not in dot(snap(guest("a"), links=(LinkPicture("a", "elsewhere"),)))


@pytest.mark.parametrize("layer", diagram.LAYERS)
def test_highlight_emphasises_one_layer_and_fades_the_others(layer: str) -> None:
    source = dot(snap(guest(host_port=8080)), highlight=layer)
    for other in diagram.LAYERS:
        cluster = next(line for line in source.splitlines() if f"id=kit_layer_{other}" in line)
        if other == layer:
            assert "penwidth=3.5" in cluster and diagram.DARK_BLUE in cluster
        else:
            assert "penwidth=1" in cluster and diagram.FADED_TEXT in cluster
    faded = {"infrastructure": "host", "hypervisor": "qemu/web1", "guest": "os/web1",
             "applications": "app/web1/80"}
    for other, node in faded.items():
        line = line_of(source, node)
        assert (attr(line, "fontcolor") == diagram.FADED_TEXT) == (other != layer), other
        colour = attr(line, "color") or ""
        assert len(colour) == 7, colour  # a paler colour, never a translucent one


def test_a_wrong_highlight_or_graph_id_is_refused_in_plain_words() -> None:
    with pytest.raises(InvalidInput, match="'kernel' is not a layer"):
        diagram.layers(snap(), highlight="kernel")
    with pytest.raises(InvalidInput, match="cannot be a diagram id"):
        diagram.layers(snap(), graph_id="two words")


def test_no_guests_at_all_still_draws_every_layer() -> None:
    source = dot(snap())
    assert "kit.Guest('web1').start()" in source
    svg = diagram.render_svg(diagram.layers(snap()))
    for layer in diagram.LAYERS:
        assert f'id="kit_layer_{layer}"' in svg  # an empty cluster would not be drawn


def test_eight_guests_keep_their_order_left_to_right() -> None:
    states = [STATES[i % len(STATES)] for i in range(8)]
    graph = diagram.layers(snap(*(guest(f"g{i}", s, host_port=8080 + i if i % 2 else None)
                                  for i, s in enumerate(states)),
                                links=(LinkPicture("g0", "g1"), LinkPicture("g4", "g5", up=False))))
    placed = {words[1].strip('"'): (float(words[2]), float(words[4]))  # x, width
              for words in map(str.split, graph.pipe(format="plain",
                                                     encoding="utf-8").splitlines())
              if words[0] == "node"}
    for layer in ("qemu", "os", "app"):
        xs = [placed[f"{layer}/g{i}" + ("/80" if layer == "app" else "")][0] for i in range(8)]
        assert xs == sorted(xs), layer
    for i in range(8):  # columns: each guest's nodes stand one above the other
        (qemu_x, qemu_width), (os_x, _) = placed[f"qemu/g{i}"], placed[f"os/g{i}"]
        assert abs(qemu_x - os_x) < qemu_width / 2


def test_legend_explains_every_state_and_line() -> None:
    legend = diagram.legend_html()
    for state in diagram.LEGEND_STATES:
        assert diagram.look(state).text in legend
        assert diagram.state_class(state) in legend
    for words in ("runs on", "door", "read-only", "writable", "link up", "link down"):
        assert words in legend
    css = diagram.state_css()
    for state in diagram.LEGEND_STATES:
        assert css.count(f".{diagram.state_class(state)}{{") == 2  # light, and dark


# -- the layout stays put ------------------------------------------------------------


def row(states: tuple[str, ...], up: bool = True) -> Snapshot:
    folder = (SharedFolder("/srv", "/mnt", writable=False),)
    return snap(guest("a", states[0], host_port=8080, folders=folder),
                guest("b", states[1]), guest("c", states[2], services=2),
                links=(LinkPicture("a", "b", up=up),))


@pytest.mark.parametrize("state", STATES)
def test_structure_is_the_same_in_every_state(state: str) -> None:
    """Only attributes change with a state: same nodes, edges and clusters, same order."""
    before = structure(dot(row(("running", "running", "running"))))
    after = structure(dot(row((state, "paused", "crashed"), up=False)))
    assert after == before


@pytest.mark.parametrize("layer", [None, *diagram.LAYERS])
def test_structure_is_the_same_whatever_the_highlight(layer: str | None) -> None:
    assert structure(dot(row(("running",) * 3), highlight=layer)) == structure(
        dot(row(("running",) * 3)))


def test_nodes_do_not_move_when_states_change() -> None:
    """The real promise: Graphviz puts every node at the same place."""
    def placed(snapshot: Snapshot, highlight: str | None = None) -> list[str]:
        plain = diagram.layers(snapshot, highlight=highlight).pipe(format="plain",
                                                                   encoding="utf-8")
        return [" ".join(line.split()[:6]) for line in plain.splitlines()
                if line.startswith(("graph", "node"))]

    before = placed(row(("running",) * 3))
    for state in STATES:
        assert placed(row((state, "paused", "crashed"), up=False)) == before, state
    assert placed(row(("booting", "stopped", "created")), highlight="guest") == before
    less_free = dataclasses.replace(HOST, memory_available_mb=7)  # fewer digits: no move
    assert placed(dataclasses.replace(row(("running",) * 3), host=less_free)) == before


# -- SVG ------------------------------------------------------------------------------


def test_svg_is_inline_without_prolog() -> None:
    svg = diagram.render_svg(diagram.layers(snap(guest())))
    assert svg.startswith("<svg")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert "▶ running" in svg


def test_two_diagrams_on_one_page_share_no_id() -> None:
    pictures = {gid: diagram.render_svg(diagram.layers(row(("running", "paused", "crashed")),
                                                       graph_id=gid))
                for gid in ("lesson1", "lesson2")}
    ids = {gid: svg_ids(svg) for gid, svg in pictures.items()}
    for gid, found in ids.items():
        assert len(found) > 30
        assert all(i == gid or i.startswith(f"{gid}_") for i in found), found
        assert len(found) == len(set(found)), "an id repeats inside one diagram"
    assert not set(ids["lesson1"]) & set(ids["lesson2"])


def test_shown_state_reads_the_picture() -> None:
    svg = diagram.render_svg(diagram.layers(row(("paused", "running", "crashed")),
                                            graph_id="x1"))
    assert diagram.shown_state(svg, "a", "x1") == "paused"
    assert diagram.shown_state(svg, "c", "x1") == "crashed"
    assert diagram.shown_state(svg, "nobody", "x1") is None


def test_without_graphviz_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetupError) as caught:
        diagram.render_svg(diagram.layers(snap()))
    assert "sudo apt-get install graphviz" in str(caught.value)


def test_a_live_migration_shows_both_qemu_processes_and_the_move() -> None:
    moving = dataclasses.replace(guest("web"), move=Move(4321, 4400, done=False))
    source = dot(snap(moving))
    assert "PID 4400" in line_of(source, "qemu-moved/web") and "receiving" in source
    assert re.search(r'"qemu/web" -> "qemu-moved/web" \[.*moving', source)
    assert "moving from QEMU process 4321 to a new QEMU process 4400" in diagram.describe(
        snap(moving))


def test_after_a_live_migration_the_old_process_stays_as_a_faded_trace() -> None:
    moved = dataclasses.replace(guest("web"), move=Move(4300, 4321, done=True, paused_ms=87))
    source = dot(snap(moved))
    trace = line_of(source, "qemu-moved/web")
    assert "PID 4300" in trace and "ended" in trace and "87 ms" in trace
    assert re.search(r'"qemu-moved/web" -> "qemu/web" \[.*moved live', source)
    assert re.search(r'"qemu-moved/web" -> "qemu/web" \[id=kit_order_qemu_web', source)  # old left
    assert "moved from QEMU process 4300, which has ended, to process 4321" in (
        diagram.describe(snap(moved)))
