"""Snapshots, clones and live migration, measured on this host with the kit's own guests.

One run measures, on 64 MiB guests of the kit's kernel:

* a cold boot (``kit.Guest(...).start()``) and a restore from a snapshot
  (``kit.Guest.from_snapshot(...)``) taken in the same run, back to back in
  turns: the time from the call until the guest agent answers, and until the
  call returns (a restore then refreshes the guest's identity);
* the snapshot itself: the whole call, and how long the guest was paused;
* 8 clones started at once from one snapshot: until all 8 answer, and each
  QEMU's USS (the memory only it uses: ``memory_full_info().uss``) with all
  8 running, at once and a few seconds later;
* a live migration of a guest serving HTTP through its forward while a client
  asks every 10 ms: the longest silence the client saw (from its last answer
  before the move to its first after), beside the guest's own pause.

    .venv/bin/python benchmarks/snapshot.py --runs 11

Prints a table of targets (met or missed) and writes JSON to
benchmarks/results/snapshot.json.  Times are medians of the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import kit
from kit.guestos import images
from kit.guestos.build import common
from kit.hypervisor import accelerator, fleet
from kit.infrastructure import hostinfo
from kit.infrastructure.net import free_port, wait_http
from kit.labs import latency

RESULTS = Path(__file__).parent / "results"
MEMORY_MB = 64
CLONES = 8
SETTLE_S = 4.0  # free page reporting runs 2 s after memory is freed
CLIENT_EVERY_S = 0.010


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def uss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_full_info().uss) / 2**20


# --- cold boot against restore --------------------------------------------------------------


def cold_boot(name: str) -> dict[str, float]:
    called = time.monotonic()
    return _timed_then_stopped(kit.Guest(name, memory_mb=MEMORY_MB).start(), called)


def restore(snap: kit.Snapshot, name: str) -> dict[str, float]:
    called = time.monotonic()
    return _timed_then_stopped(kit.Guest.from_snapshot(snap, name), called)


def _timed_then_stopped(guest: kit.Guest, called: float) -> dict[str, float]:
    """From ``called``: until the agent answered, until the call returned; USS; then stop."""
    returned = time.monotonic()
    try:
        return {"agent_s": (guest.ready_at or returned) - called, "call_s": returned - called,
                "uss_mb": uss_mb(guest.pid or 0)}
    finally:
        guest.stop()


def take_snapshot(name: str) -> tuple[kit.Snapshot, dict[str, float]]:
    """A snapshot of a freshly booted guest that has settled (as a learner's would be)."""
    with kit.Guest("bench-source", memory_mb=MEMORY_MB) as source:
        source.run("sleep 1")  # let the boot's last work finish
        called = time.monotonic()
        snap = source.snapshot(name, replace=True)
        took = time.monotonic() - called
    return snap, {"call_s": took, "paused_s": snap.info.paused_s,
                  "size_mb": snap.size_bytes / 2**20}


def boot_against_restore(runs: int) -> dict[str, object]:
    colds, restores, saves = [], [], []
    for run in range(runs):
        snap, save = take_snapshot("bench")
        saves.append(save)
        if run % 2:  # take turns going first: the host's state drifts
            restores.append(restore(snap, "bench-restore"))
            colds.append(cold_boot("bench-cold"))
        else:
            colds.append(cold_boot("bench-cold"))
            restores.append(restore(snap, "bench-restore"))
        ratio = restores[-1]["agent_s"] / colds[-1]["agent_s"]
        print(f"run {run + 1}/{runs}: cold boot {colds[-1]['agent_s']:.3f} s, restore "
              f"{restores[-1]['agent_s']:.3f} s to the agent ({ratio:.2f}x)", file=sys.stderr)
    snap.delete()
    ratios = [r["agent_s"] / c["agent_s"] for r, c in zip(restores, colds, strict=True)]
    return {"cold": colds, "restore": restores, "snapshot": saves,
            "median": {"cold": _medians(colds), "restore": _medians(restores),
                       "snapshot": _medians(saves), "paired_ratio": median(ratios)}}


# --- clones ---------------------------------------------------------------------------------


def clones_at_once(count: int) -> dict[str, object]:
    snap, _ = take_snapshot("bench-clones")
    guests: list[kit.Guest] = []
    called = time.monotonic()
    try:
        guests = fleet.clones(snap, [f"bench-clone{i}" for i in range(count)], workers=count)
        answering = sum(1 for g in guests if g.run("true").ok)
        all_answer = time.monotonic() - called
        uss_now = [uss_mb(g.pid or 0) for g in guests]
        time.sleep(SETTLE_S)
        uss_later = [uss_mb(g.pid or 0) for g in guests]
        rss_later = [psutil.Process(g.pid or 0).memory_info().rss / 2**20 for g in guests]
    finally:
        fleet.stop(guests)
        snap.delete()
    return {"clones": count, "all_answer_s": all_answer, "answering": answering,
            "uss_mb": uss_now, "uss_settled_mb": uss_later, "rss_settled_mb": rss_later}


# --- live migration under HTTP ---------------------------------------------------------------


def silence_around(samples: list[latency.Sample], start_s: float, end_s: float) -> float:
    """The longest time without an answer (ms) that overlaps ``start_s`` to ``end_s``."""
    around = [gap.ms for gap in latency.gaps(samples)
              if gap.end_s >= start_s and gap.start_s <= end_s]
    return max(around, default=float("nan"))


def migration_pause(runs: int) -> dict[str, object]:
    port = free_port()
    results: list[dict[str, float]] = []
    with kit.Guest("bench-migrate", memory_mb=MEMORY_MB, forwards={port: 80}) as guest:
        wait_http(port, time.monotonic() + 30)
        for run in range(runs):
            sampler = latency.LatencySampler(port, every=CLIENT_EVERY_S).start()
            time.sleep(0.5)
            began = sampler.seconds()
            report = guest.migrate()
            ended = sampler.seconds()
            time.sleep(0.5)
            samples = sampler.stop()
            failed = sum(1 for s in samples if not s.ok and began <= s.at_s <= ended + 1)
            results.append({"http_silence_ms": silence_around(samples, began, ended),
                            "paused_ms": report.paused_ms, "move_s": report.seconds,
                            "sent_mb": report.transferred_mb,
                            "memory_shared": float(report.memory_shared),
                            "failed_requests": failed})
            print(f"migration {run + 1}/{runs}: HTTP silent for "
                  f"{results[-1]['http_silence_ms']:.0f} ms; {report}", file=sys.stderr)
    return {"runs": results, "median": _medians(results)}


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: median([run[key] for run in runs]) for key in runs[0]}


