"""A class on one server, as it grows: N learners, each booting lesson 4's two guests at once.

Through a real hub, started as ``python -m kit hub serve`` starts it
(:class:`kit.hub.server.Hub`: accounts made with useradd, the firewall,
JupyterHub and its proxy, a control group per learner), N learners log in
through the hub's REST API, start their servers and a kernel each, and run
lesson 4's ``start_both()`` (``alpha``, 128 MiB and 2 vCPUs, and ``beta``,
128 MiB and 1 vCPU) in their kernels at the same wall-clock moment: the
moment a teacher says "now run the cell".  The learner's side is
``tests/hub/client.py`` (the hub's REST API, the kernel's websocket), imported
from the tests rather than copied, so the benchmark and the hub tests speak
to the hub the same way.

For N = 1, 2, ... up to ``--max-learners`` it measures, per learner:

* each guest's boot as the learner sees it (from the call to ``start_both()``
  to that guest's agent answering), and the slowest boot of the round;
* CPU, in cores: over the boot (the learner's processes' CPU time divided by
  their boot's wall time) and idle afterwards (guests booted, nobody typing);
* memory, once the guests have settled: RSS and USS (what no other process
  shares, psutil) of their QEMUs, their kernel and their Jupyter server, and
  what their control group is charged (page cache included, as Kubernetes
  counts it);

and, with one learner, the peak while lesson 4's memory hog fills alpha's
memory (the lesson's own experiment: the most memory the lesson asks for).

Each learner's guests get host ports of their own for their web servers.
The lesson prefers 8041 and 8042 and takes another port only if the
preferred one is taken when it checks; learners who start in the same
instant all find 8041 free, and all but one QEMU then fail to bind it (the
first run of this benchmark found that).  The benchmark measures what the
guests cost, so it sidesteps that race rather than measure it.
It stops adding learners once a boot takes longer than ``--target-s`` (3 s),
once the host's memory would run short, or after ``--minutes``; the largest
N whose boots all stayed under the target is the class this machine holds.

From those figures :func:`sizing` derives each learner's memory and CPU
guarantee and limit for a Kubernetes deployment (``deploy/z2jh-values.yaml``;
the rules are in its docstring).  ``--write-sizing`` writes the measured
figures and the sizing to ``deploy/sizing.json``, which the values file and
docs/instructor-guide.md's "Many servers" quote; tests/test_deploy_files.py
derives the sizing from that file again and checks both, so the numbers in
the deployment cannot drift from the measurement.

    sudo .venv/bin/python benchmarks/class.py --max-learners 4 --write-sizing

As root (the hub makes accounts); it refuses to start while another
benchmark runs (both would measure each other).  Prints a table and writes
JSON to benchmarks/results/class.json.  Its accounts (kit-bench-*) are made
and removed by the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as benchmarks/class.py: the learner's client is in tests/
    sys.path.insert(0, str(ROOT))

from kit.hub import classfile, config, controlgroups  # noqa: E402
from kit.hub.accounts import first_passwords  # noqa: E402
from kit.hub.classfile import Limits  # noqa: E402
from kit.hub.places import places  # noqa: E402
from kit.hub.server import Hub  # noqa: E402
from kit.hypervisor import accelerator  # noqa: E402
from kit.infrastructure import hostinfo  # noqa: E402
from kit.infrastructure.limits import QEMU_OVERHEAD_MB  # noqa: E402
from kit.infrastructure.net import free_port  # noqa: E402
from tests.hub.client import Kernel, Learner  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SIZING_FILE = ROOT / "deploy" / "sizing.json"
TEACHER = "kit-bench-tt"
GROUP = "kit-bench-teachers"
PREFIX = "kit-bench-l"
CAPS = Limits()  # the class file's default caps per learner, given to each pod as well
TARGET_S = 3.0
SETTLE_S = 4.0  # free page reporting hands freed guest memory back 2 s after it is freed
IDLE_S = 10.0
START_DELAY_S = 2.0  # time to send every kernel its cell before the common start moment
SAMPLE_S = 0.25
MEMORY_RESERVE_MB = 2048  # host memory a round must leave free, beyond the learners'

# The sizing rules' constants (see sizing()): headroom over the measured peak,
# and Kubernetes-friendly steps.
LIMIT_HEADROOM = 1.25
MEMORY_GUARANTEE_STEP_MB = 64
MEMORY_LIMIT_STEP_MB = 128
CPU_GUARANTEE_STEP = 0.05
CPU_LIMIT_STEP = 0.5
# Nodes the guide sizes for: (CPUs, memory GiB); allocatable = 90 % of each,
# what a kubelet's reservations and the chart's own pods typically leave.
EXAMPLE_NODES = ((4, 16), (8, 32), (16, 64))
ALLOCATABLE_SHARE = 0.9

# -- what each learner's kernel runs ---------------------------------------------------

WARM = """
import json, os, time
from kit.lesson import lesson04_isolation as l4
print(json.dumps({"pid": os.getpid()}))
"""

BOOT = """
l4.PREFERRED_PORTS.update({ports!r})
start_at = {start_at!r}
time.sleep(max(0.0, start_at - time.time()))
late = time.time() - start_at
began = time.monotonic()
pair = l4.start_both()
done = time.monotonic()
print(json.dumps({{"late_s": late, "wall_s": done - began, "guests": {{
    g.name: {{"ready_s": g.ready_at - began, "qemu_boot_s": g.boot_seconds, "pid": g.pid,
              "memory_mb": g.memory_mb, "cpus": g.cpus}} for g in pair}}}}))
