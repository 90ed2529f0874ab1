"""Fast, small guests: the kit's own kernel beside Debian's, by the kit and by plain QEMU.

One run measures, for each kernel (the kit's own from assets/kernel/, and
Debian's cloud kernel), the same image booted

* by the kit: ``kit.Guest(...).start()`` returns (init said KIT-READY and
  the guest agent answered a ping), and
* by a plain ``qemu-system-x86_64`` command: the kit's own command line for
  that image with its inherited sockets swapped for unix-socket paths,
  started with ``subprocess`` and watched by a few lines of asyncio (wait
  for KIT-READY on the console, then ping the agent: the same readiness the
  kit waits for);

then the median launch to agent-ready and to HTTP-ready, QEMU's RSS (and
its USS, the part no other guest shares) at ready and once the guest has
handed back freed memory, 8 guests started together, 16 at once (kit kernel
only), and launch to agent-ready under KVM where KVM works.  It also breaks
down where the time goes: the kit's steps before QEMU starts, and the guest's
own clock (printk timestamps and /init's lines) against the host's.

    .venv/bin/python benchmarks/fast_boot.py --runs 7
    .venv/bin/python benchmarks/fast_boot.py --runs 7 --kernels kit   # the kit's alone

Prints a table of targets (met or missed) and writes JSON to
benchmarks/results/fast_boot.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
from qemu.qmp import QMPClient, QMPError

import kit
from kit.core import validate
from kit.guestos import images
from kit.guestos.build import common
from kit.hypervisor import accelerator, fleet, footprint, qemu
from kit.infrastructure import hostinfo
from kit.infrastructure.net import free_port, wait_http

RESULTS = Path(__file__).parent / "results"
KERNELS = {"kit": "auto", "debian": "debian"}  # label -> images kernel choice
SETTLE_S = 4.0  # free page reporting runs 2 s after memory is freed


# --- small helpers -------------------------------------------------------------------


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, USS) of a process in MiB: USS is what no other process shares."""
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def use_kernel(label: str) -> images.GuestImage:
    """Make ``kit.Guest`` boot this kernel's image (KIT_KERNEL), building it if needed."""
    os.environ["KIT_KERNEL"] = KERNELS[label]
    return images.ensure_image(kernel=KERNELS[label], progress=common.print_progress)


def guest_memory(image: images.GuestImage) -> int:
    return max(64, image.min_memory_mb)


# --- one boot by the kit -----------------------------------------------------------------


def boot_by_kit(image: images.GuestImage, settle: bool) -> dict[str, float]:
    port = free_port()
    launched = time.monotonic()
    guest = kit.Guest("bench", memory_mb=guest_memory(image), forwards={port: 80})
    guest.start()
    ready = time.monotonic()
    http = wait_http(port, launched + 60)
    rss, uss = memory_mb(guest.pid or 0)
    result = {"agent_ready_s": ready - launched, "http_ready_s": http - launched,
              "rss_mb": rss, "uss_mb": uss,
              "before_qemu_s": (guest.started_at or launched) - launched,
              "after_ready_s": ready - (guest.ready_at or ready)}
    if settle:
        time.sleep(SETTLE_S)
        result["rss_settled_mb"], result["uss_settled_mb"] = memory_mb(guest.pid or 0)
        found = footprint.of_guest(guest)
        for part, mb in (found.parts if found else {}).items():
            result[f"rss_part:{part}"] = mb
    guest.stop()
    return result


# --- one boot by a plain QEMU command -------------------------------------------------------


def plain_command(image: images.GuestImage, memory: int, accel: str, port: int,
                  folder: Path, console_fd: int) -> list[str]:
    """The kit's QEMU command for this image, with socket paths for QMP and the agent."""
    spec = qemu.MachineSpec(name="plain", image=image, memory_mb=memory, cpus=1, accel=accel,
                            forwards={port: 80}, paused=False)  # no kit here to send "cont"
    words = qemu.qemu_command(spec, qemu.ChannelFds(qmp=-1, console=console_fd, agent=-2))
    swaps = {"socket,id=qmp,fd=-1": f"socket,id=qmp,path={folder}/qmp.sock,server=on,wait=off",
             "socket,id=agent,fd=-2":
                 f"socket,id=agent,path={folder}/agent.sock,server=on,wait=off"}
    # The kit starts QEMU paused (-S) until its doors are set; a plain QEMU has
    # nobody to send "cont", so it runs at once.
    return [swaps.get(word, word) for word in words if word != "-S"]


