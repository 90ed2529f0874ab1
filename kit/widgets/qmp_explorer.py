"""The QMP explorer: talk to a guest's hypervisor (its QEMU process) by hand.

It sends through ``guest.qmp`` like the rest of the kit, so what a learner
sends here also appears in the log of the kit's own traffic below it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from kit.hypervisor.guest import Guest
from kit.view.markup import escape
from kit.widgets.base import KitWidget, LogView, resolve_guest
from kit.widgets.command_form import Command, CommandForm, one_line

LOG_LINES = 60

QMP_COMMANDS = [
    Command("query-status", "Is the machine running, paused, or stopped after a crash?"),
    Command("query-name", "The name QEMU was given with -name."),
    Command("query-version", "Which QEMU this is."),
    Command("query-kvm", "Is KVM present and in use? (false: software emulation, TCG)"),
    Command("query-cpus-fast", "The virtual CPUs, each one a thread of the QEMU process."),
    Command("query-memory-size-summary", "How much memory the guest was given, in bytes."),
    Command("query-chardev", "The character devices: QMP, the serial console, the agent."),
    Command("query-pci", "The PCI bus as the guest sees it (virtio devices among others)."),
    Command("query-commands", "Every command this QEMU understands (a long list)."),
    Command("human-monitor-command", "Run a command of QEMU's human monitor.",
            {"command-line": "info registers"}),
    Command("stop", "Pause the guest: every virtual CPU stops (Pause does this)."),
    Command("cont", "Let a paused guest run again (Resume does this)."),
    Command("system_reset", "Press the reset button: the guest boots again from scratch."),
    Command("set_link", "Unplug (up: false) or plug back (up: true) the network cable.",
            {"name": "nic0", "up": False}),
]


def format_log(entries: Iterable[Mapping[str, Any]], lines: int = LOG_LINES) -> str:
    """The kit's QMP traffic, oldest first: '→' to QEMU, '←' from QEMU."""
    shown = []
    for entry in list(entries)[-lines:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(float(entry.get("time", 0))))
        body = {k: v for k, v in entry.items() if k not in ("time", "to", "from")}
        arrow = "→ QEMU" if "to" in entry else "← QEMU"
        shown.append(f"{stamp} {arrow} {_shorten(one_line(body))}")
    return "\n".join(shown) or "(no QMP traffic yet)"


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


class QMPExplorer(KitWidget):
    """Send QMP commands to a guest's QEMU, and read what the kit itself sends."""

    def __init__(self, guest: Guest | str) -> None:
        super().__init__("QMP explorer")
        self.guest = resolve_guest(guest)
        self.form = CommandForm(QMP_COMMANDS, self._execute, "QEMU")
        self.form.send_button.on_click(self._callback("sending a QMP command", self.form.submit))
        self.log_view = LogView("14em")
        self.refresh_button = widgets.Button(description="refresh", icon="refresh",
                                             layout=widgets.Layout(width="8em"))
        self.refresh_button.on_click(self._callback("reading the QMP log", self.refresh_log))
        self._set_body(
            widgets.HTML(f"<b>QMP explorer: the hypervisor of {escape(self.guest.name)}</b> "
                         "<small>(QEMU Machine Protocol: JSON over a socket to the "
                         "QEMU process)</small>"),
            self.form.box,
            widgets.HBox([widgets.HTML("<b>What the kit itself said to QEMU</b>"),
                          self.refresh_button], layout=widgets.Layout(align_items="center")),
            self.log_view,
        )
        self.refresh_log()

    def _execute(self, command: str, arguments: dict[str, Any]) -> Any:
        try:
            return self.guest.qmp(command, arguments)
        finally:
            self.refresh_log()

    def refresh_log(self) -> None:
        """Show the latest entries of ``guest.qmp_log``."""
        self.log_view.show(format_log(_copy(self.guest.qmp_log)))


def _copy(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A copy of a deque the kit loop may be appending to (retried if it moved)."""
    for _ in range(5):
        try:
            return list(entries)
        except RuntimeError:  # "deque mutated during iteration"
            continue
    return []
