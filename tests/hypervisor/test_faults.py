"""Faults a class will cause, survived: each noticed and explained in the time the kit promises.

A killed QEMU is noticed within 2 s (its exit is an event).  A fault inside the
guest is noticed before the kit would give up on an agent reply: within
:func:`kit.hypervisor.guest.agent_reply_timeout`, 1.5 s on a host with CPUs to
spare and longer, up to 6 s, on a crowded one (a guest under emulation gets
only its share of the host).  The kit must stay usable afterwards: the same
name starts again, other guests keep working, nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.hypervisor import guest as guest_module
from tests.waiting import wait_until

pytestmark = pytest.mark.guest

MARGIN_S = 0.5  # for the host side of the kit: a thread switch, a socket read
FLOOD_BYTES = 2 * 2**20  # over twice what a console keeps (256 KiB head, 512 KiB tail)


@contextmanager
def within_the_agent_bound() -> Iterator[None]:
    """The block takes no longer than the kit's agent bound, as it stood before or after."""
    bound = guest_module.agent_reply_timeout()
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    bound = max(bound, guest_module.agent_reply_timeout()) + MARGIN_S
    assert took < bound, f"took {took:.2f} s; the kit promises {bound:.2f} s on this host now"


def type_and_wait(g: kit.Guest, line: str, mark: str, seconds: float = 10) -> None:
    """Type ``line`` on the guest's console; wait until it prints ``mark`` (as $((...)) works out).

    The console's shell, not the agent, so this works with the agent stopped or
    gone.  ``mark`` must not appear in ``line`` itself (the console echoes it).
    """
    assert mark not in line
    g.console.write(line + "\n")
    assert wait_until(lambda: mark in g.console.text(), seconds), g.console.tail()


def stop_the_agent(g: kit.Guest) -> None:
    """SIGSTOP the guest agent, and return once the guest's kernel says it is stopped."""
    type_and_wait(g, "killall -STOP qemu-ga; until grep -q '^State:.*T' "
                  "/proc/$(pidof qemu-ga)/status; do usleep 20000; done; "
                  "echo agent-stopped-$((6*7))", "agent-stopped-42")


def test_qemu_killed_from_outside(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name).start()
    os.kill(g.pid or 0, signal.SIGKILL)
    assert wait_until(lambda: g.state == "stopped", 2)
    assert g.exit_reason == "QEMU was killed from outside the kit (SIGKILL)"
    assert not (paths.runtime_dir() / guest_name).exists()
    g.start()  # usable again, under the same name
    assert g.run("echo again").stdout == "again\n"
    g.stop()


def test_kernel_panic_while_a_neighbour_serves(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(f"{guest_name}-a") as victim, kit.Guest(f"{guest_name}-b") as neighbour:
        with within_the_agent_bound():
            victim.crash()
        assert victim.qmp("query-status")["status"] == "guest-panicked"
        assert "Kernel panic" in victim.console.text()
        with pytest.raises(kit.GuestNotRunning, match="crashed"):
            victim.run("true")
        assert neighbour.run("echo fine").stdout == "fine\n"
        victim.reboot()
        assert victim.run("echo back").stdout == "back\n"


def test_agent_killed_inside_the_guest(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        # The console's shell kills the agent the moment the agent has started
        # the command below, so the kill lands while the kit waits on it.
        g.console.write("until pidof sleep >/dev/null; do :; done; killall -9 qemu-ga\n")
        with within_the_agent_bound(), \
                pytest.raises(kit.AgentError, match="stopped inside the guest"):
            g.run("sleep 5")  # would take 5 s: the kit must notice the agent's end first
        assert g.qmp("query-status")["status"] == "running"  # the hypervisor still answers
        g.reboot()
        assert g.run("echo agent back").stdout == "agent back\n"


def test_agent_hung_inside_the_guest(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        stop_the_agent(g)
        with within_the_agent_bound(), pytest.raises(kit.AgentError, match="hung or stopped"):
            g.run("true")
        g.console.write("killall -CONT qemu-ga\n")
        assert wait_until(lambda: _agent_answers(g), 5)


@pytest.mark.slow
def test_console_flood_keeps_the_kit_small(image: images.GuestImage, guest_name: str) -> None:
    """A guest printing without end (100 MB if left alone) is bounded in the kit."""
    me = psutil.Process()
    with kit.Guest(guest_name) as g:
        before = me.memory_info().rss
        g.run("(head -c 100000000 /dev/zero | tr '\\0' x > /dev/console) > /dev/null 2>&1 &")
        # Until several times what the console keeps has gone through it (about 10 s).
        assert wait_until(lambda: g.console.bytes_received > FLOOD_BYTES, 90), \
            g.console.bytes_received
        started = time.monotonic()
        assert g.qmp("query-status")["status"] == "running"
        assert time.monotonic() - started < 1
        assert len(g.console.text()) < 800 * 1024
        assert me.memory_info().rss - before < 50 * 2**20


def test_guest_that_never_finishes_booting(image: images.GuestImage, guest_name: str) -> None:
    # rdinit= for an initramfs, init= for a root disk: either way /init never runs.
    g = kit.Guest(guest_name, boot_timeout=4, kernel_args=["rdinit=/bin/sh", "init=/bin/sh"])
    started = time.monotonic()
    with pytest.raises(kit.BootTimeout) as info:
        g.start()
    assert time.monotonic() - started < g.boot_timeout + 6  # its bound, then the kill
    assert "did not finish booting within 4 s" in str(info.value)
    assert "Linux version" in str(info.value) or info.value.log
    assert g.state == "stopped"
    assert not psutil.pid_exists(g.pid or 0) or _zombie(g.pid or 0)
    assert not (paths.runtime_dir() / guest_name).exists()


def test_runtime_folder_removed_under_a_live_guest(
    image: images.GuestImage, guest_name: str
) -> None:
    g = kit.Guest(guest_name).start()
    shutil.rmtree(paths.runtime_dir() / guest_name)
    assert g.run("echo still here").stdout == "still here\n"  # its sockets have no paths
    assert g.qmp("query-status")["status"] == "running"
    g.stop()
    assert g.state == "stopped"
    g.start()  # and the name is usable again
    g.stop()


def _agent_answers(g: kit.Guest) -> bool:
    try:
        return g.run("echo ok").stdout == "ok\n"
    except kit.KitError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
