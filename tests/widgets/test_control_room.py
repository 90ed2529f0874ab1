"""The instructor control room: every guest of this user, from this process and others."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.hypervisor import registry
from kit.widgets import ControlRoom
from kit.widgets.control_room import (
    HostGuest,
    host_guests,
    other_guests,
    stop_everything,
    stop_other,
)
from tests.waiting import wait_until


class OtherProcess:
    """A second Python process of the same user that starts a guest and waits."""

    def __init__(self, name: str) -> None:
        script = textwrap.dedent(f"""
            import sys, time, kit
            g = kit.Guest({name!r}).start()
            print("ready", g.pid, flush=True)
            sys.stdin.readline()
            deadline = time.monotonic() + 5  # the kit notices a killed QEMU within 2 s
            while g.state == "running" and time.monotonic() < deadline:
                time.sleep(0.05)
            print("state", g.state, flush=True)
            kit.stop_all()
        """)
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=str(Path(__file__).resolve().parents[2]))
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        assert line[:1] == ["ready"], line
        self.qemu_pid = int(line[1])

    def finish(self) -> str:
        """Let the process end; returns the state its guest had at that moment."""
        out, _ = self.process.communicate("\n", timeout=30)
        return out.strip()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def other_process(image: images.GuestImage, guest_name: str) -> Iterator[OtherProcess]:
    other = OtherProcess(guest_name + "x")
    try:
        yield other
    finally:
        other.kill()


def test_empty_room_builds_and_closes() -> None:
    before = len(registry._listeners)
    room = ControlRoom(refresh_every=None)
    try:
        assert "Instructor control room" in room.title.value
        assert room.local_rows == {} and room.other_rows == {}
        assert "0</b> guests running" in room.summary.value
    finally:
        room.close()
    assert len(registry._listeners) == before
    assert room.diagram.comm is None


def test_projector_mode_is_a_css_class() -> None:
    room = ControlRoom(projector=True, refresh_every=None)
    try:
        assert "kit-projector" in room._dom_classes
        assert ".kit-projector" in room.title.value
        room.projector.value = False
        assert "kit-projector" not in room._dom_classes
        assert "kit-control-room" in room._dom_classes
    finally:
        room.close()


def test_stop_everything_asks_first() -> None:
    room = ControlRoom(refresh_every=None)
    try:
        room.stop_button.click()
        assert room.confirm_box.layout.display == "flex"
        assert "Stop all 0 guests" in room.confirm_text.value
        room.cancel_button.click()
        assert room.confirm_box.layout.display == "none"
    finally:
        room.close()


@pytest.mark.guest
def test_rows_appear_for_started_guests_and_stop_everything_stops_them(
    image: images.GuestImage, guest_name: str
) -> None:
    room = ControlRoom(refresh_every=None)
    try:
        first = kit.Guest(guest_name + "a").start()
        second = kit.Guest(guest_name + "b").start()
        assert wait_until(lambda: set(room.local_rows) == {first.name, second.name})
        row = room.local_rows[first.name]
        assert row.panel.guest is first and row.console.guest is first
        assert wait_until(lambda: "kit-init" in row.console.text)
        assert wait_until(lambda: "<b>2</b> guests running" in room.summary.value)
        room.stop_button.click()
        assert "Stop all 2 guests" in room.confirm_text.value
        room.confirm_button.click()
        assert room.wait(60)
        assert first.state == second.state == "stopped"
        assert kit.guests() == []
        assert "Stopped 2" in room.status.value
        assert wait_until(lambda: row.panel.badge_state == "stopped")
    finally:
        room.close()
        kit.stop_all()


@pytest.mark.guest
def test_guest_of_another_process_is_listed_and_stopped(
    other_process: OtherProcess, guest_name: str
) -> None:
    name = guest_name + "x"
    found = other_guests()
    assert [(g.name, g.pid, g.local) for g in found] == [(name, other_process.qemu_pid, None)]
    assert found[0].owner_pid == other_process.process.pid
    assert found[0].rss_mb and found[0].rss_mb > 10
    room = ControlRoom(refresh_every=0.2)
    try:
        assert list(room.other_rows) == [other_process.qemu_pid]
        row = room.other_rows[other_process.qemu_pid]
        assert name in row.info.value and str(other_process.qemu_pid) in row.info.value
        row.stop_button.click()
        assert not psutil.pid_exists(other_process.qemu_pid) or \
            psutil.Process(other_process.qemu_pid).status() == psutil.STATUS_ZOMBIE
        assert wait_until(lambda: room.other_rows == {})
        # The other process noticed, and was told the truth about what happened.
        assert other_process.finish().endswith("state stopped")
        assert not (paths.runtime_dir() / name).exists()
    finally:
        room.close()


@pytest.mark.guest
def test_stop_everything_reaches_other_processes(
    other_process: OtherProcess, guest_name: str
) -> None:
    mine = kit.Guest(guest_name + "m").start()
    assert {g.name for g in host_guests()} == {mine.name, guest_name + "x"}
    stopped = stop_everything()
    assert set(stopped) == {mine.name, guest_name + "x"}
    assert mine.state == "stopped"
    assert host_guests() == []
    assert other_process.finish().endswith("state stopped")


def test_stopping_an_unknown_guest_is_explained() -> None:
    with pytest.raises(kit.GuestError, match="no guest named 'nobody-here'"):
        stop_other("nobody-here")


@pytest.fixture
def bystander() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Throwaway processes that are not QEMU: a wrong SIGKILL ends one, never the test run."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*words: str, user: int | None = None) -> subprocess.Popen[bytes]:
        # sh -c 'sleep; :' stays a shell (no exec), so its command line keeps ``words``.
        process = subprocess.Popen(["/bin/sh", "-c", "sleep 60; :", *words], user=user)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(10)


def test_a_pid_that_is_not_our_qemu_is_never_killed(
    bystander: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # Alive, this user's, but no QEMU: a recycled process id looks like this.
    other = bystander()
    stop_other(HostGuest("impostor", other.pid, 64, os.getpid(), "running", None))
    assert other.poll() is None, "stop_other killed a process that is not a QEMU"


def test_a_process_of_this_user_that_only_names_the_guest_is_never_killed(
    bystander: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # Not QEMU, but its command line has the word QEMU's -name option has (think of a
    # learner's `pgrep -f impostor,process=` still running when its number is reused).
    other = bystander("impostor,process=qemu-impostor")
    stop_other(HostGuest("impostor", other.pid, 64, os.getpid(), "running", None))
    assert other.poll() is None, "stop_other killed a process that is not a QEMU"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can start a process as another user")
def test_a_process_of_another_user_is_never_killed(
    bystander: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # Another user's process whose command line even names the guest as QEMU's -name does.
    nobody = pwd.getpwnam("nobody").pw_uid
    other = bystander("impostor,process=qemu-impostor", user=nobody)
    assert wait_until(lambda: psutil.Process(other.pid).uids().real == nobody, 5)
    stop_other(HostGuest("impostor", other.pid, 64, os.getpid(), "running", None))
    assert other.poll() is None, "stop_other killed a process of another user"
