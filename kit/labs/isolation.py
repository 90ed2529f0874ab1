"""Isolation, measured: what one guest does, and what its neighbour feels of it.

Lesson 4 shows that two virtual machines on one host are two computers, and
is honest about where that stops.  Each function here performs one
experiment on real guests and returns what it measured, as a plain record;
widgets draw the records, tests check them.  Nothing here asserts a speed:
the numbers are whatever this machine gives.

* files: :func:`write_file` in one guest (guest agent ``guest-file-*``),
  :func:`look_for_file` in all of them;
* processes: :func:`process_table` of each guest (its own PID 1, its own
  kernel's boot id);
* a kernel crash: :func:`crash_while_serving` panics one guest while the host
  keeps requesting the other's web page (:class:`ServiceWatch`);
* memory: :func:`memory_hog` lets a program in one guest eat all its memory
  until that guest's own OOM killer stops it, watching the QEMU process, the
  host and the neighbour meanwhile;
* the noisy neighbour: :func:`noisy_neighbour` times a fixed CPU task in one
  guest, alone and while the other burns every vCPU it has.
"""

from __future__ import annotations

import base64
import contextlib
import os
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psutil

from kit.core.errors import GuestError, InvalidInput
from kit.core.state import GuestState
from kit.hypervisor.guest import Guest
from kit.infrastructure.net import LOOPBACK

WEB_PORT = 80  # the guest's web server (busybox httpd)

# -- files -----------------------------------------------------------------------------


def write_file(guest: Guest, path: str, text: str) -> None:
    """Write ``text`` to ``path`` inside ``guest``, with the agent's own file commands.

    ``guest-file-open`` / ``-write`` / ``-close`` act on the guest OS's files,
    as any program inside it would; the host's files are not involved.
    """
    if not path.startswith("/"):
        raise InvalidInput(f"{path!r} is not an absolute path.",
                           hint="Give a path from the guest's root, e.g. /www/hello.txt.")
    handle = guest.agent("guest-file-open", path=path, mode="w")
    try:
        data = base64.b64encode(text.encode()).decode()
        guest.agent("guest-file-write", {"handle": handle, "buf-b64": data})
    finally:
        guest.agent("guest-file-close", handle=handle)


def read_file(guest: Guest, path: str) -> str | None:
    """The text of ``path`` inside ``guest``, or None if that guest has no such file."""
    result = guest.run(["cat", path])
    return result.stdout if result.ok else None


@dataclass(frozen=True)
class FileLook:
    """Which guests have the file at ``path``, and what it holds in each."""

    path: str
    contents: dict[str, str | None]  # guest name -> text, None where absent

    def has(self, name: str) -> bool:
        return self.contents.get(name) is not None

    @property
    def holders(self) -> list[str]:
        return [name for name, text in self.contents.items() if text is not None]


def look_for_file(guests: Sequence[Guest], path: str) -> FileLook:
    """Ask each guest, through its own agent, whether it has ``path``."""
    return FileLook(path, {g.name: read_file(g, path) for g in guests})


# -- processes ---------------------------------------------------------------------------

_PROCESS_SCRIPT = """
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
echo --processes--
ps -o pid,comm | tail -n +2
"""


@dataclass(frozen=True)
class ProcessTable:
    """One guest's own process list, and which running kernel keeps it."""

    guest: str
    qemu_pid: int | None  # the whole guest, seen from the host
    boot_id: str  # random, chosen by each kernel as it boots
    uptime_s: float
    processes: tuple[tuple[int, str], ...]  # (pid, command name), by pid

    @property
    def pid1(self) -> str:
        return self.name_of(1) or "?"

    def name_of(self, pid: int) -> str | None:
        return next((name for p, name in self.processes if p == pid), None)

    def pids_named(self, name: str) -> list[int]:
        return [p for p, n in self.processes if n == name]


def process_table(guest: Guest) -> ProcessTable:
    """Ask the guest's own kernel for its processes (one agent round trip)."""
    result = guest.run(_PROCESS_SCRIPT)
    if not result.ok:
        raise GuestError(f"guest {guest.name} could not list its processes: "
                         f"{result.stderr.strip()}",
                         hint="Look at its console; a reboot usually helps.")
    return parse_process_table(guest.name, guest.pid, result.stdout)


