"""The whole computer is one process: a guest as the host sees it.

From outside, a virtual machine is an ordinary process (QEMU) with a PID,
threads and memory, which ``ps``, ``top`` and psutil see like any other.
Each virtual CPU is one of its threads: QEMU is started with
``-name ...,debug-threads=on``, so those threads are named "CPU 0/TCG",
"CPU 1/TCG" (or ".../KVM"), and QMP's ``query-cpus-fast`` names the same
host thread ids: the hypervisor and the host agree, and a lesson shows both.

Also here: the real QEMU command line, cut into options, each with what it
does, so a learner can read the machine's "parts list".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import psutil

from kit.core.errors import GuestNotRunning
from kit.hypervisor import qemu
from kit.hypervisor.guest import Guest
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget


@dataclass(frozen=True)
class HostThread:
    """One thread of the QEMU process, with the name QEMU gave it."""

    tid: int
    name: str

    @property
    def is_vcpu(self) -> bool:
        return self.name.startswith("CPU ") and "/" in self.name


@dataclass(frozen=True)
class MachineProcess:
    """A running guest, seen from the host: one process, its threads, its memory."""

    guest: str
    pid: int
    name: str
    threads: tuple[HostThread, ...]
    rss_mb: float
    guest_memory_mb: int
    vcpus: int
    qmp_vcpu_tids: tuple[int, ...]  # the host threads QMP says run the vCPUs

    @property
    def vcpu_threads(self) -> tuple[HostThread, ...]:
        return tuple(t for t in self.threads if t.is_vcpu)

    def role(self, thread: HostThread) -> str:
        """What a thread does, in words."""
        if thread.tid in self.qmp_vcpu_tids:
            index = self.qmp_vcpu_tids.index(thread.tid)
            return f"runs virtual CPU {index} (QMP names this very thread)"
        if thread.is_vcpu:
            return "runs a virtual CPU"
        if thread.tid == self.pid:
            return "QEMU's main loop: devices, timers, console, network"
        if thread.name.startswith("IO mon"):
            return "answers QMP, the hypervisor's control socket"
        if thread.name.startswith("worker"):
            return "a helper for slow input/output"
        return "a helper thread of QEMU"


def machine_process(guest: Guest) -> MachineProcess:
    """The guest's QEMU process as the host sees it now (psutil, /proc, and QMP)."""
    if guest.pid is None or not guest.state.hypervisor_answers:
        raise GuestNotRunning(f"guest {guest.name} is {guest.state}: there is no process.",
                              hint="Start it first; then it is a process on this host.")
    process = psutil.Process(guest.pid)
    with process.oneshot():
        name, rss = process.name(), process.memory_info().rss / 2**20
        tids = sorted(t.id for t in process.threads())
    cpus = guest.qmp("query-cpus-fast")
    return MachineProcess(
        guest=guest.name, pid=guest.pid, name=name,
        threads=tuple(HostThread(tid, thread_name(guest.pid, tid)) for tid in tids),
        rss_mb=rss, guest_memory_mb=guest.memory_mb, vcpus=guest.cpus,
        qmp_vcpu_tids=tuple(int(c["thread-id"]) for c in sorted(cpus,
                                                                  key=lambda c: c["cpu-index"])))


def vcpu_threads(guest: Guest) -> tuple[HostThread, ...]:
    """The host threads that run the guest's virtual CPUs."""
    return machine_process(guest).vcpu_threads


def thread_name(pid: int, tid: int) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"


