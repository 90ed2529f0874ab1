"""The kit's own kernel: its recipe, its build's bookkeeping, its fallback, how it boots."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import kit
from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos import images
from kit.guestos.build import apt, common, kernel
from kit.hypervisor import qemu
from kit.hypervisor.doors import internet
from kit.infrastructure import hostclock
from tests.guestos.build.expected_kernel import kit_image

# What the lessons need of the guest kernel, built in (issue 6).
REQUIRED = {
    "serial console": ["CONFIG_SERIAL_8250", "CONFIG_SERIAL_8250_CONSOLE"],
    "initramfs": ["CONFIG_BLK_DEV_INITRD", "CONFIG_BINFMT_SCRIPT", "CONFIG_BINFMT_ELF"],
    "file systems /init mounts": [
        "CONFIG_DEVTMPFS", "CONFIG_PROC_FS", "CONFIG_SYSFS", "CONFIG_TMPFS", "CONFIG_UNIX98_PTYS",
    ],
    "sockets": ["CONFIG_NET", "CONFIG_UNIX", "CONFIG_INET"],
    "virtio": ["CONFIG_VIRTIO_MMIO", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_NET",
               "CONFIG_VIRTIO_CONSOLE"],
    "shared folders": ["CONFIG_NET_9P", "CONFIG_NET_9P_VIRTIO", "CONFIG_9P_FS"],
    "crash reported": ["CONFIG_PVPANIC", "CONFIG_PVPANIC_MMIO", "CONFIG_PVPANIC_PCI"],
    "clean power-off": ["CONFIG_ACPI"],
    "boot log": ["CONFIG_PRINTK", "CONFIG_PRINTK_TIME"],
    "crash lesson": ["CONFIG_MAGIC_SYSRQ"],
    "qemu-ga, busybox, sqlite3": [
        "CONFIG_MULTIUSER", "CONFIG_FUTEX", "CONFIG_EPOLL", "CONFIG_EVENTFD",
        "CONFIG_SIGNALFD", "CONFIG_TIMERFD", "CONFIG_SHMEM", "CONFIG_FILE_LOCKING",
        "CONFIG_POSIX_TIMERS",
    ],
    "ps": ["CONFIG_PROC_FS"],
    "two or more vCPUs": ["CONFIG_SMP"],
    "PVH boot of the uncompressed kernel": ["CONFIG_PVH"],
    "the root disk": ["CONFIG_BLOCK", "CONFIG_VIRTIO_BLK", "CONFIG_EXT2_FS",
                      "CONFIG_DEVTMPFS_MOUNT"],
    "eth0 set up by the kernel (ip=)": ["CONFIG_IP_PNP"],
    "a kernel call trace with function names": ["CONFIG_KALLSYMS"],
}  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of our own, sharing the real cache's downloaded packages."""
    packages = paths.cache_dir() / "packages"
    folder = tmp_path / "cache"
    monkeypatch.setenv("KIT_CACHE_DIR", str(folder))
    if packages.is_dir():
        folder.mkdir()
        (folder / "packages").symlink_to(packages)
    return folder


# --- the recipe ------------------------------------------------------------------------


@pytest.mark.parametrize("need", sorted(REQUIRED))
def test_fragment_builds_in_what_the_lessons_need(need: str) -> None:
    options = kernel.required_options(kernel.load_recipe())
    missing = [name for name in REQUIRED[need] if options.get(name) != "y"]
    assert not missing, f"{need} needs {missing} in assets/kernel/kit.config"


def test_fragment_builds_no_modules() -> None:
    options = kernel.required_options(kernel.load_recipe())
    assert "m" not in options.values()
    assert options["CONFIG_SLOB"] == "n" and options["CONFIG_SLUB"] == "y"


def test_recipe_parses_and_patches_exist() -> None:
    recipe = kernel.load_recipe("x86_64")
    assert recipe.source_package.startswith("linux-source-")
    assert recipe.machine == "microvm" and recipe.make_target == "vmlinux"
    assert recipe.min_memory_mb == 64
    assert all(patch.is_file() for patch in recipe.patches)
    # lapic_timer_period is timer ticks per jiffy: QEMU's APIC timer counts nanoseconds.
    hz = 250 if kernel.required_options(recipe).get("CONFIG_HZ_250") == "y" else None
    assert hz is not None and f"lapic_timer_period={10**9 // hz}" in recipe.cmdline
    assert recipe.root_disk  # virtio-blk and ext2 are built in (REQUIRED above)
    # /init skips its `ip` commands when the kernel has set eth0 up; it looks for this.
    assert " ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off" in f" {recipe.cmdline}"
    assert 'ip=10.0.2.15:"*)' in (paths.assets_dir() / "guest" / "init").read_text()


