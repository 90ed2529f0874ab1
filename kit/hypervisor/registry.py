"""Which guests this process has started, and who wants to hear about them.

The registry is what makes "no guest outlives its notebook" hold on the
Python side: every live guest is in it, :func:`stop_all` empties it, and it
runs at interpreter exit.  (The other half is the parent-death signal in
:mod:`kit.hypervisor.qemu`, for when the process is killed and no Python runs.)

Listeners are how diagrams and widgets follow the guests without polling:
each state change of any guest is announced once, on the kit loop thread.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from kit.core import incidents

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

Listener = Callable[["Guest", str], None]

_lock = threading.RLock()
_live: dict[str, Guest] = {}
_listeners: list[Listener] = []


def guests() -> list[Guest]:
    """The guests this process has started and not yet seen stop, oldest first."""
    with _lock:
        return list(_live.values())


def get(name: str) -> Guest | None:
    with _lock:
        return _live.get(name)


def add(guest: Guest) -> None:
    with _lock:
        _live[guest.name] = guest


def remove(guest: Guest) -> None:
    with _lock:
        if _live.get(guest.name) is guest:
            del _live[guest.name]


def stop_all() -> None:
    """Stop every guest this process started (gracefully, then by force)."""
    for guest in reversed(guests()):
        guest.stop()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(guest, state)`` on every state change; returns an unsubscribe."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def announce(guest: Guest, state: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(guest, state)
        except Exception as error:  # one broken view must not stop the others
            incidents.record(error, f"a listener of guest {guest.name}")


def _kill_all_at_exit() -> None:
    # At exit there is no time for graceful shutdowns: kill at once, so a
    # kernel restart is quick and leaves nothing behind.
    for guest in guests():
        log.info("the kernel is exiting: killing guest %s", guest.name)
        guest.kill()


atexit.register(_kill_all_at_exit)
