"""Load held: many guests, a steady stream of QMP and agent requests from threads.

Several threads share the guests, as widget callbacks and lesson cells do,
and send requests at a fixed total rate: half QMP ``query-status`` (the
hypervisor), half agent ``guest-ping``/``guest-get-host-name`` (the guest OS).
Reports errors, request latency (median, p99, max) and how much the kit's
own memory grew.

    .venv/bin/python benchmarks/load.py --guests 8 --seconds 60 --rate 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

import kit
from kit.hypervisor import fleet

RESULTS = Path(__file__).parent / "results"
# What "load held" means (issue: reliability): no error, no request slower than
# SLOWEST_MS, and the kit's own memory grows by less than MEMORY_GROWTH_MB over
# the run (each guest keeps a bounded console and a 200-entry QMP log, so what
# grows is only Python's allocator settling).
SLOWEST_MS = 1000.0
MEMORY_GROWTH_MB = 20.0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error:
                self.errors.append(error)


def one_request(guest: kit.Guest, n: int) -> None:
    kind = n % 3
    if kind == 0:
        guest.qmp("query-status")
    elif kind == 1:
        guest.agent("guest-ping")
    else:
        guest.agent("guest-get-host-name")


def worker(guests: list[kit.Guest], offset: int, period: float, stop_at: float,
           tally: Tally) -> None:
    n = offset
    next_at = time.monotonic()
    while next_at < stop_at:
        guest = guests[n % len(guests)]
        started = time.monotonic()
        error = None
        try:
            one_request(guest, n)
        except kit.KitError as failure:
            error = f"{guest.name}: {failure.message}"
        tally.add(time.monotonic() - started, error)
        n += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


def hammer(guests: list[kit.Guest], seconds: float, rate: float, threads: int) -> dict[str, float]:
    """Send ``rate`` requests a second over ``threads`` threads for ``seconds``."""
    me = psutil.Process()
    rss_before = me.memory_info().rss
    tally = Tally()
    stop_at = time.monotonic() + seconds
    period = threads / rate
    pool = [threading.Thread(target=worker, args=(guests, i, period, stop_at, tally))
            for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    latencies = sorted(tally.latencies)
    return {
        "requests": len(latencies), "errors": len(tally.errors),
        "rate_per_s": len(latencies) / seconds,
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "kit_rss_growth_mb": (me.memory_info().rss - rss_before) / 2**20,
        "first_errors": tally.errors[:5],  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100, help="requests a second, in all")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()
    guests = [kit.Guest(f"load{i}", replace=True) for i in range(args.guests)]
    try:
        fleet.start(guests, workers=len(guests))
        result = hammer(guests, args.seconds, args.rate, args.threads)
    finally:
        kit.stop_all()
    print(f"\n{args.guests} guests, {args.threads} threads, {args.rate:g} requests/s asked, "
          f"{args.seconds:g} s")
    for key in ("requests", "errors", "rate_per_s", "median_ms", "p99_ms", "max_ms",
                "kit_rss_growth_mb"):
        print(f"{key:<20}{result[key]:>12.1f}")
    for error in result["first_errors"]:  # type: ignore[union-attr]
        print("error:", error)
    held = verdicts(result)
    for what, ok in held.items():
        print(f"{'held' if ok else 'NOT HELD':<9}{what}")
    report = {"command": " ".join(["benchmarks/load.py", *sys.argv[1:]]), **vars(args),
              "json": str(args.json), **result, "held": held}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwritten: {args.json}")
    return 0 if all(held.values()) else 1


def verdicts(result: dict[str, float]) -> dict[str, bool]:
    """Each promise of the load target, and whether this run kept it."""
    return {
        "no error": result["errors"] == 0,
        f"no request slower than {SLOWEST_MS:g} ms": result["max_ms"] < SLOWEST_MS,
        f"kit memory grew less than {MEMORY_GROWTH_MB:g} MB":
            result["kit_rss_growth_mb"] < MEMORY_GROWTH_MB,
    }


if __name__ == "__main__":
    sys.exit(main())
