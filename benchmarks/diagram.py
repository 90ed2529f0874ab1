"""How fast the layer diagram is drawn, and how soon a live one shows a change.

Two measures:

- render time: a snapshot (built by hand, with 1, 4 and 8 guests in mixed
  states, with doors, a folder and links) turned into DOT and then SVG by
  Graphviz's ``dot``: the median of ``--renders`` drawings each, split into
  building the DOT (Python) and running ``dot``;
- live delay: a real guest is paused and resumed ``--changes`` times, slowly
  (so the throttle never holds a redraw back); for each change, the time from
  the moment the kit saw the new state to the moment a ``LiveDiagram``
  assigned an SVG showing it, and from the ``g.pause()``/``g.resume()`` call
  to the same moment.  Then a burst of quick changes, to count the redraws.

Prints a table of medians and writes JSON.

    .venv/bin/python benchmarks/diagram.py --renders 20 --changes 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import graphviz

import kit
from kit.hypervisor import accelerator
from kit.view import diagram
from kit.view.picture import GuestSnapshot, HostSnapshot, Link, Service, SharedFolder, Snapshot
from kit.widgets.live_diagram import MIN_INTERVAL_S, LiveDiagram

RESULTS = Path(__file__).parent / "results"
STATES = ("running", "paused", "booting", "crashed", "stopped", "running", "stopping", "created")


def made_up_snapshot(guests: int) -> Snapshot:
    host = HostSnapshot("bench", "Some CPU @ 2.90GHz", 2, 7940, 5120, "tcg",
                        "TCG (software emulation)", "broken")
    made = tuple(made_up_guest(i) for i in range(guests))
    links = tuple(Link(f"g{i}", f"g{i + 1}", up=i % 4 == 0) for i in range(0, guests - 1, 2))
    return Snapshot(host, made, links)


def made_up_guest(i: int) -> GuestSnapshot:
    state = STATES[i % len(STATES)]
    alive = state not in ("created", "stopped")
    return GuestSnapshot(
        name=f"g{i}", state=state, accelerator="tcg", memory_mb=128, cpus=1,
        pid=1000 + i if alive else None, kernel="6.1.0-56-cloud-amd64",
        rss_mb=98.0 if alive else None, threads=5 if alive else None,
        services=(Service("web server", 80, 8080 + i if i % 2 == 0 else None),),
        shared_folders=(SharedFolder("/srv/share", "/mnt", writable=True),) if i == 1 else (),
    )


def measure_render(guests: int, renders: int) -> dict[str, float]:
    snapshot = made_up_snapshot(guests)
    build, draw, sizes = [], [], []
    for _ in range(renders):
        started = time.perf_counter()
        graph = diagram.layers(snapshot, graph_id="bench")
        built = time.perf_counter()
        svg = diagram.render_svg(graph)
        build.append(built - started)
        draw.append(time.perf_counter() - built)
        sizes.append(len(svg.encode()))
    nodes = graph.source.count(" [label=")
    return {"guests": guests, "nodes": nodes,
            "dot_build_ms": 1000 * statistics.median(build),
            "svg_render_ms": 1000 * statistics.median(draw),
            "total_ms": 1000 * statistics.median(b + d for b, d in zip(build, draw, strict=True)),
            "svg_kb": statistics.median(sizes) / 1024}


def measure_dot_startup(renders: int) -> float:
    """``dot`` on a one-node graph: what every render pays before any layout (ms)."""
    graph = graphviz.Digraph(body=["a"])
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        graph.pipe(format="svg")
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def wait_shown(view: LiveDiagram, name: str, state: str, after: float,
               timeout: float = 5.0) -> float:
    """When ``view`` assigned an SVG showing ``state`` (drawn after ``after``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rendered = view.last_render_at
        if (rendered is not None and rendered > after
                and diagram.shown_state(view.svg, name, view.graph_id) == state):
            return rendered
        time.sleep(0.002)
    raise TimeoutError(f"the diagram did not show {name} {state} within {timeout:g} s")


def measure_live(changes: int) -> dict[str, object]:
    seen_to_svg, call_to_svg = [], []
    with kit.Guest("bench-diagram") as g:
        view = LiveDiagram([g])
        try:
            for i in range(changes):
                time.sleep(MIN_INTERVAL_S + 0.1)  # let the throttle rest: measure one change
                called = time.monotonic()
                g.pause() if i % 2 == 0 else g.resume()
                expected = "paused" if i % 2 == 0 else "running"
                shown_at = wait_shown(view, g.name, expected, called)
                assert view.last_change_at is not None
                seen_to_svg.append(shown_at - view.last_change_at)
                call_to_svg.append(shown_at - called)
            burst = measure_burst(g, view)
        finally:
            view.close()
    return {"seen_to_svg_ms": [1000 * s for s in seen_to_svg],
            "call_to_svg_ms": [1000 * s for s in call_to_svg],
            "median_seen_to_svg_ms": 1000 * statistics.median(seen_to_svg),
            "median_call_to_svg_ms": 1000 * statistics.median(call_to_svg),
            "max_call_to_svg_ms": 1000 * max(call_to_svg), **burst}


def measure_burst(g: kit.Guest, view: LiveDiagram, pairs: int = 10) -> dict[str, float]:
    """Pause and resume as fast as QMP allows: how many redraws, and is the last one right."""
    time.sleep(MIN_INTERVAL_S + 0.1)
    before = view.render_count
    started = time.monotonic()
    for _ in range(pairs):
        g.pause()
        g.resume()
    ended = time.monotonic()
    wait_shown(view, g.name, "running", ended)
    time.sleep(2 * MIN_INTERVAL_S)
    return {"burst_changes": 2 * pairs, "burst_s": ended - started,
            "burst_redraws": view.render_count - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=RESULTS / "diagram.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    startup = measure_dot_startup(args.renders)
    renders = [measure_render(n, args.renders) for n in (1, 4, 8)]
    live = measure_live(args.changes)
    print_table(renders, live, startup, args)
    print(f"(load average {load_before:.1f} on {os.cpu_count()} CPUs when this began)")
    report = {
        "command": " ".join(["benchmarks/diagram.py", *sys.argv[1:]]),
        "graphviz": dot_version(), "graphviz_python": graphviz.__version__,
        "accelerator": accelerator.accelerator().name, "cpus": os.cpu_count(),
        "renders_each": args.renders, "changes": args.changes,
        "min_interval_s": MIN_INTERVAL_S, "load_average_1min": load_before,
        "dot_startup_ms": startup, "render": renders, "live": live,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {args.json}")
    return 0


def dot_version() -> str:
    result = subprocess.run(["dot", "-V"], capture_output=True, text=True, check=False)
    return result.stderr.strip()


def print_table(renders: list[dict[str, float]], live: dict[str, object], startup: float,
                args: argparse.Namespace) -> None:
    print(f"\nsnapshot → DOT → SVG, median of {args.renders} renders")
    print(f"{'guests':>6}{'nodes':>7}{'DOT (ms)':>10}{'dot (ms)':>10}{'total (ms)':>12}"
          f"{'SVG (KiB)':>11}")
    for r in renders:
        print(f"{r['guests']:>6}{r['nodes']:>7}{r['dot_build_ms']:>10.2f}"
              f"{r['svg_render_ms']:>10.2f}{r['total_ms']:>12.2f}{r['svg_kb']:>11.1f}")
    print(f"(dot on a one-node graph: {startup:.2f} ms: its start-up, paid by every render)")
    print(f"\nlive diagram, real guest, median of {args.changes} pause/resume changes")
    print(f"{'state seen → SVG assigned (ms)':<36}{live['median_seen_to_svg_ms']:>8.1f}")
    print(f"{'pause()/resume() call → SVG (ms)':<36}{live['median_call_to_svg_ms']:>8.1f}")
    print(f"{'   slowest of them (ms)':<36}{live['max_call_to_svg_ms']:>8.1f}")
    print(f"burst: {live['burst_changes']} changes in {live['burst_s']:.2f} s gave "
          f"{live['burst_redraws']} redraws (at most one per {MIN_INTERVAL_S:g} s)")


if __name__ == "__main__":
    sys.exit(main())
