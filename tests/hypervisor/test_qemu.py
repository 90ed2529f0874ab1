"""The QEMU command line, checked without starting QEMU."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import kit
from kit.guestos import images
from kit.hypervisor import qemu
from kit.infrastructure.net import free_port, http_get


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


# -- QEMU's seccomp sandbox ---------------------------------------------------------


def test_sandbox_denies_what_a_guest_never_needs() -> None:
    command = qemu.qemu_command(spec(sandbox=True), FDS)
    assert option(command, "-sandbox") == [qemu.SANDBOX]
    flags = qemu.SANDBOX.split(",")
    assert flags[0] == "on"
    assert {f"{name}=deny" for name in
            ("obsolete", "elevateprivileges", "spawn", "resourcecontrol")} <= set(flags)


def test_no_sandbox_where_qemu_lacks_it() -> None:
    assert "-sandbox" not in qemu.qemu_command(spec(sandbox=False), FDS)
    assert not qemu.sandbox_supported("/nonexistent/qemu-system-x86_64")


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="needs QEMU")
def test_sandbox_asked_of_the_real_binary() -> None:
    # Debian's QEMU is built with seccomp: the probe must say so, and the
    # command then asks for the sandbox without being told to.
    assert qemu.sandbox_supported("qemu-system-x86_64")
    assert option(qemu.qemu_command(spec(), FDS), "-sandbox") == [qemu.SANDBOX]


@pytest.mark.guest
def test_real_guest_runs_inside_the_seccomp_filter(image: images.GuestImage,
                                                   guest_name: str) -> None:
    """The host kernel filters QEMU's system calls; the guest still works, forwards included."""
    port = free_port()
    with kit.Guest(guest_name) as g:
        assert "-sandbox" in g.command
        status = Path(f"/proc/{g.pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE), status  # 2: filter mode
        # A forward added live through the human monitor still opens a socket.
        said = g.qmp("human-monitor-command",
                     {"command-line": f"hostfwd_add tcp:127.0.0.1:{port}-:80"})
        assert said == "", said
        assert "guest" in http_get(port).lower()
        assert g.run("echo inside").stdout == "inside\n"


@dataclass(frozen=True)
class FakeArmImage(FakeImage):
    kernel_cmdline: str = "console=ttyAMA0"
    qemu_binary: str = "qemu-system-aarch64"
    machine: str = "virt"


def test_aarch64_guest_on_virt_is_emulated_with_pci_virtio() -> None:
    command = qemu.qemu_command(spec(image=FakeArmImage(), accel="kvm"), FDS)
    assert command[0] == "qemu-system-aarch64"
    assert option(command, "-machine") == ["virt"]
    assert option(command, "-cpu") == ["cortex-a57"]
    if qemu.platform.machine() != "aarch64":  # KVM cannot run another architecture
        assert option(command, "-accel")[0].startswith("tcg")
    assert "virtio-net-pci,netdev=net0,id=nic0" in option(command, "-device")
    assert "virtio-serial-pci,id=virtio-serial" in option(command, "-device")
    assert not any("pvpanic" in device for device in option(command, "-device"))
    assert "panic=pause" not in option(command, "-action")


# -- doors (kit.hypervisor.doors): a shared folder and links to other guests -----------------------


@dataclass(frozen=True)
class FakeMicrovmImage(FakeImage):
    machine: str = "microvm"


def test_a_shared_folder_is_read_only_unless_asked() -> None:
    command = qemu.qemu_command(spec(share=qemu.ShareSpec(Path("/tmp/lesson"))), FDS)
    assert option(command, "-fsdev") == [
        "local,id=fs0,path=/tmp/lesson,security_model=none,readonly=on"]
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=share" in option(command, "-device")
    writable = qemu.qemu_command(spec(share=qemu.ShareSpec(Path("/tmp/w"), writable=True)), FDS)
    assert "readonly" not in option(writable, "-fsdev")[0]


def test_a_comma_in_a_shared_path_cannot_add_options() -> None:
    command = qemu.qemu_command(spec(share=qemu.ShareSpec(Path("/tmp/a,readonly=off"))), FDS)
    assert option(command, "-fsdev")[0].startswith("local,id=fs0,path=/tmp/a,,readonly=off,")


def test_no_doors_no_extra_devices() -> None:
    command = qemu.qemu_command(spec(), FDS)
    assert "-fsdev" not in command
    assert option(command, "-netdev") == [option(command, "-netdev")[0]]  # user net only


def test_a_link_is_a_second_card_after_the_user_network_card() -> None:
    nic = qemu.LinkNic("link0", local_path=Path("/run/kit/link-1/a.sock"),
                       remote_path=Path("/run/kit/link-1/b,c.sock"), mac="52:54:00:4c:01:01")
    command = qemu.qemu_command(
        spec(image=FakeMicrovmImage(), tsc_khz=2_000_000, links=(nic,),
             share=qemu.ShareSpec(Path("/tmp/s"))), FDS)
    # unix datagram sockets in the owner-only runtime folder: no other user reaches them
    assert option(command, "-netdev")[1] == (
        "dgram,id=link0,local.type=unix,local.path=/run/kit/link-1/a.sock,"
        "remote.type=unix,remote.path=/run/kit/link-1/b,,c.sock")
    devices = option(command, "-device")
    cards = [d for d in devices if d.startswith("virtio-net-device")]
    assert cards == ["virtio-net-device,netdev=net0,id=nic0",  # first: eth0 in the guest
                     "virtio-net-device,netdev=link0,id=link0-nic,mac=52:54:00:4c:01:01"]
    assert "virtio-9p-device,fsdev=fs0,mount_tag=share" in devices


# -- the root disk and guest RAM -----------------------------------------------------------


@dataclass(frozen=True)
class FakeDiskImage(FakeMicrovmImage):
    root_disk: Path | None = Path("/cache/a,b/root.ext2")


def test_an_image_with_a_root_disk_boots_from_it_not_the_initramfs() -> None:
    command = qemu.qemu_command(spec(image=FakeDiskImage(), tsc_khz=2_000_000), FDS)
    assert "-initrd" not in command
    # A comma in the cache path is doubled; writes go to QEMU's own temporary file.
    assert option(command, "-drive") == [
        "file=/cache/a,,b/root.ext2,format=raw,if=none,id=rootdisk,snapshot=on"]
    assert "virtio-blk-device,drive=rootdisk" in option(command, "-device")
    cmdline = option(command, "-append")[0].split()
    assert {"root=/dev/vda", "rw", "init=/init"} <= set(cmdline)
    assert cmdline.index("root=/dev/vda") < cmdline.index("kit.name=web1")


def test_a_guest_with_its_own_overlay_writes_there() -> None:
    overlay = Path("/run/kit/web1/disk.qcow2")
    command = qemu.qemu_command(spec(image=FakeDiskImage(), tsc_khz=2_000_000,
                                     root_overlay=overlay), FDS)
    # The image is the overlay's backing file (named inside it), so only the overlay is given.
    assert option(command, "-drive") == [
        "file=/run/kit/web1/disk.qcow2,format=qcow2,if=none,id=rootdisk"]


def test_a_machine_loaded_from_a_descriptor_waits_for_the_kit() -> None:
    booting = qemu.qemu_command(spec(), FDS)
    assert "-incoming" not in booting
    loading = qemu.qemu_command(spec(incoming_fd=9), FDS)
    # QEMU waits (defer) until the kit has set the migration's capabilities, then reads fd 9.
    assert option(loading, "-incoming") == ["defer"]
    assert loading[-1] == "-S"  # and stays paused once it has the machine


def test_guest_ram_from_a_file_shared_or_copy_on_write() -> None:
    microvm = dict(image=FakeMicrovmImage(), tsc_khz=2_000_000)
    memfd = option(qemu.qemu_command(spec(**microvm), FDS), "-object")
    assert memfd == ["memory-backend-memfd,id=guest-ram,size=128M"]
    for shared, word in ((True, "on"), (False, "off")):
        ram = qemu.RamFile("/proc/self/fd/11", shared=shared)
        objects = option(qemu.qemu_command(spec(ram_file=ram, **microvm), FDS), "-object")
        assert objects == [f"memory-backend-file,id=guest-ram,mem-path=/proc/self/fd/11,"
                           f"share={word},size=128M"]
    # A machine without a RAM backend (q35) ignores it: its memory travels in the stream.
    q35 = qemu.qemu_command(spec(ram_file=qemu.RamFile("/x", shared=True)), FDS)
    assert "memory-backend-file" not in " ".join(q35)


def test_an_image_without_a_root_disk_boots_from_its_initramfs() -> None:
    command = qemu.qemu_command(spec(), FDS)
    assert option(command, "-initrd") == ["/cache/initramfs.cpio"]
    assert "-drive" not in command
    assert "root=/dev/vda" not in option(command, "-append")[0]


def test_microvm_guest_ram_is_a_memfd_of_the_guest_size() -> None:
    command = qemu.qemu_command(spec(image=FakeMicrovmImage(), tsc_khz=2_000_000), FDS)
    assert option(command, "-object") == ["memory-backend-memfd,id=guest-ram,size=128M"]
    assert option(command, "-machine")[0].endswith(",memory-backend=guest-ram")
    assert "-object" not in qemu.qemu_command(spec(), FDS)  # q35: plain anonymous RAM


def test_qemu_runs_with_a_fixed_malloc_threshold() -> None:
    env = qemu.environment({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "GLIBC_TUNABLES": qemu.MALLOC_TUNABLE}


def test_a_learners_own_glibc_tunables_are_kept() -> None:
    theirs = qemu.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert theirs["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{qemu.MALLOC_TUNABLE}"
    own_threshold = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}
    assert qemu.environment(own_threshold) == own_threshold


def test_the_kit_starts_paused_and_a_probe_does_not() -> None:
    """-S until the doors are set; the KVM probe sends no "cont", so it must not pause."""
    kit_machine = qemu.qemu_command(spec(image=FakeMicrovmImage(), tsc_khz=2_000_000), FDS)
    probe = qemu.qemu_command(spec(image=FakeMicrovmImage(), tsc_khz=2_000_000, paused=False),
                              FDS)
    assert "-S" in kit_machine and "-S" not in probe