"""

HOG = """
from kit.labs import isolation
alpha, beta = l4.guests()
hog = isolation.memory_hog(alpha, beta)
print(json.dumps({"alpha_rss_before_mb": hog.rss_before_mb, "alpha_rss_peak_mb": hog.rss_peak_mb,
                  "killed_by_oom": hog.killed_by_oom, "exit_code": hog.exit_code}))
"""

STOP = """
pids = [g.pid for g in l4.guests()]
for g in l4.guests():
    g.stop()
print(json.dumps({"stopped": pids}))
"""


# -- the learner's processes, seen from root ---------------------------------------------


def part_of(cmdline: list[str]) -> str:
    """Which part of a learner's server a process is: qemu, kernel, server, other."""
    text = " ".join(cmdline)
    if "qemu-system" in text:
        return "qemu"
    if "ipykernel" in text:
        return "kernel"
    if "jupyterhub.singleuser" in text or "kit.hub.learner" in text \
            or "jupyterhub-singleuser" in text:
        return "server"
    return "other"


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if process.info["uids"].real == uid:
                found.append(process)
    return found


CpuSnapshot = dict[tuple[int, float], float]  # (pid, create time) -> CPU seconds so far


def cpu_snapshot(uid: int) -> CpuSnapshot:
    taken: CpuSnapshot = {}
    for process in processes_of(uid):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            taken[(process.pid, process.create_time())] = times.user + times.system
    return taken


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds the processes used between two snapshots (new ones count from zero)."""
    return sum(max(0.0, seconds - before.get(key, 0.0)) for key, seconds in after.items())


def memory_of(uid: int) -> dict[str, Any]:
    """RSS and USS in MiB, in all and by part (qemu, kernel, server, other)."""
    parts: dict[str, dict[str, float]] = {}
    for process in processes_of(uid):
        with contextlib.suppress(psutil.Error):
            info = process.memory_full_info()
            part = parts.setdefault(part_of(process.cmdline()),
                                    {"rss_mb": 0.0, "uss_mb": 0.0, "count": 0})
            part["rss_mb"] += info.rss / 2**20
            part["uss_mb"] += info.uss / 2**20
            part["count"] += 1
    return {"rss_mb": sum(p["rss_mb"] for p in parts.values()),
            "uss_mb": sum(p["uss_mb"] for p in parts.values()), "parts": parts}


def rss_by_uid(uids: set[int]) -> dict[int, float]:
    """Each user's processes' RSS in all, in MiB: one pass over the process table."""
    totals = dict.fromkeys(uids, 0.0)
    for process in psutil.process_iter(["uids", "memory_info"]):
        with contextlib.suppress(psutil.Error, TypeError, AttributeError):
            uid = process.info["uids"].real
            if uid in totals:
                totals[uid] += process.info["memory_info"].rss / 2**20
    return totals


def memory_folder(group: controlgroups.LearnerGroup) -> Path | None:
    for folder in group.folders:
        if (folder / "memory.current").exists() or (folder / "memory.usage_in_bytes").exists():
            return folder
    return None


def cgroup_usage_mb(folder: Path | None) -> float | None:
    """What the learner's control group is charged now (v2 memory.current, v1 usage)."""
    for name in ("memory.current", "memory.usage_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            if folder is not None:
                return int((folder / name).read_text()) / 2**20
    return None


def cgroup_peak_mb(folder: Path | None) -> float | None:
    for name in ("memory.peak", "memory.max_usage_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            if folder is not None:
                return int((folder / name).read_text()) / 2**20
    return None


def reset_cgroup_peak(folder: Path | None) -> None:
    """Start a fresh peak (v1 takes a write of 0; v2's memory.peak, any write, on new kernels)."""
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        with contextlib.suppress(OSError):
            if folder is not None and (folder / name).exists():
                (folder / name).write_text("0")


def host_cpu() -> tuple[float, float]:
    """CPU seconds the host's CPUs have been busy, and stolen by the hypervisor under it.

    Busy is user, nice, system and interrupts (Linux counts a guest's time in
    user already).  Steal is time this machine, itself a virtual machine,
    wanted a CPU and its host gave it to someone else: high steal means the
    figures measure the neighbours too.
    """
    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system + getattr(times, "irq", 0.0) \
        + getattr(times, "softirq", 0.0)
    return busy, getattr(times, "steal", 0.0)


class PeakSampler:
    """Each learner's RSS in all, sampled from a thread; keeps the peak since :meth:`reset`."""

    def __init__(self, uids: dict[str, int]) -> None:
        self.uids = uids
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.peaks = {}

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            seats = dict(self.uids)
            rss = rss_by_uid(set(seats.values()))
            with self._lock:
                for name, uid in seats.items():
                    self.peaks[name] = max(self.peaks.get(name, 0.0), rss[uid])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- the class -----------------------------------------------------------------------------


@dataclass
class Seat:
    """One learner at the hub: logged in, their server up, a kernel with lesson 4 imported."""

    name: str
    uid: int
    learner: Learner
    kernel: Kernel
    server_start_s: float
    cgroup: Path | None = None


@dataclass
class Classroom:
    hub: Hub
    names: list[str]
    passwords: dict[str, str]
    seats: list[Seat] = field(default_factory=list)

    def seat_up_to(self, count: int) -> None:
        """Log in, start the server and a kernel of each learner up to ``count``."""
        while len(self.seats) < count:
            name = self.names[len(self.seats)]
            began = time.monotonic()
            learner = Learner.log_in(self.hub.url, name, self.passwords[name])
            learner.start_server()
            kernel = learner.kernel()
            kernel.json(WARM, timeout=300)
            group = controlgroups.existing(config.group_name(self.hub.klass), name)
            seat = Seat(name, pwd.getpwnam(name).pw_uid, learner, kernel,
                        time.monotonic() - began, memory_folder(group))
            self.seats.append(seat)
            print(f"  {name}: logged in, server and kernel up in {seat.server_start_s:.1f} s",
                  file=sys.stderr)


def remove_accounts(names: list[str]) -> None:
    """The run's accounts, homes and group: made by the hub, removed after (and before)."""
    for name in (TEACHER, *names):
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True,
                       check=False)
    subprocess.run(["groupdel", GROUP], capture_output=True, check=False)


def write_class(folder: Path, names: list[str]) -> Path:
    """The class file: lesson 4's two guests fit, and no CPU cap (the demand is measured)."""
    path = folder / "class.toml"
    path.write_text(
        f"[hub]\nport = {free_port()}\n"
        f'[instructor]\nname = "{TEACHER}"\ngroup = "{GROUP}"\n'
        f"[learners]\nnames = {json.dumps(names)}\n"
        f"[limits]\nguests = 2\nguest_memory_mb = 512\ncpus = {os.cpu_count() or 1}\n")
    return path


@contextlib.contextmanager
def a_class(count: int) -> Iterator[Classroom]:
    names = [f"{PREFIX}{i}" for i in range(1, count + 1)]
    remove_accounts(names)
    root = Path(tempfile.mkdtemp(prefix="kit-bench-class-"))
    root.chmod(0o755)
    hub = Hub.start(classfile.read(write_class(root, names)), places(root / "hub"))
    try:
        yield Classroom(hub, names, first_passwords(hub.where.passwords_file))
    finally:
        if hub.alive():
            hub.stop()
        remove_accounts(names)
        shutil.rmtree(root, ignore_errors=True)


# -- one round ------------------------------------------------------------------------------


def last_words(error: Exception, size: int = 400) -> str:
    """The end of a kernel's traceback, without its colours: what went wrong, in short."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    return text[-size:]


def distinct_ports(count: int) -> list[int]:
    """``count`` free ports, no two alike."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def in_parallel(seats: list[Seat], work: Callable[[Seat], Any]) -> list[Any]:
    """``work`` for every seat at once, one thread each; an exception is returned, not raised."""
    results: list[Any] = [None] * len(seats)

    def run(index: int) -> None:
        try:
            results[index] = work(seats[index])
        except Exception as error:  # one learner's failure is a result of the round
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seats))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def boot_round(room: Classroom, count: int, sampler: PeakSampler, target: float,
               hog: bool) -> dict[str, Any]:
    """Every learner up to ``count`` boots lesson 4's guests at one moment; what it cost."""
    room.seat_up_to(count)
    seats = room.seats[:count]
    before = {s.name: {"memory": memory_of(s.uid), "cgroup_mb": cgroup_usage_mb(s.cgroup)}
              for s in seats}
    for seat in seats:
        reset_cgroup_peak(seat.cgroup)
    sampler.reset()
    start_at = time.time() + START_DELAY_S + 0.1 * count
    ends: dict[str, tuple[float, CpuSnapshot]] = {}
    ports = distinct_ports(2 * count)
    own_ports = {s.name: {"alpha": ports[2 * i], "beta": ports[2 * i + 1]}
                 for i, s in enumerate(seats)}

    def boot(seat: Seat) -> dict[str, Any]:
        cell = BOOT.format(start_at=start_at, ports=own_ports[seat.name])
        said = seat.kernel.json(cell, timeout=300)
        ends[seat.name] = (time.time(), cpu_snapshot(seat.uid))
        return dict(said)

    starts: dict[str, CpuSnapshot] = {}
    host_at_start: list[tuple[float, float]] = []

    def snapshot_at_start() -> None:
        time.sleep(max(0.0, start_at - 0.05 - time.time()))
        host_at_start.append(host_cpu())
        for seat in seats:
            starts[seat.name] = cpu_snapshot(seat.uid)

    timer = threading.Thread(target=snapshot_at_start)
    timer.start()
    replies = in_parallel(seats, boot)
    timer.join()
    window = max(1e-6, time.time() - start_at)
    (busy_before, steal_before), (busy_after, steal_after) = host_at_start[0], host_cpu()
    errors = {s.name: last_words(r) for s, r in zip(seats, replies, strict=True)
              if isinstance(r, Exception)}
    if errors:
        in_parallel(seats, lambda s: s.kernel.json(STOP, timeout=120))
        return {"learners": count, "errors": errors}
    time.sleep(SETTLE_S)
    idle_from = {s.name: cpu_snapshot(s.uid) for s in seats}
    time.sleep(IDLE_S)
    idle_to = {s.name: cpu_snapshot(s.uid) for s in seats}
    records = []
    for seat, reply in zip(seats, replies, strict=True):
        ended, at_end = ends[seat.name]
        boot_window = max(1e-3, ended - start_at)
        records.append({
            "learner": seat.name, "server_start_s": seat.server_start_s,
            "late_s": reply["late_s"], "wall_s": reply["wall_s"], "guests": reply["guests"],
            "cpu_boot_cores": cpu_between(starts[seat.name], at_end) / boot_window,
            "cpu_idle_cores": cpu_between(idle_from[seat.name], idle_to[seat.name]) / IDLE_S,
            "notebook_before_guests": before[seat.name],
            "memory": memory_of(seat.uid), "cgroup_mb": cgroup_usage_mb(seat.cgroup),
            "cgroup_peak_mb": cgroup_peak_mb(seat.cgroup),
            "rss_peak_mb": sampler.peaks.get(seat.name, 0.0),
        })
    learners_cpu = sum(cpu_between(starts[s.name], ends[s.name][1]) for s in seats)
    result: dict[str, Any] = {"learners": count, "records": records,
                              "host_busy_cores_during_boots": (busy_after - busy_before) / window,
                              # what else the host ran meanwhile: other users, the hub, us
                              "other_busy_cores_during_boots":
                                  (busy_after - busy_before - learners_cpu) / window,
                              "host_steal_cores_during_boots": (steal_after - steal_before)
                              / window,
                              "host_available_mb": psutil.virtual_memory().available / 2**20}
    boots = [g["ready_s"] for r in records for g in r["guests"].values()]
    result.update(boot_median_s=statistics.median(boots), boot_max_s=max(boots),
                  all_under_target=max(boots) < target)
    if hog:
        result["hog"] = run_hog(seats[0], sampler)
    in_parallel(seats, lambda s: s.kernel.json(STOP, timeout=120))
    return result


