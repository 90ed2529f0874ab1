"""The host's TSC rate, which a guest under TCG shares.

Under TCG, QEMU answers the guest's ``rdtsc`` with the host's own time-stamp
counter, so the guest's TSC ticks at the host's rate.  A guest on
``-machine microvm`` has no HPET or ACPI PM timer, and its kernel can only
measure that rate against the PIT, which on a busy host fails now and then
(here: two boots of the first five).  The kernel then declares the TSC
unstable and its boot stalls.  Telling it the rate (``tsc_early_khz=``)
avoids the measurement altogether.

The rate is measured once per host boot, in about 20 ms, by reading the
counter with the ``rdtsc`` instruction (a few bytes of machine code called
through ctypes) against ``CLOCK_MONOTONIC_RAW``, and kept in the cache
folder with the host's boot id (so the first guest start of each process
does not pay the 20 ms again).  Where that is not possible
(another CPU architecture, or a system that forbids executable memory) the
answer is None, and the kit boots such guests on a machine type with real
timers instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import platform
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

from kit.core import paths

# rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC_CODE = bytes([0x0F, 0x31, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3])
_SAMPLE_SECONDS = 0.02


@cache
def tsc_khz() -> int | None:
    """The host's TSC rate in kHz, or None when it cannot be read here."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    cached = _read_cache()
    if cached is not None:
        return cached
    measured = measure_tsc_khz()
    if measured is not None:
        _write_cache(measured)
    return measured


def measure_tsc_khz() -> int | None:
    """Measure the rate now (about 20 ms); None where ``rdtsc`` cannot be run."""
    try:
        with _executable(_RDTSC_CODE) as address:
            rdtsc = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)
            return _measure(rdtsc)
    except (OSError, ValueError, AttributeError, BufferError):
        return None


@contextlib.contextmanager
def _executable(code: bytes) -> Iterator[int]:
    """The address of an anonymous executable page holding ``code``, unmapped afterwards."""
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    try:
        page.write(code)
        buffer = ctypes.c_char.from_buffer(page)
        try:
            yield ctypes.addressof(buffer)
        finally:
            del buffer
    finally:
        page.close()


def _measure(rdtsc: Callable[[], int]) -> int | None:
    """Counter ticks per millisecond of CLOCK_MONOTONIC_RAW, over about 20 ms.

    Each end pairs one counter read with the mean of two clock reads taken
    around it: the error is a microsecond or so in 20 ms (0.005 %).
    """
    first = _paired_read(rdtsc)
    time.sleep(_SAMPLE_SECONDS)
    last = _paired_read(rdtsc)
    nanoseconds = last[0] - first[0]
    ticks = last[1] - first[1]
    if nanoseconds <= 0 or ticks <= 0:
        return None
    khz = round(ticks * 1_000_000 / nanoseconds)
    return khz if 100_000 <= khz <= 20_000_000 else None  # 100 MHz to 20 GHz


def _cache_path() -> Path:
    return paths.cache_dir() / "host-clock.json"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _read_cache() -> int | None:
    try:
        data = json.loads(_cache_path().read_text())
        fresh = data["boot_id"] == _boot_id() != ""
        return int(data["tsc_khz"]) if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(khz: int) -> None:
    partial = _cache_path().with_suffix(".partial")
    with contextlib.suppress(OSError):
        partial.write_text(json.dumps({"boot_id": _boot_id(), "tsc_khz": khz}) + "\n")
        partial.replace(_cache_path())


def _paired_read(rdtsc: Callable[[], int]) -> tuple[float, int]:
    """(clock in ns, counter) read as close together as Python allows; best of 5."""
    best: tuple[int, float, int] | None = None
    for _ in range(5):
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        ticks = rdtsc()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW)
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) / 2, ticks)
    assert best is not None
    return best[1], best[2]
