"""The live layer diagram: the picture of :mod:`kit.view.diagram`, redrawn as guests change.

How it stays live without polling: it listens to the kit's lifecycle
announcements (:func:`kit.hypervisor.registry.subscribe`), which already carry what QMP
reports (a pause, a resume, a guest panic, a reset).  Each change pokes a
throttle, so a burst of changes gives one redraw, at most one per
:data:`MIN_INTERVAL_S`, and the last change always gets its redraw.

How it keeps QMP flowing: drawing means running Graphviz's ``dot`` (about
14 ms), so the listener, which runs on the kit loop thread, never draws.  It
hands the work to a one-thread worker that takes a snapshot, draws it and
assigns the SVG to ``.value`` (assigning a trait from another thread is safe,
see DESIGN.md).  Each drawing is numbered when its snapshot is taken, so an
older picture never replaces a newer one.

It is an ``ipywidgets.HTML``: the inline SVG replaces itself in place, with no
flicker (an ``Output`` with ``clear_output()`` flickers), and CSS scales it to
the width of the page.

It stays readable: the picture is never shown narrower than the width at
which its smallest text is :data:`kit.view.diagram.MIN_TEXT_PX` pixels tall
(:func:`kit.view.diagram.min_width_px`).  The widget asks for that width as
its own minimum, so a row of widgets (``kit.lesson.beside``) that cannot
give it that much beside a panel wraps it onto a row of its own, full
width; on a page narrower still, the picture scrolls sideways.  Under
JupyterLab's dark theme it is repainted in its dark palette; its legend is
page text below it; and what it shows is said in words, in the SVG's title
and description and in a "the diagram in words" section (``summary``).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Iterable, Sequence

import ipywidgets as widgets

from kit.core import incidents, kitloop
from kit.core.errors import InvalidInput
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.view import colours, diagram, markup, picture
from kit.view.markup import escape
from kit.widgets.base import Throttle, describe_error, replaces

MIN_INTERVAL_S = 0.2
WHERE = "the live layer diagram"

_ids = itertools.count(1)
_worker_lock = threading.Lock()
_worker: concurrent.futures.ThreadPoolExecutor | None = None


def _draw_worker() -> concurrent.futures.ThreadPoolExecutor:
    """One thread draws for every diagram: drawings are short and need no parallelism."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="kit-diagram")
        return _worker


