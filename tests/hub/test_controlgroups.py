"""A control group per learner's server, where systemd cannot make one: real groups, real limits."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hub import controlgroups
from kit.hub.classfile import Limits
from kit.infrastructure import cgroups

from .conftest import needs_root

LIMITS = Limits(guests=2, guest_memory_mb=256, cpus=0.5, notebook_memory_mb=512)


@pytest.fixture
def group() -> Iterator[controlgroups.LearnerGroup]:
    hub = f"kit-hub-test-{os.getpid()}"
    made = controlgroups.make(hub, "learner", LIMITS)
    if made is None:
        pytest.skip("this host's control groups cannot be made here (read-only cgroup "
                    "file system, or v2 without delegation); the kit's caps hold instead")
    yield made
    made.kill_all()
    controlgroups.remove_hub(hub)
    assert not any(folder.exists() for folder in made.folders)


@needs_root
def test_a_server_in_its_group_sees_its_limits(group: controlgroups.LearnerGroup) -> None:
    """What the kit in a learner's kernel reads (kit.infrastructure.cgroups) is the class's."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        group.place(sleeper.pid)
        proc = Path(f"/proc/{sleeper.pid}")
        memory = cgroups.memory_limit(proc)
        assert memory is not None and memory.limit_mb == LIMITS.server_memory_mb
        cpu = cgroups.cpu_limit(proc)
        assert cpu is not None and cpu.cpus == 0.5
        assert group.pids() == {sleeper.pid}
    finally:
        sleeper.kill()
        sleeper.wait()


@needs_root
def test_what_a_stopped_server_left_in_its_group_is_killed(
        group: controlgroups.LearnerGroup) -> None:
    left = subprocess.Popen(["sleep", "60"], start_new_session=True)  # as a guest's QEMU is
    group.place(left.pid)
    assert group.kill_all() == 1
    assert left.wait(5) == -9
    assert group.pids() == set()
