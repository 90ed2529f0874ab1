"""Where a guest's host memory goes: QEMU's mappings sorted into parts."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

import kit
from kit.guestos import images
from kit.hypervisor import footprint
from kit.hypervisor.footprint import Layout, Mapping

KERNEL = Path("/cache/images/x/vmlinuz")
TCG = Layout(memory_mb=64, kernel=KERNEL, translation_cache_mb=16)
KVM = Layout(memory_mb=64, kernel=KERNEL, translation_cache_mb=0)


@pytest.mark.parametrize(("mapping", "part"), [
    (Mapping("/memfd:memory-backend-memfd", 65536, 19000), footprint.GUEST_RAM),
    (Mapping("", 65536, 30000), footprint.GUEST_RAM),  # q35: anonymous RAM of the guest's size
    (Mapping("", 16380, 16380), footprint.TRANSLATION_CACHE),
    (Mapping(str(KERNEL), 4650, 4650), footprint.KERNEL_FILE),
    (Mapping("/usr/bin/qemu-system-x86_64", 5528, 5528), footprint.QEMU_FILES),
    (Mapping("/usr/lib/x86_64-linux-gnu/libc.so.6", 160, 160), footprint.QEMU_FILES),
    (Mapping("[heap]", 12000, 5900), footprint.QEMU_OWN),
    (Mapping("", 1028, 1028), footprint.QEMU_OWN),
])
def test_each_mapping_has_its_part(mapping: Mapping, part: str) -> None:
    assert footprint.classify(mapping, TCG) == part


def test_under_kvm_nothing_is_a_translation_cache() -> None:
    assert footprint.classify(Mapping("", 16380, 16380), KVM) == footprint.QEMU_OWN


def test_parts_add_up_and_shared_pages_are_counted() -> None:
    found = footprint.summarize([
        Mapping("/memfd:memory-backend-memfd", 65536, 20 * 1024),
        Mapping("/usr/bin/qemu-system-x86_64", 9000, 6 * 1024, shared_kib=6 * 1024),
        Mapping("[heap]", 9000, 2 * 1024),
    ], TCG)
    assert found.parts[footprint.GUEST_RAM] == 20
    assert found.parts[footprint.QEMU_FILES] == 6
    assert found.parts[footprint.TRANSLATION_CACHE] == 0
    assert found.total_mib == 28
    assert found.shared_mib == 6
    assert found.private_mib == 22  # what would go with this guest alone


@pytest.mark.guest
def test_a_running_guests_footprint_is_its_qemus_rss(
    image: images.GuestImage, guest_name: str
) -> None:
    with kit.Guest(guest_name, memory_mb=64) as g:
        found = footprint.of_guest(g)
        rss = psutil.Process(g.pid).memory_info().rss / 2**20
        assert found is not None
        assert abs(found.total_mib - rss) < 2  # two reads, a moment apart
        assert 1 < found.parts[footprint.GUEST_RAM] <= 64
        assert 0 < found.parts[footprint.KERNEL_FILE] <= image.kernel.stat().st_size / 2**20 + 0.1
        assert found.parts[footprint.QEMU_FILES] > 1
        if g.accelerator is not None and g.accelerator.name == "tcg":
            assert 0 < found.parts[footprint.TRANSLATION_CACHE] <= 16
    assert footprint.of_guest(g) is None


@pytest.mark.parametrize(("accel", "cache_mb"), [
    ("tcg,tb-size=16", 16),  # microvm
    ("tcg,tb-size=64", 64),  # q35, also a microvm image booted there
    ("kvm", 0),
])
def test_the_translation_cache_size_is_read_from_the_command_qemu_ran(
    accel: str, cache_mb: int
) -> None:
    command = ["setpriv", "--", "qemu-system-x86_64", "-machine", "q35", "-accel", accel]
    assert footprint.translation_cache_mb(command) == cache_mb
