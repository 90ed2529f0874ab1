"""Where one guest's host memory goes: QEMU's resident memory, split by what holds it.

A guest given 64 MiB does not cost the host 64 MiB.  The pages it never
touched cost nothing yet, and QEMU adds memory of its own: its program and
libraries, the cache of code its CPU emulator has translated, the kernel file
it keeps for a reset, its heap and the state of every device.  This module
reads QEMU's memory maps (``psutil``'s view of ``/proc/PID/smaps``) and sorts
each mapping into one of those parts, so that a lesson can show the split and
``benchmarks/fast_boot.py`` can report it.

What is shared is counted too: pages another process also maps (QEMU's
program, when other guests run; the memory of clones started from one
snapshot) are in every guest's RSS, but in the host's memory once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from kit.hypervisor.guest import Guest

GUEST_RAM = "guest RAM the guest has touched"
TRANSLATION_CACHE = "TCG translation cache"
KERNEL_FILE = "guest kernel file (QEMU keeps it for a reset)"
QEMU_FILES = "QEMU's program and libraries"
QEMU_OWN = "QEMU's heap, stacks and device state"
PARTS = (GUEST_RAM, TRANSLATION_CACHE, KERNEL_FILE, QEMU_FILES, QEMU_OWN)

_PAGE_KIB = 4


@dataclass(frozen=True)
class Mapping:
    """One mapping of QEMU's address space: what it maps, its size, what is resident (KiB)."""

    path: str
    size_kib: int
    rss_kib: int
    shared_kib: int = 0


@dataclass(frozen=True)
class Layout:
    """What identifies the big mappings of one guest's QEMU."""

    memory_mb: int
    kernel: Path
    translation_cache_mb: int  # 0 under KVM: no translation at all


@dataclass(frozen=True)
class Footprint:
    """QEMU's resident memory (MiB) by part, and how much of it other processes share."""

    parts: dict[str, float]
    shared_mib: float

    @property
    def total_mib(self) -> float:
        return sum(self.parts.values())

    @property
    def private_mib(self) -> float:
        """What this guest alone costs the host: resident pages no other process maps (USS).

        Clones of one snapshot map its memory together: each holds it in its
        RSS, the host once; this is the part that would go with the guest.
        """
        return max(0.0, self.total_mib - self.shared_mib)


def classify(mapping: Mapping, layout: Layout) -> str:
    """Which part a mapping belongs to, from its path and size alone."""
    anonymous = not mapping.path.startswith("/") or mapping.path.startswith("/memfd:")
    cache_kib = layout.translation_cache_mb * 1024
    if mapping.path.startswith("/memfd:") or (
            anonymous and abs(mapping.size_kib - layout.memory_mb * 1024) <= _PAGE_KIB):
        return GUEST_RAM
    if anonymous and cache_kib and cache_kib - 2 * _PAGE_KIB <= mapping.size_kib <= cache_kib:
        return TRANSLATION_CACHE
    if mapping.path == str(layout.kernel):
        return KERNEL_FILE
    if not anonymous:
        return QEMU_FILES
    return QEMU_OWN


def summarize(mappings: Iterable[Mapping], layout: Layout) -> Footprint:
    parts = dict.fromkeys(PARTS, 0.0)
    shared = 0
    for mapping in mappings:
        parts[classify(mapping, layout)] += mapping.rss_kib / 1024
        shared += mapping.shared_kib
    return Footprint(parts, shared / 1024)


def read_mappings(pid: int) -> list[Mapping]:
    """QEMU's mappings, one by one (``psutil.Process.memory_maps(grouped=False)``)."""
    found = []
    for entry in psutil.Process(pid).memory_maps(grouped=False):
        start, end = (int(address, 16) for address in entry.addr.split("-"))
        path = entry.path.removesuffix(" (deleted)")
        found.append(Mapping(path, (end - start) // 1024, entry.rss // 1024,
                             (entry.shared_clean + entry.shared_dirty) // 1024))
    return found


def measure(pid: int, layout: Layout) -> Footprint:
    return summarize(read_mappings(pid), layout)


def of_guest(guest: Guest) -> Footprint | None:
    """The footprint of a running guest's QEMU; None if it has no process now."""
    image = guest.image
    if guest.pid is None or image is None or not guest.state.has_process:
        return None  # a stopped guest's PID may be another process's by now
    layout = Layout(guest.memory_mb, image.kernel, translation_cache_mb(guest.command))
    try:
        return measure(guest.pid, layout)
    except psutil.Error:
        return None


def translation_cache_mb(command: Sequence[str]) -> int:
    """The ``tb-size`` of ``-accel tcg,tb-size=N`` in the command QEMU ran; 0 under KVM.

    Read from the command rather than the image's machine: a microvm image may
    have been booted on q35, whose cache is larger.
    """
    for flag, value in itertools.pairwise(command):
        if flag == "-accel" and value.startswith("tcg"):
            for option in value.split(",")[1:]:
                name, _, size = option.partition("=")
                if name == "tb-size":
                    return int(size)
    return 0
