"""The QEMU command line, built as a list of words.

Pure: no process is started here, so the command can be tested without QEMU
and shown to learners exactly as it will run (:func:`show`).  The three
channels to the guest (QMP, the serial console, the guest agent) are sockets
the kit has already connected, handed to QEMU as inherited file descriptors:
nothing listens on a path, so nothing can race or eavesdrop, and no byte of
boot output is lost before the kit is reading.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

AGENT_PORT_NAME = "org.qemu.guest_agent.0"
# Named, so that QEMU reports VSERPORT_CHANGE when the agent starts or dies.
AGENT_DEVICE_ID = "agent-port"


class BootableImage(Protocol):
    """What the command needs of a guest image (see :class:`kit.images.GuestImage`)."""

    @property
    def kernel(self) -> Path: ...
    @property
    def initramfs(self) -> Path: ...
    @property
    def kernel_cmdline(self) -> str: ...
    @property
    def qemu_binary(self) -> str: ...


@dataclass(frozen=True)
class ChannelFds:
    """File descriptors (QEMU's ends of socket pairs) for the three channels."""

    qmp: int
    console: int
    agent: int


@dataclass(frozen=True)
class MachineSpec:
    """Everything that decides one guest's QEMU command line."""

    name: str
    image: BootableImage
    memory_mb: int
    cpus: int
    accel: str  # "kvm" or "tcg"
    forwards: Mapping[int, int] = field(default_factory=dict)  # host port -> guest port
    pidfile: Path | None = None
    kernel_args: tuple[str, ...] = ()


def build_command(spec: MachineSpec, fds: ChannelFds) -> list[str]:
    """The full command, wrapped so that QEMU dies with the process that started it."""
    return [*parent_death_wrapper(), *qemu_command(spec, fds)]


def parent_death_wrapper() -> list[str]:
    """``setpriv --pdeathsig KILL``: the kernel kills QEMU when its parent dies.

    This is what makes "no guest outlives its notebook" hold even when the
    notebook kernel is SIGKILLed and no Python cleanup code runs.
    """
    return ["setpriv", "--pdeathsig", "KILL", "--"]


def qemu_command(spec: MachineSpec, fds: ChannelFds) -> list[str]:
    """The QEMU part alone: what a learner would type to boot this guest by hand."""
    return [
        spec.image.qemu_binary,
        *_machine_args(spec),
        *_boot_args(spec),
        *_channel_args(fds),
        *_network_args(spec.forwards),
        *_crash_args(),
        *(["-pidfile", str(spec.pidfile)] if spec.pidfile else []),
    ]


def show(command: list[str]) -> str:
    """The command as one shell-quoted line, for people to read or copy."""
    return shlex.join(command)


def _machine_args(spec: MachineSpec) -> list[str]:
    accel = "kvm" if spec.accel == "kvm" else "tcg,tb-size=64"
    return [
        "-name", f"{spec.name},process=qemu-{spec.name},debug-threads=on",
        "-machine", "q35",
        "-accel", accel,
        *(["-cpu", "host"] if spec.accel == "kvm" else []),
        "-m", str(spec.memory_mb),
        "-smp", str(spec.cpus),
        "-nodefaults", "-no-user-config",
        "-display", "none",
    ]


def _boot_args(spec: MachineSpec) -> list[str]:
    cmdline = " ".join([spec.image.kernel_cmdline, f"kit.name={spec.name}", *spec.kernel_args])
    return [
        "-kernel", str(spec.image.kernel),
        "-initrd", str(spec.image.initramfs),
        "-append", cmdline,
    ]


def _channel_args(fds: ChannelFds) -> list[str]:
    return [
        "-chardev", f"socket,id=qmp,fd={fds.qmp}",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"socket,id=console,fd={fds.console}",
        "-serial", "chardev:console",
        "-device", "virtio-serial-pci,id=virtio-serial",
        "-chardev", f"socket,id=agent,fd={fds.agent}",
        "-device", f"virtserialport,chardev=agent,name={AGENT_PORT_NAME},id={AGENT_DEVICE_ID}",
    ]


def _network_args(forwards: Mapping[int, int]) -> list[str]:
    # Every forward listens on 127.0.0.1 only: a guest is never reachable
    # from another machine on the network.
    rules = "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in sorted(forwards.items())
    )
    return [
        "-netdev", f"user,id=net0{rules}",
        "-device", "virtio-net-pci,netdev=net0,id=nic0",
    ]


def _crash_args() -> list[str]:
    # With a pvpanic device the guest kernel tells the hypervisor it crashed;
    # QEMU then pauses it and reports GUEST_PANICKED instead of rebooting.
    return ["-device", "pvpanic-pci", "-action", "panic=pause"]