def parse_process_table(name: str, qemu_pid: int | None, text: str) -> ProcessTable:
    head, _, tail = text.partition("--processes--")
    facts = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    found = []
    for line in tail.splitlines():
        pid, _, comm = line.strip().partition(" ")
        if pid.isdigit():
            found.append((int(pid), comm.strip()))
    return ProcessTable(name, qemu_pid, facts.get("boot_id", "?").strip(),
                        _float(facts.get("uptime")), tuple(sorted(found)))


def start_sleeper(guest: Guest, seconds: int = 600) -> int:
    """Start a ``sleep`` in ``guest`` (a process only it has); returns its guest PID."""
    result = guest.run(f"sleep {int(seconds)} </dev/null >/dev/null 2>&1 & echo $!")
    return int(result.stdout.strip())


# -- serving, seen from the host -------------------------------------------------------------


def web_port(guest: Guest) -> int:
    """The host port forwarded to ``guest``'s web server, or a plain-words error."""
    for host_port, guest_port in guest.forwards.items():
        if guest_port == WEB_PORT:
            return host_port
    raise InvalidInput(
        f"guest {guest.name} has no port forward to its web server (port {WEB_PORT}).",
        hint=f"Make the guest with one, e.g. kit.Guest({guest.name!r}, forwards={{8042: 80}}).")


@dataclass(frozen=True)
class Request:
    """One HTTP request from the host: when (s since the watch began), result, time taken."""

    at_s: float
    ok: bool
    status: int | None
    ms: float
    error: str = ""


def request_once(port: int, path: str = "/", timeout: float = 3.0,
                 since: float | None = None) -> Request:
    """GET ``http://127.0.0.1:PORT/PATH`` once; never raises."""
    start = time.monotonic()
    at = start - (since if since is not None else start)
    url = f"http://{LOOPBACK}:{port}/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            reply.read()
            status: int | None = int(reply.status)
            error = ""
    except urllib.error.HTTPError as failure:
        status, error = int(failure.code), f"HTTP {failure.code}"
    except OSError as failure:
        status, error = None, f"{type(failure).__name__}: {failure}"
    ms = (time.monotonic() - start) * 1000
    return Request(at, status == 200, status, ms, error)


@dataclass(frozen=True)
class ServiceLog:
    """Requests the host made to one guest's web server, in order."""

    port: int
    requests: tuple[Request, ...]

    @property
    def total(self) -> int:
        return len(self.requests)

    @property
    def answered(self) -> int:
        return sum(r.ok for r in self.requests)

    @property
    def all_ok(self) -> bool:
        return self.total > 0 and self.answered == self.total

    @property
    def slowest_ms(self) -> float:
        return max((r.ms for r in self.requests), default=0.0)

    @property
    def median_ms(self) -> float:
        return statistics.median([r.ms for r in self.requests]) if self.requests else 0.0

    def __str__(self) -> str:
        return (f"{self.answered} of {self.total} requests answered (median "
                f"{self.median_ms:.0f} ms, slowest {self.slowest_ms:.0f} ms)")


def serve_check(port: int, count: int = 10) -> ServiceLog:
    """``count`` requests in a row: does the server answer each?"""
    since = time.monotonic()
    return ServiceLog(port, tuple(request_once(port, since=since) for _ in range(count)))


class ServiceWatch:
    """Request one web page again and again from a thread, until :meth:`stop`.

    ``with ServiceWatch(port) as watch: ...`` keeps asking while the body
    runs; ``watch.log`` is what it saw.
    """

    def __init__(self, port: int, every: float = 0.05) -> None:
        self.port = port
        self.every = every
        self._requests: list[Request] = []
        self._stop = threading.Event()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kit-service-watch",
                                        daemon=True)

    def __enter__(self) -> ServiceWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def log(self) -> ServiceLog:
        return ServiceLog(self.port, tuple(self._requests))

    def stop(self) -> ServiceLog:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return self.log

    def _run(self) -> None:
        while not self._stop.is_set():
            self._requests.append(request_once(self.port, since=self.started_at))
            self._stop.wait(self.every)


# -- a kernel crash ---------------------------------------------------------------------------


