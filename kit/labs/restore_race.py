"""Cold boot against restore: one guest size started both ways, timed by one stopwatch.

A cold boot builds a machine and boots a kernel and its init from nothing; a
restore loads a machine that was saved once it was ready
(:meth:`kit.Guest.snapshot`, :meth:`kit.Guest.from_snapshot`).  Both are
timed the way the boot stopwatch (:mod:`kit.labs.stopwatch`) times its
last-but-one phase: on the host's clock, from the call until the guest agent
answers for the first time (``guest.ready_at``).  That moment means the same
thing both ways: the guest's system runs and takes commands.  A restore's
call goes on a little after it (the kit gives the new guest its own name,
MAC and clock through that agent), so that time is kept too.

The two kinds take turns, round after round, and neither goes first every
time: the host's state drifts (caches, other work) and would favour one.
One guest runs at a time, so both are measured on a host equally busy.

Nothing is left behind: every guest is stopped after its measurement, and
the snapshot is deleted when the race ends, whether it ended well or not.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kit.core.errors import GuestError
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.hypervisor.snapshot import Snapshot, snapshots

Progress = Callable[[str], None]
SETTLE_COMMAND = "sleep 1"  # the boot's last work (services starting) finishes before the save


@dataclass(frozen=True)
class RaceResult:
    """Each round's times in seconds, host clock, from the call to the agent's first answer."""

    memory_mb: int
    cold_s: tuple[float, ...]
    restore_s: tuple[float, ...]
    restore_call_s: tuple[float, ...]  # until from_snapshot returned: identity refreshed too
    snapshot_paused_s: float  # how long the ready guest was paused to be saved
    snapshot_mib: float  # what the snapshot took on disk

    @property
    def rounds(self) -> int:
        return len(self.cold_s)

    @property
    def cold_median_s(self) -> float:
        return statistics.median(self.cold_s)

    @property
    def restore_median_s(self) -> float:
        return statistics.median(self.restore_s)

    @property
    def ratio(self) -> float:
        """The restore's median as a share of the cold boot's (0.25: four times faster)."""
        return self.restore_median_s / self.cold_median_s if self.cold_median_s else 0.0


@dataclass(frozen=True)
class RaceNames:
    """The names a race gives its guests and its snapshot (a lesson's own prefix)."""

    prefix: str

    @property
    def source(self) -> str:
        return f"{self.prefix}-source"

    @property
    def cold(self) -> str:
        return f"{self.prefix}-cold"

    @property
    def restored(self) -> str:
        return f"{self.prefix}-restore"

    @property
    def snapshot(self) -> str:
        return self.prefix

    def guests(self) -> tuple[str, ...]:
        return (self.source, self.cold, self.restored)


def _to_agent(called: float, guest: Guest) -> float:
    if guest.ready_at is None:
        raise GuestError(f"guest {guest.name} started without noting when its agent answered.",
                         hint="Run the race again; report it if it repeats.")
    return guest.ready_at - called


def cold_boot(name: str, memory_mb: int) -> float:
    """Boot a new guest, stop it; seconds from the call until its agent answered."""
    called = time.monotonic()
    guest = Guest(name, memory_mb=memory_mb, replace=True)
    try:
        guest.start()
        return _to_agent(called, guest)
    finally:
        guest.stop()


def restore(snap: Snapshot, name: str) -> tuple[float, float]:
    """Start a guest from ``snap``, stop it; seconds until its agent answered, and the call."""
    called = time.monotonic()
    guest: Guest | None = None
    try:
        guest = Guest.from_snapshot(snap, name, replace=True)
        return _to_agent(called, guest), time.monotonic() - called
    finally:
        if guest is not None:
            guest.stop()


def ready_snapshot(names: RaceNames, memory_mb: int) -> Snapshot:
    """Boot a guest, let it settle, save it as the race's snapshot, stop it."""
    with Guest(names.source, memory_mb=memory_mb, replace=True) as source:
        source.run(SETTLE_COMMAND)
        return source.snapshot(names.snapshot, replace=True)


def race(rounds: int, *, memory_mb: int, prefix: str = "race",
         progress: Progress | None = None) -> RaceResult:
    """``rounds`` cold boots and ``rounds`` restores of guests of ``memory_mb``, in turns."""
    say = progress or (lambda text: None)
    names = RaceNames(prefix)
    with _cleaned_up(names):
        say(f"saving a ready guest: a {memory_mb} MiB guest boots once, settles, and is "
            "saved as a snapshot…")
        snap = ready_snapshot(names, memory_mb)
        paused, size = snap.info.paused_s, snap.size_bytes / 2**20
        colds: list[float] = []
        restores: list[tuple[float, float]] = []
        for index in range(rounds):
            heading = f"round {index + 1} of {rounds}: "
            for kind in (("cold", "restore") if index % 2 == 0 else ("restore", "cold")):
                if kind == "cold":
                    say(heading + "cold boot: QEMU builds a machine, the kernel boots, init, "
                        "the agent answers…")
                    colds.append(cold_boot(names.cold, memory_mb))
                else:
                    say(heading + "restore: QEMU loads the saved machine, which carries on "
                        "where it was…")
                    restores.append(restore(snap, names.restored))
    return RaceResult(memory_mb, tuple(colds), tuple(r[0] for r in restores),
                      tuple(r[1] for r in restores), paused, size)


@contextlib.contextmanager
def _cleaned_up(names: RaceNames) -> Iterator[None]:
    """Whatever happens in the race, its guests stop and its snapshot goes."""
    try:
        yield
    finally:
        clean_up(names.prefix)


def clean_up(prefix: str = "race") -> None:
    """Stop a race's guests and delete its snapshot (there may be none of either)."""
    names = RaceNames(prefix)
    for name in names.guests():
        guest = registry.get(name)
        if guest is not None:
            guest.stop()
    for snap in snapshots():
        if snap.name == names.snapshot:
            snap.delete()
