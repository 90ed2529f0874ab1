"""What every kit widget shares: the error banner, guarded callbacks, throttling.

Three rules from DESIGN.md live here so that each widget cannot forget them:

* a failure in a callback or a background job is *shown* (in the widget's
  banner, with the fix) and *recorded* (so ``kit.raise_recorded_errors()``
  fails a headless notebook run when a button would have failed);
* updates that come from the kit loop thread only assign traits, and are
  throttled, because every change resends the whole value to the browser;
* listeners are let go on ``close()``, or a closed widget would keep being
  fed (and keep the guest alive in memory) for the rest of the session.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import ipywidgets as widgets

from kit.core import incidents, kitloop
from kit.core.errors import KitError
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.view import markup
from kit.view.markup import escape, pre

log = logging.getLogger(__name__)

T = TypeVar("T")

# -- slow work --------------------------------------------------------------------


class Working:
    """What slow work tells its status line: each step as it goes, then when it finished."""

    def __init__(self, status: widgets.HTML) -> None:
        self.status = status
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        """Say what is happening now (work that reports progress takes this as its callback)."""
        self.status.value = markup.box("pending", markup.inline(text), word="…")

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def done(self, text: str) -> None:
        self.status.value = (f'<small style="color:{markup.QUIET_TEXT}">{markup.inline(text)} '
                             f'({time.strftime("%H:%M:%S")})</small>')


@contextlib.contextmanager
def working(status: widgets.HTML, *buttons: widgets.Button) -> Iterator[Working]:
    """Slow work a button started: the buttons wait meanwhile, the status line says what runs.

    A failure clears the status line and goes on to the widget's guard,
    whose banner says what went wrong.
    """
    for button in buttons:
        button.disabled = True
    try:
        yield Working(status)
    except BaseException:
        status.value = ""
        raise
    finally:
        for button in buttons:
            button.disabled = False


# -- showing errors ----------------------------------------------------------------


def describe_error(error: BaseException) -> tuple[str, str]:
    """(what happened, what to do) in plain words, for any exception."""
    if isinstance(error, KitError):
        hint = error.hint or "Read the message above; python -m kit doctor checks this machine."
        return error.message, hint
    return (
        f"{type(error).__name__}: {error}",
        "This was not expected. The full traceback is in kit.core.incidents.recorded(); "
        "please report it with the steps that led here.",
    )


class ErrorBanner(widgets.HBox):  # type: ignore[misc]
    """The one place a widget says what went wrong and how to fix it.

    Hidden while there is nothing to say; ``text`` is the plain message (tests
    and screen readers read that, not the HTML).
    """

    def __init__(self) -> None:
        self.message = widgets.HTML()
        self.dismiss = widgets.Button(
            description="✕", tooltip="Hide this message",
            layout=widgets.Layout(width="2.5em", min_width="2.5em"),
        )
        super().__init__(children=(self.message, self.dismiss), layout=widgets.Layout(
            display="none", border_left="5px solid #D55E00", padding="2px 6px",
            margin="2px 0", align_items="flex-start", justify_content="space-between",
        ))
        self.text = ""
        self.dismiss.on_click(lambda _: self.clear())

    def show(self, error: BaseException) -> None:
        what, fix = describe_error(error)
        self.text = f"{what}\nWhat to do: {fix}"
        self.message.value = (
            f'<div style="background:{markup.ERROR_BACKGROUND};color:{markup.TEXT};'
            'padding:4px 6px">'
            f"<b>⚠ Problem:</b> {escape(what)}<br><b>What to do:</b> {escape(fix)}"
            f"{_details(error)}</div>"
        )
        self.layout.display = "flex"

    def clear(self) -> None:
        self.text = ""
        self.message.value = ""
        self.layout.display = "none"


def _details(error: BaseException) -> str:
    """QEMU's command and log, when the error carries them: the evidence behind the message."""
    if not isinstance(error, KitError) or not (error.log or error.command):
        return ""
    parts = []
    if error.exit_code is not None:
        parts.append(f"exit code: {error.exit_code}")
    if error.command:
        parts.append("command: " + shlex.join(error.command))
    if error.log:
        parts.append("last lines of the log:\n" + "\n".join(error.log.splitlines()[-20:]))
    return f"<details><summary>details</summary>{pre(chr(10).join(parts), '12em')}</details>"


# -- the base class ------------------------------------------------------------------


