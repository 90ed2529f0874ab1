"""The machine as one host process, and its command line explained."""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit.core import incidents
from kit.core.errors import GuestNotRunning
from kit.hypervisor import qemu
from kit.lesson import machine
from tests.waiting import wait_until


class FakeImage:
    kernel = Path("/images/vmlinuz")
    initramfs = Path("/images/initramfs.cpio")
    kernel_cmdline = "console=ttyS0"
    qemu_binary = "qemu-system-x86_64"


def command(accel: str = "tcg") -> list[str]:
    spec = qemu.MachineSpec(name="web1", image=FakeImage(), memory_mb=192, cpus=2, accel=accel,
                            forwards={8080: 80}, pidfile=Path("/run/qemu.pid"))
    return qemu.build_command(spec, qemu.ChannelFds(3, 4, 5))


def test_every_part_of_the_command_is_explained() -> None:
    rows = machine.explain_command(command())
    assert rows[0][0].startswith("setpriv") and rows[1][0] == "qemu-system-x86_64"
    options = {option: (value, meaning) for option, value, meaning in rows}
    assert options["-m"] == ("192", "the guest's memory (RAM), in MiB")
    assert options["-smp"][0] == "2" and "TCG" in options["-accel"][1]
    assert options["-nodefaults"][0] == ""  # a flag takes no value
    assert "hostfwd" in options["-netdev"][0]
    assert not [r for r in rows if "manual" in r[2]], "an option has no explanation"
    kinds = [meaning for option, _, meaning in rows if option in ("-device", "-chardev")]
    assert "a virtual network card" in kinds and "a channel to the guest agent" in kinds


def test_kvm_is_explained_as_hardware_help() -> None:
    meanings = {o: m for o, _, m in machine.explain_command(command("kvm"))}
    assert "KVM" in meanings["-accel"] and "-cpu" in meanings


def test_threads_get_roles() -> None:
    seen = machine.MachineProcess(
        "g", 10, "qemu-g", (machine.HostThread(10, "qemu-g"), machine.HostThread(11, "call_rcu"),
                            machine.HostThread(12, "IO mon_iothread"),
                            machine.HostThread(13, "CPU 0/TCG")), 100.0, 128, 1, (13,))
    roles = [seen.role(t) for t in seen.threads]
    assert "main loop" in roles[0] and "helper" in roles[1] and "QMP" in roles[2]
    assert roles[3].startswith("runs virtual CPU 0") and seen.vcpu_threads == seen.threads[3:]


def test_a_guest_that_is_not_running_is_no_process(image: object) -> None:
    with pytest.raises(GuestNotRunning, match="no process"):
        machine.machine_process(kit.Guest("t-never-started"))
    assert "not been started" in machine.command_html(kit.Guest("t-never-started"))


@pytest.mark.guest
def test_a_two_cpu_guest_is_one_process_with_two_cpu_threads(image: object,
                                                              guest_name: str) -> None:
    with kit.Guest(guest_name, cpus=2) as g:
        view = machine.OneProcess(g)
        seen = view.seen
        assert seen is not None and seen.pid == g.pid and seen.name == f"qemu-{guest_name}"
        names = [t.name for t in seen.vcpu_threads]
        assert len(names) == 2 and all(n.startswith(("CPU 0/", "CPU 1/")) for n in names)
        assert {t.tid for t in seen.vcpu_threads} == set(seen.qmp_vcpu_tids)
        assert seen.rss_mb > 10 and "2 virtual CPUs" in view.summary.value
        assert "✔ vCPU" in view.threads.value
        assert machine.vcpu_threads(g) == seen.vcpu_threads
        assert "-smp" in machine.CommandExplained(g).body.value


@pytest.mark.guest
def test_the_views_follow_a_new_machine_of_the_same_name(image: object, guest_name: str) -> None:
    """Lesson 1 makes ``mine`` again with another size: no view goes on showing the old one."""
    old = kit.Guest(guest_name, memory_mb=128, cpus=1).start()
    process, command = machine.OneProcess(old), machine.CommandExplained(old)
    new = kit.Guest(guest_name, memory_mb=160, cpus=2, replace=True)
    try:
        assert "given <b>128 MiB</b>" in process.summary.value
        old.stop()
        assert wait_until(lambda: "no process now" in process.summary.value, 5)
        new.start()
        assert wait_until(lambda: process.seen is not None and process.seen.pid == new.pid, 10)
        assert "given <b>160 MiB</b>" in process.summary.value
        assert "2 virtual CPUs" in process.summary.value
        assert process.guest is new and command.guest is new
        assert "-m 160" in command.body.value and "-smp 2" in command.body.value
        assert incidents.recorded() == []
    finally:
        process.close()
        command.close()
        new.stop()
        old.stop()