class OneProcess(KitWidget):
    """The guest as one host process: PID, threads (vCPUs marked), memory used vs given.

    It looks again by itself each time the guest (or a new machine of the
    same name) is up and running, and says so when it is not: its figures
    never describe a machine that is gone.
    """

    def __init__(self, guest: Guest) -> None:
        super().__init__("the machine as a process")
        self.guest = guest
        self.seen: MachineProcess | None = None
        self.summary = widgets.HTML()
        self.threads = widgets.HTML()
        self.look_button = widgets.Button(description="Look again", icon="refresh",
                                          tooltip="Read the host's process table now",
                                          layout=widgets.Layout(width="auto"))
        self.look_button.on_click(self._callback("looking at the QEMU process", self.look))
        self._set_body(widgets.HTML(f"<b>Guest {escape(guest.name)}, seen from the host</b>"),
                       self.look_button, self.summary, self.threads)
        self._look_while_running("looking at the QEMU process", self.look, self._not_running)
        if guest.state.hypervisor_answers:
            self._callback("looking at the QEMU process", self.look)()
        else:
            self._not_running()

    def _not_running(self) -> None:
        self.seen = None
        self.threads.value = ""
        self.summary.value = (f"<i>Guest {escape(self.guest.name)} is {self.guest.state}: it is "
                              "no process now. Start it; this box looks again by itself.</i>")

    def look(self) -> MachineProcess:
        seen = self.seen = machine_process(self.guest)
        self.summary.value = markup.text(
            f"<p>The whole computer <b>{escape(seen.guest)}</b> is host process "
            f"<b>{seen.pid}</b> (<code>{escape(seen.name)}</code>), with "
            f"{len(seen.threads)} threads, {len(seen.vcpu_threads)} of them running its "
            f"{seen.vcpus} virtual CPU{'s' if seen.vcpus > 1 else ''}.</p>"
            f"<p>Memory: the guest was given <b>{seen.guest_memory_mb} MiB</b>; the QEMU "
            f"process holds <b>{seen.rss_mb:.0f} MiB</b> of the host's memory right now "
            "(the guest pages it has touched, plus QEMU itself and its translation "
            "cache).</p>")
        rows = [[str(t.tid), f"<code>{escape(t.name)}</code>",
                 ("<b>✔ vCPU</b> " if t.is_vcpu else "") + escape(seen.role(t))]
                for t in seen.threads]
        self.threads.value = markup.table(["host thread id", "name", "what it does"], rows)
        return seen


# -- the command line -------------------------------------------------------------------

FLAGS = frozenset({"-nodefaults", "-no-user-config", "-no-reboot", "-S"})
OPTION_MEANINGS = {
    "-name": "the guest's name; debug-threads=on names QEMU's threads (CPU 0/TCG, ...)",
    "-machine": "the virtual motherboard: microvm has no PCI bus and only a tiny firmware "
                "(qboot) that starts the kernel in milliseconds, and only the few devices "
                "listed below (q35 would be a full modern PC, with SeaBIOS or UEFI)",
    "-cpu": "the CPU model the guest sees (host: the real one; max: every feature QEMU "
            "can emulate)",
    "-m": "the guest's memory (RAM), in MiB",
    "-smp": "how many virtual CPUs the guest has",
    "-nodefaults": "no default devices: the machine has only what is listed here",
    "-no-user-config": "ignore QEMU configuration files on this host",
    "-display": "no screen: this guest has only a serial console",
    "-kernel": "the guest's own Linux kernel, booted directly (no firmware menu, no boot "
               "loader)",
    "-initrd": "the guest's first files (busybox, its agent, a web server), loaded into its RAM",
    "-drive": "the guest's virtual disk: an image file holding its files (busybox, its agent, "
              "a web server); snapshot=on sends its writes to a scratch file, so the image "
              "never changes",
    "-object": "the host memory behind the guest's RAM (memory-backend-memfd: counted in small "
               "pages, so untouched guest memory costs the host nothing)",
    "-append": "the command line handed to the guest's kernel",
    "-mon": "QMP, the hypervisor's control panel, on the 'qmp' channel",
    "-serial": "the guest's first serial port (ttyS0) goes to the 'console' channel",
    "-netdev": "user-mode networking: QEMU acts as the guest's router; restrict=on drops "
               "whatever the guest sends to the host or beyond, while hostfwd forwards a port "
               "on 127.0.0.1 into the guest",
    "-S": "start paused: the kit sets every door (the internet card's cable pulled out) "
          "before the guest's first instruction, then sends QMP cont",
    "-action": "when the guest kernel panics, pause the machine (do not reboot) so the crash "
               "can be seen",
    "-pidfile": "where QEMU writes its process id",
    "-sandbox": "QEMU's seccomp filter: the host kernel refuses QEMU obsolete system calls "
                "(obsolete=deny), becoming another user (elevateprivileges=deny), starting "
                "programs (spawn=deny) and changing its priority or CPUs (resourcecontrol=deny)",
}
DEVICE_MEANINGS = {
    "virtio-serial-pci": "a virtual card for guest-to-host serial ports",
    "virtio-serial-device": "a virtual card for guest-to-host serial ports (virtio over "
                            "memory-mapped I/O, as microvm has no PCI)",
    "virtserialport": "the port the guest agent (qemu-ga) listens on",
    "virtio-net-pci": "a virtual network card",
    "virtio-net-device": "a virtual network card (virtio over memory-mapped I/O)",
    "pvpanic-pci": "a device the guest kernel uses to tell the hypervisor it crashed",
    "pvpanic": "a device the guest kernel uses to tell the hypervisor it crashed",
    "virtio-balloon-device": "a balloon: the guest hands back memory it has freed, so the "
                             "host can reuse it (free-page-reporting)",
    "virtio-9p-device": "a shared folder: the guest mounts a host folder over the 9p protocol",
    "virtio-blk-device": "a virtual disk controller; the guest sees the disk as /dev/vda",
    "virtio-blk-pci": "a virtual disk controller; the guest sees the disk as /dev/vda",
}
CHARDEV_MEANINGS = {
    "qmp": "a channel to QMP (a socket the kit opened before QEMU started)",
    "console": "a channel to the serial console",
    "agent": "a channel to the guest agent",
}


