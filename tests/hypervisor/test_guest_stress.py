"""Many real guests started and ended every way a class ends them, checked after each round.

Issue 14: on Debian's Python 3.11.2, a guest start failed with "File
descriptor N is used by transport" because an earlier guest's console socket
had been closed beneath its still-registered transport, and the next pidfd got
its number.  Each round here starts guests in parallel and in sequence, ends
them in a different way (a stop, a kill from outside, a hung agent, a
shutdown from inside, QMP ``quit``, the kit's kill), and then checks that the
loop holds no open transport and the process no extra descriptor or child.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import kit
from kit.guestos import images
from tests.fd_hygiene import children, live_transports, open_fds, stale_transports
from tests.hypervisor.test_faults import stop_the_agent
from tests.waiting import wait_until

pytestmark = [pytest.mark.guest, pytest.mark.slow]

Ending = Callable[[kit.Guest], None]


def _stop(g: kit.Guest) -> None:
    g.stop()


def _killed_from_outside(g: kit.Guest) -> None:
    os.kill(g.pid or 0, signal.SIGKILL)
    assert wait_until(lambda: g.state == "stopped", 10)


def _agent_hung_then_stop(g: kit.Guest) -> None:
    stop_the_agent(g)
    with pytest.raises(kit.AgentError, match="hung or stopped"):
        g.run("true")
    g.stop()  # the polite shutdown through the agent times out; QMP quit follows


def _agent_killed_then_stop(g: kit.Guest) -> None:
    g.console.write("killall -9 qemu-ga\n")
    assert wait_until(lambda: not g.agent_connected, 10)
    g.stop()


def _powered_off_inside(g: kit.Guest) -> None:
    g.console.write("poweroff -f\n")
    assert wait_until(lambda: g.state == "stopped", 15)


def _quit_over_qmp(g: kit.Guest) -> None:
    g.qmp("quit")
    assert wait_until(lambda: g.state == "stopped", 10)


def _kit_kill(g: kit.Guest) -> None:
    g.kill()


ENDINGS: list[Ending] = [
    _stop, _killed_from_outside, _agent_hung_then_stop, _agent_killed_then_stop,
    _powered_off_inside, _quit_over_qmp, _kit_kill,
]


def _assert_clean(before: tuple[set[int], set[int]]) -> None:
    fds_before, children_before = before
    assert kit.guests() == []
    assert live_transports() == [], "a transport outlived its guest"
    assert stale_transports() == [], "a transport's descriptor was closed beneath it"
    assert open_fds() <= fds_before, f"descriptors leaked: {sorted(open_fds() - fds_before)}"
    assert wait_until(lambda: children() <= children_before, 5), \
        f"children left: {children() - children_before}"


def _warm_up(name: str) -> tuple[set[int], set[int]]:
    """One guest first: the loop thread, caches and logs open what they keep for good.

    Returns the descriptors and the child processes there are between guests
    (other tests' servers may be children of this process too).
    """
    with kit.Guest(name):
        pass
    return open_fds(), children()


def test_parallel_rounds_each_ended_a_different_way(
    image: images.GuestImage, guest_name: str
) -> None:
    before = _warm_up(f"{guest_name}-w")
    for round_number, ending in enumerate(ENDINGS):
        guests = [kit.Guest(f"{guest_name}-{round_number}-{i}") for i in range(3)]
        with ThreadPoolExecutor(len(guests)) as pool:
            list(pool.map(kit.Guest.start, guests))
        try:
            assert all(g.run("echo up").stdout == "up\n" for g in guests)
            with ThreadPoolExecutor(len(guests)) as pool:
                list(pool.map(ending, guests))
        finally:
            kit.stop_all()
        assert all(g.state == "stopped" for g in guests), ending.__name__
        _assert_clean(before)


def test_sequential_starts_reuse_every_number(image: images.GuestImage, guest_name: str) -> None:
    """One at a time: each new start is handed the numbers the last one freed."""
    before = _warm_up(f"{guest_name}-w")
    for round_number, ending in enumerate(ENDINGS * 2):
        g = kit.Guest(f"{guest_name}-{round_number}").start()
        try:
            ending(g)
        finally:
            g.kill()
        _assert_clean(before)


def test_mixed_endings_while_others_start(image: images.GuestImage, guest_name: str) -> None:
    """Guests ending while others are starting: numbers freed and taken at once."""
    before = _warm_up(f"{guest_name}-w")
    first = [kit.Guest(f"{guest_name}-a{i}").start() for i in range(3)]
    second = [kit.Guest(f"{guest_name}-b{i}") for i in range(3)]
    endings = [_killed_from_outside, _quit_over_qmp, _stop]
    try:
        with ThreadPoolExecutor(6) as pool:
            ended = [pool.submit(end, g) for end, g in zip(endings, first, strict=True)]
            started = [pool.submit(g.start) for g in second]
            for future in ended + started:
                future.result()
        assert all(g.run("echo up").stdout == "up\n" for g in second)
    finally:
        kit.stop_all()
    _assert_clean(before)
