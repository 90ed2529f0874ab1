"""Inside and outside: the same questions asked of the guest OS and of the host.

A virtual machine is a computer of its own: asked "which kernel? how much
memory? how many CPUs? which processes?", the guest and the host give
different answers, each measured live.  The guest's answers come from inside
it, through its agent (one shell script, one round trip); the host's from
this notebook's own OS (``platform``, ``psutil``).  Nothing is typed in.

This logic is general (lessons 2 and 4 ask the same questions); it lives
under :mod:`kit.lesson` because that is where the lessons find it.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass

import ipywidgets as widgets
import psutil

from kit.core.errors import GuestError, GuestNotRunning
from kit.core.state import GuestState
from kit.hypervisor import accelerator
from kit.hypervisor.guest import Guest
from kit.view import markup
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget

# One agent round trip gathers every answer; sections are marked for parsing.
GUEST_SCRIPT = r"""
echo "kernel=$(uname -r)"
echo "hostname=$(hostname)"
. /etc/os-release 2>/dev/null; echo "os=${PRETTY_NAME:-unknown}"
echo "memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "cpus=$(nproc)"
echo "memory_line=$(dmesg | grep -m1 '] Memory: ' | sed 's/^\[[^]]*\] //')"
echo "--processes--"
ps -o pid,comm | tail -n +2
"""
_MEMORY_LINE = re.compile(r"Memory: (\d+)K/(\d+)K available.*?(\d+)K reserved")


@dataclass(frozen=True)
class SystemView:
    """What one OS says about the computer it runs on."""

    where: str
    kernel: str
    os_name: str
    hostname: str
    memory_total_mb: float  # MemTotal: what the kernel has to hand out
    cpus: int
    processes: tuple[tuple[int, str], ...]  # (pid, name), by pid
    memory_line: str = ""  # the guest kernel's boot-log line on its memory

    @property
    def pid1(self) -> str:
        return next((name for pid, name in self.processes if pid == 1), "?")

    def has_process_named(self, fragment: str) -> bool:
        return any(fragment in name for _, name in self.processes)


@dataclass(frozen=True)
class Row:
    question: str
    guest: str
    host: str
    how: str


def guest_view(guest: Guest) -> SystemView:
    """Ask the guest OS itself, through its agent (it must be running)."""
    if guest.state != GuestState.RUNNING:
        raise GuestNotRunning(f"guest {guest.name} is {guest.state}, so it cannot answer.",
                              hint="Start it (or resume it) first, then ask again.")
    result = guest.run(GUEST_SCRIPT)
    if not result.ok:
        raise GuestError(f"the guest could not answer the questions: {result.stderr.strip()}",
                         hint="Look at its console; a reboot usually helps.")
    return parse_guest_answers(f"guest {guest.name}", result.stdout)


def parse_guest_answers(where: str, text: str) -> SystemView:
    head, _, tail = text.partition("--processes--")
    facts = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    return SystemView(
        where=where, kernel=facts.get("kernel", "?"), os_name=facts.get("os", "?"),
        hostname=facts.get("hostname", "?"),
        memory_total_mb=_int(facts.get("memtotal_kb")) / 1024,
        cpus=_int(facts.get("cpus")), processes=tuple(_process_lines(tail)),
        memory_line=facts.get("memory_line", ""))


def host_view() -> SystemView:
    """Ask the host OS, the one this notebook runs on."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        found.append((int(process.info["pid"]), str(process.info["name"] or "?")))
    return SystemView(
        where="host", kernel=platform.release(),
        os_name=accelerator.host(probe=False).os, hostname=socket.gethostname(),
        memory_total_mb=psutil.virtual_memory().total / 2**20, cpus=os.cpu_count() or 1,
        processes=tuple(sorted(found)))


def hypervisor_memory_mb(guest: Guest) -> float:
    """The memory the hypervisor gave the guest, as QEMU itself reports it (QMP)."""
    summary = guest.qmp("query-memory-size-summary")
    return float(summary["base-memory"]) / 2**20


def kernel_memory_split(memory_line: str) -> tuple[float, float, float] | None:
    """(available, total, reserved) MiB from the kernel's "Memory: ..." boot line."""
    found = _MEMORY_LINE.search(memory_line)
    if not found:
        return None
    available, total, reserved = (int(found.group(i)) / 1024 for i in (1, 2, 3))
    return available, total, reserved


