"""The guest control panel: the power buttons of one virtual machine, and its state.

A boot takes seconds, so start, reboot and stop run in a background thread
and the panel keeps answering; the badge follows the guest through the
registry's announcements (whoever changed the state: this panel, a lesson
cell, or the guest itself), not through the return of a button's call.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import ipywidgets as widgets

from kit.core import validate
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor.guest import Guest
from kit.view.diagram import state_css, swatch
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget, Throttle, resolve_guest

ACTIONS = ("start", "pause", "resume", "reboot", "stop")
SLOW_ACTIONS = frozenset({"start", "reboot", "stop"})  # run in the background

ALLOWED: dict[str, frozenset[str]] = {
    "created": frozenset({"start"}),
    "booting": frozenset({"pause", "stop"}),
    "running": frozenset({"pause", "reboot", "stop"}),
    "paused": frozenset({"resume", "reboot", "stop"}),
    "crashed": frozenset({"reboot", "stop"}),
    "stopping": frozenset(),
    "stopped": frozenset({"start"}),
}

BUTTONS = {  # label, tooltip (says what happens underneath)
    "start": ("▶ Start", "Launch QEMU and boot the guest (QMP: the process starts)"),
    "pause": ("❚❚ Pause", "Freeze every virtual CPU (QMP: stop)"),
    "resume": ("▶ Resume", "Let the virtual CPUs run again (QMP: cont)"),
    "reboot": ("↻ Reboot", "Press the reset button and wait until ready (QMP: system_reset)"),
    "stop": ("■ Stop", "Shut down: agent guest-shutdown, then QMP quit, then kill"),
}

DEFAULT_BOOT_SECONDS = 3.0
MEMORY_CHOICES_MB = (96, 128, 192, 256)


def allowed_actions(state: str, busy: bool) -> frozenset[str]:
    """Which buttons make sense now; while a slow action runs, only stop does."""
    allowed = ALLOWED.get(state, frozenset())
    return allowed & {"stop"} if busy else allowed


def badge_html(state: str) -> str:
    """The state as the diagram's legend draws it: mark and word first, colour last.

    The look comes from :mod:`kit.view.diagram` (its fill, border style and
    text colour, and their dark twins under a dark theme), so the badge and
    the diagram beside it always agree; the mark, the word and the border
    style make it readable in greyscale and without telling colours apart.
    """
    return (f"<style>{state_css(states=(state,))}</style>"
            + swatch(state, role="status"))


def memory_choices(minimum_mb: int, current_mb: int) -> list[tuple[str, int]]:
    sizes = sorted({m for m in (*MEMORY_CHOICES_MB, minimum_mb, current_mb) if m >= minimum_mb})
    return [(f"{m} MiB", m) for m in sizes]


def cpu_choices(host_cpus: int, current: int) -> list[int]:
    return sorted({*range(1, host_cpus + 1), current})


class GuestPanel(KitWidget):
    """Start, pause, resume, reboot and stop one guest; see its state and QEMU command.

    ``GuestPanel(g)`` drives the guest ``g`` a lesson made (so ``g.run(...)``
    in later cells talks to the same machine); ``GuestPanel("web1")`` finds the
    live guest of that name, or makes one.  Memory and vCPUs chosen here are
    used at the next start from this panel.
    """

    def __init__(self, guest: Guest | str) -> None:
        super().__init__("guest panel")
        self.guest = resolve_guest(guest)
        self._jobs: list[threading.Thread] = []
        self._actions_running = 0  # slow actions whose work has not finished yet
        self._abandon_boot = False  # set when stop is pressed during a boot
        self._lock = threading.Lock()
        self._shown_state = ""
        self._booting_since = 0.0
        self._boot_seconds = DEFAULT_BOOT_SECONDS
        self._build()
        self._ticker = Throttle(self._guarded("showing boot progress", self._tick), 0.25)
        self._on_close(self._ticker.close)
        self._follow_guest(self.guest, lambda _state: self.refresh())
        self.refresh()

    # -- building ------------------------------------------------------------------

    def _build(self) -> None:
        g = self.guest
        self.heading = widgets.HTML(f"<b>Guest {escape(g.name)}</b>")
        self.badge = widgets.HTML()
        self.progress = widgets.FloatProgress(
            min=0.0, max=1.0, bar_style="info", layout=widgets.Layout(width="10em"))
        self.progress_label = widgets.Label()
        self.details = widgets.HTML()
        self.buttons = {name: self._button(name) for name in ACTIONS}
        image = images.find_image(g.arch, g.kernel)
        minimum = image.min_memory_mb if image else min(MEMORY_CHOICES_MB)
        self.memory = widgets.Dropdown(options=memory_choices(minimum, g.memory_mb),
                                       value=g.memory_mb, description="Memory",
                                       layout=widgets.Layout(width="13.5em"))
        host_cpus = os.cpu_count() or 1
        self.cpus = widgets.Dropdown(options=cpu_choices(host_cpus, g.cpus), value=g.cpus,
                                     description="vCPUs", layout=widgets.Layout(width="10em"))
        self.memory.style.description_width = self.cpus.style.description_width = "5em"
        self.show_command = widgets.ToggleButton(
            description="show QEMU command", icon="terminal",
            tooltip="The real command line the kit ran to start this guest",
            layout=widgets.Layout(width="auto"))  # the default width cut its label short
        self.command_view = widgets.HTML(layout=widgets.Layout(display="none"))
        self.show_command.observe(self._guarded("showing the command", self._show_command),
                                  names="value")
        self._set_body(
            # Rows wrap in a narrow column (beside a diagram) rather than cut labels off.
            widgets.HBox([self.heading, self.badge, self.progress, self.progress_label],
                         layout=widgets.Layout(align_items="center", grid_gap="8px",
                                               flex_flow="row wrap")),
            widgets.HBox(list(self.buttons.values()),
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.memory, self.cpus,
                          widgets.HTML("<i>applied when this panel starts the guest</i>")],
                         layout=widgets.Layout(align_items="center", grid_gap="4px",
                                               flex_flow="row wrap")),
            self.details,
            self.show_command,
            self.command_view,
        )

    def _button(self, action: str) -> widgets.Button:
        label, tooltip = BUTTONS[action]
        button = widgets.Button(description=label, tooltip=tooltip,
                                layout=widgets.Layout(width="7.5em"))
        button.on_click(self._callback(action, lambda: self._do(action)))
        return button

    # -- actions ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a start, reboot or stop from this panel is still at work.

        Counted, not read from the threads: a job's thread lives on for a
        moment after its work and its last refresh, and the other job's last
        refresh (a stop pressed during a boot) must not take it for busy.
        """
        return self._actions_running > 0

    def wait(self, timeout: float = 90.0) -> bool:
        """Wait for the panel's background action to finish; False if it still runs.

        A notebook run headless (or a test) calls this after ``click()``.
        """
        deadline = time.monotonic() + timeout
        for job in list(self._jobs):
            job.join(max(0.0, deadline - time.monotonic()))
        return not self.busy

    def _do(self, action: str) -> None:
        run = self._action(action)
        if action not in SLOW_ACTIONS:
            run()
            self.refresh()
            return
        with self._lock:
            if action != "stop" and self.busy:
                return  # a double click: the first one is still at work
            self._abandon_boot = action == "stop" and self.busy
            self._jobs = [job for job in self._jobs if job.is_alive()]
            self._actions_running += 1
            self._jobs.append(self._in_background(action, lambda: self._finish(action, run)))
        self.refresh()

    def _finish(self, action: str, run: Callable[[], object]) -> None:
        try:
            run()
        except Exception:
            if action != "stop" and self._abandon_boot:
                return  # stop was pressed meanwhile: an interrupted boot is not a failure
            raise
        finally:
            with self._lock:
                self._actions_running -= 1
            self.refresh()

    def _action(self, action: str) -> Callable[[], object]:
        g = self.guest
        return {
            "start": self._start,
            "pause": g.pause,
            "resume": g.resume,
            "reboot": g.reboot,
            "stop": g.stop,
        }[action]

    def _start(self) -> None:
        g = self.guest
        if not g.state.has_process:
            image = images.find_image(g.arch, g.kernel)
            g.memory_mb = validate.check_memory(self.memory.value,
                                                image.min_memory_mb if image else 0)
            g.cpus = validate.check_cpus(self.cpus.value)
        g.start()
        if g.ready_at is not None and g.started_at is not None:
            self._boot_seconds = max(0.5, g.ready_at - g.started_at)

    # -- showing ---------------------------------------------------------------------

    @property
    def badge_state(self) -> str:
        """The state the badge shows now."""
        return self._shown_state

    def refresh(self) -> None:
        """Show the guest's current state: badge, buttons, progress, details."""
        state = self.guest.state
        if state == "booting" and self._shown_state != "booting":
            self._booting_since = time.monotonic()
            self._show_size()  # a start from anywhere may have given it another size
        self._shown_state = state
        self.badge.value = badge_html(state)
        allowed = allowed_actions(state, self.busy)
        for name, button in self.buttons.items():
            button.disabled = name not in allowed
        self.details.value = self._details_html()
        self._show_command()
        self._tick()

    def _show_size(self) -> None:
        """Set the memory and vCPU choices to what the guest has now."""
        g = self.guest
        image = images.find_image(g.arch, g.kernel)
        minimum = image.min_memory_mb if image else min(MEMORY_CHOICES_MB)
        memory = memory_choices(minimum, g.memory_mb)
        if g.memory_mb not in dict(memory).values():
            return  # below the image's minimum: the start that tried it has failed
        if list(self.memory.options) != memory:
            self.memory.options = memory
        self.memory.value = g.memory_mb
        cpus = cpu_choices(os.cpu_count() or 1, g.cpus)
        if list(self.cpus.options) != cpus:
            self.cpus.options = cpus
        self.cpus.value = g.cpus

    def _tick(self) -> None:
        if self.guest.state != GuestState.BOOTING:
            self.progress.layout.visibility = "hidden"
            self.progress_label.value = ""
            return
        elapsed = time.monotonic() - self._booting_since
        self.progress.layout.visibility = "visible"
        self.progress.value = min(0.95, elapsed / self._boot_seconds)
        self.progress_label.value = (
            f"booting… {elapsed:.1f} s (about {self._boot_seconds:.0f} s here)")
        self._ticker.poke()

    def _details_html(self) -> str:
        g = self.guest
        size = f"{g.memory_mb} MiB, {g.cpus} vCPU{'s' if g.cpus > 1 else ''}"
        if not g.state.has_process:
            why = f"; last stop: {escape(g.exit_reason)}" if g.exit_reason else ""
            return f"<small>{size}{why}</small>"
        accel = f", {escape(g.accelerator.label)}" if g.accelerator else ""
        return f"<small>{size}{accel}; QEMU process id {g.pid}</small>"

    def _show_command(self, *_: object) -> None:
        if not self.show_command.value:
            self.command_view.layout.display = "none"
            return
        line = self.guest.command_line or "(no command yet: the kit builds it at the next start)"
        self.command_view.value = pre(line, "10em")
        self.command_view.layout.display = "block"
