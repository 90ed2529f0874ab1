"""Caps that protect the host from one user's guests.

A class shares lab servers: one learner's loop that starts guests must not
take the memory everyone else needs.  Each user's kit (all its processes:
every notebook of that user) may run at most ``max_guests()`` guests using at
most ``max_guest_memory_mb()`` MiB together.  The defaults are a safe share
of this host; ``KIT_MAX_GUESTS`` and ``KIT_MAX_GUEST_MEMORY_MB`` change them.

The guests of this user are found in the user's own runtime folder (each
live guest has a ``guest.json`` there), so the count spans notebooks.

Where the kit runs in a control group with limits of its own (a class
server's spawner, a container), those count instead of the machine's: the
memory share is taken of the group's limit, and a guest that would not fit
in what the group has left, or that asks for more virtual CPUs than its CPU
quota, is refused with a message naming the limit
(:mod:`kit.infrastructure.cgroups`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from kit.core import paths
from kit.core.errors import HostLimit, InvalidInput
from kit.infrastructure import cgroups

log = logging.getLogger(__name__)

RECORD = "guest.json"
GUESTS_PER_CPU = 8
MEMORY_SHARE = 0.5  # of the host's total memory (or of the control group's limit)
# What QEMU holds beyond the guest's own memory: measured with
# benchmarks/fast_boot.py, a 64 MiB guest's QEMU settles at about 79 MiB RSS;
# rounded up for the translation cache filling as the guest works.
QEMU_OVERHEAD_MB = 48


@dataclass(frozen=True)
class LiveGuestRecord:
    """What one running guest left in its runtime folder, for other processes to read."""

    name: str
    pid: int
    memory_mb: int
    owner_pid: int


def max_guests() -> int:
    return _env_int("KIT_MAX_GUESTS", max(16, GUESTS_PER_CPU * (os.cpu_count() or 1)))


def max_guest_memory_mb() -> int:
    return _env_int("KIT_MAX_GUEST_MEMORY_MB", int(_memory_base()[0] * MEMORY_SHARE))


def memory_cap_reason() -> str:
    """Where :func:`max_guest_memory_mb` comes from, in words for a message."""
    if os.environ.get("KIT_MAX_GUEST_MEMORY_MB") is not None:
        return "set by KIT_MAX_GUEST_MEMORY_MB"
    base_mb, where = _memory_base()
    return f"half of {where}'s {base_mb} MiB"


def _memory_base() -> tuple[int, str]:
    """The memory the default cap is a share of: the host's, or a tighter control group's."""
    total_mb = psutil.virtual_memory().total // 2**20
    group = cgroups.memory_limit()
    if group is not None and group.limit_mb < total_mb:
        return group.limit_mb, f"the control group this notebook runs in ({group.where})"
    return total_mb, "this host"


def check_room_for(name: str, memory_mb: int, cpus: int = 1) -> None:
    """Refuse a new guest that would take this user past a cap, or out of its control group."""
    _check_caps(name, memory_mb)
    _check_control_group(memory_mb, cpus)


def _check_control_group(memory_mb: int, cpus: int) -> None:
    memory = cgroups.memory_limit()
    need = memory_mb + QEMU_OVERHEAD_MB
    if memory is not None and memory.used_mb + need > memory.limit_mb:
        raise HostLimit(
            f"a guest of {memory_mb} MiB needs about {need} MiB here (its memory and about "
            f"{QEMU_OVERHEAD_MB} MiB for QEMU); the control group this notebook runs in "
            f"allows {memory.limit_mb} MiB ({memory.where}), and {memory.used_mb} MiB of it "
            "are in use.",
            hint="Give the guest less memory, stop other guests or programs of yours, or ask "
            "whoever runs this server for a larger memory limit.")
    cpu = cgroups.cpu_limit()
    if cpu is not None and cpus > cgroups.whole_cpus(cpu):
        raise HostLimit(
            f"a guest with {cpus} virtual CPUs needs {cpus} CPUs' worth of time; the control "
            f"group this notebook runs in gets {cpu.cpus:g} ({cpu.where}).",
            hint=f"Give the guest cpus={cgroups.whole_cpus(cpu)} or fewer, or ask whoever "
            "runs this server for a larger CPU quota.")


def _check_caps(name: str, memory_mb: int) -> None:
    others = [r for r in live_records() if r.name != name]
    if len(others) + 1 > max_guests():
        raise HostLimit(
            f"you already run {len(others)} guests; the limit for one user here is "
            f"{max_guests()}.",
            hint="Stop some (kit.stop_all() in each notebook), or raise KIT_MAX_GUESTS "
            "if this machine is yours alone.",
        )
    used = sum(r.memory_mb for r in others)
    if used + memory_mb > max_guest_memory_mb():
        raise HostLimit(
            f"{memory_mb} MiB more would bring your guests to {used + memory_mb} MiB; "
            f"the limit for one user here is {max_guest_memory_mb()} MiB "
            f"({memory_cap_reason()}).",
            hint="Give guests less memory, stop some, or raise KIT_MAX_GUEST_MEMORY_MB "
            "if this machine is yours alone.",
        )


def write_record(folder: Path, record: LiveGuestRecord) -> None:
    path = folder / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.__dict__))
    tmp.replace(path)


def live_records() -> list[LiveGuestRecord]:
    """This user's guests whose QEMU is still alive, in every process of theirs."""
    records = []
    for path in sorted(paths.runtime_dir().glob(f"*/{RECORD}")):
        record = _read_record(path)
        if record is not None and _alive(record.pid):
            records.append(record)
    return records


def abandoned_folders() -> list[Path]:
    """Runtime folders whose QEMU and whose owning Python process have both ended.

    What a killed kernel leaves: its guests died with it (pdeathsig), but
    their folders (a disk overlay of up to the disk's size) stay until a guest
    of the same name starts.  A folder whose owner lives is never listed: the
    owner may be about to start its guest again.
    """
    found = []
    for path in sorted(paths.runtime_dir().glob(f"*/{RECORD}")):
        record = _read_record(path)
        if record is not None and not _alive(record.pid) and not _alive(record.owner_pid):
            found.append(path.parent)
    return found


def _read_record(path: Path) -> LiveGuestRecord | None:
    try:
        return LiveGuestRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput(f"{name}={raw!r} is not a positive whole number.",
                           hint=f"Unset {name}, or set it to a number such as {default}.")
    return value