@dataclass
class ConsoleLog:
    """Console lines with the host time each arrived (read on a thread)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def follow(self, sock: socket.socket) -> None:
        partial = b""
        while chunk := _recv(sock):
            now = time.monotonic()
            partial += chunk
            *complete, partial = partial.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").strip("\r")
                self.lines.append((now, line))
                if line.strip() == "KIT-READY":
                    self.ready.set()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


async def ping_agent(path: Path, deadline: float) -> float:
    """Connect and ping until the guest agent answers; the time it did."""
    while time.monotonic() < deadline:
        client = QMPClient("plain-agent")
        client.await_greeting = False
        client.negotiate = False
        try:
            await client.connect(str(path))
            await asyncio.wait_for(client.execute("guest-ping"), 2)
            return time.monotonic()
        except (OSError, TimeoutError, EOFError, QMPError):
            await asyncio.sleep(0.005)
        finally:
            with contextlib.suppress(OSError, EOFError, QMPError):
                await client.disconnect()
    raise TimeoutError("the guest agent never answered")


def boot_plain(image: images.GuestImage, accel: str) -> tuple[dict[str, float], ConsoleLog]:
    port = free_port()
    ours, theirs = socket.socketpair()
    log = ConsoleLog()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        command = plain_command(image, guest_memory(image), accel, port, folder,
                                theirs.fileno())
        launched = time.monotonic()
        process = subprocess.Popen(command, pass_fds=[theirs.fileno()],
                                   stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        reader = threading.Thread(target=log.follow, args=(ours,), daemon=True)
        reader.start()
        try:
            if not log.ready.wait(60):
                raise TimeoutError("the plain guest never printed KIT-READY")
            ready = asyncio.run(ping_agent(folder / "agent.sock", launched + 60))
            http = wait_http(port, launched + 60)
            rss, uss = memory_mb(process.pid)
        finally:
            process.kill()
            process.wait()
            ours.close()
    return ({"agent_ready_s": ready - launched, "http_ready_s": http - launched,
             "rss_mb": rss, "uss_mb": uss},
            _rebase(log, launched))


def _rebase(log: ConsoleLog, launched: float) -> ConsoleLog:
    return ConsoleLog([(when - launched, line) for when, line in log.lines])


# --- many guests at once ------------------------------------------------------------------------


def crowd(image: images.GuestImage, count: int) -> dict[str, float]:
    """Start ``count`` guests from as many threads at once; all ready, and what they cost."""
    guests = [kit.Guest(f"crowd{i}", memory_mb=guest_memory(image)) for i in range(count)]
    launched = time.monotonic()
    try:
        results = fleet.each(guests, kit.Guest.start, workers=count)  # all at once, on purpose
        errors = [f"{g.name}: {e}" for g, e in zip(guests, results, strict=True) if e]
        all_ready = time.monotonic() - launched
        answered = sum(1 for g in guests if g.state == "running" and g.run("true").ok)
        rss = sum(memory_mb(g.pid)[0] for g in guests if g.pid and g.state == "running")
    finally:
        kit.stop_all()
    return {"guests": count, "all_ready_s": all_ready, "answering": answered,
            "errors": len(errors), "total_rss_mb": rss, "first_error": errors[0] if errors
            else ""}  # type: ignore[dict-item]


# --- where the kit's time goes before QEMU starts -------------------------------------------------


def kit_steps(image: images.GuestImage) -> dict[str, float]:
    """Median cost in ms of each step ``Guest()`` and ``start()`` take before QEMU runs."""
    steps: dict[str, Callable[[], object]] = {
        "images.find_image()": lambda: images.find_image(),
        "accelerator.accelerator()": accelerator.accelerator,
        "validate.check_host_ports_free()": lambda: validate.check_host_ports_free([free_port()]),
        "qemu.MachineSpec() (host TSC rate)": lambda: qemu.MachineSpec(
            name="x", image=image, memory_mb=64, cpus=1, accel="tcg"),
        "kit.Guest() (all of __init__)": lambda: kit.Guest("steps"),
    }
    return {name: _median_ms(call) for name, call in steps.items()}


def _median_ms(call: Callable[[], object], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# --- where the guest's time goes -----------------------------------------------------------------


MILESTONES = {
    "kernel starts (guest clock 0)": None,
    "boot CPU reported": r"smpboot: CPU0",
    "initramfs unpacking starts": r"Unpacking initramfs",
    "initramfs unpacked": r"Freeing initrd memory",
    "eth0 set up by the kernel (ip=)": r"IP-Config: Complete",
    "root disk mounted": r"VFS: Mounted root",
    "kernel runs /init": r"Run /init as init process",
    "init: hello": r"kit-init: hello",
    "init: guest agent started": r"kit-init: starting the QEMU guest agent",
    "init: KIT-READY": r"^KIT-READY",
}
_PRINTK = re.compile(r"^\[\s*(\d+\.\d+)\]")


def timeline(log: ConsoleLog) -> dict[str, float]:
    """Host seconds after launch at which each milestone happened.

    Kernel lines carry the guest's own clock (printk timestamps, exact);
    they reach the host late, in a burst, once the serial console is up, so
    the guest clock's zero is placed from the line that arrived soonest after
    it was printed.  /init's lines carry no timestamp: their arrival is used.
    """
    stamped = [(when, float(m.group(1)), line) for when, line in log.lines
               if (m := _PRINTK.match(line))]
    if not stamped:
        return {}
    zero = min(when - uptime for when, uptime, _ in stamped)
    points = {"kernel starts (guest clock 0)": zero}
    for label, pattern in MILESTONES.items():
        if pattern is None:
            continue
        for when, line in log.lines:
            if re.search(pattern, line):
                match = _PRINTK.match(line)
                points[label] = zero + float(match.group(1)) if match else when
                break
    return points


# --- the whole run ------------------------------------------------------------------------------


def measure_kernel(label: str, runs: int, accel: str) -> dict[str, object]:
    image = use_kernel(label)
    # The same files from the initramfs instead of the root disk, by plain QEMU:
    # what the disk costs in time and saves in memory, measured side by side.
    from_initramfs = replace(image, root_disk=None) if image.root_disk else None
    kit_runs, plain_runs, initramfs_runs, logs = [], [], [], []
    for run in range(runs):
        # Take turns going first: a boot right after another finds the host's
        # caches and CPU frequency in a different state.
        if run % 2:
            plain, log = boot_plain(image, accel)
            kit_runs.append(boot_by_kit(image, settle=(label == "kit")))
        else:
            kit_runs.append(boot_by_kit(image, settle=(label == "kit")))
            plain, log = boot_plain(image, accel)
        if from_initramfs is not None:
            initramfs_runs.append(boot_plain(from_initramfs, accel)[0])
        plain_runs.append(plain)
        logs.append(log)
        print(f"{label} kernel, run {run + 1}/{runs}: kit {kit_runs[-1]['agent_ready_s']:.3f} s,"
              f" plain {plain['agent_ready_s']:.3f} s", file=sys.stderr)
    middle, median_log = sorted(zip(plain_runs, logs, strict=True),
                                key=lambda pair: pair[0]["agent_ready_s"])[len(logs) // 2]
    points = timeline(median_log)
    points["guest agent answers"] = middle["agent_ready_s"]
    pairs = [k["agent_ready_s"] / p["agent_ready_s"] for k, p in zip(kit_runs, plain_runs,
                                                                     strict=True)]
    own = [k["before_qemu_s"] + k["after_ready_s"] for k in kit_runs]
    return {
        "overhead": {"paired_ratio_median": median(pairs),
                     "kit_own_seconds_median": median(own),
                     "kit_own_share_of_plain": median(own) / _medians(plain_runs)["agent_ready_s"]},
        "kernel": image.kernel_version, "kernel_source": image.kernel_source,
        "fallback_reason": image.fallback_reason, "machine": image.machine,
        "memory_mb": guest_memory(image),
        "kit": kit_runs, "plain": plain_runs,
        "median": {"kit": _medians(kit_runs), "plain": _medians(plain_runs),
                   **({"plain_initramfs": _medians(initramfs_runs)} if initramfs_runs else {})},
        "timeline_s": points,
        "crowd8": crowd(image, 8),
    }


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median([run[key] for run in runs if key in run]) for key in runs[0]}


def measure_kvm(image: images.GuestImage) -> dict[str, object]:
    accel = accelerator.accelerator()
    if accel.name != "kvm":
        return {"measured": False, "why": f"not measurable: KVM {accel.kvm} here. {accel.reason}"}
    runs = [boot_by_kit(image, settle=False)["agent_ready_s"] for _ in range(5)]
    return {"measured": True, "agent_ready_s": median(runs), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, default=RESULTS / "fast_boot.json")
    parser.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=list(KERNELS),
                        help="the kernels to measure (default: both; the targets need kit)")
    args = parser.parse_args()
    if "kit" not in args.kernels:
        parser.error("the targets are the kit kernel's: --kernels kit [debian]")
    os.environ["KIT_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="kit-bench-")
    accel = accelerator.accelerator()
    report: dict[str, object] = {
        "command": " ".join(["benchmarks/fast_boot.py", *sys.argv[1:]]),
        "accelerator": accel.name, "accelerator_reason": accel.reason,
        "host_cpus": os.cpu_count(), "qemu": hostinfo.qemu_version(),
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        kernels = {label: measure_kernel(label, args.runs, accel.name)
                   for label in KERNELS if label in args.kernels}
        image = use_kernel("kit")
        report["kernels"] = kernels
        report["crowd16"] = crowd(image, 16)
        report["kvm"] = measure_kvm(image)
        report["kit_steps_ms"] = kit_steps(image)
    finally:
        kit.stop_all()
    report["load_average_at_end"] = os.getloadavg()[0]
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten: {args.json}")
    return 0


# --- the table ---------------------------------------------------------------------------------


def print_report(report: dict[str, object]) -> None:
    kernels: dict[str, dict[str, object]] = report["kernels"]  # type: ignore[assignment]
    print(f"\n{report['accelerator']} ({report['host_cpus']} host CPUs, QEMU {report['qemu']}),"
          f" load average {report['load_average_at_start']:.1f} at start")
    _print_kernel_table(kernels)
    _print_targets(report, kernels)
    _print_timeline(kernels["kit"])
    _print_rss_parts(kernels["kit"])
    print("\nthe kit's steps before QEMU starts (median ms):")
    for name, ms in report["kit_steps_ms"].items():  # type: ignore[attr-defined]
        print(f"  {name:<40}{ms:8.2f}")


def _print_kernel_table(kernels: dict[str, dict[str, object]]) -> None:
    rows = [("agent_ready_s", "launch to agent-ready (s)", 3),
            ("http_ready_s", "launch to HTTP-ready (s)", 3),
            ("rss_mb", "QEMU RSS at ready (MiB)", 1), ("uss_mb", "QEMU USS at ready (MiB)", 1),
            ("rss_settled_mb", f"QEMU RSS {SETTLE_S:g} s later (MiB)", 1),
            ("uss_settled_mb", f"QEMU USS {SETTLE_S:g} s later (MiB)", 1)]
    header = "".join(f"{label + ': kit':>14}{'plain':>9}{'ratio':>7}" for label in kernels)
    print(f"\n{'median of runs':<34}{header}")
    for key, title, digits in rows:
        cells = ""
        for data in kernels.values():
            k = data["median"]["kit"].get(key, float("nan"))  # type: ignore[index]
            p = data["median"]["plain"].get(key, float("nan"))  # type: ignore[index]
            cells += f"{k:>14.{digits}f}{p:>9.{digits}f}{k / p if p == p else float('nan'):>7.3f}"
        print(f"{title:<34}{cells}")
    _print_initramfs_row(kernels["kit"])
    for label, data in kernels.items():
        c = data["crowd8"]  # type: ignore[index]
        fallback = f", fell back: {data['fallback_reason']}" if data["fallback_reason"] else ""
        print(f"{label} kernel: {data['kernel']} on {data['machine']}, {data['memory_mb']} MiB"
              f"{fallback}; 8 together: all ready in {c['all_ready_s']:.2f} s, "
              f"{c['answering']}/8 answer")


def _print_initramfs_row(data: dict[str, object]) -> None:
    medians: dict[str, dict[str, float]] = data["median"]  # type: ignore[assignment]
    if "plain_initramfs" not in medians:
        return
    disk, ram = medians["plain"], medians["plain_initramfs"]
    print(f"kit kernel, plain QEMU, files from the initramfs instead of the root disk: "
          f"agent-ready {ram['agent_ready_s']:.3f} s (disk {disk['agent_ready_s']:.3f} s), "
          f"RSS {ram['rss_mb']:.1f} MiB (disk {disk['rss_mb']:.1f} MiB)")


def _print_targets(report: dict[str, object], kernels: dict[str, dict[str, object]]) -> None:
    fast = kernels["kit"]["median"]  # type: ignore[index]
    kit_m, plain_m = fast["kit"], fast["plain"]  # type: ignore[index]
    c8 = kernels["kit"]["crowd8"]  # type: ignore[index]
    c16 = report["crowd16"]  # type: ignore[assignment]
    kvm = report["kvm"]  # type: ignore[assignment]
    overhead = kit_m["agent_ready_s"] / plain_m["agent_ready_s"] - 1
    detail = kernels["kit"]["overhead"]  # type: ignore[index]
    # The verdict takes the median of each round's kit/plain ratio: the two
    # boots of a round run back to back, while the host's speed drifts from
    # round to round, which the ratio of the two medians mixes in.
    paired = detail["paired_ratio_median"] - 1
    targets = [
        ("launch to agent-ready, TCG <= 0.5 s", f"{kit_m['agent_ready_s']:.3f} s",
         kit_m["agent_ready_s"] <= 0.5),
        ("kit overhead over plain <= 5 %",
         f"{paired * 100:+.1f} % (median of paired runs); {overhead * 100:+.1f} % (ratio of"
         f" medians); the kit's own steps outside QEMU "
         f"{detail['kit_own_seconds_median'] * 1000:.1f} ms = "
         f"{detail['kit_own_share_of_plain'] * 100:.1f} %", paired <= 0.05),
        ("QEMU RSS, 64 MiB guest <= 80 MiB", f"{kit_m['rss_mb']:.1f} MiB at ready, "
         f"{kit_m.get('rss_settled_mb', float('nan')):.1f} MiB settled",
         kit_m.get("rss_settled_mb", 1e9) <= 80),
        ("8 guests together all ready <= 8 s", f"{c8['all_ready_s']:.2f} s, "
         f"{c8['answering']}/8", c8["all_ready_s"] <= 8 and c8["answering"] == 8),
        ("16 guests at once work", f"{c16['answering']}/16 in {c16['all_ready_s']:.2f} s, "
         f"{c16['total_rss_mb']:.0f} MiB RSS in all", c16["answering"] == 16),
        ("KVM agent-ready <= 0.15 s",
         f"{kvm['agent_ready_s']:.3f} s" if kvm["measured"] else str(kvm["why"]),
         kvm["measured"] and kvm["agent_ready_s"] <= 0.15),
    ]
    print(f"\n{'target':<38}{'verdict':<16}result")
    for name, value, met in targets:
        verdict = "met" if met else ("not measurable" if "not measurable" in value else "MISSED")
        print(f"{name:<38}{verdict:<16}{value}")


def _print_rss_parts(data: dict[str, object]) -> None:
    median_kit: dict[str, float] = data["median"]["kit"]  # type: ignore[index]
    parts = {key.split(":", 1)[1]: mb for key, mb in median_kit.items()
             if key.startswith("rss_part:")}
    if not parts:
        return
    print(f"\nwhere QEMU's RSS goes, kit kernel, {SETTLE_S:g} s after ready (median MiB):")
    for part, mb in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"  {mb:6.1f}  {part}")


def _print_timeline(data: dict[str, object]) -> None:
    points: dict[str, float] = data["timeline_s"]  # type: ignore[assignment]
    print("\nwhere a kit-kernel boot spends its time (plain QEMU run of median speed, "
          "seconds after launch):")
    previous = 0.0
    for label, when in sorted(points.items(), key=lambda item: item[1]):
        print(f"  {when:6.3f}  (+{when - previous:5.3f})  {label}")
        previous = when


if __name__ == "__main__":
    sys.exit(main())
