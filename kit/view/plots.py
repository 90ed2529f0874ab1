"""Small matplotlib figures, rendered to PNG bytes for an ``ipywidgets.Image``.

Why PNG bytes and not ``plt.show()``: a figure shown inside a widget stays
where the lesson put it, updates in place when a button measures again, and
works the same in a headless notebook run.  The Agg backend is chosen
explicitly, so no display is ever needed.  Every figure is closed once
rendered, so a lesson that measures many times does not pile figures up.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BLUE = "#0072B2"
ORANGE = "#E69F00"


def to_png(figure: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed afterwards."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def bar_png(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
            color: str = BLUE) -> bytes:
    """A bar chart with each bar's value written on it."""
    figure, axes = plt.subplots(figsize=(5.0, 2.8))
    bars = axes.bar(list(labels), list(values), color=color)
    axes.bar_label(bars, fmt="%.0f")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    return to_png(figure)


def step_png(times: Sequence[float], counts: Sequence[int], *, title: str, xlabel: str,
             ylabel: str) -> bytes:
    """A count that changes at moments (instances running over time), as steps."""
    figure, axes = plt.subplots(figsize=(5.0, 2.8))
    axes.step(list(times), list(counts), where="post", color=BLUE, marker="o")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    return to_png(figure)


PHASE_COLORS = ("#999999", "#56B4E9", "#0072B2", "#009E73", "#E69F00", "#D55E00")


def stacked_png(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                title: str, ylabel: str) -> bytes:
    """One stacked bar per label: each series (name, values) is one layer of the stack.

    Used for boot phases: one bar per boot, one colour per phase, so where the
    time goes and how much it varies from boot to boot show at a glance.
    """
    figure, axes = plt.subplots(figsize=(6.0, 3.2))
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
    return to_png(figure)


def line_png(xs: Sequence[float], lines: Sequence[tuple[str, Sequence[float]]], *,
             title: str, xlabel: str, ylabel: str) -> bytes:
    """Lines over the same x values (e.g. host memory as guests are added), with markers."""
    figure, axes = plt.subplots(figsize=(5.0, 2.8))
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
    return to_png(figure)


def paired_bars_png(measures: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]], *,
                    title: str, log: bool = False) -> bytes:
    """One small panel per measure, one bar per group (e.g. container vs VM).

    Each measure has its own unit and scale, so each gets its own panel;
    ``log=True`` uses a log scale where the two differ a hundredfold.
    """
    figure, all_axes = plt.subplots(1, len(measures), figsize=(3.4 * len(measures), 3.0),
                                    layout="constrained")
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
    return to_png(figure)


def _cycle(colors: Sequence[str], count: int) -> list[str]:
    return [colors[index % len(colors)] for index in range(count)]


def _axes_list(axes: Any) -> list[Any]:
    """subplots() gives one Axes for one panel, an array of them for more."""
    return list(axes.flat) if hasattr(axes, "flat") else [axes]