# --- the whole run ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)  # fewer runs: medians swing with the host
    parser.add_argument("--json", type=Path, default=RESULTS / "snapshot.json")
    args = parser.parse_args()
    os.environ["KIT_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="kit-bench-")
    os.environ["KIT_SNAPSHOT_DIR"] = tempfile.mkdtemp(prefix="kit-bench-snapshots-")
    image = images.ensure_image(progress=common.print_progress)
    accel = accelerator.accelerator()
    report: dict[str, Any] = {
        "command": " ".join(["benchmarks/snapshot.py", *sys.argv[1:]]),
        "accelerator": accel.name, "host_cpus": os.cpu_count(), "qemu": hostinfo.qemu_version(),
        "kernel": image.kernel_version, "machine": image.machine, "memory_mb": MEMORY_MB,
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        report["boot_against_restore"] = boot_against_restore(args.runs)
        report["clones"] = clones_at_once(CLONES)
        report["migration"] = migration_pause(args.runs)
    finally:
        kit.stop_all()
    report["load_average_at_end"] = os.getloadavg()[0]
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten: {args.json}")
    return 0


def print_report(report: dict[str, Any]) -> None:
    boot = report["boot_against_restore"]["median"]
    clones = report["clones"]
    moved = report["migration"]["median"]
    cold, back, save = boot["cold"], boot["restore"], boot["snapshot"]
    print(f"\n{report['accelerator']} ({report['host_cpus']} host CPUs, QEMU {report['qemu']}), "
          f"kernel {report['kernel']} on {report['machine']}, {MEMORY_MB} MiB guests; load "
          f"average {report['load_average_at_start']:.1f} at start, "
          f"{report['load_average_at_end']:.1f} at end")
    print(f"\n{'median of runs':<44}{'cold boot':>11}{'restore':>11}")
    print(f"{'call to agent answering (s)':<44}{cold['agent_s']:>11.3f}{back['agent_s']:>11.3f}")
    print(f"{'call to return (s)':<44}{cold['call_s']:>11.3f}{back['call_s']:>11.3f}")
    print(f"{'QEMU USS when ready (MiB)':<44}{cold['uss_mb']:>11.1f}{back['uss_mb']:>11.1f}")
    print(f"snapshot: {save['call_s']:.3f} s for the call, guest paused "
          f"{save['paused_s'] * 1000:.0f} ms, {save['size_mb']:.1f} MiB on disk")
    uss = clones["uss_settled_mb"]
    print(f"{clones['clones']} clones at once: {clones['answering']}/{clones['clones']} answer "
          f"after {clones['all_answer_s']:.2f} s; USS per clone {median(clones['uss_mb']):.1f} "
          f"MiB at once, {median(uss):.1f} MiB (max {max(uss):.1f}) {SETTLE_S:g} s later")
    print(f"migration: HTTP silent {moved['http_silence_ms']:.0f} ms (client every "
          f"{CLIENT_EVERY_S * 1000:.0f} ms), guest paused {moved['paused_ms']:.0f} ms, whole "
          f"move {moved['move_s']:.3f} s, {moved['sent_mb']:.2f} MiB sent (memory "
          f"{'shared' if moved['memory_shared'] else 'copied'}), "
          f"{moved['failed_requests']:.0f} request(s) refused or reset (the client retries)")
    targets = [
        ("cold boot to agent <= 0.6 s", f"{cold['agent_s']:.3f} s", cold["agent_s"] <= 0.6),
        ("restore to agent <= 0.3 s", f"{back['agent_s']:.3f} s", back["agent_s"] <= 0.3),
        ("restore <= 0.35x cold boot", f"{boot['paired_ratio']:.2f}x (median of paired runs)",
         boot["paired_ratio"] <= 0.35),
        (f"{CLONES} clones all answering <= 2 s",
         f"{clones['all_answer_s']:.2f} s, {clones['answering']}/{CLONES}",
         clones["all_answer_s"] <= 2 and clones["answering"] == CLONES),
        ("migration pause seen by HTTP <= 100 ms", f"{moved['http_silence_ms']:.0f} ms",
         moved["http_silence_ms"] <= 100),
        (f"QEMU USS per clone of {CLONES} <= 40 MiB", f"{median(uss):.1f} MiB median, "
         f"{max(uss):.1f} max", max(uss) <= 40),
    ]
    print(f"\n{'target':<42}{'verdict':<9}result")
    for name, value, met in targets:
        print(f"{name:<42}{'met' if met else 'MISSED':<9}{value}")


if __name__ == "__main__":
    sys.exit(main())
