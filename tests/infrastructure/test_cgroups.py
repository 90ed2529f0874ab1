"""Control-group limits: read from v1 and v2 layouts, and obeyed in a real control group."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.infrastructure import cgroups


def fake_proc(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str]]) -> Path:
    """A /proc/self with these lines: (fstype, mount point, super options) per mount."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = [f"{30 + i} 23 0:{40 + i} / {point} rw,relatime - {kind} cgroup {options}"
             for i, (kind, point, options) in enumerate(mounts)]
    (proc / "mountinfo").write_text("\n".join(lines) + "\n")
    return proc


def test_v2_limits_of_the_group_and_its_ancestors(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    group = root / "hub" / "learner-1"
    group.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "hub" / "memory.max").write_text(f"{2 * 2**30}\n")  # the parent's: 2 GiB
    (root / "hub" / "memory.current").write_text(f"{100 * 2**20}\n")
    (group / "memory.max").write_text(f"{768 * 2**20}\n")  # the learner's: tighter
    (group / "memory.current").write_text(f"{300 * 2**20}\n")
    (group / "cpu.max").write_text("150000 100000\n")
    proc = fake_proc(tmp_path, "0::/hub/learner-1\n", [("cgroup2", str(root), "rw")])
    memory = cgroups.memory_limit(proc)
    assert memory is not None and (memory.limit_mb, memory.used_mb) == (768, 300)
    assert memory.where.endswith("learner-1/memory.max")
    cpu = cgroups.cpu_limit(proc)
    assert cpu is not None and cpu.cpus == 1.5 and cgroups.whole_cpus(cpu) == 1


def test_v1_limits_and_no_limits(tmp_path: Path) -> None:
    memory_root, cpu_root = tmp_path / "memory", tmp_path / "cpu,cpuacct"
    (memory_root / "box").mkdir(parents=True)
    (cpu_root / "box").mkdir(parents=True)
    (memory_root / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # unlimited
    (memory_root / "box" / "memory.limit_in_bytes").write_text(f"{512 * 2**20}\n")
    (memory_root / "box" / "memory.usage_in_bytes").write_text(f"{64 * 2**20}\n")
    (cpu_root / "box" / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu_root / "box" / "cpu.cfs_period_us").write_text("100000\n")
    proc = fake_proc(tmp_path, "4:memory:/box\n3:cpu,cpuacct:/box\n0::/\n",
                     [("cgroup", str(memory_root), "rw,memory"),
                      ("cgroup", str(cpu_root), "rw,cpu,cpuacct")])
    memory = cgroups.memory_limit(proc)
    assert memory is not None and (memory.limit_mb, memory.used_mb) == (512, 64)
    assert cgroups.cpu_limit(proc) is None  # -1: no quota


def test_no_control_group_files_means_no_limit(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "0::/\n", [])
    assert cgroups.memory_limit(proc) is None and cgroups.cpu_limit(proc) is None


# -- a real control group ----------------------------------------------------------------


def _own_folder(controller: str) -> Path | None:
    folders = cgroups.group_folders(controller)
    return folders[0] if folders and os.access(folders[0], os.W_OK) else None


@pytest.fixture
def small_group() -> Iterator[list[Path]]:
    """Child groups of this process's own (memory: 300 MiB, CPU: one), removed afterwards."""
    made = []
    name = f"kit-test-{uuid.uuid4().hex[:8]}"
    for controller, settings in (("memory", {"memory.limit_in_bytes": 300 * 2**20,
                                             "memory.max": 300 * 2**20}),
                                 ("cpu", {"cpu.cfs_quota_us": 100000, "cpu.max": "100000 100000"})):
        parent = _own_folder(controller)
        if parent is None:
            continue
        group = parent / name
        group.mkdir()
        made.append(group)
        for file, value in settings.items():
            if (group / file).exists():
                (group / file).write_text(f"{value}\n")
    if len(made) < 2:
        for group in made:
            group.rmdir()
        pytest.skip("needs writable memory and cpu control groups (root on a cgroup host)")
    yield made
    for group in made:
        group.rmdir()


CHECK_IN_GROUP = textwrap.dedent("""
    import sys
    from kit.core.errors import HostLimit
    from kit.infrastructure import limits
    for memory_mb, cpus in ((512, 1), (64, 2), (64, 1)):
        try:
            limits.check_room_for("cg-probe", memory_mb, cpus)
            print("fits", memory_mb, cpus)
        except HostLimit as error:
            print("refused", memory_mb, cpus, "|", error.message)
""")


def test_a_guest_that_would_not_fit_in_the_real_group_is_refused(small_group: list[Path]) -> None:
    procs = " ".join(f"echo $$ > {group / 'cgroup.procs'};" for group in small_group)
    done = subprocess.run(["sh", "-c", f'{procs} exec "$0" -c "$1"', sys.executable,
                           CHECK_IN_GROUP], capture_output=True, text=True, timeout=60,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused 512 1") and "control group" in lines[0], done.stdout
    assert "half of" in lines[0] and "300 MiB" in lines[0], done.stdout
    assert lines[1].startswith("refused 64 2") and "gets 1" in lines[1], done.stdout
    assert lines[2] == "fits 64 1", done.stdout + done.stderr
