"""Lesson 8, The transition to containers: the same userland as a container and as a VM.

:func:`compare` starts the container ``l8-box`` (:mod:`kit.labs.containers`) and
the virtual machine ``l8-vm`` from the same busybox userland, and measures
both in one run: time until each answers a command, host memory, and whose
kernel each one reports.  :class:`CompareView` shows it as a table and a plot.
The notebook ``lessons/08-containers.ipynb`` shows these; the tests import them.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import psutil

from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.labs import containers
from kit.labs.containers import Container
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import parse_number
from kit.lesson.lesson import Lesson
from kit.lesson.lesson07_limitations import guest_memory_mb
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget

BOX = "l8-box"
VM = "l8-vm"


@dataclass(frozen=True)
class Side:
    """One of the two, measured: seconds until it answered a command, memory, kernel."""

    kind: str
    ready_s: float
    rss_mb: float
    uss_mb: float
    kernel: str
    hostname: str
    pid_inside: str
    host_pid: int


_last: dict[str, Side] = {}


def box() -> Container | None:
    """The lesson's running container, if any."""
    return next((c for c in containers.containers() if c.name == BOX and c.pid), None)


def vm() -> Guest | None:
    found = registry.get(VM)
    return found if found is not None and found.state == GuestState.RUNNING else None


def start_box() -> Side:
    """Start the container (stopping an old one of the lesson first) and measure it."""
    old = box()
    if old is not None:
        old.stop()
    called = time.monotonic()
    container = Container(BOX).start()
    container.run("true")
    ready = time.monotonic() - called
    rss, uss = container.memory_mb()
    return _measured("container", container.run, ready, rss, uss, container.pid or 0)


def start_vm() -> Side:
    old = vm()
    if old is not None:
        old.stop()
    called = time.monotonic()
    guest = Guest(VM, memory_mb=guest_memory_mb(), replace=True).start()
    ready = time.monotonic() - called
    info = psutil.Process(guest.pid).memory_full_info()
    return _measured("virtual machine", lambda c: guest.run(["sh", "-c", c]), ready,
                     info.rss / 2**20, info.uss / 2**20, guest.pid or 0)


def _measured(kind: str, run: Callable[[str], Any], ready: float, rss: float, uss: float,
              host_pid: int) -> Side:
    def ask(command: str) -> str:
        return str(run(command).stdout).strip()

    return Side(kind, ready, rss, uss, ask("uname -r"), ask("hostname"), ask("echo $$"),
                host_pid)


def compare() -> dict[str, Side]:
    """Start both, one after the other, and measure them in the same run."""
    _last["container"] = start_box()
    _last["virtual machine"] = start_vm()
    return dict(_last)


def last() -> dict[str, Side]:
    return dict(_last)


def compare_rows(sides: dict[str, Side]) -> list[list[str]]:
    host = ["the host", "", "", "", escape(platform.release()), escape(socket.gethostname()),
            str(os.getpid()) + " (this notebook)", ""]
    rows = [[escape(s.kind), f"{s.ready_s:.3f}", f"{s.rss_mb:.1f}", f"{s.uss_mb:.1f}",
             escape(s.kernel), escape(s.hostname), escape(s.pid_inside), str(s.host_pid)]
            for s in sides.values()]
    return [*rows, host]


def compare_png(sides: dict[str, Side]) -> bytes:
    groups = [(s.kind, [s.ready_s * 1000, s.rss_mb]) for s in sides.values()]
    return plots.paired_bars_png(["until it answers a command (ms)", "host memory, RSS (MiB)"],
                                 groups, title="the same userland, two ways (log scale)",
                                 log=True)


class CompareView(KitWidget):
    """Start the container and the VM, and show both measured side by side."""

    def __init__(self) -> None:
        super().__init__("container and VM")
        self.go = widgets.Button(description="Start both and measure", icon="play")
        self.go.on_click(self._callback("starting both", self.measure))
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png")
        self._set_body(self.go, self.table, self.plot)
        self.refresh()

    def measure(self) -> None:
        compare()
        self.refresh()

    def refresh(self) -> None:
        sides = last()
        if not sides:
            self.table.value = markup.text("<i>Nothing measured yet: press the button.</i>")
            return
        header = ["", "ready after (s)", "RSS (MiB)", "USS (MiB)", "kernel (uname -r)",
                  "hostname", "its PID, inside", "host PID"]
        self.table.value = markup.text(markup.table(header, compare_rows(sides)))
        self.plot.value = compare_png(sides)


# -- the checks ---------------------------------------------------------------------------


def _need_box() -> Container | Verdict:
    found = box()
    if found is None:
        return Verdict.fail(f"container {BOX} is not running.",
                            hint="Press 'Start both and measure' (or run lesson8.compare()).")
    return found


def check_own_view() -> Verdict:
    found = _need_box()
    if isinstance(found, Verdict):
        return found
    name = found.run("hostname").stdout.strip()
    pid = found.run("echo $$").stdout.strip()
    first = found.run("cat /proc/1/comm").stdout.strip()
    evidence = [f"inside: hostname {name}, this shell's PID {pid}, PID 1 is {first}",
                f"host: hostname {socket.gethostname()}, container's PID 1 is host PID "
                f"{found.pid}"]
    if name != BOX or name == socket.gethostname():
        return Verdict.fail(f"the container's hostname is {name!r}, not its own {BOX!r}.",
                            *evidence, hint="Stop it and start it again with the button.")
    seen = parse_number(found.run("ls /proc | grep -c '^[0-9]'").stdout) or 0
    host_count = len(psutil.pids())
    evidence.append(f"processes seen inside: {seen}; on the host: {host_count}")
    if first == "" or seen >= host_count:
        return Verdict.fail("the container sees the host's processes: its PID namespace is "
                            "not private.", *evidence, hint="Start it again with the button.")
    return Verdict.ok(f"{BOX} has its own hostname and its own process numbering (its first "
                      "process is PID 1), yet it is an ordinary host process.", *evidence)


