"""Containers from namespaces: isolated names and PIDs, the host's kernel, nothing left.

Real ``unshare`` processes throughout: as root, also inside a real chroot
(where the kernel refuses user namespaces) and as another user (``setpriv``).
Why a host refuses is tested in ``tests/infrastructure/test_namespaces.py``;
here, the documented switch ``KIT_NO_USER_NAMESPACES=1`` shows the refusal.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import kit
from kit.core.errors import SetupError
from kit.labs import containers
from kit.labs.containers import Container, ContainerError
from tests.infrastructure.chroots import AS_NOBODY, needs_root, python, run_in_chroot


@pytest.fixture(autouse=True)
def no_container_left_behind() -> Iterator[None]:
    yield
    left = containers.containers()
    containers.stop_all()
    assert not left, f"the test left containers running: {left}"
    assert containers.leftover_processes() == []


def test_the_switch_makes_start_refuse_and_start_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containers.NO_USERNS_ENV, "1")
    box = Container("refused")
    with pytest.raises(SetupError) as caught:
        box.start()
    assert containers.NO_USERNS_ENV in caught.value.message
    assert box.state == "created" and box.pid is None and containers.containers() == []


# -- who needs a user namespace -----------------------------------------------------------

IN_A_CONTAINER = """
import json, os, sys
from pathlib import Path
from kit.labs.containers import Container
root = Path(sys.argv[1]) if len(sys.argv) > 1 else None
with Container("c-who", root=root) as box:
    inside = box.run("hostname; id -u").stdout.split()
    print(json.dumps({"command": box.command, "inside": inside,
                      "own_user_ns": os.readlink(f"/proc/{box.pid}/ns/user")
                      != os.readlink("/proc/self/ns/user")}))
"""


@needs_root
def test_as_root_a_container_runs_in_a_chroot_that_refuses_user_namespaces(
        image: object) -> None:
    containers.rootfs()  # unpacked before: the chroot sees the same cache
    probe = run_in_chroot(["unshare", "--user", "true"])
    assert probe.returncode != 0 and "Operation not permitted" in probe.stderr
    done = run_in_chroot(python(IN_A_CONTAINER))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "--user" not in seen["command"] and "--map-root-user" not in seen["command"]
    assert seen["inside"] == ["c-who", "0"] and not seen["own_user_ns"]


@needs_root
def test_as_root_the_container_shares_the_hosts_user_namespace(image: object) -> None:
    with Container("c-root") as box:
        assert "--user" not in box.command
        assert box.pid is not None and containers.enter_user_namespace(box.pid) == []
        assert box.run("id -u").stdout.strip() == "0"


def busybox_userland(folder: Path) -> None:
    """The kit's busybox and the few programs a container runs, where any user can reach them."""
    folder.chmod(0o755)
    (folder / "bin").mkdir()
    (folder / "proc").mkdir()
    shutil.copy2(containers.rootfs() / "bin" / "busybox", folder / "bin" / "busybox")
    for program in ("sh", "hostname", "id", "echo"):
        (folder / "bin" / program).symlink_to("busybox")


@needs_root
def test_another_user_gets_a_user_namespace_and_is_root_in_it(image: object) -> None:
    userland = Path(tempfile.mkdtemp(prefix="kit-userland-", dir="/tmp"))
    try:
        busybox_userland(userland)
        done = subprocess.run([*AS_NOBODY, "env", f"HOME={userland}", *python(IN_A_CONTAINER),
                               str(userland)], capture_output=True, text=True, timeout=60,
                              check=False, cwd="/", stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(userland)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["command"][4:6] == ["unshare", "--user"] and "--map-root-user" in seen["command"]
    assert seen["inside"] == ["c-who", "0"] and seen["own_user_ns"]  # root in its own namespace


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


@pytest.mark.guest
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
