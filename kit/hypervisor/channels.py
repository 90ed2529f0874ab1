"""A guest's three sockets (QMP, serial console, guest agent), and who owns each.

QEMU is handed one end of a socket pair per channel before it starts; the kit
keeps the other end.  Each kit end is handed to exactly one owner (a
``qemu.qmp`` client, or the console's stream), and from then on only that
owner may close it.  Closing the raw socket under its owner is the bug this
module exists to prevent: asyncio keeps the owner's transport registered under
the socket's file-descriptor number, so when the kernel hands that number to
the next descriptor (a pidfd, another guest's socket), the loop refuses it with
"File descriptor N is used by transport".  On Python 3.11.2, Debian 12's own,
a transport whose peer hung up stays registered as open until its writer is
closed, which is why a fresh Debian met this and newer interpreters did not.

The rule, in :meth:`GuestChannels.close`: close every owner first; then close
only the ends that no owner took, and never an end whose owner failed to
close (that one is logged and left to the garbage collector, a leak rather
than a number reused under a live transport).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from kit.hypervisor import qemu

log = logging.getLogger(__name__)

CHANNEL_NAMES = ("qmp", "console", "agent")
OWNER_CLOSE_TIMEOUT_S = 2.0

Closer = Callable[[], Awaitable[object]]


class GuestChannels:
    """The socket pairs of one QEMU launch; made fresh for every start."""

    def __init__(self) -> None:
        self._ours: dict[str, socket.socket] = {}
        self._theirs: dict[str, socket.socket] = {}
        for name in CHANNEL_NAMES:
            self._ours[name], self._theirs[name] = socket.socketpair()
        self._owners: list[tuple[str, Closer]] = []
        self._closing: asyncio.Future[None] | None = None

    def qemu_fds(self) -> qemu.ChannelFds:
        """QEMU's ends, as numbers to pass to the child process."""
        return qemu.ChannelFds(**{name: sock.fileno() for name, sock in self._theirs.items()})

    def release_qemu_ends(self) -> None:
        """Close QEMU's ends in this process once QEMU has inherited its copies.

        Until then a hang-up from QEMU would never reach the kit: the pair stays
        open while any copy of the other end lives.
        """
        for sock in self._theirs.values():
            sock.close()
        self._theirs.clear()

    def hand_over(self, name: str, closer: Closer) -> socket.socket:
        """Give the kit's end of ``name`` to an owner that ``closer`` shuts down.

        The owner is recorded before it connects, so that a connection that
        fails half way is still closed through it.
        """
        if any(owned == name for owned, _ in self._owners):
            raise RuntimeError(f"the {name} channel already has an owner")
        self._owners.append((name, closer))
        return self._ours[name]

    async def close(self) -> None:
        """Close every owner, then the ends no owner took.

        Safe to call twice, and from two tasks at once (QEMU's exit and a
        stop both clean up): the second waits for the first, and cancelling
        a caller does not interrupt the closing.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        owners, self._owners = self._owners, []
        failed = {name for name, closer in owners if not await _close_owner(name, closer)}
        for name, sock in self._ours.items():
            if sock.fileno() == -1:
                continue  # its owner's transport closed it: the usual case
            if name in failed:
                log.warning("the %s channel's owner did not close; its socket (fd %d) is "
                            "left open rather than closed under a live transport",
                            name, sock.fileno())
                continue
            sock.close()
        self._ours.clear()
        self.release_qemu_ends()


async def _close_owner(name: str, closer: Closer) -> bool:
    """Close one owner; False only if it may still hold its transport open."""
    try:
        await asyncio.wait_for(closer(), OWNER_CLOSE_TIMEOUT_S)
    except TimeoutError:
        log.warning("closing the %s channel took over %g s", name, OWNER_CLOSE_TIMEOUT_S)
        return False
    except Exception as error:  # a peer that hung up first: the owner still closed
        log.debug("closing the %s channel: %s: %s", name, type(error).__name__, error)
    return True
