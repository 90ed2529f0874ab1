"""A guest of another architecture: an aarch64 machine emulated on this host.

The unit tests read ELF files and apt's output without QEMU; the rest build
the real aarch64 image (arm64 packages, downloaded once) and boot it.
"""

from __future__ import annotations

import os
import platform
import struct
import time
from pathlib import Path

import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.guestos.build import apt, common, foreign
from kit.hypervisor import qemu
from kit.hypervisor.guest import default_boot_timeout
from tests.conftest import our_qemu_pids

ARCH = "aarch64"
EM_AARCH64 = 183  # e_machine of an ELF file for 64-bit ARM


# --- without QEMU --------------------------------------------------------------------


def test_recipe_has_an_aarch64_guest() -> None:
    assert ARCH in images.supported_arches()
    recipe = images.load_recipe(ARCH)
    assert (recipe.deb_architecture, recipe.machine, recipe.console) == ("arm64", "virt", "ttyAMA0")
    assert recipe.qemu_binary == "qemu-system-aarch64"
    assert {p.guest for p in recipe.foreign_programs} >= {"/bin/busybox", "/usr/sbin/qemu-ga"}
    assert recipe.programs == ()  # nothing is copied from this x86 host
    assert default_boot_timeout(ARCH) > default_boot_timeout("x86_64")


def test_closure_keeps_only_packages_of_the_architecture() -> None:
    output = (
        "qemu-guest-agent:arm64\n"
        "  Depends: libc6:arm64\n"
        "init-system-helpers\n"
        " |Depends: usrmerge\n"
        "libc6:arm64\n"
        "  Depends: libgcc-s1:arm64\n"
        "<perl:any>\n"
        "libgcc-s1:arm64\n"
    )
    assert foreign.parse_closure(output, "arm64") == ["libc6", "libgcc-s1", "qemu-guest-agent"]


def test_apt_records_are_split_at_blank_lines() -> None:
    output = (
        "Package: zlib1g\nVersion: 1:1.2.13\nDescription: compression\n more text: here\n\n"
        "Package: libc6\nVersion: 2.36\nSHA256: abc\n"
    )
    records = foreign.parse_records(output)
    assert [r["Package"] for r in records] == ["zlib1g", "libc6"]
    assert records[0]["Version"] == "1:1.2.13" and "more text" not in records[0]
    assert records[1]["SHA256"] == "abc"


def test_download_name_spells_the_epoch_as_apt_does() -> None:
    assert (foreign.download_name("busybox-static", "1:1.35.0-4", "arm64")
            == "busybox-static_1%3a1.35.0-4_arm64.deb")
    assert foreign.download_name("liburing2", "2.3-3", "arm64") == "liburing2_2.3-3_arm64.deb"


def test_elf_dependencies_match_ldd_on_a_host_program() -> None:
    program = Path("/usr/sbin/qemu-ga")
    if not program.is_file():
        pytest.skip("qemu-guest-agent is not installed on this host")
    interpreter, needed = foreign.elf_dependencies(program.read_bytes())
    listed = {path.name for path in images.shared_libraries(program)}
    assert interpreter is not None and Path(interpreter).name in listed
    assert set(needed) <= listed
    assert "libglib-2.0.so.0" in needed


def test_static_program_needs_nothing() -> None:
    busybox = Path("/usr/bin/busybox")
    if not busybox.is_file():
        pytest.skip("busybox-static is not installed on this host")
    assert foreign.elf_dependencies(busybox.read_bytes()) == (None, [])


