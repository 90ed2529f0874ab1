"""The boot stopwatch: where the seconds of one guest's start go, phase by phase.

Every boundary is a moment on the host's own clock (``time.monotonic()``):

* the call to ``start()``;
* QEMU's process start (the kit notes the time just before ``Popen``);
* the kernel's first byte on the serial console;
* the console line ``Run /init as init process`` (the kernel hands over to init);
* the init's ``KIT-READY`` line;
* the guest agent's first answer (``guest.ready_at``);
* the first HTTP answer of the guest's web server through a port forward.

Why host times and not the kernel's printk timestamps: under TCG the guest's
clock drifts from the host's by tenths of a second in a single boot, so adding
guest seconds to host seconds would not sum.  The printk time of ``Run /init``
and the uptime the init prints are kept too, as the guest's own view.

The kernel normally prints nothing until its serial driver is up (a few tenths
of a second into its boot), and then replays what it wrote before.  The
stopwatch boots with ``earlycon=uart8250,io,0x3f8``, so the kernel writes to
the serial port from its first message and the first byte marks the kernel's
start.  The kit's guests boot the kernel directly (``-kernel``): no BIOS menu
and no boot loader run, so QEMU's own start and the loader phase are short.

Console lines are timed as they arrive: the stopwatch listens to the guest's
console from the moment the guest turns ``booting`` (announced on the kit loop
before QEMU starts, so not a byte is missed).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field

from kit.core.errors import GuestError
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.infrastructure.net import free_port, wait_http

EARLY_CONSOLE = "earlycon=uart8250,io,0x3f8"
RUN_INIT = "Run /init as init process"
READY = "KIT-READY"
_PRINTK = re.compile(r"^\[\s*(\d+\.\d+)\]")
_UPTIME = re.compile(r"kit-init: ready after (\d+(?:\.\d+)?) s of guest uptime")

PHASES = (
    ("kit", "the kit's checks before QEMU"),
    ("qemu_loader", "QEMU starts, loads the kernel"),
    ("kernel", "the guest kernel boots"),
    ("init", "init sets up the system"),
    ("agent", "the guest agent answers"),
    ("application", "the web server answers"),
)


@dataclass(frozen=True)
class BootPhases:
    """How long each phase of one boot took, in seconds (host clock).

    The phases follow each other without gaps, so they sum to ``total_s``.
    """

    kit_s: float
    qemu_loader_s: float
    kernel_s: float
    init_s: float
    agent_s: float
    application_s: float
    guest_run_init_s: float | None = None  # printk time of "Run /init" (guest clock)
    guest_ready_uptime_s: float | None = None  # what the init printed (guest clock)
    earlycon: bool = True

    @property
    def total_s(self) -> float:
        return sum(self.durations().values())

    def durations(self) -> dict[str, float]:
        """Phase name -> seconds, in boot order."""
        return {name: float(getattr(self, f"{name}_s")) for name, _ in PHASES}

    def rows(self) -> list[tuple[str, float]]:
        """(phase described in words, seconds), in boot order, for tables."""
        return [(words, getattr(self, f"{name}_s")) for name, words in PHASES]


@dataclass
class ConsoleTimes:
    """Each console line with the host time its last byte arrived."""

    first_byte: float | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    _partial: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, text: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.first_byte is None and text:
                self.first_byte = now
            *complete, self._partial = (self._partial + text).split("\n")
            self.lines.extend((now, line) for line in complete)

    def first(self, needle: str) -> tuple[float, str] | None:
        """The first line containing ``needle``, with its arrival time."""
        with self._lock:
            return next(((when, line) for when, line in self.lines if needle in line), None)


def phases_from(called: float, popen: float, console: ConsoleTimes, agent_ready: float,
                http_ready: float, *, earlycon: bool = True) -> BootPhases:
    """Split one boot into phases from its host timestamps (monotonic seconds).

    A boundary that a slow or missing line would put before the previous one is
    moved up to it, so every phase is zero or more and they always sum.
    """
    kernel_start = console.first_byte if console.first_byte is not None else popen
    run_init = console.first(RUN_INIT)
    ready = console.first(READY)
    bounds = [called, popen, kernel_start, run_init[0] if run_init else kernel_start,
              ready[0] if ready else agent_ready, agent_ready, http_ready]
    for index in range(1, len(bounds)):
        bounds[index] = max(bounds[index], bounds[index - 1])
    steps = [later - earlier for earlier, later in itertools.pairwise(bounds)]
    uptime = next((m for _, line in console.lines if (m := _UPTIME.search(line))), None)
    printk = _PRINTK.match(run_init[1]) if run_init else None
    kit_s, qemu_s, kernel_s, init_s, agent_s, app_s = steps
    return BootPhases(kit_s, qemu_s, kernel_s, init_s, agent_s, app_s,
                      guest_run_init_s=float(printk.group(1)) if printk else None,
                      guest_ready_uptime_s=float(uptime.group(1)) if uptime else None,
                      earlycon=earlycon)


def measure_boot(name: str = "stopwatch", memory_mb: int = 64, *, earlycon: bool = True,
                 http_timeout: float = 30.0) -> BootPhases:
    """Boot one guest with a web server forward, time every phase, stop it."""
    port = free_port()
    guest = Guest(name, memory_mb=memory_mb, forwards={port: 80},
                  kernel_args=[EARLY_CONSOLE] if earlycon else [])
    console = ConsoleTimes()
    unsubscribe = registry.subscribe(_listen_to(guest, console))
    try:
        called = time.monotonic()
        guest.start()
        http = wait_http(port, time.monotonic() + http_timeout)
        if guest.started_at is None or guest.ready_at is None:
            raise GuestError(f"guest {name} started without recording its times.",
                             hint="Run the stopwatch again; report it if it repeats.")
        return phases_from(called, guest.started_at, console, guest.ready_at, http,
                           earlycon=earlycon)
    finally:
        unsubscribe()
        guest.stop()


def measure_boots(count: int = 3, name: str = "stopwatch", memory_mb: int = 64,
                  *, earlycon: bool = True) -> list[BootPhases]:
    """``count`` boots one after another (never together: each is timed alone)."""
    return [measure_boot(name, memory_mb, earlycon=earlycon) for _ in range(count)]


def _listen_to(guest: Guest, console: ConsoleTimes) -> registry.Listener:
    """A registry listener that follows ``guest``'s console once it begins to boot.

    The guest makes a fresh console for each start and announces ``booting``
    on the kit loop before QEMU starts; the console is read on that loop too,
    so subscribing here cannot miss the first byte.
    """
    def on_state(changed: Guest, state: str) -> None:
        if changed is guest and state == GuestState.BOOTING and console.first_byte is None:
            changed.console.subscribe(console.feed)

    return on_state
