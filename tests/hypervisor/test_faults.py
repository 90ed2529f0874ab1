"""Faults a class will cause, survived: each noticed and explained within 2 s.

The kit must stay usable afterwards: the same name starts again, other guests
keep working, nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable

import psutil
import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.hypervisor import guest as guest_module

pytestmark = pytest.mark.guest


def eventually(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_qemu_killed_from_outside(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name).start()
    os.kill(g.pid or 0, signal.SIGKILL)
    assert eventually(lambda: g.state == "stopped", 2)
    assert g.exit_reason == "QEMU was killed from outside the kit (SIGKILL)"
    assert not (paths.runtime_dir() / guest_name).exists()
    g.start()  # usable again, under the same name
    assert g.run("echo again").stdout == "again\n"
    g.stop()


def test_kernel_panic_while_a_neighbour_serves(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(f"{guest_name}-a") as victim, kit.Guest(f"{guest_name}-b") as neighbour:
        started = time.monotonic()
        victim.crash()
        assert time.monotonic() - started < 2
        assert victim.qmp("query-status")["status"] == "guest-panicked"
        assert "Kernel panic" in victim.console.text()
        with pytest.raises(kit.GuestNotRunning, match="crashed"):
            victim.run("true")
        assert neighbour.run("echo fine").stdout == "fine\n"
        victim.reboot()
        assert victim.run("echo back").stdout == "back\n"


def test_agent_killed_inside_the_guest(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        g.agent("guest-exec", path="/bin/sh", arg=["-c", "sleep 0.2; killall -9 qemu-ga"])
        started = time.monotonic()
        with pytest.raises(kit.AgentError, match="stopped inside the guest"):
            g.run("sleep 5")
        assert time.monotonic() - started < 2
        assert g.qmp("query-status")["status"] == "running"  # the hypervisor still answers
        g.reboot()
        assert g.run("echo agent back").stdout == "agent back\n"


def test_agent_hung_inside_the_guest(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        g.agent("guest-exec", path="/bin/sh", arg=["-c", "sleep 0.2; killall -STOP qemu-ga"])
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(kit.AgentError, match="hung or stopped"):
            g.run("true")
        # The kit's own bound on a reply (longer on a crowded host), with a margin.
        assert time.monotonic() - started < guest_module.agent_reply_timeout() + 0.5
        g.console.write("killall -CONT qemu-ga\n")
        assert eventually(lambda: _agent_answers(g), 5)


@pytest.mark.slow
def test_console_flood_keeps_the_kit_small(image: images.GuestImage, guest_name: str) -> None:
    """A guest printing without end (100 MB if left alone) is bounded in the kit."""
    me = psutil.Process()
    with kit.Guest(guest_name) as g:
        before = me.memory_info().rss
        g.run("(head -c 100000000 /dev/zero | tr '\\0' x > /dev/console) > /dev/null 2>&1 &")
        time.sleep(15)
        started = time.monotonic()
        assert g.qmp("query-status")["status"] == "running"
        assert time.monotonic() - started < 1
        assert g.console.bytes_received > 1_000_000
        assert len(g.console.text()) < 800 * 1024
        assert me.memory_info().rss - before < 50 * 2**20


def test_guest_that_never_finishes_booting(image: images.GuestImage, guest_name: str) -> None:
    # rdinit= for an initramfs, init= for a root disk: either way /init never runs.
    g = kit.Guest(guest_name, boot_timeout=4, kernel_args=["rdinit=/bin/sh", "init=/bin/sh"])
    started = time.monotonic()
    with pytest.raises(kit.BootTimeout) as info:
        g.start()
    assert time.monotonic() - started < 10
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
