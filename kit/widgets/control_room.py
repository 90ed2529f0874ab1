"""The instructor's control room: every guest of this user on this host, on one page.

An instructor runs several notebooks at once (a demo in one, a class example
in another) and needs one place that shows all of their guests and can stop
them all before the next lesson.  Two kinds of guest are found:

* the guests of *this* kernel (:mod:`kit.hypervisor.registry`): full controls, the live
  console, the state as QMP reports it;
* the guests of *other* kernels and programs of the same user: found through
  the ``guest.json`` record each live guest keeps in the user's runtime
  folder (:mod:`kit.infrastructure.limits`).  Their QMP and console sockets are private to
  the process that started them (inherited socket pairs, see
  :mod:`kit.hypervisor.qemu`), so from here they are seen from outside, with psutil:
  process id, memory, whether the process is alive.  They can be stopped by
  their recorded process id, after checking the process is a QEMU of this
  user running that guest.

The page is also served alone with Voila (``./setup.sh control-room``), and
has a projector mode with large type for the back of a classroom.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import psutil

from kit.core import paths
from kit.core.errors import GuestError
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.infrastructure import limits
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget, Throttle, close_tree, on_loop, set_button_style
from kit.widgets.console_view import ConsoleView
from kit.widgets.guest_panel import GuestPanel
from kit.widgets.live_diagram import LiveDiagram

TITLE = "Instructor control room"
STOP_WAIT_S = 5.0
LOG_TAIL_LINES = 6

# Large type for a projector.  ipywidgets size themselves from these CSS
# variables (in JupyterLab and in Voila), so raising them on the room's box
# enlarges every control inside it; the console's inline font size needs
# !important to be overridden.
PROJECTOR_CSS = """<style>
.kit-control-room.kit-projector {
  --jp-widgets-font-size: 22px; --jp-widgets-inline-height: 44px;
  --jp-widgets-inline-label-width: 120px; --jp-ui-font-size1: 22px;
  --jp-content-font-size1: 22px; font-size: 22px; line-height: 1.4;
}
.kit-control-room.kit-projector pre { font-size: 20px !important; }
.kit-control-room.kit-projector small { font-size: 20px; }
.kit-control-room .kit-room-title { font-size: 1.6em; font-weight: bold; margin: 0; }
.kit-control-room.kit-projector .kit-room-title { font-size: 2.4em; }
</style>"""


# -- every guest of this user ---------------------------------------------------------


@dataclass(frozen=True)
class HostGuest:
    """One guest of this user on this host, wherever it was started.

    ``local`` is the :class:`kit.Guest` when this process started it (then
    ``state`` is the kit's own state); for a guest of another process it is
    None and ``state`` is what can be seen from outside: "running" while its
    QEMU process lives (a pause is not visible from here).
    """

    name: str
    pid: int | None
    memory_mb: int
    owner_pid: int
    state: str
    rss_mb: float | None
    local: Guest | None = None

    @property
    def where(self) -> str:
        if self.local is not None:
            return "this notebook"
        alive = psutil.pid_exists(self.owner_pid)
        return f"process {self.owner_pid}" + ("" if alive else " (gone)")


def host_guests() -> list[HostGuest]:
    """This process's guests (oldest first), then those of this user's other processes."""
    mine = registry.guests()
    found = [_local_row(g) for g in mine]
    my_pids = {g.pid for g in mine if g.pid is not None}
    for record in limits.live_records():
        if record.pid not in my_pids and _is_users_qemu(record.pid, record.name):
            found.append(HostGuest(record.name, record.pid, record.memory_mb,
                                   record.owner_pid, "running", _rss_mb(record.pid)))
    return found


def other_guests() -> list[HostGuest]:
    """Only the guests of this user's other processes."""
    return [guest for guest in host_guests() if guest.local is None]


def stop_other(guest: HostGuest | str, timeout: float = STOP_WAIT_S) -> None:
    """Stop a guest of another process of this user by its recorded QEMU process id.

    SIGKILL, not SIGTERM: the notebook that owns the guest then reports
    "QEMU was killed from outside the kit", which is the truth; after a
    SIGTERM, QEMU exits normally and that notebook would say the guest
    powered itself off.  The process is first checked to be a QEMU of this
    user running that guest, so a recycled process id is never killed.
    """
    target = _find_other(guest) if isinstance(guest, str) else guest
    if target.local is not None:
        target.local.stop()
        return
    if target.pid is None or not _is_users_qemu(target.pid, target.name):
        return  # it has already gone
    try:
        os.kill(target.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(target.pid, timeout)
    if not psutil.pid_exists(target.owner_pid):  # nobody left to tidy its folder
        shutil.rmtree(paths.runtime_dir() / target.name, ignore_errors=True)


def stop_everything() -> list[str]:
    """Stop every guest of this user on this host; returns the names stopped."""
    stopped = []
    for guest in reversed(registry.guests()):
        guest.stop()
        stopped.append(guest.name)
    for other in other_guests():
        stop_other(other)
        stopped.append(other.name)
    return stopped


def _local_row(guest: Guest) -> HostGuest:
    pid = guest.pid if guest.state.has_process else None
    return HostGuest(guest.name, pid, guest.memory_mb, os.getpid(), guest.state,
                     _rss_mb(pid), guest)


def _find_other(name: str) -> HostGuest:
    for guest in host_guests():
        if guest.name == name:
            return guest
    raise GuestError(
        f"no guest named {name!r} is running for you on this host.",
        hint="kit.widgets.control_room.host_guests() lists the ones that are.",
    )


def _is_users_qemu(pid: int, name: str) -> bool:
    """The process is ours (same real user), runs a QEMU program, and is guest ``name``'s.

    All three, because a process id can be reused: a learner's own program
    whose command line merely mentions the guest (``pgrep -f web1,process=``)
    must never be killed in a guest's place.
    """
    try:
        process = psutil.Process(pid)
        if process.uids().real != os.getuid():
            return False
        program = Path(process.exe()).name
        words = process.cmdline()
    except psutil.Error:
        return False
    return (program.startswith("qemu-system-")
            and any(word.startswith(f"{name},process=") for word in words))


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return None


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def log_tail(name: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines QEMU itself printed for guest ``name`` (its ``qemu.log``)."""
    try:
        text = (paths.runtime_dir() / name / "qemu.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# -- the widget ----------------------------------------------------------------------


class LocalRow(widgets.VBox):  # type: ignore[misc]
    """A guest of this notebook: its control panel above its live console."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.panel = GuestPanel(guest)
        self.console = ConsoleView(guest, height="10em")
        super().__init__([self.panel, self.console], layout=widgets.Layout(
            border="1px solid #bbb", padding="4px", margin="4px 0"))


class OtherRow(widgets.VBox):  # type: ignore[misc]
    """A guest of another process: what psutil sees, QEMU's own log, and a stop button."""

    def __init__(self, guest: HostGuest, on_stop: Callable[..., None]) -> None:
        self.guest = guest
        self.info = widgets.HTML(_other_html(guest))
        self.stop_button = widgets.Button(
            description="■ Stop",
            tooltip=f"Kill QEMU process {guest.pid} (the guest of {guest.where})")
        set_button_style(self.stop_button, "warning")
        self.stop_button.on_click(on_stop)
        super().__init__([widgets.HBox([self.info, self.stop_button],
                                       layout=widgets.Layout(align_items="center",
                                                             grid_gap="12px"))],
                         layout=widgets.Layout(border="1px dashed #999", padding="4px",
                                               margin="4px 0"))


def _other_html(guest: HostGuest) -> str:
    rss = f"{guest.rss_mb:.0f} MiB resident" if guest.rss_mb is not None else "memory unknown"
    log = log_tail(guest.name)
    log_html = (f"<details><summary>QEMU's own messages</summary>{pre(log, '8em')}</details>"
                if log else "<small>its serial console is shown in the notebook that "
                "started it</small>")
    return (f"<b>Guest {escape(guest.name)}</b> — {escape(guest.state)}, started by "
            f"{escape(guest.where)}<br><small>QEMU process id {guest.pid}; {guest.memory_mb} "
            f"MiB given, {rss}</small><br>{log_html}")


def summary_html(guests: list[HostGuest]) -> str:
    live = [g for g in guests if g.pid is not None]
    given = sum(g.memory_mb for g in live)
    resident = sum(g.rss_mb or 0.0 for g in live)
    others = sum(1 for g in live if g.local is None)
    return (f"<b>{len(live)}</b> guest{'s' if len(live) != 1 else ''} running "
            f"({others} in other notebooks or programs); {given} MiB given, "
            f"{resident:.0f} MiB resident on the host. Limits for you here: "
            f"{limits.max_guests()} guests, {limits.max_guest_memory_mb()} MiB.")


class ControlRoom(KitWidget):
    """Every guest of this user on this host, their controls, the diagram, and stop-all.

    ``ControlRoom()`` shows the guests this notebook starts (each with its
    panel and console, added as they start) and the guests of the user's
    other notebooks (refreshed every ``refresh_every`` seconds; None turns
    that off).  ``projector=True`` starts in large type.
    """

    def __init__(self, *, projector: bool = False, refresh_every: float | None = 3.0) -> None:
        super().__init__("control room")
        self.add_class("kit-control-room")
        self.local_rows: dict[str, LocalRow] = {}
        self.other_rows: dict[int, OtherRow] = {}
        self._jobs: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._build(projector)
        self._refresher = Throttle(self._guarded("refreshing", self.refresh), 0.3)
        self._on_close(self._refresher.close)
        self._on_close(registry.subscribe(lambda _g, _s: self._refresher.poke()))
        if refresh_every:
            self._poke_every(refresh_every, self._refresher)
        self.refresh()

    # -- building ---------------------------------------------------------------------

    def _build(self, projector: bool) -> None:
        self.title = widgets.HTML(f'<div class="kit-room-title">{TITLE}</div>{PROJECTOR_CSS}')
        self.summary = widgets.HTML()
        self.projector = widgets.ToggleButton(
            value=projector, description="projector mode", icon="television",
            tooltip="Large type for the back of the room")
        self.projector.observe(self._guarded("projector mode", self._apply_projector),
                               names="value")
        self.refresh_button = widgets.Button(description="↻ Refresh",
                                             tooltip="Look for guests again now")
        self.refresh_button.on_click(self._callback("refreshing", self.refresh))
        self.stop_button = widgets.Button(
            description="■ Stop everything", button_style="danger",
            tooltip="Stop every guest of yours on this host (asks first)")
        self.stop_button.on_click(self._callback("asking to stop everything", self.ask_stop))
        self.confirm_text = widgets.HTML()
        self.confirm_button = widgets.Button(description="Yes, stop them all",
                                             button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirm_button.on_click(self._callback("stopping everything", self._confirmed))
        self.cancel_button.on_click(self._callback("cancelling", self.cancel_stop))
        self.confirm_box = widgets.HBox(
            [self.confirm_text, self.confirm_button, self.cancel_button],
            layout=widgets.Layout(display="none", align_items="center", grid_gap="8px",
                                  border_left="5px solid #D55E00", padding="4px"))
        self.status = widgets.HTML()
        self.local_box = widgets.VBox()
        self.other_box = widgets.VBox()
        self.diagram = LiveDiagram()
        self._set_body(
            self.title,
            widgets.HBox([self.projector, self.refresh_button, self.stop_button],
                         layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap")),
            self.confirm_box, self.status, self.summary,
            widgets.HTML("<b>Guests of this notebook</b>"), self.local_box,
            widgets.HTML("<b>Guests of your other notebooks and programs</b>"), self.other_box,
            widgets.HTML("<b>The layers of this host</b>"), self.diagram,
        )
        self._apply_projector()

    def _apply_projector(self, *_: object) -> None:
        if self.projector.value:
            self.add_class("kit-projector")
        else:
            self.remove_class("kit-projector")

    # -- stopping everything --------------------------------------------------------------

    def ask_stop(self) -> None:
        """Show the confirmation; nothing stops until it is confirmed."""
        count = sum(1 for g in host_guests() if g.pid is not None)
        self.confirm_text.value = (f"<b>Stop all {count} guest{'s' if count != 1 else ''} "
                                   "of yours on this host, in every notebook?</b>")
        self.confirm_box.layout.display = "flex"

    def cancel_stop(self) -> None:
        self.confirm_box.layout.display = "none"

    def _confirmed(self) -> None:
        self.confirm_box.layout.display = "none"
        self.status.value = "<i>stopping every guest…</i>"
        with self._lock:
            self._jobs = [job for job in self._jobs if job.is_alive()]
            self._jobs.append(self._in_background("stopping everything", self._stop_all))

    def _stop_all(self) -> None:
        try:
            names = stop_everything()
            self.status.value = (f"Stopped {len(names)}: {escape(', '.join(names))}"
                                 if names else "There was nothing to stop.")
        finally:
            self.refresh()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for a stop-everything to finish (headless runs and tests); False if it runs."""
        deadline = time.monotonic() + timeout
        for job in list(self._jobs):
            job.join(max(0.0, deadline - time.monotonic()))
        return not any(job.is_alive() for job in self._jobs)

    # -- following the guests ---------------------------------------------------------------

    def refresh(self) -> None:
        """Look for guests again: add rows for new ones, update the others' figures.

        Runs on the kit loop whoever calls it, so two refreshes never interleave
        (the timer, the registry's announcements and the button all refresh).
        """
        on_loop(self._refresh_on_loop, timeout=30)

    def _refresh_on_loop(self) -> None:
        if self._closed:
            return
        guests = host_guests()
        for guest in guests:
            if guest.local is not None and guest.name not in self.local_rows:
                self.local_rows[guest.name] = LocalRow(guest.local)
        self._refresh_others([g for g in guests if g.local is None])
        self.local_box.children = tuple(self.local_rows.values()) or (
            widgets.HTML("<i>none yet: guests this notebook starts appear here</i>"),)
        self.summary.value = summary_html(guests)

    def _refresh_others(self, others: list[HostGuest]) -> None:
        current = {g.pid: g for g in others if g.pid is not None}
        for pid in list(self.other_rows):
            if pid not in current:
                close_tree((self.other_rows.pop(pid),))
        for pid, guest in current.items():
            row = self.other_rows.get(pid)
            if row is None:
                self.other_rows[pid] = self._other_row(guest)
            else:
                row.info.value = _other_html(guest)
        self.other_box.children = tuple(self.other_rows.values()) or (
            widgets.HTML("<i>none</i>"),)

    def _other_row(self, guest: HostGuest) -> OtherRow:
        def stop() -> None:
            stop_other(guest)
            self.refresh()

        return OtherRow(guest, self._callback(f"stopping guest {guest.name}", stop))


