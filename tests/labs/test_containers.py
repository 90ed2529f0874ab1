"""Containers from namespaces: isolated names and PIDs, the host's kernel, nothing left.

Real ``unshare`` processes throughout; the refusal path reads fake sysctl
files (the same function, given another /proc/sys) or the documented switch
``KIT_NO_USER_NAMESPACES=1``.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import kit
from kit.core.errors import SetupError
from kit.labs import containers
from kit.labs.containers import Container, ContainerError, check_user_namespaces


@pytest.fixture(autouse=True)
def no_container_left_behind() -> Iterator[None]:
    yield
    left = containers.containers()
    containers.stop_all()
    assert not left, f"the test left containers running: {left}"
    assert containers.leftover_processes() == []


def sysctls(folder: Path, **values: int) -> Path:
    for name, value in values.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return folder


# -- when the host does not allow them ----------------------------------------------------


def test_user_namespaces_switched_off_for_everyone(tmp_path: Path) -> None:
    off = sysctls(tmp_path, user__max_user_namespaces=0)
    with pytest.raises(SetupError) as caught:
        check_user_namespaces(off, uid=0)
    assert "max_user_namespaces" in caught.value.message
    assert caught.value.hint and "sysctl" in caught.value.hint


@pytest.mark.parametrize(("switch", "value"), [
    ("kernel__unprivileged_userns_clone", 0),
    ("kernel__apparmor_restrict_unprivileged_userns", 1),
])
def test_switches_that_stop_only_unprivileged_users(tmp_path: Path, switch: str,
                                                     value: int) -> None:
    folder = sysctls(tmp_path, user__max_user_namespaces=100, **{switch: value})
    check_user_namespaces(folder, uid=0)  # root is not concerned
    with pytest.raises(SetupError) as caught:
        check_user_namespaces(folder, uid=1000)
    assert switch.split("__")[1] in caught.value.message


def test_a_permissive_host_passes(tmp_path: Path) -> None:
    folder = sysctls(tmp_path, user__max_user_namespaces=100,
                     kernel__unprivileged_userns_clone=1)
    check_user_namespaces(folder, uid=1000)
    check_user_namespaces(tmp_path / "missing", uid=1000)  # no files: kernel defaults


def test_the_switch_makes_start_refuse_and_start_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containers.NO_USERNS_ENV, "1")
    box = Container("refused")
    with pytest.raises(SetupError) as caught:
        box.start()
    assert containers.NO_USERNS_ENV in caught.value.message
    assert box.state == "created" and box.pid is None and containers.containers() == []


# -- real containers --------------------------------------------------------------------------


def test_a_container_has_its_own_hostname_and_pid_1(image: object) -> None:
    with Container("c-test") as box:
        assert box.state == "running" and box.pid is not None
        assert box.run("hostname").stdout.strip() == "c-test" != socket.gethostname()
        assert socket.gethostname() != "c-test"
        assert box.run("cat /proc/1/comm").stdout.strip() == "busybox"
        inside = box.run("ls /proc | grep -c '^[0-9]'").stdout.strip()
        assert 0 < int(inside) < len(psutil.pids())
        assert os.readlink(f"/proc/{box.pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        assert box.run("ip link").stdout.count(": <") == 1  # only its own loopback
        assert box.start_seconds is not None and box.start_seconds > 0
        rss, uss = box.memory_mb()
        assert rss > 0 and uss > 0
        assert box.run("exit 3").exit_code == 3
    assert box.state == "stopped" and box.pid is None


def test_two_names_cannot_run_at_once(image: object) -> None:
    with Container("c-twice"), pytest.raises(ContainerError):
        Container("c-twice").start()


def test_the_container_reports_the_hosts_kernel_the_vm_its_own(image: object,
                                                                 guest_name: str) -> None:
    with Container("c-kernel") as box, kit.Guest(guest_name, memory_mb=64) as vm:
        in_box = box.run("uname -r").stdout.strip()
        in_vm = vm.run(["uname", "-r"]).stdout.strip()
    assert in_box == platform.release()
    assert in_vm != platform.release()


def test_stop_kills_every_process_of_the_container(image: object) -> None:
    box = Container("c-stop").start()
    pids = [p.pid for p in box.processes()]
    assert len(pids) >= 2
    box.stop()
    time.sleep(0.1)
    alive = [pid for pid in pids if psutil.pid_exists(pid)
             and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


CHILD = """
import sys, time
from kit.labs.containers import Container
box = Container("c-orphan").start()
print(box.pid, flush=True)
time.sleep(60)
"""


def test_nothing_outlives_a_killed_python_process(image: object) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert psutil.pid_exists(pid)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and containers.leftover_processes():
            time.sleep(0.05)
        assert containers.leftover_processes() == []
    finally:
        child.kill()
        child.wait()
