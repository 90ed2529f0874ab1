"""The QEMU command line, checked without starting QEMU."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kit import qemu


@dataclass(frozen=True)
class FakeImage:
    kernel: Path = Path("/cache/vmlinuz")
    initramfs: Path = Path("/cache/initramfs.cpio")
    kernel_cmdline: str = "console=ttyS0"
    qemu_binary: str = "qemu-system-x86_64"


FDS = qemu.ChannelFds(qmp=3, console=4, agent=5)


def spec(**changes: object) -> qemu.MachineSpec:
    values: dict[str, object] = dict(
        name="web1", image=FakeImage(), memory_mb=128, cpus=2, accel="tcg",
        forwards={8080: 80},
    )
    values.update(changes)
    return qemu.MachineSpec(**values)  # type: ignore[arg-type]


def option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == flag]


def test_wrapped_in_parent_death_signal() -> None:
    command = qemu.build_command(spec(), FDS)
    assert command[:4] == ["setpriv", "--pdeathsig", "KILL", "--"]
    assert command[4] == "qemu-system-x86_64"


def test_memory_cpus_and_name() -> None:
    command = qemu.qemu_command(spec(), FDS)
    assert option(command, "-m") == ["128"]
    assert option(command, "-smp") == ["2"]
    assert option(command, "-name")[0].startswith("web1,process=qemu-web1")


def test_tcg_or_kvm() -> None:
    assert option(qemu.qemu_command(spec(), FDS), "-accel")[0].startswith("tcg")
    kvm = qemu.qemu_command(spec(accel="kvm"), FDS)
    assert option(kvm, "-accel") == ["kvm"]
    assert option(kvm, "-cpu") == ["host"]


def test_forwards_listen_on_loopback_only() -> None:
    command = qemu.qemu_command(spec(forwards={8080: 80, 2222: 22}), FDS)
    netdev = option(command, "-netdev")[0]
    assert "hostfwd=tcp:127.0.0.1:8080-:80" in netdev
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev
    assert netdev.count("hostfwd=") == netdev.count("127.0.0.1")


def test_channels_are_inherited_sockets() -> None:
    chardevs = option(qemu.qemu_command(spec(), FDS), "-chardev")
    assert "socket,id=qmp,fd=3" in chardevs
    assert "socket,id=console,fd=4" in chardevs
    assert "socket,id=agent,fd=5" in chardevs
    assert not any("path=" in c for c in chardevs)


def test_kernel_command_line_names_the_guest() -> None:
    append = option(qemu.qemu_command(spec(), FDS), "-append")[0]
    assert append.startswith("console=ttyS0")
    assert "kit.name=web1" in append


def test_crash_is_reported_not_rebooted() -> None:
    command = qemu.qemu_command(spec(), FDS)
    assert "pvpanic-pci" in option(command, "-device")
    assert option(command, "-action") == ["panic=pause"]


def test_show_is_copyable_shell() -> None:
    line = qemu.show(qemu.qemu_command(spec(), FDS))
    assert line.startswith("qemu-system-x86_64 -name ")
    assert "'console=ttyS0 kit.name=web1'" in line
