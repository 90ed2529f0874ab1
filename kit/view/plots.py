"""Small matplotlib figures, rendered to SVG bytes for an ``ipywidgets.Image``.

Why bytes and not ``plt.show()``: a figure shown inside a widget stays where
the lesson put it, updates in place when a button measures again, and works
the same in a headless notebook run.  Why SVG: it stays sharp at any size, on
a projector too.  Figures are made with :class:`matplotlib.figure.Figure`
directly, never through ``pyplot``: the kit neither changes the learner's
matplotlib backend nor leaves figures in pyplot's list, so the learner's own
plots in the same notebook behave as they would without the kit.  Each figure
has a white background of its own, so its text reads in a dark theme too.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BLUE = "#0072B2"
ORANGE = "#E69F00"


IMAGE_FORMAT = "svg+xml"  # for ipywidgets.Image(format=...)


def new_figure(width: float, height: float, **kwargs: Any) -> Figure:
    """A figure of its own (not pyplot's), on white."""
    return Figure(figsize=(width, height), facecolor="white", **kwargs)


def to_svg(figure: Figure) -> bytes:
    """The figure as SVG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def bar_svg(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
            color: str = BLUE) -> bytes:
    """A bar chart with each bar's value written on it."""
    figure = new_figure(5.0, 2.8)
    axes = figure.subplots()
    bars = axes.bar(list(labels), list(values), color=color)
    axes.bar_label(bars, fmt="%.0f")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    return to_svg(figure)


def step_svg(times: Sequence[float], counts: Sequence[int], *, title: str, xlabel: str,
             ylabel: str) -> bytes:
    """A count that changes at moments (instances running over time), as steps."""
    figure = new_figure(5.0, 2.8)
    axes = figure.subplots()
    axes.step(list(times), list(counts), where="post", color=BLUE, marker="o")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    return to_svg(figure)


PHASE_COLORS = ("#999999", "#56B4E9", "#0072B2", "#009E73", "#E69F00", "#D55E00")


def stacked_svg(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                title: str, ylabel: str) -> bytes:
    """One stacked bar per label: each series (name, values) is one layer of the stack.

    Used for boot phases: one bar per boot, one colour per phase, so where the
    time goes and how much it varies from boot to boot show at a glance.
    """
    figure = new_figure(6.0, 3.2)
    axes = figure.subplots()
    bottom = [0.0] * len(labels)
    for (name, values), color in zip(series, _cycle(PHASE_COLORS, len(series)), strict=True):
        axes.bar(list(labels), list(values), bottom=bottom, label=name, color=color)
        bottom = [low + value for low, value in zip(bottom, values, strict=True)]
    for index, total in enumerate(bottom):
        axes.annotate(f"{total:.2f}", (index, total), ha="center", va="bottom", fontsize=8)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    handles, names = axes.get_legend_handles_labels()
    axes.legend(handles[::-1], names[::-1], fontsize=7, loc="upper left",  # stack order
                bbox_to_anchor=(1.0, 1.0), frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return to_svg(figure)


def line_svg(xs: Sequence[float], lines: Sequence[tuple[str, Sequence[float]]], *,
             title: str, xlabel: str, ylabel: str) -> bytes:
    """Lines over the same x values (e.g. host memory as guests are added), with markers."""
    figure = new_figure(5.0, 2.8)
    axes = figure.subplots()
    for (name, values), color in zip(lines, _cycle((BLUE, ORANGE), len(lines)), strict=True):
        axes.plot(list(xs), list(values), marker="o", label=name, color=color)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(bottom=0)
    if len(lines) > 1:
        axes.legend(fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return to_svg(figure)


def paired_bars_svg(measures: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]], *,
                    title: str, log: bool = False) -> bytes:
    """One small panel per measure, one bar per group (e.g. container vs VM).

    Each measure has its own unit and scale, so each gets its own panel;
    ``log=True`` uses a log scale where the two differ a hundredfold.
    """
    figure = new_figure(3.4 * len(measures), 3.0, layout="constrained")
    all_axes = figure.subplots(1, len(measures))
    names = [name for name, _ in groups]
    colors = list(_cycle((ORANGE, BLUE), len(groups)))
    for index, (axes, measure) in enumerate(zip(_axes_list(all_axes), measures, strict=True)):
        values = [values[index] for _, values in groups]
        bars = axes.bar(names, values, color=colors)
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
        axes.set_title(measure, fontsize=9)
        axes.tick_params(axis="x", labelsize=8)
        if log:
            axes.set_yscale("log")
            axes.set_ylim(bottom=min(1.0, *values) / 2)
        axes.spines[["top", "right"]].set_visible(False)
    figure.suptitle(title)
    return to_svg(figure)


def _cycle(colors: Sequence[str], count: int) -> list[str]:
    return [colors[index % len(colors)] for index in range(count)]


def _axes_list(axes: Any) -> list[Any]:
    """subplots() gives one Axes for one panel, an array of them for more."""
    return list(axes.flat) if hasattr(axes, "flat") else [axes]