def test_lost_options_are_named() -> None:
    config = "CONFIG_NET=y\n# CONFIG_9P_FS is not set\nCONFIG_SLUB=y\n"
    wanted = {"CONFIG_NET": "y", "CONFIG_9P_FS": "y", "CONFIG_SLOB": "n", "CONFIG_ACPI": "y"}
    assert kernel.missing_options(wanted, config) == ["CONFIG_9P_FS=y", "CONFIG_ACPI=y"]


def test_recipe_digest_follows_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "assets"
    shutil.copytree(paths.assets_dir() / "kernel", copy / "kernel")
    monkeypatch.setattr(paths, "assets_dir", lambda: copy)
    before = kernel.recipe_digest(kernel.load_recipe())
    (copy / "kernel" / "kit.config.swp").write_text("an editor's file")  # not hidden: counts
    assert kernel.recipe_digest(kernel.load_recipe()) != before
    (copy / "kernel" / "kit.config.swp").unlink()
    (copy / "kernel" / ".kit.config.swp").write_text("a hidden one")
    assert kernel.recipe_digest(kernel.load_recipe()) == before


# --- can it be built; what happens when it cannot --------------------------------------


def without_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(kernel.shutil, "which",
                        lambda name, *args, **kw: None if name == "gcc" else real(name))