def check_kernel(answer: str) -> Verdict:
    found = _need_box()
    if isinstance(found, Verdict):
        return found
    inside = found.run("uname -r").stdout.strip()
    host = platform.release()
    guest = vm()
    vm_kernel = guest.run(["uname", "-r"]).stdout.strip() if guest else None
    evidence = [f"container: {inside}", f"host: {host}",
                f"virtual machine: {vm_kernel or '(not running)'}"]
    typed = answer.strip()
    if not typed:
        return Verdict.fail("type the kernel release the container reports.", *evidence)
    if vm_kernel and typed == vm_kernel and typed != inside:
        return Verdict.fail(f"{typed} is the virtual machine's own kernel, not the "
                            "container's.", *evidence,
                            hint="Read the kernel column on the container's row.")
    if typed != inside:
        return Verdict.fail(f"the container does not report {typed!r}.", *evidence,
                            hint="Ask it: lesson8.box().run('uname -r').")
    return Verdict.ok(f"the container runs on the host's kernel {host}: one kernel for the "
                      "host and all its containers.", *evidence)


def check_host_pid(answer: str) -> Verdict:
    found = _need_box()
    if isinstance(found, Verdict):
        return found
    pid = parse_number(str(answer))
    if pid is None:
        return Verdict.fail("type the host PID: a whole number.")
    if pid != found.pid:
        return Verdict.fail(f"process {pid} is not {BOX}'s PID 1.",
                            f"{BOX}'s PID 1 is host PID {found.pid}",
                            hint="Read the 'host PID' column on the container's row.")
    ours = os.readlink("/proc/self/ns/pid")
    theirs = os.readlink(f"/proc/{pid}/ns/pid")
    name = psutil.Process(pid).name()
    return Verdict.ok(f"host process {pid} ({name}) is PID 1 inside {BOX}: the host sees "
                      "and can signal every container process directly.",
                      f"this notebook's PID namespace: {ours}",
                      f"process {pid}'s PID namespace: {theirs}")


own_view = Checkpoint(
    "l8-own-view", "A private view, on the same host",
    f"Start container **{BOX}** (button). The kit checks inside it: its own hostname and its "
    "own process numbering, starting at PID 1.",
    check_own_view, hint="Press 'Start both and measure'.",
    solution="Start it with the line below, then check.", code="lesson8.compare()",
)
kernel = Checkpoint(
    "l8-kernel", "Whose kernel does the container run?",
    "Type the kernel release the **container** reports (uname -r inside it).",
    check_kernel, answer_label="container's kernel:",
    hint="The table's kernel column, on the container's row.",
    solution="Ask the container, as below.",
    code='lesson8.kernel.verify(lesson8.box().run("uname -r").stdout)',
)
host_pid = Checkpoint(
    "l8-host-pid", "The container from the host's side",
    f"Type the **host** PID of {BOX}'s PID 1.",
    check_host_pid, answer_label="host PID:",
    hint="The table's 'host PID' column, on the container's row.",
    solution="Read it from the container object, as below.",
    code="lesson8.host_pid.verify(lesson8.box().pid)",
)

quiz = Quiz([
    Question("l8-q1", "The container reported the host's kernel release, the VM another one. "
             "Why?", [
        Choice("The container shares the host's running kernel; the VM booted its own", True,
               "Namespaces change what a process sees, not which kernel serves it."),
        Choice("The container's busybox is older", False,
               "It is the very same busybox as in the VM; uname asks the kernel, not busybox."),
        Choice("unshare fakes the answer", False,
               "Nothing is faked: the UTS namespace can change the hostname, not the kernel "
               "release."),
    ]),
    Question("l8-q2", "Why did the container start so much faster?", [
        Choice("It had a smaller image", False,
               "It used the very same files as the VM."),
        Choice("Nothing had to boot: a few namespaces and one process on a running kernel",
               True, "No machine to emulate and no kernel to boot; the VM paid for both."),
        Choice("It skipped the userland", False,
               "It ran the same busybox userland; it only skipped the kernel and the machine."),
    ]),
    Question("l8-q3", "What do containers give up, compared with VMs?", [
        Choice("Nothing at all", False,
               "They share one kernel: a kernel bug or a wrong setting reaches every "
               "container at once."),
        Choice("A boundary as strong as a separate kernel and machine", True,
               "A container's processes run directly on the host's kernel; the host sees and "
               "can signal them, and a kernel flaw exposes them all."),
        Choice("Their own hostname", False,
               "They keep their own hostname (UTS namespace), as the checkpoint showed."),
    ]),
    Question("l8-q4", "Could a container here run a different OS kernel, e.g. an older Linux "
             "or another architecture?", [
        Choice("Yes, with the right image", False,
               "The image carries only the userland; the kernel is always the host's."),
        Choice("No: it can only use the host's kernel; that takes a virtual machine", True,
               "Lesson 6 booted other kinds of guests under QEMU; a container cannot."),
        Choice("Only when run as root", False,
               "Root or not, a container never gets a kernel of its own."),
    ]),
])

lesson = Lesson(8, [own_view, kernel, host_pid], quiz)


def stop_all() -> None:
    """Stop the lesson's container and VM (the last cell also stops every guest)."""
    containers.stop_all()
    guest = registry.get(VM)
    if guest is not None:
        guest.stop()
