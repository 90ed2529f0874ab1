"""Waiting for the event itself, never for a guessed number of seconds.

A fixed ``time.sleep`` before an assertion is a guess at how long something
takes: too short on a busy machine (a false failure), and when the assertion
is that something did *not* happen, a guess that can pass by accident.  These
helpers wait for what the test is about, bounded by a timeout so that a test
cannot hang, and return as soon as it is there.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable

import psutil

from kit.core import kitloop


def wait_until(condition: Callable[[], bool], timeout: float = 15.0,
               interval: float = 0.02) -> bool:
    """True as soon as ``condition()`` is; False if it is still false after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def alive(pid: int) -> bool:
    """The process exists and has not ended (a zombie waiting for its parent has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: int | Iterable[int], timeout: float = 10.0) -> bool:
    """True as soon as every one of ``pids`` has ended; False if one still runs at ``timeout``."""
    chosen = [pids] if isinstance(pids, int) else list(pids)
    return wait_until(lambda: not any(alive(pid) for pid in chosen), timeout)


def kit_loop_caught_up(timeout: float = 10.0) -> None:
    """Return once the kit loop has run everything handed to it before this call.

    The loop runs callbacks in the order they were handed over, so a no-op
    sent now runs after all of them: a barrier, not a pause.
    """
    async def nothing() -> None:
        return None

    kitloop.call(nothing(), timeout=timeout)


def kit_loop_after(seconds: float, timeout: float = 10.0) -> None:
    """Return once every timer set on the kit loop to fire within ``seconds`` from now has fired.

    For code that defers work with ``loop.call_later(d, ...)``, ``d <= seconds``:
    the barrier is itself a timer, set after theirs and due later, so the loop
    fires theirs first.  It waits the time the code under test promises, not a
    guess.
    """
    loop = kitloop.get_loop()
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def arm() -> None:
        loop.call_later(seconds + 0.001, done.set_result, None)

    kit_loop_caught_up(timeout)  # every call_soon_threadsafe(call_later...) handed over so far
    loop.call_soon_threadsafe(arm)
    done.result(timeout + seconds)