def test_links_are_followed_inside_the_tree_never_on_the_host(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "aarch64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "libc.so.6").write_bytes(b"elf")
    (tmp_path / "lib" / "ld.so").symlink_to("aarch64-linux-gnu/libc.so.6")
    (tmp_path / "lib" / "abs.so").symlink_to("/lib/aarch64-linux-gnu/libc.so.6")
    (tmp_path / "lib" / "host.so").symlink_to("/etc/hostname")
    trees = [tmp_path]
    assert foreign.find_in_trees("/lib/ld.so", trees) == lib / "libc.so.6"
    assert foreign.find_in_trees("/lib/abs.so", trees) == lib / "libc.so.6"
    assert foreign.find_in_trees("/lib/host.so", trees) is None
    assert foreign.find_in_trees("/lib/missing.so", trees) is None


@pytest.fixture(scope="module")
def arm_image() -> images.GuestImage:
    """The aarch64 image, built once (about a minute, packages downloaded once)."""
    return images.ensure_image(ARCH, common.print_progress)


@pytest.mark.guest  # the aarch64 image is built on first use
@pytest.mark.slow
def test_virt_profile_is_always_emulated_on_this_host(arm_image: images.GuestImage) -> None:
    image = arm_image
    fds = qemu.ChannelFds(3, 4, 5)
    spec = qemu.MachineSpec(name="a", image=image, memory_mb=128, cpus=1, accel="kvm")
    command = qemu.qemu_command(spec, fds)
    assert command[0] == "qemu-system-aarch64"
    assert command[command.index("-machine") + 1] == "virt"
    if platform.machine() != ARCH:
        assert command[command.index("-accel") + 1].startswith("tcg")
        assert command[command.index("-cpu") + 1] == "cortex-a57"
    assert "virtio-net-pci,netdev=net0,id=nic0" in command
    assert "pvpanic-pci" not in command


# --- the real image and guest -----------------------------------------------------------


def _elf_machine(data: bytes) -> int:
    return int(struct.unpack_from("<H", data, 18)[0])


@pytest.mark.guest  # the aarch64 image is built on first use
@pytest.mark.slow
def test_image_is_built_from_arm64_packages_and_cached(arm_image: images.GuestImage) -> None:
    again = images.ensure_image(ARCH)
    assert again.initramfs == arm_image.initramfs and again.key == arm_image.key
    assert images.read_manifest(again)["built_at"] == images.read_manifest(arm_image)["built_at"]
    assert arm_image.machine == "virt" and arm_image.kernel_source == "debian"
    assert arm_image.kernel_version.endswith("-arm64")
    contents = set(images.read_manifest(arm_image)["contents"])
    assert {"/bin/busybox", "/usr/sbin/qemu-ga", "/lib/ld-linux-aarch64.so.1"} <= contents
    assert "/usr/lib/aarch64-linux-gnu/libglib-2.0.so.0" in contents


@pytest.mark.guest  # the aarch64 image is built on first use
@pytest.mark.slow
def test_programs_in_the_image_are_for_aarch64(arm_image: images.GuestImage) -> None:
    trees = sorted((apt.packages_dir() / "unpacked").glob("qemu-guest-agent_*_arm64"))
    assert trees, "the arm64 agent package was not unpacked in the cache"
    agent = foreign.find_in_trees("/usr/sbin/qemu-ga", trees[-1:])
    assert agent is not None and _elf_machine(agent.read_bytes()) == EM_AARCH64


@pytest.mark.guest
@pytest.mark.slow
def test_aarch64_guest_boots_runs_and_leaves_nothing(
    arm_image: images.GuestImage, guest_name: str
) -> None:
    with kit.Guest(guest_name, arch=ARCH) as g:
        assert g.boot_timeout == default_boot_timeout(ARCH)
        assert g.run("uname -m").stdout.strip() == ARCH
        release = g.run("uname -r").stdout.strip()
        assert release == arm_image.kernel_version and release != os.uname().release
        assert release.endswith("arm64") and not os.uname().release.endswith("arm64")
        assert g.qmp("query-target")["arch"] == ARCH
        assert "qemu-system-aarch64" in g.command_line and "ttyAMA0" in g.command_line
        assert "KIT-READY" in g.console.text()
        pid, rundir = g.pid, paths.runtime_dir() / guest_name
        assert pid is not None
    assert g.state == "stopped"
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    assert not rundir.exists()
    assert not our_qemu_pids()


@pytest.mark.guest
@pytest.mark.slow
def test_aarch64_console_answers(arm_image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name, arch=ARCH) as g:
        g.console.write("echo arch-$(uname -m)\n")
        deadline = time.monotonic() + 20
        while "arch-aarch64" not in g.console.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "arch-aarch64" in g.console.text()