def run_hog(seat: Seat, sampler: PeakSampler) -> dict[str, Any]:
    """Lesson 4's memory hog in alpha, one learner alone: the lesson's peak memory."""
    reset_cgroup_peak(seat.cgroup)
    sampler.reset()
    said = dict(seat.kernel.json(HOG, timeout=300))
    time.sleep(2 * SAMPLE_S)
    said.update(rss_peak_mb=sampler.peaks.get(seat.name, 0.0),
                cgroup_peak_mb=cgroup_peak_mb(seat.cgroup),
                memory_after=memory_of(seat.uid))
    return said


# -- the figures the sizing uses, and the sizing ---------------------------------------------


def ceil_to(value: float, step: float) -> float:
    """``value`` rounded up to a multiple of ``step`` (a float error does not add a step)."""
    return round(math.ceil(value / step - 1e-9) * step, 6)


def measured_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures :func:`sizing` needs, from a whole run's report."""
    rounds = [r for r in report["rounds"] if "records" in r]
    held = [r for r in rounds if r["all_under_target"]]
    over = [r for r in rounds if not r["all_under_target"]]
    chosen = held or rounds[:1]
    alone = rounds[0]["records"][0]
    hog = rounds[0].get("hog", {})
    guests = [{"name": name, "memory_mb": g["memory_mb"], "cpus": g["cpus"]}
              for name, g in sorted(alone["guests"].items())]
    return {
        "host_cpus": report["host_cpus"], "host_memory_mb": report["host_memory_mb"],
        "accelerator": report["accelerator"], "target_boot_s": report["target_boot_s"],
        "largest_class": max((r["learners"] for r in held), default=0),
        "largest_class_is_lower_bound": not over,
        "rss_idle_mb": round(max(_median(r, lambda x: x["memory"]["rss_mb"]) for r in chosen), 1),
        "uss_idle_mb": round(max(_median(r, lambda x: x["memory"]["uss_mb"]) for r in chosen), 1),
        "notebook_cgroup_mb": round(max(
            (x["notebook_before_guests"]["cgroup_mb"] or x["notebook_before_guests"]["memory"][
                "rss_mb"]) for r in rounds for x in r["records"]), 1),
        "rss_peak_mb": round(max(hog.get("rss_peak_mb", 0.0), alone["rss_peak_mb"],
                                 alone["memory"]["rss_mb"]), 1),
        "cpu_boot_alone_cores": round(alone["cpu_boot_cores"], 2),
        "cpu_idle_cores": round(max(_median(r, lambda x: x["cpu_idle_cores"]) for r in chosen), 3),
        "guests": guests, "qemu_overhead_mb": QEMU_OVERHEAD_MB,
        # Not measured: the kit's caps each pod is given (KIT_MAX_GUESTS,
        # KIT_MAX_GUEST_MEMORY_MB), the class file's defaults, as on one server.
        "caps": {"guests": CAPS.guests, "guest_memory_mb": CAPS.guest_memory_mb},
    }


