"""Several guests at once: started, stopped or worked on side by side, with bounded threads.

A guest's start is mostly waiting (for QEMU, then for the boot), so starting
guests one after another wastes the time of all but one; the same holds for
clones started from one snapshot (:func:`clones`).  Every lab that
needs several guests (the cloud, lessons 4 and 6, the benchmarks) goes
through here, so there is one place that bounds the threads, hands errors
back to the caller's thread, and cleans up after a failed start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from kit.core.errors import InvalidInput
from kit.hypervisor.guest import Guest
from kit.hypervisor.snapshot import Snapshot

log = logging.getLogger(__name__)

T = TypeVar("T")

# Threads at most: each start is a blocking wait on the kit loop, cheap in
# itself; QEMU's own threads are what compete for the CPUs.
MAX_WORKERS = 16


def each(items: Sequence[T], action: Callable[[T], object], *,
         workers: int | None = None) -> list[BaseException | None]:
    """Run ``action(item)`` for every item in parallel; each one's error, or None.

    Errors are returned, not raised, so that the caller decides what a
    failure means (stop the others, report it, go on).
    """
    if not items:
        return []

    def attempt(item: T) -> BaseException | None:
        try:
            action(item)
        except BaseException as error:  # handed back to the caller's thread
            return error
        return None

    count = max(1, min(len(items), workers or MAX_WORKERS))
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="kit-fleet") as pool:
        return list(pool.map(attempt, items))


def start(guests: Sequence[Guest], *, workers: int | None = None,
          stop_on_failure: bool = True) -> None:
    """Start every guest side by side; raise the first failure.

    With ``stop_on_failure`` (the default) a failed start stops the guests
    that did start, so a half-started fleet never lingers.
    """
    errors = each(guests, Guest.start, workers=workers)
    failures = [error for error in errors if error is not None]
    if not failures:
        return
    if stop_on_failure:
        stop(guests, workers=workers)
    raise failures[0]


def clones(snap: Snapshot | str, names: Sequence[str], *,
           forwards: Sequence[Mapping[int, int] | None] | None = None,
           workers: int | None = None) -> list[Guest]:
    """Start one guest per name from the snapshot, side by side; raise the first failure.

    ``forwards``, if given, has one entry per name (each clone's own host
    ports).  If one clone fails, the others are stopped: all or none.
    """
    wanted = list(forwards) if forwards is not None else [None] * len(names)
    if len(wanted) != len(names):
        raise InvalidInput(f"{len(names)} names but {len(wanted)} sets of forwards.",
                           hint="Give one forwards mapping (or None) per clone.")
    started: list[Guest | None] = [None] * len(names)

    def start_one(index: int) -> None:
        started[index] = Guest.from_snapshot(snap, names[index], wanted[index])

    errors = each(list(range(len(names))), start_one, workers=workers)
    guests = [guest for guest in started if guest is not None]
    failures = [error for error in errors if error is not None]
    if failures:
        stop(guests, workers=workers)
        raise failures[0]
    return guests


def stop(guests: Sequence[Guest], *, workers: int | None = None) -> None:
    """Stop every guest side by side; a guest that will not stop politely is killed."""

    def stop_one(guest: Guest) -> None:
        try:
            guest.stop()
        except Exception as error:
            log.warning("guest %s did not stop cleanly (%s); killing it", guest.name, error)
            guest.kill()

    each(guests, stop_one, workers=workers)
