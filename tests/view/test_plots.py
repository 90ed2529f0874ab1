"""Every figure of kit.view.plots renders to SVG, and leaves the learner's matplotlib alone."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from kit.view import plots


def all_figures() -> list[bytes]:
    return [
        plots.bar_svg(["a", "b"], [1.0, 2.0], title="t", ylabel="y"),
        plots.step_svg([0, 1, 2], [0, 2, 1], title="t", xlabel="x", ylabel="y"),
        plots.stacked_svg(["boot 1", "boot 2"], [("kernel", [0.6, 0.7]), ("init", [0.5, 0.4])],
                          title="t", ylabel="s"),
        plots.line_svg([1, 2, 3], [("rss", [100, 200, 300]), ("given", [64, 128, 192])],
                       title="t", xlabel="guests", ylabel="MiB"),
        plots.paired_bars_svg(["ms", "MiB"], [("container", [10, 3]), ("vm", [1200, 120])],
                              title="t", log=True),
        plots.paired_bars_svg(["only one"], [("a", [1]), ("b", [2])], title="t"),
    ]


def test_each_figure_is_an_svg_that_stays_sharp_at_any_size() -> None:
    for svg in all_figures():
        root = ElementTree.fromstring(svg)
        assert root.tag.endswith("svg") and len(svg) > 1000


def test_the_learners_backend_and_figures_are_left_alone() -> None:
    """In a fresh interpreter: pyplot's backend and figure list are as before the kit's plots."""
    script = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt\n"
        "plt.figure()\n"
        "from tests.view.test_plots import all_figures; all_figures()\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["svg", "1"], done.stdout + done.stderr