def test_obstacle_names_the_missing_tool(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    without_compiler(monkeypatch)
    reason = kernel.obstacle(kernel.load_recipe())
    assert reason is not None and "gcc" in reason


@pytest.mark.guest  # builds a real image, with Debian's kernel
@pytest.mark.slow
def test_no_compiler_falls_back_to_debian_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    without_compiler(monkeypatch)
    monkeypatch.delenv("KIT_KERNEL", raising=False)
    steps: list[str] = []
    image = images.ensure_image(progress=lambda step, done: steps.append(step))
    assert image.kernel_source == "debian" and image.machine == "q35"
    assert image.fallback_reason is not None and "gcc" in image.fallback_reason
    assert any("Debian's kernel instead" in step for step in steps)
    manifest = images.read_manifest(image)
    assert manifest["fallback_retry"] is True and manifest["modules"]
    assert images.find_image() == image  # the fallback is what guests boot
    assert not (cache / "kernels").exists() or not list((cache / "kernels").glob("x86_64-*"))


def fake_package() -> apt.DebPackage:
    return apt.DebPackage(name="linux-source-6.1", version="6.1.0-test",
                                architecture="all", filename="linux-source.deb", sha256="0")


@pytest.mark.guest  # goes through the kernel's build path (with a stand-in build)
def test_failed_build_is_recorded_and_not_repeated(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    calls: list[str] = []

    def failing_build(*args: object) -> kernel.KitKernel:
        calls.append("build")
        raise ImageError("Compiling the kit's kernel failed.", log="error: boom")

    monkeypatch.setattr(kernel, "resolve_source_package", lambda recipe: fake_package())
    monkeypatch.setattr(kernel, "_build", failing_build)
    with pytest.raises(ImageError, match="failed"):
        kernel.ensure_kernel()
    with pytest.raises(ImageError, match="recorded in") as again:
        kernel.ensure_kernel()
    assert calls == ["build"] and "boom" in (again.value.log or "")
    assert again.value.hint and "--rebuild" in again.value.hint
    with pytest.raises(ImageError):
        kernel.ensure_kernel(retry=True)
    assert calls == ["build", "build"]


def test_fallback_for_missing_tools_is_retried_once_they_are_there(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    folder = cache / "images" / "x86_64-fake"
    folder.mkdir(parents=True)
    manifest = {"fallback_retry": True}
    (folder / images.MANIFEST).write_text(json.dumps(manifest))
    image = images.GuestImage(
        arch="x86_64", kernel=folder / images.KERNEL_FILE, initramfs=folder / "i",
        kernel_version="6.1", kernel_cmdline="", min_memory_mb=96, qemu_binary="q", key="k",
        fallback_reason="the kernel build needs gcc")  # fmt: skip
    monkeypatch.setattr(kernel, "obstacle", lambda recipe: None)
    assert images._kit_kernel_now_possible(image)
    monkeypatch.setattr(kernel, "obstacle", lambda recipe: "still no gcc")
    assert not images._kit_kernel_now_possible(image)
    (folder / images.MANIFEST).write_text(json.dumps({"fallback_retry": False}))
    monkeypatch.setattr(kernel, "obstacle", lambda recipe: None)
    assert not images._kit_kernel_now_possible(image)  # a failed build is not retried


def test_kernel_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KIT_KERNEL", raising=False)
    assert images.kernel_choice() == "auto"
    monkeypatch.setenv("KIT_KERNEL", "debian")
    assert images.kernel_choice() == "debian"
    assert images.image_key() != images.image_key(kernel="auto")
    with pytest.raises(ImageError, match="Unknown kernel choice"):
        images.kernel_choice("windows")
    monkeypatch.setattr(paths, "assets_dir", lambda: tmp_path)  # no assets/kernel/
    assert images.kernel_choice("auto") == "debian"


# --- the host's clock -------------------------------------------------------------------


def test_tsc_rate_is_plausible_or_unknown() -> None:
    khz = hostclock.measure_tsc_khz()
    assert khz is None or 100_000 <= khz <= 20_000_000


def test_tsc_rate_from_a_fake_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each counter read sits between two clock reads 1 µs apart, so 2 µs pass
    # from one counter read to the next: 6000 ticks in 2 µs is 3 GHz.
    clock = iter(range(0, 10**12, 1000))
    monkeypatch.setattr(hostclock.time, "clock_gettime_ns", lambda which: next(clock))
    monkeypatch.setattr(hostclock.time, "sleep", lambda seconds: None)
    ticks = iter(range(0, 10**12, 6000))
    assert hostclock._measure(lambda: next(ticks)) == 3_000_000


# --- how the kit's kernel is booted ---------------------------------------------------------


@dataclass(frozen=True)
class MicrovmImage:
    kernel: Path = Path("/cache/vmlinuz")
    initramfs: Path = Path("/cache/initramfs.cpio")
    kernel_cmdline: str = "console=ttyS0 panic=-1 tsc=reliable"
    qemu_binary: str = "qemu-system-x86_64"
    machine: str = "microvm"


FDS = qemu.ChannelFds(qmp=3, console=4, agent=5)


def command(**changes: object) -> list[str]:
    values: dict[str, object] = dict(name="fast", image=MicrovmImage(), memory_mb=64, cpus=1,
                                     accel="tcg", forwards={8080: 80}, tsc_khz=2_600_000)
    values.update(changes)
    return qemu.qemu_command(qemu.MachineSpec(**values), FDS)  # type: ignore[arg-type]


def option(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == flag]


def test_microvm_profile_uses_mmio_devices() -> None:
    words = command()
    assert option(words, "-machine")[0].startswith("microvm")
    assert option(words, "-cpu") == ["max"]
    assert option(words, "-accel") == ["tcg,tb-size=16"]
    devices = " ".join(option(words, "-device"))
    assert "virtio-serial-device" in devices and "virtio-net-device" in devices
    assert "pci" not in devices
    assert "pvpanic" in option(words, "-device") and option(words, "-action") == ["panic=pause"]
    assert "free-page-reporting=on" in devices
    assert "tsc_early_khz=2600000" in option(words, "-append")[0]


def test_microvm_under_kvm_needs_no_tsc_rate() -> None:
    words = command(accel="kvm", tsc_khz=None)
    assert option(words, "-machine")[0].startswith("microvm")
    assert option(words, "-cpu") == ["host"]
    assert "tsc_early_khz" not in option(words, "-append")[0]


def test_microvm_without_a_tsc_rate_boots_on_q35() -> None:
    words = command(tsc_khz=None)
    assert option(words, "-machine") == ["q35"]
    assert "virtio-net-pci,netdev=net0,id=nic0" in option(words, "-device")
    assert "pvpanic-pci" in option(words, "-device")


# --- the real kernel: built, and booted -------------------------------------------------------


# Each patch of the recipe, and what it leaves in the built kernel.
PATCH_TRACES = {
    "lapic-timer-period.patch": "the lapic_timer_period= parameter",
    "virtio-mmio-max-queue-size.patch": "virtio_mmio's max_queue_size parameter",
    "page-aligned-image.patch": "segments aligned to 4 KiB pages, not 2 MiB",
}


def patch_traces(vmlinux: bytes) -> dict[str, bool]:
    """Which of PATCH_TRACES the kernel file shows."""
    return {
        "lapic-timer-period.patch": b"lapic_timer_period\0" in vmlinux,
        "virtio-mmio-max-queue-size.patch": b"virtio_mmio.max_queue_size\0" in vmlinux,
        "page-aligned-image.patch": load_alignments(vmlinux) == {4096},
    }


def load_alignments(elf: bytes) -> set[int]:
    """The alignments of a 64-bit little-endian ELF file's loadable segments."""
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    entsize, count = struct.unpack_from("<HH", elf, 0x36)
    found = set()
    for index in range(count):
        kind, *_, align = struct.unpack_from("<IIQQQQQQ", elf, phoff + index * entsize)
        if kind == 1:  # PT_LOAD
            found.add(align)
    return found


def banner(data: bytes) -> bytes:
    """``Linux version <release> (<user>@<host>) (<compiler>, <linker>)``, as built in."""
    match = re.search(rb"Linux version \S+ \(\S+@\S+\) \((?:[^()]|\([^()]*\))*\)", data)
    assert match, "no Linux version banner"
    return match.group(0)


@pytest.mark.guest  # reads the built image, and builds part of a kernel
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_build_steps_reproduce_the_kernel_guests_boot() -> None:
    """Unpack, configure, patch and compile, for real, on the source package the kit uses.

    Setup built the whole kernel once (about 4 minutes) and cached it; the
    guest image holds a copy.  This test runs every step of that build again
    on the same source package, compiling only up to ``init/version.o`` (the
    kernel's banner, a few seconds), then checks that the kernel guests boot
    is what those steps make: the same release, builder and toolchain in its
    banner, the same patches applied, each patch's trace in the file.
    """
    image = kit_image()
    recipe = kernel.load_recipe()
    package = kernel.resolve_source_package(recipe)
    built = kernel.ensure_kernel()  # the cached one (it builds only if the cache lost it)
    assert built.source_version == package.version
    assert image.kernel.read_bytes() == built.path.read_bytes()
    assert images.read_manifest(image)["kernel_build_key"] == built.key
    assert sorted(PATCH_TRACES) == sorted(patch.name for patch in recipe.patches)

    deb = apt.fetch_package(package, common.no_progress)
    steps: list[str] = []
    with common.scratch_dir(".build-test-", kernel.kernels_dir()) as scratch:
        source = kernel.unpack_source(deb, scratch)
        assert (source / "Makefile").is_file() and (source / "arch" / "x86").is_dir()
        kernel.configure(recipe, source)
        config = (source / ".config").read_text()
        assert kernel.missing_options(kernel.required_options(recipe), config) == []
        applied, skipped = kernel.apply_patches(recipe, source)
        assert (applied, skipped) == (list(built.patches_applied), list(built.patches_skipped))
        assert "early_param(\"lapic_timer_period\"" in (
            source / "arch/x86/kernel/apic/apic.c").read_text()
        small = dataclasses.replace(recipe, make_target="init/version.o", expected_objects=20)
        kernel.compile_kernel(small, source, lambda step, _: steps.append(step))
        assert kernel._kernel_release(recipe, source) == built.version
        ours = banner((source / "init" / "version.o").read_bytes())
    vmlinux = built.path.read_bytes()
    assert ours.startswith(f"Linux version {built.version} (kit@the-kit) (".encode())
    assert ours in vmlinux, f"the cached kernel was not built like this: {ours!r}"
    assert any(step.startswith("compiling the kernel") for step in steps)
    traces = patch_traces(vmlinux)
    missing = [PATCH_TRACES[name] for name in applied if not traces[name]]
    assert not missing, f"the kernel guests boot lacks {missing}"


@pytest.mark.guest
def test_kit_kernel_guest_has_what_the_lessons_use(
    image: images.GuestImage, guest_name: str, tmp_path: Path
) -> None:
    assert kit_image() == image
    with kit.Guest(guest_name, memory_mb=64, cpus=2) as g:
        assert "-kit" in g.run("uname -r").stdout
        assert "microvm" in g.command_line
        text = g.console.text()
        assert "Linux version" in text and "kit-init: hello from the guest" in text
        assert "built into this kernel" in text
        assert g.run("grep -c ^processor /proc/cpuinfo").stdout.strip() == "2"
        # Room for as many vCPUs as a bigger host has cores (the kit allows that many).
        assert g.run("cat /sys/devices/system/cpu/kernel_max").stdout.strip() == "63"
        agents = [line for line in g.run("ps").stdout.splitlines() if "qemu-ga --method" in line]
        assert len(agents) == 1  # ps reads /proc
        assert g.run("sqlite3 :memory: 'select 6*7'").stdout == "42\n"
        checks = "grep -q 9p /proc/filesystems && test -w /proc/sysrq-trigger && echo ok"
        assert g.run(checks).stdout == "ok\n"
        # The root disk, and the network the kernel set up from ip= (no `ip` commands);
        # /init then sends the default route through the internet door's card.
        assert "VFS: Mounted root (ext2 filesystem)" in text
        assert "IP-Config: Complete" in text
        assert "10.0.2.15/24" in g.run("ip -4 addr show eth0").stdout
        routes = g.run("ip route").stdout
        assert "10.0.2.0/24 dev eth0" in routes
        assert f"default via {internet.HOST_ADDRESS}" in routes


@pytest.mark.guest
def test_kit_kernel_powers_off_cleanly(image: images.GuestImage, guest_name: str) -> None:
    assert kit_image() == image
    g = kit.Guest(guest_name, memory_mb=64).start()
    try:
        with contextlib.suppress(kit.KitError):  # the agent may go before it answers
            g.agent("guest-shutdown", timeout=2)
        deadline = time.monotonic() + 5
        while g.state != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert g.state == "stopped", "poweroff -f in the guest did not end QEMU"
        assert "reboot: Power down" in g.console.text()
    finally:
        g.kill()