def hypervisor_status(guest: Guest) -> str:
    """What QEMU says of the machine (QMP ``query-status``): running, guest-panicked, ..."""
    if not guest.state.has_process:
        return "no QEMU process"
    return str(guest.qmp("query-status")["status"])


@dataclass(frozen=True)
class CrashReport:
    """One guest's kernel panicked on purpose; what the host saw of both."""

    victim: str
    neighbour: str
    victim_status: str  # QMP query-status of the victim after the crash
    neighbour_status: str
    neighbour_service: ServiceLog  # requests to the neighbour before, during, after
    crash_at_s: float  # when the crash was triggered, on the watch's clock
    panic_lines: tuple[str, ...]  # the victim's last words on its console


def crash_while_serving(victim: Guest, neighbour: Guest, before: float = 0.5,
                        after: float = 1.5) -> CrashReport:
    """Panic ``victim``'s kernel while the host keeps requesting ``neighbour``'s page."""
    port = web_port(neighbour)
    with ServiceWatch(port) as watch:
        time.sleep(before)
        crash_at = time.monotonic() - watch.started_at
        victim.crash()
        time.sleep(after)
    panic = tuple(line.strip() for line in victim.console.tail(12).splitlines()
                  if "panic" in line.lower() or "sysrq" in line.lower())
    return CrashReport(victim.name, neighbour.name, hypervisor_status(victim),
                       hypervisor_status(neighbour), watch.log, crash_at, panic)


# -- memory -----------------------------------------------------------------------------------

# A string that doubles until the guest has no memory left for it: awk
# allocates ordinary process memory, which the guest kernel must find in
# the RAM the hypervisor gave it; with no swap, its OOM killer steps in.
MEMORY_HOG = "awk 'BEGIN { s = \"0123456789abcdef\"; while (1) s = s s }'"
OOM_MARK = "Out of memory: Killed process"


@dataclass(frozen=True)
class Sample:
    """The QEMU process's resident memory and the host's available memory, at one moment."""

    at_s: float
    qemu_rss_mb: float
    host_available_mb: float


@dataclass(frozen=True)
class HogReport:
    """A program in one guest ate all the memory it could; what each side saw."""

    guest: str
    memory_mb: int  # what the hypervisor gave the guest (-m)
    exit_code: int  # the hog's; 137 = killed (signal 9)
    oom_lines: tuple[str, ...]  # the guest kernel's OOM report for this run
    samples: tuple[Sample, ...]
    neighbour: str
    neighbour_service: ServiceLog
    guest_still_running: bool  # the guest answered its agent afterwards

    @property
    def killed_by_oom(self) -> bool:
        return bool(self.oom_lines)

    @property
    def rss_before_mb(self) -> float:
        return self.samples[0].qemu_rss_mb if self.samples else 0.0

    @property
    def rss_peak_mb(self) -> float:
        return max((s.qemu_rss_mb for s in self.samples), default=0.0)

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb

    @property
    def host_available_before_mb(self) -> float:
        return self.samples[0].host_available_mb if self.samples else 0.0

    @property
    def host_available_lowest_mb(self) -> float:
        return min((s.host_available_mb for s in self.samples), default=0.0)


class _Sampler:
    """Samples QEMU's RSS and the host's available memory from a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self._process = psutil.Process(pid)
        self._every = every
        self._since = time.monotonic()
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._take()
        self._thread = threading.Thread(target=self._run, name="kit-rss-sampler", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.samples.append(Sample(time.monotonic() - self._since,
                                       self._process.memory_info().rss / 2**20,
                                       psutil.virtual_memory().available / 2**20))

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._take()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()
        return self.samples


def oom_lines(guest: Guest) -> list[str]:
    """The guest kernel's own OOM-killer reports, from its kernel log (dmesg)."""
    result = guest.run(f"dmesg | grep -F '{OOM_MARK}'")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def memory_hog(guest: Guest, neighbour: Guest, timeout: float = 60.0) -> HogReport:
    """Run :data:`MEMORY_HOG` in ``guest`` while watching QEMU, the host and ``neighbour``."""
    if guest.pid is None:
        raise GuestError(f"guest {guest.name} has no QEMU process.",
                         hint="Start it first.")
    seen_before = set(oom_lines(guest))
    sampler = _Sampler(guest.pid)
    with ServiceWatch(web_port(neighbour), every=0.1) as watch:
        try:
            result = guest.run(MEMORY_HOG, timeout=timeout)
        finally:
            samples = sampler.stop()
    fresh = tuple(line for line in oom_lines(guest) if line not in seen_before)
    alive = guest.run(["true"]).ok
    return HogReport(guest.name, guest.memory_mb, result.exit_code, fresh, tuple(samples),
                     neighbour.name, watch.log, alive)


