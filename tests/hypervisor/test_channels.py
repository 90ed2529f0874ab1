"""A guest's three channels close through their owners, in any order (no QEMU needed).

The owners are the real ones (``qemu.qmp`` clients and the console's stream);
the far ends are plain sockets standing where QEMU's would be.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess

import pytest
from qemu.qmp import QMPClient, Runstate

from kit.core import kitloop
from kit.hypervisor.channels import CHANNEL_NAMES, GuestChannels
from kit.hypervisor.console import Console
from tests.fd_hygiene import live_transports, open_fds, stale_transports

ORDERS = list(itertools.permutations(CHANNEL_NAMES))


async def _own_all(channels: GuestChannels, order: tuple[str, ...]) -> Console:
    """Connect an owner to each channel, in ``order``, as a guest start does."""
    return (await _owners(channels, order))[0]


async def _owners(channels: GuestChannels,
                  order: tuple[str, ...]) -> tuple[Console, list[QMPClient]]:
    console = Console()
    clients = []
    for name in order:
        if name == "console":
            await console.attach(channels.hand_over(name, console.close))
        else:
            client = QMPClient(name)
            client.await_greeting = False  # the guest agent's way: no greeting to wait for
            client.negotiate = False
            await client.connect(channels.hand_over(name, client.disconnect))
            clients.append(client)
    return console, clients


async def _saw_the_hang_up(console: Console, clients: list[QMPClient]) -> None:
    """Until every owner has noticed its far end is gone (as when QEMU dies first)."""
    pump = console._pump
    while (pump is not None and not pump.done()) or any(
            c.runstate == Runstate.RUNNING for c in clients):
        await asyncio.sleep(0.005)  # polls the event on the loop: each owner sees EOF there


def _as_if_qemu_started(channels: GuestChannels) -> list[socket.socket]:
    """QEMU's copies of its ends (a child would inherit them), ours released."""
    theirs = [socket.socket(fileno=os.dup(fd)) for fd in vars(channels.qemu_fds()).values()]
    channels.release_qemu_ends()
    return theirs


async def _round(order: tuple[str, ...], far_end_first: bool) -> None:
    channels = GuestChannels()
    theirs = _as_if_qemu_started(channels)
    console, clients = await _owners(channels, order)
    if far_end_first:
        for sock in theirs:
            sock.close()
        await asyncio.wait_for(_saw_the_hang_up(console, clients), 5)
    await channels.close()
    for sock in theirs:
        sock.close()


def _reuse_a_number_for_a_pidfd() -> None:
    """The failure of issue 14: a fresh pidfd given a number a stale transport holds."""
    process = subprocess.Popen(["true"])
    pidfd = os.pidfd_open(process.pid)
    loop = kitloop.get_loop()

    async def watch() -> None:
        loop.add_reader(pidfd, lambda: None)
        loop.remove_reader(pidfd)

    try:
        kitloop.call(watch(), timeout=5)
    finally:
        os.close(pidfd)
        process.wait()


@pytest.mark.parametrize("far_end_first", [True, False], ids=["qemu-gone-first", "kit-first"])
@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_close_order_leaves_nothing(order: tuple[str, ...], far_end_first: bool) -> None:
    kitloop.call(_round(order, far_end_first), timeout=10)  # warm the loop and the library
    before = open_fds()
    for _ in range(5):
        kitloop.call(_round(order, far_end_first), timeout=10)
        assert live_transports() == []
        assert stale_transports() == []
        assert open_fds() <= before
        _reuse_a_number_for_a_pidfd()


def test_closing_twice_at_once_waits_for_the_first() -> None:
    async def run() -> None:
        channels = GuestChannels()
        theirs = _as_if_qemu_started(channels)
        await _own_all(channels, CHANNEL_NAMES)
        await asyncio.gather(channels.close(), channels.close())
        await channels.close()
        for sock in theirs:
            sock.close()

    before = open_fds()
    kitloop.call(run(), timeout=10)
    assert live_transports() == [] and stale_transports() == []
    assert open_fds() <= before


def test_ends_no_owner_took_are_closed() -> None:
    async def run() -> None:
        channels = GuestChannels()
        theirs = _as_if_qemu_started(channels)
        console = Console()
        await console.attach(channels.hand_over("console", console.close))
        await channels.close()  # qmp and agent never had an owner: a launch that failed early
        for sock in theirs:
            sock.close()

    before = open_fds()
    kitloop.call(run(), timeout=10)
    assert open_fds() <= before
    assert live_transports() == []


def test_one_owner_per_channel() -> None:
    channels = GuestChannels()
    try:
        channels.hand_over("qmp", _nothing)
        with pytest.raises(RuntimeError, match="already has an owner"):
            channels.hand_over("qmp", _nothing)
    finally:
        kitloop.call(channels.close(), timeout=5)


async def _nothing() -> None:
    return None
