"""Building blocks for checkpoint checks, shared by every lesson.

A check should answer the learner's usual situations (no guest yet, the
guest is paused or stopped, the file is not there yet) with a failed
:class:`Verdict` and a hint, never with an exception: an exception means the
kit itself went wrong, and is recorded as such.  These helpers make that the
easy way to write a check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import TypeVar

from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.lesson.checkpoint import Verdict

log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_WORDS = {
    "created": "has not been started yet",
    "booting": "is still booting",
    "running": "is running",
    "paused": "is paused",
    "crashed": "has crashed",
    "stopping": "is shutting down",
    "stopped": "is stopped",
}


def find_guest(name: str, states: Collection[str] = (GuestState.RUNNING,)) -> Guest | Verdict:
    """The live guest called ``name`` if it is in one of ``states``, else a failed verdict.

    Guests are found by name in this notebook's registry, so a guest started
    with a widget, with one line of code, or by a test all count.
    """
    guest = registry.get(name)
    if guest is None:
        return Verdict.fail(f"there is no guest called {name} running in this notebook.",
                            hint=f"Start the guest {name} first (its panel's ▶ Start button).")
    if guest.state not in states:
        wanted = " or ".join(str(s) for s in GuestState if s in states)
        return Verdict.fail(f"guest {name} {STATE_WORDS.get(guest.state, guest.state)}; "
                            f"this check needs it {wanted}.",
                            hint=_state_hint(guest.state, name))
    return guest


def _state_hint(state: str, name: str) -> str:
    return {
        "booting": "Wait a few seconds for the boot to finish, then check again.",
        "paused": f"Resume {name} first (its panel's ▶ Resume button).",
        "crashed": f"Its kernel crashed: reboot {name} (↻ Reboot).",
    }.get(state, f"Start {name} (its panel's ▶ Start button), then check again.")


def eventually(probe: Callable[[], T], done: Callable[[T], bool],
               seconds: float = 3.0, every: float = 0.2) -> T:
    """Call ``probe`` until ``done(result)`` or ``seconds`` pass; returns the last result.

    For tasks whose effect lands a moment later (a line typed on the serial
    console is run by the guest's shell a few milliseconds after Enter).
    """
    deadline = time.monotonic() + seconds
    while True:
        result = probe()
        if done(result) or time.monotonic() >= deadline:
            return result
        time.sleep(every)


def parse_number(answer: str) -> int | None:
    """The learner's answer as a whole number, or None."""
    text = answer.strip().rstrip(".")
    return int(text) if text.isdigit() else None


def plant_on_every_boot(name: str, path: str, text: Callable[[], str]) -> Callable[[], None]:
    """Write ``text()`` to ``path`` in the guest called ``name`` each time it becomes ready.

    An exercise's personal value (a secret only this learner's guest holds)
    must be there whenever the learner looks, and a guest's disk starts
    afresh at every boot.  The write runs on a thread of its own: listeners
    are called on the kit loop, which must not wait for the guest agent.
    Returns the unsubscribe function.
    """
    def write(guest: Guest) -> None:
        try:
            plant(guest, path, text())
        except Exception as error:  # the check says so if the file is missing
            log.warning("could not write %s in guest %s: %s", path, guest.name, error)

    def on_change(guest: Guest, state: str) -> None:
        if guest.name == name and state == GuestState.RUNNING:
            threading.Thread(target=write, args=(guest,), daemon=True,
                             name=f"kit-plant-{name}").start()

    return registry.subscribe(on_change)


def plant(guest: Guest, path: str, text: str) -> None:
    """Write ``text`` (plain words: letters, digits, '-', '.', spaces) to ``path`` in the guest."""
    if not all(c.isalnum() or c in "-. " for c in text):
        raise ValueError(f"{text!r}: only plain words can be planted")
    result = guest.run(["/bin/sh", "-c", f"printf '%s\\n' '{text}' > {path}"], timeout=10)
    if not result.ok:
        raise RuntimeError(f"writing {path} failed: {result}")


def time_boot(live: Guest | None, make_timer: Callable[[], Guest]) -> float:
    """Seconds from QEMU's launch to a usable guest: ``live``'s last boot, else a timed one.

    A prediction about boot time must not make the learner's own guest boot
    (that may be their exercise), so when ``live`` has not booted, a
    throwaway guest from ``make_timer()`` is started, timed and stopped.
    """
    if live is not None and live.boot_seconds is not None:
        return live.boot_seconds
    timer = make_timer()
    try:
        timer.start()
        took = timer.boot_seconds
    finally:
        timer.stop()
    assert took is not None  # a started guest has both times
    return took
