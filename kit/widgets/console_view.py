"""The console view: a guest's serial console, live, with a line to type on.

The guest can print far faster than a browser wants to redraw, and every
change of a widget's value resends all of it: so new text is gathered as it
arrives (on the kit loop) and shown at most ten times a second, and only the
last :data:`MAX_CHARS` characters are kept on screen.  The whole console
since boot stays in ``guest.console.text()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ipywidgets as widgets

from kit.core.errors import GuestNotRunning
from kit.hypervisor.console import Console
from kit.hypervisor.guest import Guest
from kit.view.markup import escape
from kit.widgets.base import KitWidget, LogView, Throttle, on_enter, on_loop, resolve_guest

MAX_CHARS = 32_000
UPDATES_PER_SECOND = 10
CTRL_C = "\x03"


def keep_tail(text: str, limit: int = MAX_CHARS) -> str:
    """The last ``limit`` characters, cut at a line start, saying that more came before."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    newline = tail.find("\n")
    if 0 <= newline < 200:
        tail = tail[newline + 1:]
    return "[… earlier output is not shown here; g.console.text() has it …]\n" + tail


class ConsoleView(KitWidget):
    """The serial console of one guest: what its kernel and shell print, and an input line.

    Typing a line and pressing Enter (or *send*) types it on the guest's
    console, as on a terminal plugged into the machine's serial port.
    """

    def __init__(self, guest: Guest | str, height: str = "20em") -> None:
        super().__init__("console view")
        self.guest = resolve_guest(guest)
        self._height = height
        self._lock = threading.Lock()
        self._text = ""
        self._pending: list[str] = []
        self._console: Console | None = None
        self._unsubscribe_console: Callable[[], None] | None = None
        self._build()
        self._flusher = Throttle(self._guarded("showing console text", self._flush),
                                 1 / UPDATES_PER_SECOND)
        self._on_close(self._flusher.close)
        self._on_close(self._detach)
        self._follow_guest(self.guest, self._on_state)
        on_loop(self._attach)
        self._flush()

    def _build(self) -> None:
        self.heading = widgets.HTML(
            f"<b>Serial console of {escape(self.guest.name)}</b> "
            "<small>(what the guest prints on its first serial port, ttyS0)</small>")
        self.screen = LogView(self._height)
        self.input = widgets.Text(placeholder="type a command for the guest's shell, then Enter",
                                  layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.send_button = widgets.Button(description="send", icon="level-down",
                                          layout=widgets.Layout(width="6em"))
        self.interrupt_button = widgets.Button(
            description="Ctrl-C", tooltip="Interrupt the command running on the console",
            layout=widgets.Layout(width="6em"))
        submit = self._callback("typing on the console", self.submit)
        self.send_button.on_click(submit)
        on_enter(self.input, submit)
        self.interrupt_button.on_click(
            self._callback("interrupting", lambda: self.type_text(CTRL_C)))
        self._set_body(self.heading, self.screen,
                       widgets.HBox([self.input, self.send_button, self.interrupt_button]))

    # -- typing -------------------------------------------------------------------

    def submit(self) -> None:
        """Type the input line and press Enter, as the send button does."""
        line = self.input.value
        self.type_text(line + "\n")
        self.input.value = ""

    def type_text(self, text: str) -> None:
        if not self.guest.state.hypervisor_answers:
            raise GuestNotRunning(
                f"cannot type on the console of {self.guest.name}: it is {self.guest.state}.",
                hint="Start the guest first; its console comes alive as it boots.")
        self.guest.console.write(text)

    # -- following the console ----------------------------------------------------------

    @property
    def text(self) -> str:
        """What the view shows now (plain text)."""
        return self._text

    def _attach(self) -> None:
        """Follow the guest's current console; runs on the kit loop, so no text slips by."""
        console = self.guest.console
        if console is self._console:
            return
        self._detach()
        with self._lock:
            self._console = console
            self._pending = []
            self._text = keep_tail(console.text())
        self._unsubscribe_console = console.subscribe(self._on_text)

    def _detach(self) -> None:
        unsubscribe = self._unsubscribe_console
        self._unsubscribe_console = None
        if unsubscribe is not None:
            unsubscribe()

    def _on_state(self, state: str) -> None:
        # Each start makes a new Console: follow it from its first byte.
        if state == "booting" and self.guest.console is not self._console:
            on_loop(self._attach)
        self._flusher.poke()

    def _on_text(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
        self._flusher.poke()

    def _flush(self) -> None:
        with self._lock:
            self._text = keep_tail(self._text + "".join(self._pending))
            self._pending = []
            text = self._text
        if not text:
            text = f"(nothing yet: guest {self.guest.name} is {self.guest.state})"
        self.screen.show(text)