def _median(round_: dict[str, Any], value: Callable[[dict[str, Any]], float]) -> float:
    return float(statistics.median(value(record) for record in round_["records"]))


def sizing(measured: dict[str, Any]) -> dict[str, Any]:
    """Each learner's Kubernetes resources, from the measured figures; why each rule:

    * memory guarantee (what the scheduler reserves, so what decides how many
      learners a node takes): the learner's RSS with lesson 4's guests booted
      and idle, rounded up to 64 MiB.  RSS, not USS: a pod is charged for the
      shared pages it touches first, so RSS is what one pod may be charged;
      USS, the marginal cost, is lower (the guide gives both);
    * memory limit (past it the kernel's OOM killer ends one of the learner's
      processes): the larger of lesson 4's peak (its memory hog filling
      alpha) and what the kit's own caps let a learner start (the notebook as
      its control group was charged before any guest, plus ``caps``' guest
      memory and QEMU's share for each of its guests), both with 25 %
      headroom on what was measured (a kernel grows over a lesson), rounded
      up to 128 MiB.  So the kit's caps, which refuse a guest with a message
      naming the cap, bind before the OOM killer: the other lessons, which
      run other guests, stay inside them too;
    * CPU guarantee: this machine's CPUs shared by the largest class it held
      with every boot under the target, all booting at once (the worst
      moment of a lesson), rounded up to 0.05;
    * CPU limit: what one learner alone used while booting, rounded up to
      0.5, and at least the vCPUs of the lesson's largest guest (the kit
      refuses a guest with more vCPUs than the quota's whole CPUs).
    """
    guests, caps = measured["guests"], measured["caps"]
    overhead = measured["qemu_overhead_mb"]
    by_caps = LIMIT_HEADROOM * measured["notebook_cgroup_mb"] + caps["guest_memory_mb"] \
        + caps["guests"] * overhead
    memory_guarantee = ceil_to(measured["rss_idle_mb"], MEMORY_GUARANTEE_STEP_MB)
    memory_limit = ceil_to(max(LIMIT_HEADROOM * measured["rss_peak_mb"], by_caps),
                           MEMORY_LIMIT_STEP_MB)
    cpu_limit = max(ceil_to(measured["cpu_boot_alone_cores"], CPU_LIMIT_STEP),
                    float(max(g["cpus"] for g in guests)))
    cpus = float(measured["host_cpus"])
    largest = measured["largest_class"]
    cpu_guarantee = min(cpu_limit, ceil_to(cpus / largest, CPU_GUARANTEE_STEP)
                        if largest else cpus)
    return {"memory_guarantee": f"{int(memory_guarantee)}M",
            "memory_limit": f"{int(memory_limit)}M",
            "cpu_guarantee": cpu_guarantee, "cpu_limit": cpu_limit}


