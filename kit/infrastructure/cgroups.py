"""The limits of the control group the kit runs in: memory and CPU, v1 or v2.

On a class server a learner's notebook runs in a control group with its own
memory and CPU limits (a JupyterHub spawner's, a container's, a systemd
slice's).  Those limits, not the whole machine's, decide whether one more
guest fits: past ``memory.max`` the kernel's OOM killer ends a process of the
group (a guest, or the notebook itself) without a word.  The kit reads them,
so that :mod:`kit.infrastructure.limits` can refuse a guest that would not
fit, naming the limit, before anything starts.

Both cgroup versions are read, as both are in use: v2 (one hierarchy,
``memory.max``, ``cpu.max``) and v1 (one hierarchy per controller,
``memory.limit_in_bytes``, ``cpu.cfs_quota_us``).  A limit set on any
ancestor group counts too; the tightest one wins.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UNLIMITED_BYTES = 2**60  # v1 writes "no limit" as a page-rounded 2**63-1


@dataclass(frozen=True)
class MemoryLimit:
    """The tightest memory limit over this process's group and its ancestors."""

    limit_mb: int
    used_mb: int  # what the group that holds the limit uses now
    where: str  # the group's file, to name in messages


@dataclass(frozen=True)
class CpuLimit:
    cpus: float  # quota / period
    where: str


@dataclass(frozen=True)
class Mount:
    version: int  # 1 or 2
    root: str  # the group path the mount shows at its top (mountinfo's 4th field)
    point: Path
    options: tuple[str, ...]  # for v1, the controllers it holds ("cpu", "cpuacct", ...)


def memory_limit(proc: Path = Path("/proc/self")) -> MemoryLimit | None:
    """The memory limit this process lives under, or None when there is none."""
    found: list[MemoryLimit] = []
    for folder in group_folders("memory", proc):
        v2 = folder / "memory.max"
        limit_file = v2 if v2.exists() else folder / "memory.limit_in_bytes"
        used_file = folder / ("memory.current" if v2.exists() else "memory.usage_in_bytes")
        limit = _read_bytes(limit_file)
        if limit is not None and limit < UNLIMITED_BYTES:
            found.append(MemoryLimit(limit // 2**20, (_read_bytes(used_file) or 0) // 2**20,
                                     str(limit_file)))
    return min(found, key=lambda m: m.limit_mb - m.used_mb, default=None)


def cpu_limit(proc: Path = Path("/proc/self")) -> CpuLimit | None:
    """The CPU quota this process lives under, in CPUs (1.5: one and a half), or None."""
    found: list[CpuLimit] = []
    for folder in group_folders("cpu", proc):
        quota = _cpu_quota(folder)
        if quota is not None:
            found.append(quota)
    return min(found, key=lambda c: c.cpus, default=None)


def whole_cpus(limit: CpuLimit) -> int:
    """How many virtual CPUs a guest may have under ``limit`` (at least one)."""
    return max(1, math.floor(limit.cpus + 1e-9))


# -- reading the hierarchy ---------------------------------------------------------------


def group_folders(controller: str, proc: Path = Path("/proc/self")) -> list[Path]:
    """The folders of this process's group and of each ancestor, for ``controller``.

    Its own group's first: where a child group for a test, say, is made.
    """
    path, mount = _own_group(controller, proc)
    if path is None or mount is None:
        return []
    relative = path
    if mount.root != "/" and relative.startswith(mount.root):
        relative = relative[len(mount.root):]
    parts = [p for p in relative.split("/") if p]
    folders = [mount.point.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [folder for folder in folders if folder.is_dir()]


def _own_group(controller: str, proc: Path) -> tuple[str | None, Mount | None]:
    """This process's group for ``controller``, and the mount that shows that hierarchy."""
    try:
        lines = (proc / "cgroup").read_text().splitlines()
        mounts = _mounts(proc)
    except OSError:
        return None, None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            v1 = next((m for m in mounts if m.version == 1 and controller in m.options), None)
            return path, v1
    v2 = next((m for m in mounts if m.version == 2), None)
    unified = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
    listed = v2.point / "cgroup.controllers" if v2 is not None else None
    if (unified is not None and listed is not None and listed.exists()
            and controller in listed.read_text().split()):
        return unified, v2
    return None, None


def _mounts(proc: Path) -> list[Mount]:
    found = []
    for line in (proc / "mountinfo").read_text().splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        after = fields.index("-")
        kind, options = fields[after + 1], tuple(fields[after + 3].split(","))
        if kind in ("cgroup", "cgroup2"):
            found.append(Mount(2 if kind == "cgroup2" else 1, fields[3], Path(fields[4]),
                               options))
    return found


def _cpu_quota(folder: Path) -> CpuLimit | None:
    v2 = folder / "cpu.max"
    if v2.exists():
        quota, _, period = v2.read_text().strip().partition(" ")
        if quota == "max":
            return None
        return CpuLimit(int(quota) / int(period or 100000), str(v2))
    quota_file = folder / "cpu.cfs_quota_us"
    quota_us = _read_bytes(quota_file)
    period_us = _read_bytes(folder / "cpu.cfs_period_us")
    if quota_us is None or quota_us <= 0 or not period_us:
        return None
    return CpuLimit(quota_us / period_us, str(quota_file))


def _read_bytes(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return UNLIMITED_BYTES
    try:
        return int(text)
    except ValueError:
        return None
