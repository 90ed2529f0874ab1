"""What the stress tests check after each round: no leaked descriptor, no stale transport.

These read asyncio's private registry of transports on purpose: it is exactly
what refuses a reused descriptor number ("File descriptor N is used by
transport"), so it is what a test must look at.
"""

from __future__ import annotations

import asyncio
import os

import psutil

from kit.core import kitloop


def open_fds() -> set[int]:
    """The descriptor numbers this process has open now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def live_transports(loop: asyncio.AbstractEventLoop | None = None) -> list[object]:
    """Transports the loop still holds as open (a closing one no longer counts)."""
    registry = getattr(loop or kitloop.get_loop(), "_transports", {})
    return [t for t in list(registry.values()) if not t.is_closing()]


def stale_transports(loop: asyncio.AbstractEventLoop | None = None) -> list[object]:
    """Open transports whose descriptor number was closed beneath them, or reused."""
    registry = getattr(loop or kitloop.get_loop(), "_transports", {})
    stale = []
    for fd, transport in list(registry.items()):
        if transport.is_closing():
            continue
        sock = transport.get_extra_info("socket")
        if sock is None or sock.fileno() != fd:
            stale.append(transport)
    return stale


def children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}