class KitWidget(widgets.VBox):  # type: ignore[misc]
    """A VBox with an error banner on top, guarded callbacks and clean closing.

    Subclasses build their controls, then call :meth:`_set_body` with them.
    """

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.banner = ErrorBanner()
        self._label = label
        self._cleanups: list[Callable[[], object]] = []
        self._closed = False

    def __repr__(self) -> str:
        # ipywidgets' own repr lists every child's every trait: pages of text
        # wherever a widget is printed instead of drawn.
        guest = getattr(self, "guest", None)
        of = f" of guest {guest.name}" if isinstance(guest, Guest) else ""
        return f"<{type(self).__name__}{of}>"

    def _set_body(self, *children: widgets.Widget) -> None:
        self.children = (self.banner, *children)

    def _guarded(self, what: str, fn: Callable[..., T]) -> Callable[..., T | None]:
        """``fn`` with its errors recorded and shown in the banner."""
        where = f"{self._label}: {what}"
        return incidents.guarded(where, on_error=self.banner.show)(fn)

    def attempt(self, what: str, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` now for this widget; an error is shown in its banner and recorded.

        For code outside the widget that updates it (a lesson redrawing every
        view of a measurement): the widget, not the caller, says what failed.
        """
        return self._guarded(what, fn)()

    def _callback(self, what: str, fn: Callable[[], object]) -> Callable[..., None]:
        """A button or submit handler: clears the old message, then runs ``fn`` guarded."""
        guarded = self._guarded(what, fn)

        def handler(*_: object) -> None:
            self.banner.clear()
            guarded()

        return handler

    def _in_background(self, what: str, fn: Callable[[], object]) -> threading.Thread:
        """Run slow work (a boot takes seconds) off the kernel's thread, still guarded."""
        job = threading.Thread(target=self._guarded(what, fn), name=f"kit-widget-{what}",
                               daemon=True)
        job.start()
        return job

    def _on_close(self, cleanup: Callable[[], object]) -> None:
        self._cleanups.append(cleanup)

    def _follow_guest(self, guest: Guest, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(state)`` (guarded) on each state change of ``guest``.

        The machine is followed by its name: when a new guest of the same name
        starts (``kit.Guest("mine", memory_mb=..., replace=True).start()``
        makes the machine again), the new one is followed from then on, and
        if it replaces the widget's own ``guest``, that becomes the new one
        too (:meth:`_adopt`).  So a panel, a console or a table never goes
        on showing a machine that is gone beside a diagram that shows its
        successor.
        """
        guarded = self._guarded("following the guest's state", on_change)
        followed = [guest]

        def listener(changed: Guest, state: str) -> None:
            current = followed[0]
            if changed is not current:
                if not replaces(changed, current):
                    return
                followed[0] = changed
                if getattr(self, "guest", None) is current:
                    self._adopt(changed)
            guarded(state)

        self._on_close(registry.subscribe(listener))

    def _look_while_running(self, what: str, look: Callable[[], object],
                            idle: Callable[[], object]) -> None:
        """Keep figures only a running guest can give (its processes, its memory) current.

        Each time the widget's guest, or a new machine of its name, is up
        and running, ``look`` runs again, off the kit loop (it may ask QMP or
        the agent); when the guest has no process any more, ``idle`` says so.
        The figures never describe a machine that is gone, beside a diagram
        that already shows its successor.  A guest that goes away while
        ``look`` runs is no failure: ``idle`` is shown instead.
        """
        def looked() -> None:
            try:
                look()
            except Exception:
                if self.guest.state.hypervisor_answers:
                    raise
                idle()

        def on_state(state: str) -> None:
            if state == "running":
                self._in_background(what, looked)
            elif not self.guest.state.hypervisor_answers:
                idle()

        self._follow_guest(self.guest, on_state)

    def _adopt(self, guest: Guest) -> None:
        """Follow ``guest``, a new machine that took the name of the one shown.

        Runs on the kit loop thread, before the state change is shown;
        subclasses that keep more of the old guest than ``self.guest``
        extend it.
        """
        self.guest = guest

    def _poke_every(self, seconds: float, throttle: Throttle) -> None:
        """Poke ``throttle`` every ``seconds`` on the kit loop, until the widget closes.

        For views of things that send no events (other notebooks' guests, a
        class's progress files): they are looked at again on a timer.
        """
        loop = kitloop.get_loop()

        def tick() -> None:
            if self._closed:
                return
            throttle.poke()
            loop.call_later(seconds, tick)

        loop.call_soon_threadsafe(loop.call_later, seconds, tick)

    def close(self) -> None:
        """Let go of every listener, then close this widget and the ones it made."""
        if getattr(self, "_closed", False):  # also called by __del__, maybe half-built
            return
        self._closed = True
        for cleanup in reversed(getattr(self, "_cleanups", [])):
            try:
                cleanup()
            except Exception as error:  # closing must go on
                incidents.record(error, f"{self._label}: closing")
        close_tree(self.children)
        super().close()


def close_tree(children: tuple[widgets.Widget, ...]) -> None:
    """Close widgets and everything inside them (ipywidgets leaves children open)."""
    for child in children:
        close_tree(tuple(getattr(child, "children", ())))
        child.close()


# -- helpers -------------------------------------------------------------------------


# ipywidgets' light colours behind its buttons' default white text read at 2.7:1 to
# 4.1:1 (measured in the browser tests); black on them reaches 4.5:1 and more, in the
# light and the dark theme.  "primary" and "danger" are dark enough for white.
DARK_TEXT_STYLES = frozenset({"info", "success", "warning"})


def set_button_style(button: widgets.Button | widgets.ToggleButton, style: str) -> None:
    """``button.button_style = style``, with a text colour that stays readable on it."""
    button.button_style = style
    button.style.text_color = "black" if style in DARK_TEXT_STYLES else None


def replaces(new: Guest, old: Guest) -> bool:
    """True if ``new`` is another machine that now holds the name ``old`` had.

    Names are unique among live guests: a live guest of the same name that
    is not ``old`` was made to replace it (``replace=True``), or was started
    after ``old`` stopped.
    """
    return new is not old and new.name == old.name and registry.get(new.name) is new


def resolve_guest(guest: Guest | str) -> Guest:
    """A guest from a Guest or a name: the live one of that name, else a new one."""
    if isinstance(guest, Guest):
        return guest
    return registry.get(guest) or Guest(guest)


def on_enter(text: widgets.Text, handler: Callable[[], object]) -> None:
    """Call ``handler`` when Enter is pressed in ``text``.

    The browser sends ``{"event": "submit"}``; ``Text.on_submit`` is deprecated
    in ipywidgets 8, and observing ``value`` would also fire on leaving the box.
    """

    def on_message(_widget: object, content: object, _buffers: object) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            handler()

    text.on_msg(on_message)


def on_loop(fn: Callable[[], T], timeout: float = 5.0) -> T:
    """Run ``fn`` on the kit loop thread, so it cannot interleave with what runs there."""
    if kitloop.in_loop_thread():
        return fn()

    async def run() -> T:
        return fn()

    return kitloop.call(run(), timeout)


class LogView(widgets.HTML):  # type: ignore[misc]
    """Text that keeps arriving (a console, a log), with its newest line in view.

    The widget's own element is the box that scrolls: a fixed maximum
    height, ``overflow: auto``, and its content in a reversed flex column, so
    the browser opens it at the bottom and keeps the bottom in view as text
    is added, without any script.  That element survives every update (only
    its content is replaced), so a learner who scrolled up to read is not
    thrown back to the bottom when new text comes: the box keeps its
    distance from the newest line.  Inside, :func:`kit.view.markup.plain_text`
    is told not to scroll by itself (JupyterLab gives every output ``pre``
    ``overflow: auto``, which made the inner block the scroller, opened at
    its top).
    """

    def __init__(self, max_height: str = "16em", text: str = "") -> None:
        super().__init__(layout=widgets.Layout(
            max_height=max_height, overflow="auto", flex_flow="column-reverse",
            border=f"1px solid {markup.BORDER}", width="auto"))
        self.style.background = markup.CODE_BACKGROUND
        self.style.text_color = markup.TEXT
        self.add_class("kit-log")
        self.text = ""
        self.show(text)

    def show(self, text: str) -> None:
        """Show ``text`` (plain, escaped here) in place of what was shown."""
        self.text = text
        self.value = markup.plain_text(text)


class Throttle:
    """Run ``fn`` on the kit loop at most once per ``interval`` seconds.

    Any number of :meth:`poke` calls in between are merged into one run, and
    the last poke always gets a run after it (nothing is left unshown).
    """

    def __init__(self, fn: Callable[[], object], interval: float) -> None:
        self._fn = fn
        self._interval = interval
        self._lock = threading.Lock()
        self._pending = False
        self._closed = False
        self._last = 0.0

    def poke(self) -> None:
        with self._lock:
            if self._pending or self._closed:
                return
            self._pending = True
            delay = max(0.0, self._last + self._interval - time.monotonic())
        loop = kitloop.get_loop()
        loop.call_soon_threadsafe(loop.call_later, delay, self._fire)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _fire(self) -> None:
        with self._lock:
            self._pending = False
            self._last = time.monotonic()
            if self._closed:
                return
        self._fn()