def mebibytes(spec: str) -> int:
    """'1536M' (JupyterHub's ByteSpecification, units of 1024) in MiB."""
    units = {"M": 1, "G": 1024}
    return int(float(spec[:-1]) * units[spec[-1]])


def per_node(size: dict[str, Any], cpus: int, memory_gib: int) -> dict[str, int]:
    """Learners one node of ``cpus`` and ``memory_gib`` holds at the guarantees (and limits)."""
    memory_mb = memory_gib * 1024 * ALLOCATABLE_SHARE
    by_memory = int(memory_mb // mebibytes(size["memory_guarantee"]))
    by_cpu = int(cpus * ALLOCATABLE_SHARE // size["cpu_guarantee"] + 1e-9)
    return {"by_memory": by_memory, "by_cpu": by_cpu, "learners": min(by_memory, by_cpu),
            "all_at_limit": int(memory_mb // mebibytes(size["memory_limit"]))}


# -- the whole run ------------------------------------------------------------------------------


def other_benchmarks() -> list[str]:
    """Other benchmark runs on this machine (they and this one would measure each other)."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if process.info["pid"] not in mine and "benchmarks/" in line and "python" in line:
            found.append(f"{process.info['pid']} {line[:120]}")
    return found


def enough_memory(report: dict[str, Any], count: int) -> bool:
    """Room on the host for ``count`` learners at the peak seen so far, and a reserve."""
    rounds = [r for r in report["rounds"] if "records" in r]
    if not rounds:
        return True
    per_learner = max(x["rss_peak_mb"] for r in rounds for x in r["records"])
    need = count * per_learner * LIMIT_HEADROOM + MEMORY_RESERVE_MB  # earlier guests stopped
    return psutil.virtual_memory().available / 2**20 > need


def sweep(args: argparse.Namespace, report: dict[str, Any]) -> None:
    began = time.monotonic()
    rounds: list[dict[str, Any]] = report["rounds"]
    with a_class(args.max_learners) as room:
        report["hub_start_s"] = time.monotonic() - began
        sampler = PeakSampler({})
        try:
            for count in range(1, args.max_learners + 1):
                if not enough_memory(report, count):
                    report["stopped_because"] = f"{count} learners would not fit in memory"
                    break
                if time.monotonic() - began > args.minutes * 60:
                    report["stopped_because"] = f"the {args.minutes:g}-minute budget ran out"
                    break
                print(f"round {count}: {count} learner(s) boot lesson 4's guests at once",
                      file=sys.stderr)
                room.seat_up_to(count)
                sampler.uids.update({s.name: s.uid for s in room.seats})
                result = boot_round(room, count, sampler, args.target_s,
                                    hog=(count == 1 and not args.no_hog))
                rounds.append(result)
                if "errors" in result:
                    report["stopped_because"] = f"a learner's boot failed: {result['errors']}"
                    break
                print(f"  slowest boot {result['boot_max_s']:.2f} s", file=sys.stderr)
                if not result["all_under_target"]:
                    report["stopped_because"] = (f"with {count} learner(s) a boot took "
                                                 f"{result['boot_max_s']:.2f} s")
                    break
            else:
                report["stopped_because"] = f"--max-learners {args.max_learners} reached"
        finally:
            sampler.stop()
            for seat in room.seats:
                with contextlib.suppress(Exception):
                    seat.kernel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-learners", type=int, default=4)
    parser.add_argument("--target-s", type=float, default=TARGET_S,
                        help="the slowest boot a class may see (default 3 s)")
    parser.add_argument("--minutes", type=float, default=30,
                        help="start no new round after this long (default 30)")
    parser.add_argument("--no-hog", action="store_true",
                        help="skip the memory hog (the memory limit then has no peak)")
    parser.add_argument("--json", type=Path, default=RESULTS / "class.json")
    parser.add_argument("--write-sizing", action="store_true",
                        help=f"write the figures and the sizing to {SIZING_FILE.relative_to(ROOT)}")
    parser.add_argument("--even-if-busy", action="store_true",
                        help="run although another benchmark runs (its figures and ours suffer)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks/class.py starts a class hub: run it as root.", file=sys.stderr)
        return 2
    busy = other_benchmarks()
    if busy and not args.even_if_busy:
        print("another benchmark runs; wait for it (or --even-if-busy):\n  " + "\n  ".join(busy),
              file=sys.stderr)
        return 2
    accel = accelerator.accelerator().name
    report: dict[str, Any] = {
        "command": " ".join(["benchmarks/class.py", *sys.argv[1:]]),
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "accelerator": accel, "host_cpus": os.cpu_count(),
        "host_memory_mb": round(psutil.virtual_memory().total / 2**20),
        "qemu": hostinfo.qemu_version(), "target_boot_s": args.target_s,
        "load_average_at_start": os.getloadavg()[0], "rounds": [],
    }
    try:
        sweep(args, report)
    finally:
        report["load_average_at_end"] = os.getloadavg()[0]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if not any("records" in r for r in report["rounds"]):
        print(f"no round finished: {report.get('stopped_because')}", file=sys.stderr)
        return 1
    measured = measured_figures(report)
    size = sizing(measured)
    report.update(measured=measured, sizing=size)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    print(f"\nwritten: {args.json}")
    if args.write_sizing:
        SIZING_FILE.parent.mkdir(parents=True, exist_ok=True)
        SIZING_FILE.write_text(json.dumps(
            {"command": report["command"], "measured_at": report["measured_at"],
             "qemu": report["qemu"], "measured": measured, "sizing": size}, indent=2) + "\n")
        print(f"written: {SIZING_FILE} (deploy/z2jh-values.yaml and the guide must quote it)")
    return 0


# -- the table ---------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['accelerator']} ({report['host_cpus']} host CPUs, "
          f"{report['host_memory_mb'] / 1024:.0f} GiB, QEMU {report['qemu']}), load average "
          f"{report['load_average_at_start']:.1f} at start; hub up in "
          f"{report.get('hub_start_s', float('nan')):.1f} s")
    heads = [("learners", ""), ("boot", "median s"), ("slowest", "boot s"), ("alpha", "max s"),
             ("beta", "max s"), ("CPU/learner", "booting"), ("CPU/learner", "idle"),
             ("RSS/learner", "MiB"), ("USS/learner", "MiB"), ("cgroup", "MiB"),
             ("host busy", "cores"), ("not learners", "cores"), ("host steal", "cores")]
    print()
    for line in (0, 1):
        print("".join(f"{head[line]:>13}" for head in heads))
    for r in report["rounds"]:
        if "records" not in r:
            print(f"{r['learners']:>13}  failed: {r.get('errors')}")
            continue
        records = r["records"]
        worst = {name: max(x["guests"][name]["ready_s"] for x in records)
                 for name in records[0]["guests"]}
        cgroups = [x["cgroup_mb"] for x in records if x["cgroup_mb"] is not None]
        over = "" if r["all_under_target"] else f"   over {report['target_boot_s']:g} s"
        cells = [f"{r['learners']}", f"{r['boot_median_s']:.2f}", f"{r['boot_max_s']:.2f}",
                 *(f"{worst.get(name, float('nan')):.2f}" for name in ("alpha", "beta")),
                 f"{_med(records, 'cpu_boot_cores'):.2f}", f"{_med(records, 'cpu_idle_cores'):.3f}",
                 f"{statistics.median(x['memory']['rss_mb'] for x in records):.0f}",
                 f"{statistics.median(x['memory']['uss_mb'] for x in records):.0f}",
                 f"{statistics.median(cgroups):.0f}" if cgroups else "-",
                 f"{r['host_busy_cores_during_boots']:.2f}",
                 f"{r.get('other_busy_cores_during_boots', float('nan')):.2f}",
                 f"{r.get('host_steal_cores_during_boots', float('nan')):.2f}"]
        print("".join(f"{cell:>13}" for cell in cells) + over)
    _print_parts(report)
    _print_hog(report)
    measured, size = report["measured"], report["sizing"]
    notebook, caps = measured["notebook_cgroup_mb"], measured["caps"]
    shared = (f"{measured['host_cpus']} CPUs / {measured['largest_class']} learner(s)"
              if measured["largest_class"] else "even one learner's boot missed the target: "
              "the whole machine")
    bound = "at least " if measured["largest_class_is_lower_bound"] else ""
    print(f"\nlargest class with every boot under {report['target_boot_s']:g} s: {bound}"
          f"{measured['largest_class']} learner(s) ({report.get('stopped_because', '')})")
    print(f"\nper learner, for Kubernetes (deploy/z2jh-values.yaml):\n"
          f"  memory guarantee {size['memory_guarantee']}  (RSS idle with both guests "
          f"{measured['rss_idle_mb']:.0f} MiB; USS {measured['uss_idle_mb']:.0f} MiB)\n"
          f"  memory limit     {size['memory_limit']}  (lesson 4's peak "
          f"{measured['rss_peak_mb']:.0f} MiB, or the notebook's {notebook:.0f} MiB and the "
          f"kit's caps, {caps['guests']} guests and {caps['guest_memory_mb']} MiB: "
          f"{LIMIT_HEADROOM:g} x the measured part)"
          f"\n  CPU guarantee    {size['cpu_guarantee']:g}  ({shared})\n"
          f"  CPU limit        {size['cpu_limit']:g}  (one learner alone booting: "
          f"{measured['cpu_boot_alone_cores']:.2f} cores; alpha has "
          f"{max(g['cpus'] for g in measured['guests'])} vCPUs)")
    print(f"\nlearners per node ({ALLOCATABLE_SHARE:.0%} of it allocatable):")
    for cpus, gib in EXAMPLE_NODES:
        fit = per_node(size, cpus, gib)
        print(f"  {cpus:>2} CPUs, {gib:>2} GiB: {fit['learners']:>3} (memory allows "
              f"{fit['by_memory']}, CPU {fit['by_cpu']}; every learner at the memory limit "
              f"at once: {fit['all_at_limit']})")


def _med(records: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(x[key] for x in records))


def _print_parts(report: dict[str, Any]) -> None:
    rounds = [r for r in report["rounds"] if "records" in r]
    if not rounds:
        return
    parts = rounds[0]["records"][0]["memory"]["parts"]
    before = rounds[0]["records"][0]["notebook_before_guests"]
    print("\none learner's memory, guests booted and settled (MiB):")
    for name, part in sorted(parts.items()):
        print(f"  {name:<8} {part['count']} process(es)  RSS {part['rss_mb']:7.1f}  "
              f"USS {part['uss_mb']:7.1f}")
    print(f"  before the guests: RSS {before['memory']['rss_mb']:.1f}, USS "
          f"{before['memory']['uss_mb']:.1f}, control group {before['cgroup_mb'] or 0:.1f}")


def _print_hog(report: dict[str, Any]) -> None:
    hog = next((r["hog"] for r in report["rounds"] if "hog" in r), None)
    if hog is None:
        return
    print(f"\nlesson 4's memory hog in alpha (one learner): the learner's RSS peaked at "
          f"{hog['rss_peak_mb']:.0f} MiB (alpha's QEMU {hog['alpha_rss_before_mb']:.0f} -> "
          f"{hog['alpha_rss_peak_mb']:.0f} MiB; control group peak "
          f"{hog['cgroup_peak_mb'] or float('nan'):.0f} MiB); the guest's OOM killer "
          f"{'ended the hog' if hog['killed_by_oom'] else 'did not act'}")


if __name__ == "__main__":
    sys.exit(main())
