"""A control group per learner's server, made by the hub where systemd cannot make one.

Where the host runs systemd, SystemdSpawner puts each learner's server in a
unit with ``MemoryMax`` and ``CPUQuota``.  Elsewhere (a container, a machine
booted without systemd, like the kit's CI) JupyterHub's LocalProcessSpawner
sets no limit at all; the hub, as root, then makes the groups itself, in
whichever cgroup version the host mounts:

* a folder per learner under the hub's own group, for the memory and cpu
  controllers (v1: one hierarchy each; v2: one folder for both);
* the limits written into it: memory for the learner's guests, QEMU's own
  share per guest and their Jupyter server; CPU time as a quota;
* the server's process moved in right after it starts, before it has
  children: its kernels and their guests are born inside.

The kit in the learner's kernels reads these limits (kit.infrastructure.cgroups)
and refuses a guest that would not fit; past them the kernel's OOM killer
ends a process of that learner only.  And when the server stops, every
process still in its group (a kernel that outlived it, a guest) is killed:
a learner's guests never outlive their server.

If the groups cannot be made (a read-only cgroup mount, v2 with controllers
not delegated), the hub logs why and the kit's own caps still hold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from kit.hub.classfile import Limits
from kit.infrastructure import cgroups

log = logging.getLogger(__name__)

PERIOD_US = 100_000
CONTROLLERS = ("memory", "cpu")


@dataclass(frozen=True)
class LearnerGroup:
    """One learner's group: its folder in each hierarchy that holds a controller."""

    user: str
    folders: tuple[Path, ...]

    def place(self, pid: int) -> None:
        """Move ``pid`` (the learner's server, just started) into every folder."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(f"{pid}\n")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            with contextlib.suppress(OSError):
                found |= {int(line) for line in (folder / "cgroup.procs").read_text().split()}
        return found

    def kill_all(self, seconds: float = 10.0) -> int:
        """Kill every process left in the group; returns how many there were."""
        left = self.pids()
        count = len(left)
        deadline = time.monotonic() + seconds
        while left and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            left = self.pids()
        return count

    def remove(self) -> None:
        for folder in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()


def make(hub_name: str, user: str, limits: Limits) -> LearnerGroup | None:
    """The learner's group with ``limits`` set, or None (logged) where groups cannot be made."""
    folders: list[Path] = []
    try:
        for parent in _parents(hub_name):
            folder = parent / user
            folder.mkdir(parents=True, exist_ok=True)
            _set_limits(folder, limits)
            folders.append(folder)
    except OSError as error:
        log.warning("no control group for %s (%s): the kit's own caps still hold", user, error)
        LearnerGroup(user, tuple(folders)).remove()
        return None
    return LearnerGroup(user, tuple(folders)) if folders else None


def available() -> bool:
    """Whether the hub can make learners' groups here: one made and removed at once."""
    probe = f"kit-hub-probe-{os.getpid()}"
    made = make(probe, "probe", Limits())
    remove_hub(probe)
    return made is not None


def existing(hub_name: str, user: str) -> LearnerGroup:
    """The learner's group as it is now (after the hub restarted, say); makes nothing."""
    folders = (parent / user for parent in _parents(hub_name, make=False))
    return LearnerGroup(user, tuple(folder for folder in folders if folder.is_dir()))


def remove_hub(hub_name: str) -> None:
    """Remove the hub's folders once its servers have stopped (a group with processes stays)."""
    for parent in _parents(hub_name, make=False):
        children = [child for child in parent.iterdir() if child.is_dir()] \
            if parent.is_dir() else []
        for folder in (*children, parent):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _parents(hub_name: str, make: bool = True) -> list[Path]:
    """The hub's folder in each hierarchy: under the group the hub itself runs in."""
    parents: list[Path] = []
    for controller in CONTROLLERS:
        own = cgroups.group_folders(controller)
        if not own or own[0] / hub_name in parents:
            continue
        parent = own[0] / hub_name
        if make:
            if (own[0] / "cgroup.subtree_control").exists():  # v2: controllers must be enabled
                _enable_v2(own[0], parent)
            parent.mkdir(exist_ok=True)
        parents.append(parent)
    return parents


def _enable_v2(own: Path, parent: Path) -> None:
    """v2 lets a child use a controller only if each parent enables it for its children."""
    for folder in (own, parent):
        folder.mkdir(exist_ok=True)
        wanted = " ".join(f"+{c}" for c in CONTROLLERS)
        (folder / "cgroup.subtree_control").write_text(wanted)


def _set_limits(folder: Path, limits: Limits) -> None:
    memory = limits.server_memory_mb * 2**20
    quota = int(limits.cpus * PERIOD_US)
    if (folder / "memory.max").exists():
        (folder / "memory.max").write_text(str(memory))
    elif (folder / "memory.limit_in_bytes").exists():
        (folder / "memory.limit_in_bytes").write_text(str(memory))
    if (folder / "cpu.max").exists():
        (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}")
    elif (folder / "cpu.cfs_quota_us").exists():
        (folder / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (folder / "cpu.cfs_quota_us").write_text(str(quota))