def side_by_side(guest: SystemView, host: SystemView,
                 given_mb: float | None = None) -> list[Row]:
    """The same questions, side by side, with how each answer was measured."""
    me = psutil.Process()
    given = f" (the hypervisor gave it {given_mb:.0f} MiB)" if given_mb else ""
    return [
        Row("kernel release", guest.kernel, host.kernel, "uname -r inside / platform.release()"),
        Row("operating system", guest.os_name, host.os_name, "/etc/os-release on each side"),
        Row("machine name", guest.hostname, host.hostname, "hostname on each side"),
        Row("memory (MemTotal)", f"{guest.memory_total_mb:.0f} MiB{given}",
            f"{host.memory_total_mb:.0f} MiB", "/proc/meminfo inside / psutil"),
        Row("CPUs", str(guest.cpus), str(host.cpus), "nproc inside / os.cpu_count()"),
        Row("processes", str(len(guest.processes)), str(len(host.processes)),
            "ps inside / psutil.process_iter()"),
        Row("process 1 (the first program)", guest.pid1, host.pid1,
            "ps: the process with PID 1 on each side"),
        Row(f"sees this notebook's Python (PID {me.pid})?",
            "yes" if guest.has_process_named("python") else "no: not in its process list",
            "yes" if host.has_process_named("python") else "no", "search the process lists"),
    ]


class InsideOutside(KitWidget):
    """A table: each question answered by the guest (inside) and the host (outside)."""

    def __init__(self, guest: Guest) -> None:
        super().__init__("inside vs outside")
        self.guest = guest
        self.guest_answers: SystemView | None = None
        self.host_answers: SystemView | None = None
        self.rows: list[Row] = []
        self.table = widgets.HTML()
        self.lists = widgets.HTML()
        self.ask_button = widgets.Button(description="Ask both again", icon="refresh",
                                         tooltip="Ask the guest (through its agent) and the "
                                         "host the same questions, now")
        self.ask_button.on_click(self._callback("asking the guest and the host", self.ask))
        self._set_body(widgets.HTML(f"<b>Inside guest {escape(guest.name)} vs outside on "
                                    "the host</b>"), self.ask_button, self.table, self.lists)
        # Asked again each time the guest (or a new machine of its name) runs, so the
        # table never shows an old size beside a diagram that shows the new one.
        self._look_while_running("asking the guest and the host", self.ask, self._not_running)
        if guest.state == GuestState.RUNNING:
            self._callback("asking the guest and the host", self.ask)()
        else:
            self._not_running()

    def _not_running(self) -> None:
        self.table.value = (f"<i>Guest {escape(self.guest.name)} is {self.guest.state}: start "
                            "it; this table asks again by itself.</i>")

    def ask(self) -> list[Row]:
        """Ask both sides now; show and return the rows."""
        self.guest_answers = guest_view(self.guest)
        self.host_answers = host_view()
        given = hypervisor_memory_mb(self.guest)
        self.rows = side_by_side(self.guest_answers, self.host_answers, given)
        cells = [[escape(r.question), f"<b>{escape(r.guest)}</b>", escape(r.host),
                  f"<small>{escape(r.how)}</small>"] for r in self.rows]
        self.table.value = markup.table(
            ["question", f"inside: guest {escape(self.guest.name)}", "outside: the host",
             "how it was measured"], cells)
        self.lists.value = self._lists_html()
        return self.rows

    def _lists_html(self) -> str:
        assert self.guest_answers and self.host_answers
        guest = "\n".join(f"{pid:>6} {name}" for pid, name in self.guest_answers.processes)
        host = "\n".join(f"{pid:>7} {name}" for pid, name in self.host_answers.processes)
        memory = (f"<p><small>The guest kernel's own boot log on its memory: "
                  f"<code>{escape(self.guest_answers.memory_line)}</code></small></p>"
                  if self.guest_answers.memory_line else "")
        return markup.text(f"{memory}<details><summary>both process lists</summary>"
                '<div style="display:flex;gap:12px;flex-wrap:wrap">'
                f'<div style="flex:1 1 18em"><b>inside the guest</b>{pre(guest)}</div>'
                f'<div style="flex:1 1 18em"><b>on the host</b>{pre(host)}</div></div></details>')


def _int(text: str | None) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        return 0


def _process_lines(text: str) -> list[tuple[int, str]]:
    found = []
    for line in text.splitlines():
        pid, _, name = line.strip().partition(" ")
        if pid.isdigit():
            found.append((int(pid), name.strip()))
    return sorted(found)