# -- the noisy neighbour ---------------------------------------------------------------------

CPU_LOOPS = 20_000


def cpu_task(loops: int = CPU_LOOPS) -> str:
    """A fixed amount of pure CPU work for the guest's shell: count to ``loops``."""
    return f"i=0; while [ $i -lt {int(loops)} ]; do i=$((i + 1)); done"


def time_task(guest: Guest, loops: int = CPU_LOOPS, repeats: int = 3) -> list[float]:
    """Wall-clock seconds of :func:`cpu_task` in ``guest``, timed by the host, per run.

    Timed from outside, because a guest's own clock is itself virtual; each
    time includes one agent round trip (tens of milliseconds).
    """
    times = []
    for _ in range(repeats):
        start = time.monotonic()
        result = guest.run(cpu_task(loops), timeout=120)
        if not result.ok:
            raise GuestError(f"the CPU task failed in guest {guest.name}: {result}",
                             hint="Look at its console; reboot it if it misbehaves.")
        times.append(time.monotonic() - start)
    return times


_BURN = "(while :; do :; done) </dev/null >/dev/null 2>&1 & echo $!"


@contextlib.contextmanager
def burning(guest: Guest, threads: int | None = None) -> Iterator[list[int]]:
    """Keep ``threads`` busy loops (default: one per vCPU) running in ``guest`` meanwhile."""
    count = guest.cpus if threads is None else threads
    started = guest.run("; ".join([_BURN] * count))
    pids = [int(word) for word in started.stdout.split() if word.isdigit()]
    try:
        yield pids
    finally:
        if guest.state == GuestState.RUNNING:
            guest.run(["kill", *map(str, pids)])


@dataclass(frozen=True)
class NeighbourReport:
    """The same task in ``quiet``, timed alone and while ``noisy`` burned its vCPUs."""

    quiet: str
    noisy: str
    loops: int
    burners: int  # busy loops in the noisy guest (one per vCPU)
    host_cpus: int
    alone_s: tuple[float, ...]
    crowded_s: tuple[float, ...]
    host_load: float = 0.0  # the host's 1-minute load average as the measurement began

    @property
    def alone_median_s(self) -> float:
        return statistics.median(self.alone_s)

    @property
    def crowded_median_s(self) -> float:
        return statistics.median(self.crowded_s)

    @property
    def slowdown(self) -> float:
        """How many times longer the task took with the busy neighbour (1.0: no change)."""
        return self.crowded_median_s / self.alone_median_s if self.alone_median_s else 0.0


def noisy_neighbour(quiet: Guest, noisy: Guest, loops: int = CPU_LOOPS,
                    repeats: int = 3) -> NeighbourReport:
    """Time :func:`cpu_task` in ``quiet`` alone, then while ``noisy`` burns every vCPU.

    The two kinds of run alternate, so that whatever else the host does
    meanwhile (other programs, other guests) weighs on both alike.
    """
    load = os.getloadavg()[0]
    time_task(quiet, loops, 1)  # a first run warms the translation cache: not counted
    alone: list[float] = []
    crowded: list[float] = []
    burners = 0
    for _ in range(repeats):
        alone += time_task(quiet, loops, 1)
        with burning(noisy) as pids:
            time.sleep(0.3)  # let the burners get going
            crowded += time_task(quiet, loops, 1)
            burners = len(pids)
    return NeighbourReport(quiet.name, noisy.name, loops, burners, os.cpu_count() or 1,
                           tuple(alone), tuple(crowded), load)


def _float(text: str | None) -> float:
    try:
        return float(str(text).strip())
    except ValueError:
        return 0.0
