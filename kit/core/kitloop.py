"""The kit's one background thread: an asyncio loop that owns every client.

Why a thread of our own: ``qemu.qmp`` clients are bound to the event loop they
were connected on, and inside Jupyter a cell runs on the kernel's loop while a
widget callback may run on a subshell thread with a loop of its own.  A client
used from the wrong loop hangs.  So every client is created, connected and used
here, and the rest of the kit reaches this loop through :func:`call` (block
until done, with a timeout) or :func:`submit` (a future).

QEMU processes are also spawned from this thread: a parent-death signal fires
when the *thread* that forked the child exits, and this thread lives as long
as the process does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from kit.core.errors import KitError

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The kit loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="kit-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def in_loop_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the kit loop; the caller may wait or not."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def call(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on the kit loop and wait for its result.

    Safe from any thread but the loop's own (where it would wait for itself
    forever; that is a bug in the kit, so it is refused loudly).
    """
    if in_loop_thread():
        coro.close()
        raise RuntimeError("kit.core.kitloop.call() used from the kit loop thread: await instead")
    future = submit(coro)
    try:
        return future.result(timeout)
    except TimeoutError:  # the same class as concurrent.futures.TimeoutError
        if future.done():
            raise  # raised by the coroutine itself, not our wait
        future.cancel()
        raise KitError(
            f"the kit did not finish this within {timeout:g} s",
            hint="The guest may be stuck; try again, or stop it with g.stop().",
        ) from None


def call_soon(fn: Callable[[], Any]) -> None:
    """Run a plain function on the kit loop, without waiting."""
    get_loop().call_soon_threadsafe(fn)