def explain_command(command: list[str]) -> list[tuple[str, str, str]]:
    """(option, value, what it does) for each part of a guest's command line."""
    words = list(command)
    rows: list[tuple[str, str, str]] = []
    if words[:1] == ["setpriv"] and "--" in words:
        cut = words.index("--") + 1
        rows.append((" ".join(words[:cut]), "", "not QEMU: the host kernel kills QEMU if the "
                     "notebook that started it dies"))
        words = words[cut:]
    if words:
        rows.append((words[0], "", "the hypervisor: a program that builds a whole computer"))
    rest = words[1:]
    while rest:
        option = rest.pop(0)
        value = "" if option in FLAGS or not rest or rest[0].startswith("-") else rest.pop(0)
        rows.append((option, value, _meaning(option, value)))
    return rows


def _meaning(option: str, value: str) -> str:
    first = value.split(",", 1)[0]
    if option == "-accel":
        return ("KVM: the host CPU runs guest code itself, with hardware help" if first == "kvm"
                else "TCG: QEMU translates guest code in software (tb-size: its cache, MiB)")
    if option == "-device":
        return DEVICE_MEANINGS.get(first, "a virtual device")
    if option == "-netdev" and first == "user" and "restrict=on" not in value.split(","):
        return ("the internet door's network: unrestricted user networking (outbound NAT "
                "through the host); its card's cable is plugged in only while the door is open")
    if option == "-chardev":
        ident = next((p[3:] for p in value.split(",") if p.startswith("id=")), "")
        return CHARDEV_MEANINGS.get(ident, "a channel between QEMU and the host")
    return OPTION_MEANINGS.get(option, "see QEMU's manual (man qemu-system)")


def command_html(guest: Guest) -> str:
    """The real command line, then a table of its parts."""
    if not guest.command:
        return f"<i>Guest {escape(guest.name)} has not been started yet: no command.</i>"
    rows = [[f"<code>{escape(o)}</code>", f"<code>{escape(v)}</code>", escape(m)]
            for o, v, m in explain_command(guest.command)]
    return (markup.code_block(qemu.show(guest.command))
            + markup.table(["option", "value", "what it does"], rows))


class CommandExplained(KitWidget):
    """The real QEMU command of a guest, option by option."""

    def __init__(self, guest: Guest) -> None:
        super().__init__("the QEMU command")
        self.guest = guest
        self.body = widgets.HTML()
        self.show_button = widgets.Button(description="Show the current command",
                                          icon="terminal", layout=widgets.Layout(width="auto"))
        self.show_button.on_click(self._callback("showing the command", self.show))
        self._set_body(self.show_button, self.body)
        # Each start builds the command anew (another size, another door): show that one.
        self._follow_guest(guest, lambda state: self.show() if state == "booting" else None)
        self.show()

    def show(self) -> None:
        self.body.value = command_html(self.guest)