class LiveDiagram(widgets.HTML):  # type: ignore[misc]
    """The four layers of ``guests`` (default: every guest), redrawn when one changes.

    ``highlight`` (``"infrastructure"``, ``"hypervisor"``, ``"guest"`` or
    ``"applications"``) emphasises the layer a lesson is about; it can be set
    at any time.  ``refresh_every`` (seconds, off by default) also redraws
    now and then while a guest runs, for the figures that change without an
    event: free memory and QEMU's resident memory.

    ``keep_stopped=False`` drops a guest from the picture once it has stopped:
    for a fleet whose instances come and go (the cloud lessons), where a
    picture of every instance ever launched would shrink to unreadable.

    It keeps its ``layout.min_width`` at the width its text is readable at
    (``readable_width_px``, capped at the row's full width), even if a
    container sets a smaller one: a row that cannot give it that much wraps
    it onto a row of its own.  ``summary`` says in words what it shows.

    For tests and the benchmark it keeps ``last_change_at`` (the last state
    change it saw), ``last_render_at`` (the last SVG it assigned), both from
    ``time.monotonic()``, and ``render_count``.
    """

    def __init__(self, guests: Sequence[Guest | str] | Guest | str | None = None,
                 highlight: str | None = None, *, refresh_every: float | None = None,
                 keep_stopped: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.keep_stopped = keep_stopped
        self.graph_id = f"kit_live{next(_ids)}"  # "-" would become &#45; in the SVG
        self.svg = ""
        self.summary = ""  # what the picture shows, in words
        self.readable_width_px = 0.0  # the narrowest the picture may be shown
        self.last_change_at: float | None = None
        self.last_render_at: float | None = None
        self.render_count = 0
        self.last_error: BaseException | None = None
        self._lock = threading.Lock()  # what to draw; the kit loop takes it, briefly
        self._show_lock = threading.Lock()  # what is shown; never taken on the kit loop
        self._highlight = diagram.check_highlight(highlight)
        self._chosen: list[Guest | str] | None = None
        self._seen: dict[str, Guest] = {}
        self._taken = self._shown = 0
        self._closed = False
        self._min_width = ""
        self.layout.observe(self._keep_min_width, names="min_width")
        self._throttle = Throttle(self._draw_in_background, MIN_INTERVAL_S)
        self._unsubscribe = registry.subscribe(self._on_state_change)
        self._follow(guests)
        self._draw_guarded()
        if refresh_every:
            self._start_timer(refresh_every)

    # -- what a lesson calls -------------------------------------------------

    @property
    def highlight(self) -> str | None:
        return self._highlight

    @highlight.setter
    def highlight(self, layer: str | None) -> None:
        self._highlight = diagram.check_highlight(layer)  # refused here, not in the background
        self._throttle.poke()

    def follow(self, guests: Iterable[Guest | str] | Guest | str) -> None:
        """Show only ``guests`` (Guest objects, or names of guests started later)."""
        self._follow(guests if isinstance(guests, str | Guest) else list(guests))
        self._throttle.poke()

    def follow_all(self) -> None:
        """Show every guest of this notebook, including those that stopped while shown."""
        self._follow(None)
        self._throttle.poke()

    def refresh(self) -> str:
        """Draw now, in this thread, and return the SVG; raises if it cannot be drawn."""
        try:
            return self._draw()
        except Exception as error:
            self._show_error(error)
            raise

    def close(self) -> None:
        """Stop listening (and the periodic refresh), then close the widget."""
        self._closed = True
        self._unsubscribe()
        self._throttle.close()
        super().close()

    # -- following -----------------------------------------------------------

    def _follow(self, guests: Sequence[Guest | str] | Guest | str | None) -> None:
        if isinstance(guests, str | Guest):
            guests = [guests]  # one guest; a name is not a list of letters
        if guests is not None and not all(isinstance(g, str | Guest) for g in guests):
            raise InvalidInput(
                f"{guests!r} is not a list of guests.",
                hint="Give kit.Guest objects or guest names, e.g. LiveDiagram([g]) or "
                "LiveDiagram(['web1']); or nothing, to show every guest.")
        with self._lock:
            self._chosen = None if guests is None else list(guests)
            for guest in registry.guests() if guests is None else guests:
                if isinstance(guest, Guest):
                    self._seen[guest.name] = guest

    def _follows(self, guest: Guest) -> bool:
        chosen = self._chosen
        return chosen is None or any(
            c is guest or c == guest.name or (isinstance(c, Guest) and replaces(guest, c))
            for c in chosen)

    def _adopt(self, guest: Guest) -> None:
        """A new machine took the name of a chosen guest (``replace=True``): show the new one."""
        if self._chosen is not None:
            self._chosen = [guest if isinstance(c, Guest) and replaces(guest, c) else c
                            for c in self._chosen]

    def _guests(self) -> list[Guest]:
        """The guests to draw, in a stable order (so the layout stays put)."""
        if self._chosen is None:
            found: Iterable[Guest | None] = list(self._seen.values())
        else:
            found = (c if isinstance(c, Guest) else registry.get(c) or self._seen.get(c)
                     for c in self._chosen)
        return [guest for guest in found if guest is not None
                and (self.keep_stopped or guest.state != GuestState.STOPPED)]

    def _on_state_change(self, guest: Guest, state: str) -> None:
        """Runs on the kit loop thread: note the change and ask for a redraw, nothing more."""
        with self._lock:
            if self._closed or not self._follows(guest):
                return
            self._adopt(guest)
            self._seen[guest.name] = guest
            self.last_change_at = time.monotonic()
        self._throttle.poke()

    # -- drawing -------------------------------------------------------------

    def _draw_in_background(self) -> None:
        """Called on the kit loop by the throttle: hand the drawing to the worker."""
        if self._closed:
            return
        try:
            _draw_worker().submit(self._draw_guarded)
        except RuntimeError:  # the worker shut down: the interpreter is exiting
            self._closed = True

    def _draw_guarded(self) -> None:
        try:
            self._draw()
        except Exception as error:
            incidents.record(error, WHERE)
            self._show_error(error)

    def _draw(self) -> str:
        with self._lock:
            self._taken += 1
            number, guests, highlight = self._taken, self._guests(), self._highlight
        state = picture.take(guests)
        summary = diagram.describe(state, highlight)
        drawn = diagram.render_svg(diagram.layers(state, highlight=highlight,
                                                  graph_id=self.graph_id))
        svg = scaled(diagram.accessible(drawn, self.graph_id, _title(state, highlight),
                                        summary))
        self._assign(number, svg, summary)
        return svg

    def _assign(self, number: int, svg: str, summary: str) -> None:
        with self._show_lock:
            if number <= self._shown or self._closed:
                return  # a newer picture is already up, or nobody looks any more
            self._shown = number
            self.svg = svg
            self.summary = summary
            self.last_error = None
            self.readable_width_px = diagram.min_width_px(svg)
            self._set_min_width(f"min({self.readable_width_px:.0f}px, 100%)")
            self.value = framed(svg, summary)
            self.last_render_at = time.monotonic()
            self.render_count += 1

    def _set_min_width(self, width: str) -> None:
        self._min_width = width
        if self.layout.min_width != width:
            self.layout.min_width = width

    def _keep_min_width(self, change: dict[str, object]) -> None:
        """A layout that sets a smaller minimum (a row of widgets) gets the readable one back."""
        if self._min_width and change["new"] != self._min_width:
            self.layout.min_width = self._min_width

    def _show_error(self, error: BaseException) -> None:
        what, fix = describe_error(error)
        with self._show_lock:
            self.last_error = error
            self.value = (
                f'<div style="border-left:5px solid #D55E00;background:{markup.ERROR_BACKGROUND};'
                f'color:{markup.TEXT};padding:6px 8px"><b>⚠ The layer diagram cannot be drawn:'
                f"</b> {escape(what)}<br><b>What to do:</b> {escape(fix)}</div>")

    # -- the optional slow refresh ---------------------------------------------

    def _start_timer(self, seconds: float) -> None:
        """Redraw every ``seconds`` while a shown guest has a process (its RSS moves)."""
        loop = kitloop.get_loop()

        def tick() -> None:
            if self._closed:
                return
            if any(g.state.has_process for g in self._guests()):
                self._throttle.poke()
            loop.call_later(seconds, tick)

        loop.call_soon_threadsafe(loop.call_later, seconds, tick)


def _title(snapshot: picture.Snapshot, highlight: str | None) -> str:
    names = ", ".join(f"{g.name} {diagram.look(g.state).word}" for g in snapshot.guests)
    layer = f", {diagram.LAYER_NAMES[highlight]} layer highlighted" if highlight else ""
    return f"Layer diagram: {names or 'no guests yet'}{layer}"


def scaled(svg: str) -> str:
    """The SVG, sized by CSS: the width it is given, but never below its readable width.

    It shrinks with the page down to :func:`kit.view.diagram.min_width_px`
    (its frame scrolls sideways below that) and grows no larger than
    Graphviz meant it.
    """
    low, high = diagram.min_width_px(svg), diagram.natural_width_px(svg)
    style = (f"width:100%;min-width:{low:.0f}px;max-width:{max(low, high):.0f}px;"
             "height:auto;display:block")
    return svg.replace("<svg ", f'<svg style="{style}" ', 1)


def framed(svg: str, summary: str = "") -> str:
    """The picture, its dark palette, its legend, and what it shows in words."""
    scope = ".kit-live-diagram"
    words = "".join(f"<li>{escape(line)}</li>" for line in summary.splitlines())
    in_words = (f'<details class="kit-diagram-words"><summary>The diagram in words</summary>'
                f'<ul style="margin:2px 0;padding-left:1.4em">{words}</ul></details>'
                if summary else "")
    return (f'<div class="kit-live-diagram" style="max-width:100%;color:{markup.TEXT};'
            f'line-height:{markup.LINE_HEIGHT}">'
            f"<style>{colours.dark_css(svg, scope)}\n{diagram.state_css(scope)}</style>"
            f'<div style="max-width:100%;overflow-x:auto">{svg}</div>'
            f"{diagram.legend_html()}{in_words}</div>")

