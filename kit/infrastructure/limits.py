"""Caps that protect the host from one user's guests.

A class shares lab servers: one learner's loop that starts guests must not
take the memory everyone else needs.  Each user's kit (all its processes:
every notebook of that user) may run at most ``max_guests()`` guests using at
most ``max_guest_memory_mb()`` MiB together.  The defaults are a safe share
of this host; ``KIT_MAX_GUESTS`` and ``KIT_MAX_GUEST_MEMORY_MB`` change them.

The guests of this user are found in the user's own runtime folder (each
live guest has a ``guest.json`` there), so the count spans notebooks.
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

log = logging.getLogger(__name__)

RECORD = "guest.json"
GUESTS_PER_CPU = 8
MEMORY_SHARE = 0.5  # of the host's total memory


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
    total_mb = psutil.virtual_memory().total // 2**20
    return _env_int("KIT_MAX_GUEST_MEMORY_MB", int(total_mb * MEMORY_SHARE))


def check_room_for(name: str, memory_mb: int) -> None:
    """Refuse a new guest that would take this user past either cap."""
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
            f"the limit for one user here is {max_guest_memory_mb()} MiB.",
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
