"""Every figure of kit.view.plots renders to non-empty PNG bytes, without a display."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

from kit.view import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_backend_needs_no_display() -> None:
    assert matplotlib.get_backend().lower() == "agg"


def test_each_figure_renders_to_png_and_is_closed() -> None:
    before = len(plt.get_fignums())
    figures = [
        plots.bar_png(["a", "b"], [1.0, 2.0], title="t", ylabel="y"),
        plots.step_png([0, 1, 2], [0, 2, 1], title="t", xlabel="x", ylabel="y"),
        plots.stacked_png(["boot 1", "boot 2"], [("kernel", [0.6, 0.7]), ("init", [0.5, 0.4])],
                          title="t", ylabel="s"),
        plots.line_png([1, 2, 3], [("rss", [100, 200, 300]), ("given", [64, 128, 192])],
                       title="t", xlabel="guests", ylabel="MiB"),
        plots.paired_bars_png(["ms", "MiB"], [("container", [10, 3]), ("vm", [1200, 120])],
                              title="t", log=True),
        plots.paired_bars_png(["only one"], [("a", [1]), ("b", [2])], title="t"),
    ]
    for png in figures:
        assert png.startswith(PNG) and len(png) > 1000
    assert len(plt.get_fignums()) == before
