"""Real guests: boot, the two control channels, the console, HTTP, and lifetime."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

import kit
from kit.guestos import images
from kit.hypervisor import guest as guest_module
from kit.hypervisor import qemu
from tests.conftest import free_port
from tests.waiting import gone, wait_until

# Marked one by one: all but two of these tests boot a guest.


@pytest.mark.guest
def test_run_through_the_agent(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        result = g.run("uname -r")
        assert result.exit_code == 0
        assert result.stdout.strip() == image.kernel_version
        assert g.run(["/bin/sh", "-c", "echo oops >&2; exit 3"]).exit_code == 3
        assert g.run("echo oops >&2").stderr == "oops\n"
        assert g.state == "running"
    assert g.state == "stopped"


@pytest.mark.guest
def test_console_boot_text_and_typing(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        text = g.console.text()
        assert "Linux version" in text  # the kernel's own boot log
        assert "kit-init: hello from the guest" in text
        g.console.write("echo typed-$((6*7))\n")
        assert wait_until(lambda: "typed-42" in g.console.text(), 10), g.console.tail()


@pytest.mark.guest
def test_http_through_a_forward_on_loopback(image: images.GuestImage, guest_name: str) -> None:
    port = free_port()
    with kit.Guest(guest_name, forwards={port: 80}) as g:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200
            assert b"guest" in reply.read().lower()
        listening = [c for c in psutil.Process(g.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.port for c in listening] == [port]
        assert all(c.laddr.ip == "127.0.0.1" for c in listening)
        # QEMU runs with the kit's malloc threshold (qemu.environment).
        environ = psutil.Process(g.pid).environ()
        assert qemu.MALLOC_TUNABLE in environ["GLIBC_TUNABLES"].split(":")


@pytest.mark.guest
def test_pause_and_resume_seen_by_qmp(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        assert g.qmp("query-status")["status"] == "running"
        g.pause()
        assert g.qmp("query-status")["status"] == "paused"
        assert wait_until(lambda: g.state == "paused", 5)
        g.resume()
        assert g.qmp("query-status")["status"] == "running"
        assert wait_until(lambda: g.state == "running", 5)
        assert g.run("echo alive").stdout == "alive\n"


@pytest.mark.guest
def test_reboot_comes_back(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        g.run("touch /tmp/before-reboot")
        g.reboot()
        assert g.state == "running"
        assert g.run("ls /tmp").stdout.strip() == ""  # a fresh tmpfs
        assert g.console.count("KIT-READY") == 2


@pytest.mark.guest
def test_guest_writes_never_reach_the_cached_image(image: images.GuestImage,
                                                   guest_name: str) -> None:
    disk = image.root_disk or image.initramfs
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    with kit.Guest(guest_name) as g:
        assert g.run("echo mine > /etc/learner-note && cat /etc/learner-note").stdout == "mine\n"
        if image.root_disk is not None:
            assert " / ext2 " in g.run("cat /proc/mounts").stdout
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before
    with kit.Guest(guest_name) as again:  # every start begins from the same files
        assert not again.run("test -e /etc/learner-note").ok


@pytest.mark.guest
def test_three_guests_at_once(image: images.GuestImage, guest_name: str) -> None:
    guests = [kit.Guest(f"{guest_name}-{i}") for i in range(3)]
    threads = [threading.Thread(target=g.start) for g in guests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert {g.state for g in guests} == {"running"}
        assert sorted(g.name for g in kit.guests()) == sorted(g.name for g in guests)
        hostnames = {g.run("hostname").stdout.strip() for g in guests}
        assert hostnames == {g.name for g in guests}
    finally:
        kit.stop_all()
    assert kit.guests() == []
    assert all(not psutil.pid_exists(g.pid or 0) for g in guests)


@pytest.mark.guest
def test_works_from_a_thread_with_its_own_event_loop(
    image: images.GuestImage, guest_name: str
) -> None:
    """Widget callbacks can run on another thread with a loop of its own running."""
    import asyncio

    with kit.Guest(guest_name) as g:
        async def callback() -> str:
            return g.run("echo from-callback").stdout  # blocking call inside a running loop

        box: list[str] = []
        thread = threading.Thread(target=lambda: box.append(asyncio.run(callback())))
        thread.start()
        thread.join(30)
        assert box == ["from-callback\n"]


@pytest.mark.guest
def test_name_in_use_fails_at_once(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name):
        started = time.monotonic()
        with pytest.raises(kit.NameInUse, match="already running"):
            kit.Guest(guest_name).start()
        assert time.monotonic() - started < 2


@pytest.mark.guest
def test_replace_stops_the_old_guest(image: images.GuestImage, guest_name: str) -> None:
    old = kit.Guest(guest_name).start()
    new = kit.Guest(guest_name, replace=True).start()
    try:
        assert old.state == "stopped"
        assert new.state == "running"
    finally:
        new.stop()


@pytest.mark.guest
def test_stop_is_quick_and_leaves_no_files(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name).start()
    rundir = kit.core.paths.runtime_dir() / guest_name
    assert oct(rundir.stat().st_mode & 0o777) == "0o700"
    pid = g.pid
    g.stop()
    assert g.state == "stopped"
    assert g.exit_reason == "stopped by the kit"
    assert not psutil.pid_exists(pid or 0)
    assert not rundir.exists()
    g.stop()  # a second stop is harmless


@pytest.mark.guest
def test_killed_from_outside_is_noticed(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name).start()
    os.kill(g.pid or 0, signal.SIGKILL)
    assert wait_until(lambda: g.state == "stopped", 2)
    assert "killed from outside" in (g.exit_reason or "")
    with pytest.raises(kit.GuestNotRunning, match="stopped"):
        g.run("true")


@pytest.mark.guest
def test_sigkilled_parent_takes_its_guests(image: images.GuestImage, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    script = textwrap.dedent("""
        import kit, sys
        guests = [kit.Guest(f"orphan{i}").start() for i in range(2)]
        print(" ".join(str(g.pid) for g in guests), flush=True)
        sys.stdin.read()
    """)
    env = {**os.environ, "KIT_RUNTIME_DIR": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    parent.kill()
    parent.wait()
    assert gone(pids, 2)
    # Their folders (each guest's disk overlay) stay only until this user's next start.
    folders = [tmp_path / f"orphan{i}" for i in range(2)]
    assert all((folder / "disk.qcow2").exists() for folder in folders)
    monkeypatch.setenv("KIT_RUNTIME_DIR", str(tmp_path))
    with kit.Guest("after-orphans", memory_mb=64):
        assert not any(folder.exists() for folder in folders)


def test_missing_image_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    with pytest.raises(kit.ImageError, match="not built") as info:
        kit.Guest("noimage").start()
    assert "python -m kit image" in (info.value.hint or "")


def test_the_agent_wait_grows_with_a_crowded_host_but_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpus = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert guest_module.agent_reply_timeout() == guest_module.AGENT_REPLY_TIMEOUT_S
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0 * cpus, 0.0, 0.0))
    assert guest_module.agent_reply_timeout() == 2 * guest_module.AGENT_REPLY_TIMEOUT_S
    monkeypatch.setattr(os, "getloadavg", lambda: (100.0 * cpus, 0.0, 0.0))
    assert guest_module.agent_reply_timeout() == guest_module.AGENT_REPLY_TIMEOUT_MAX_S


@pytest.mark.guest
def test_trace_shows_the_real_traffic(image: images.GuestImage, guest_name: str) -> None:
    out = io.StringIO()
    kit.trace(guest_name, stream=out)
    try:
        with kit.Guest(guest_name) as g:
            g.qmp("query-status")
            g.run("true")
    finally:
        kit.trace(guest_name, on=False)
    text = out.getvalue()
    assert '-> qemu {"execute": "query-status"' in text and "<- qemu" in text
    assert '-> agent {"execute": "guest-exec"' in text and "<- agent" in text
