"""Lesson 7, Limitations: heavy, slow to boot, one kernel per guest, each measured here.

The notebook ``lessons/07-limitations.ipynb`` shows these; the tests import
them and check each exercise both ways.

Demonstrations, each a widget with a plot that says what it is doing while it
measures, and replaces its plot (never piles onto it) when measured again:

* :class:`StopwatchView`: boots timed phase by phase (:mod:`kit.labs.stopwatch`);
* :class:`CrowdView`: guests ``l7-1``, ``l7-2``... added and stopped one at a
  time, the host memory their QEMUs hold, and the proof that each booted a
  kernel of its own (a different ``boot_id`` per guest);
* :class:`SizesView`: what each guest boots from, and what holds each guest's
  host memory (:mod:`kit.hypervisor.footprint`);
* :class:`RaceView`: the answer clouds found to slow boots, a cold boot against
  a restore from a snapshot of a ready guest, timed alike
  (:mod:`kit.labs.restore_race`).

The exercises are the learner's own work, on their own guest ``l7-mine``:

1. in its serial console, find when its kernel handed over to init, on the
   guest's own clock (a number that differs at every boot);
2. make it again with a memory size of their own, and read from its
   footprint, in code, how much of that memory the guest has really touched;
3. add guests until together they hold a host-memory total of their own,
   with not one guest more than needed;
4. leave a word of their own in ``l7-mine``'s memory, save it as a snapshot
   and start a clone from it: a second running guest that has the word and
   the same kernel boot id, because it never booted.

Four predictions come before measurements: how long a boot takes, how much
host memory one guest's QEMU holds, how many guests this host could hold, and
how long a restore from a snapshot takes.
"""

from __future__ import annotations

import math
import re
import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets
import psutil

from kit.core.errors import SetupError, SnapshotError
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import footprint, registry
from kit.hypervisor.guest import Guest
from kit.hypervisor.snapshot import Snapshot, snapshots
from kit.infrastructure import limits
from kit.labs import restore_race, stopwatch
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest
from kit.lesson.compare import hypervisor_memory_mb
from kit.lesson.lesson import Lesson, ensure_running, restart_with
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget, working

PREFIX = "l7-"
MINE = "l7-mine"
STOPWATCH_GUEST = "l7-stopwatch"
BOOTS_TARGET = 3
CROWD_MAX = 6
SLACK = 1.03  # RSS creeps up a little after a boot: "one guest too many" allows for it
RACE_PREFIX = "l7-race"  # the race's guests and snapshot: l7-race-cold, l7-race-restore...
RACE_ROUNDS = 3
MY_SNAPSHOT = "l7-ready"  # the name the exercise suggests for the learner's snapshot
CLONE = "l7-clone"
MARK_FILE = "/tmp/l7-mark"  # /tmp is in the guest's memory: only the memory can carry it

_RUN_INIT = re.compile(r"\[\s*(\d+\.\d+)\]\s*" + re.escape(stopwatch.RUN_INIT))
_UPTIME = re.compile(r"ready after (\d+(?:\.\d+)?) s of guest uptime")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

_boots: list[stopwatch.BootPhases] = []
_views: weakref.WeakSet[KitWidget] = weakref.WeakSet()
_guest: Guest | None = None
_per_guest_seen: list[float] = []  # the per-guest cost the last "how many fit" used
_races: list[restore_race.RaceResult] = []  # the last race, if any


def reset() -> None:
    """Forget this lesson's measurements, stop its guests and delete its snapshots."""
    stop_crowd()
    tidy_snapshots()
    _boots.clear()
    _per_guest_seen.clear()
    _races.clear()


def guest_memory_mb() -> int:
    """The memory of the stopwatch's and the crowd's guests: the image's smallest."""
    image = images.find_image()
    return max(64, image.min_memory_mb if image else 64)


def task_memory_mb() -> int:
    """This learner's memory size for l7-mine: between 80 and 208 MiB, a multiple of 16."""
    return personal.number("l7-memory", 80, 208, 16)


def task_total_mb() -> int:
    """This learner's host-memory total for the crowd: 140 to 300 MiB, a multiple of 20."""
    return personal.number("l7-total", 140, 300, 20)


def guest() -> Guest:
    """The learner's guest: the live one called ``l7-mine``, else one made for it."""
    global _guest
    live = registry.get(MINE)
    if live is not None:
        return live
    if _guest is None:
        _guest = Guest(MINE, memory_mb=guest_memory_mb(), replace=True)
    return _guest


def qemu_rss_mb(guest: Guest) -> float:
    try:
        return float(psutil.Process(guest.pid).memory_info().rss) / 2**20 if guest.pid else 0.0
    except psutil.Error:
        return 0.0


def _refresh_views(kind: type[KitWidget]) -> None:
    """Show a new measurement in every view of ``kind`` (a view displayed twice, or earlier)."""
    for view in list(_views):
        refresh = getattr(view, "refresh", None)
        if isinstance(view, kind) and callable(refresh):
            view.attempt("showing the new measurement", refresh)


def _number(answer: str) -> float | None:
    found = _NUMBER.search(answer.replace(",", "."))
    return float(found.group()) if found else None


# -- the boot stopwatch -----------------------------------------------------------------------


def time_boots(count: int, progress: Callable[[str], None] | None = None
               ) -> list[stopwatch.BootPhases]:
    """Boot ``count`` guests one after another, timed; they replace the last measurement.

    ``progress`` is told what is happening before each boot; after each boot
    the lesson's record (and every stopwatch view) already shows it.
    """
    found: list[stopwatch.BootPhases] = []
    for index in range(count):
        if progress is not None:
            progress(f"boot {index + 1} of {count}: QEMU starts, the kernel boots, init, "
                     "the agent and the web server answer…")
        found.append(stopwatch.measure_boot(STOPWATCH_GUEST, guest_memory_mb()))
        _boots[:] = found
        _refresh_views(StopwatchView)
    return found


def boots() -> list[stopwatch.BootPhases]:
    return list(_boots)


def slowest_phase(measured: list[stopwatch.BootPhases]) -> str:
    """The phase with the largest median over these boots (its short name)."""
    names = [name for name, _ in stopwatch.PHASES]
    return max(names, key=lambda name: statistics.median(b.durations()[name] for b in measured))


def boot_rows(measured: list[stopwatch.BootPhases]) -> list[list[str]]:
    rows = []
    for name, words in stopwatch.PHASES:
        cells = [f"{b.durations()[name]:.3f}" for b in measured]
        rows.append([f"{escape(words)} (<code>{name}</code>)", *cells])
    rows.append(["<b>total</b>", *(f"<b>{b.total_s:.3f}</b>" for b in measured)])
    return rows


def boots_svg(measured: list[stopwatch.BootPhases]) -> bytes:
    labels = [f"boot {i + 1}" for i in range(len(measured))]
    series = [(words, [b.durations()[name] for b in measured])
              for name, words in stopwatch.PHASES]
    return plots.stacked_svg(labels, series, title="where each boot's time went",
                             ylabel="seconds (host clock)")


class StopwatchView(KitWidget):
    """Boot a few guests, one after another, and show each boot's phases."""

    def __init__(self) -> None:
        super().__init__("boot stopwatch")
        self.count = widgets.IntSlider(value=BOOTS_TARGET, min=1, max=5, description="boots")
        self.go = widgets.Button(description="Time the boots", icon="clock-o")
        self.go.on_click(self._callback("timing boots", self.measure))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self._set_body(widgets.HBox([self.count, self.go]), self.status, self.table,
                       self.plot)
        _views.add(self)
        self.refresh()

    def measure(self) -> None:
        with working(self.status, self.go) as say:
            count = int(self.count.value)
            time_boots(count, say)
            say.done(f"{count} boot(s) timed in {say.seconds:.1f} s; they replace the last "
                     "measurement")

    def refresh(self) -> None:
        measured = boots()
        if not measured:
            self.table.value = markup.text("<i>No boot timed yet: press the button.</i>")
            return
        header = ["phase", *(f"boot {i + 1} (s)" for i in range(len(measured)))]
        note = ("<p>The kernel wrote to the serial port from its first message "
                "(<code>earlycon</code>), so its first byte marks where QEMU's part ends.</p>")
        self.table.value = markup.text(markup.table(header, boot_rows(measured)) + note)
        self.plot.value = boots_svg(measured)


# -- one guest: its console and its footprint -----------------------------------------------


def run_init_seconds(guest: Guest) -> float | None:
    """When this boot's kernel started init, on the guest's clock (its console's line)."""
    found = _RUN_INIT.search(guest.console.text())
    return float(found.group(1)) if found else None


def footprint_text(guest: Guest) -> str:
    """What holds this guest's host memory, one part a line (for a demonstration cell)."""
    found = footprint.of_guest(guest)
    if found is None:
        return f"guest {guest.name} has no QEMU process to measure."
    lines = [f"guest {guest.name}, given {guest.memory_mb} MiB; its QEMU holds "
             f"{found.total_mib:.1f} MiB of host memory:"]
    lines += [f"  {mib:6.1f} MiB  {part}" for part, mib in found.parts.items()]
    return "\n".join(lines)


# -- N guests, N kernels -------------------------------------------------------------------------


@dataclass(frozen=True)
class GuestCost:
    """One running guest: what it was given and what the host pays for it."""

    name: str
    memory_mb: int
    rss_mb: float
    boot_id: str
    kernel: str


def crowd() -> list[Guest]:
    """This lesson's running crowd guests (``l7-1``, ``l7-2``...), in order."""
    return sorted((g for g in registry.guests() if g.name.startswith(PREFIX)
                   and g.name[len(PREFIX):].isdigit() and g.state == GuestState.RUNNING),
                  key=lambda g: int(g.name[len(PREFIX):]))


def lesson_guests() -> list[Guest]:
    """Every running guest of this lesson but the stopwatch's: l7-mine, then the crowd."""
    mine = registry.get(MINE)
    first = [mine] if mine is not None and mine.state == GuestState.RUNNING else []
    return first + crowd()


def per_guest_mb() -> float:
    """The average host memory (QEMU RSS, MiB) of this lesson's running crowd; 0 if none."""
    guests = crowd()
    return sum(qemu_rss_mb(g) for g in guests) / len(guests) if guests else 0.0


def guest_cost(guest: Guest) -> GuestCost:
    boot_id = guest.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()
    kernel = guest.run(["uname", "-r"]).stdout.strip()
    return GuestCost(guest.name, guest.memory_mb, qemu_rss_mb(guest), boot_id, kernel)


def add_guest() -> Guest:
    """Start one more crowd guest, with the lowest free number."""
    taken = {int(g.name[len(PREFIX):]) for g in crowd()}
    if len(taken) >= CROWD_MAX:
        raise SetupError(f"this lesson's crowd stops at {CROWD_MAX} guests.",
                         hint="That is plenty to see the trend: stop one before adding more.")
    number = next(n for n in range(1, CROWD_MAX + 1) if n not in taken)
    started = Guest(f"{PREFIX}{number}", memory_mb=guest_memory_mb(), replace=True).start()
    _refresh_views(CrowdView)
    return started


def remove_guest() -> str | None:
    """Stop the crowd's last guest; its name, or None if none runs."""
    guests = crowd()
    if not guests:
        return None
    guests[-1].stop()
    _refresh_views(CrowdView)
    return guests[-1].name


def add_guests(target: int) -> list[Guest]:
    """Start crowd guests until ``target`` run (never more than :data:`CROWD_MAX`)."""
    while len(crowd()) < min(target, CROWD_MAX):
        add_guest()
    return crowd()


def stop_crowd() -> None:
    for guest in crowd():
        guest.stop()


def cumulative(rss: list[float]) -> list[float]:
    """The host memory held as guests are added: after 1, after 2... (MiB)."""
    total, sums = 0.0, []
    for value in rss:
        total += value
        sums.append(total)
    return sums


def crowd_svg(costs: list[GuestCost]) -> bytes:
    xs = list(range(1, len(costs) + 1))
    held = cumulative([c.rss_mb for c in costs])
    given = cumulative([float(c.memory_mb) for c in costs])
    return plots.line_svg(xs, [("host memory held by their QEMUs (RSS)", held),
                               ("memory given to the guests (-m)", given)],
                          title="host memory as guests are added", xlabel="guests running",
                          ylabel="MiB")


class CrowdView(KitWidget):
    """Add guests one by one, or stop the last; each boots its own kernel and holds memory."""

    def __init__(self) -> None:
        super().__init__("guests and kernels")
        self.add_button = widgets.Button(description="Add a guest", icon="plus",
                                         tooltip="Start one more guest (it boots its own kernel)")
        self.remove_button = widgets.Button(description="Stop the last", icon="minus",
                                            tooltip="Stop the crowd's last guest")
        self.add_button.on_click(self._callback("adding a guest", self.add))
        self.remove_button.on_click(self._callback("stopping a guest", self.remove))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self._set_body(widgets.HBox([self.add_button, self.remove_button]), self.status,
                       self.table, self.plot)
        _views.add(self)
        self.refresh()

    def add(self) -> None:
        with working(self.status, self.add_button, self.remove_button) as say:
            say(f"starting guest number {len(crowd()) + 1}: QEMU builds a machine, its kernel "
                "boots…")
            started = add_guest()
            say.done(f"{started.name} runs: its QEMU holds {qemu_rss_mb(started):.0f} MiB")

    def remove(self) -> None:
        with working(self.status, self.add_button, self.remove_button) as say:
            say("stopping the last guest…")
            name = remove_guest()
            say.done(f"{name} stopped" if name else "no guest to stop")

    def refresh(self) -> None:
        costs = [guest_cost(g) for g in crowd()]
        if not costs:
            self.table.value = markup.text("<i>No guest yet: press Add a guest.</i>")
            self.plot.layout.display = "none"
            return
        held = cumulative([c.rss_mb for c in costs])
        rows = [[escape(c.name), f"{c.memory_mb}", f"{c.rss_mb:.0f}", f"{total:.0f}",
                 f"<code>{escape(c.boot_id[:8])}…</code>", escape(c.kernel)]
                for c, total in zip(costs, held, strict=True)]
        kernels = len({c.boot_id for c in costs})
        self.table.value = markup.text(
            markup.table(["guest", "given (MiB)", "its QEMU holds (MiB)",
                          "all so far (MiB)", "its kernel's boot_id", "kernel"], rows)
            + f"<p>{len(costs)} guest(s) running, {kernels} different boot_id(s): "
            f"{kernels} kernel(s) booted. Together their QEMUs hold <b>{held[-1]:.0f} MiB"
            "</b> of host memory.</p>")
        self.plot.value = crowd_svg(costs)
        self.plot.layout.display = "block"


# -- sizes ----------------------------------------------------------------------------------------


def image_sizes_mb() -> dict[str, float]:
    """What each guest boots from (MiB): its kernel, and its root disk or its initramfs.

    A root disk is counted by the blocks its files use: the rest of it is
    free space, which the file on the host does not even take up.
    """
    image = images.find_image()
    if image is None:
        raise SetupError("there is no guest image yet.", hint="Run lesson 0 to build it.")
    sizes = {"the kernel": image.kernel.stat().st_size / 2**20}
    if image.root_disk is not None:
        sizes["the root disk's files"] = image.root_disk.stat().st_blocks * 512 / 2**20
    else:
        sizes["the initramfs"] = image.initramfs.stat().st_size / 2**20
    return sizes


def footprints() -> dict[str, footprint.Footprint]:
    """What holds each running lesson guest's host memory, by guest name."""
    found = {g.name: footprint.of_guest(g) for g in lesson_guests()}
    return {name: parts for name, parts in found.items() if parts is not None}


def footprint_svg(found: dict[str, footprint.Footprint]) -> bytes:
    return plots.stacked_svg(
        list(found), [(part, [f.parts[part] for f in found.values()])
                      for part in footprint.PARTS],
        title="what holds each guest's host memory (QEMU RSS)", ylabel="MiB")


def _parts_text(found: dict[str, footprint.Footprint]) -> str:
    if not found:
        return ""
    own = statistics.median(f.parts[footprint.GUEST_RAM] for f in found.values())
    total = statistics.median(f.total_mib for f in found.values())
    shared = statistics.median(f.shared_mib for f in found.values())
    return (f"<p>The second plot splits what each QEMU holds. Only the first layer is the "
            f"guest's own memory, the pages of it the guest has touched: {own:.0f} of "
            f"{total:.0f} MiB (medians). The rest is the hypervisor's: its program and "
            "libraries, the code its CPU emulator has translated (none under KVM), the "
            "kernel file it keeps to reset the guest, its heap and its devices' state. "
            f"{shared:.0f} MiB of each are pages another process maps too: the host "
            "holds those once, though every guest's RSS counts them.</p>")


class SizesView(KitWidget):
    """The image each guest loads, and the memory each guest costs the host."""

    def __init__(self) -> None:
        super().__init__("sizes")
        self.status = widgets.HTML()
        self.text = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self.parts = widgets.Image(format=plots.IMAGE_FORMAT)
        self.again = widgets.Button(description="Measure again", icon="refresh")
        self.again.on_click(self._callback("measuring", self.measure))
        self._set_body(self.again, self.status, self.text, self.plot, self.parts)
        self._guarded("measuring", self.refresh)()

    def measure(self) -> None:
        with working(self.status, self.again) as say:
            say("reading each guest's memory map and asking each guest…")
            self.refresh()
            say.done("measured")

    def refresh(self) -> None:
        sizes = image_sizes_mb()
        costs = [guest_cost(g) for g in lesson_guests()]
        found = footprints()
        listed = ", ".join(f"{escape(name)} {mb:.1f} MiB" for name, mb in sizes.items())
        self.text.value = markup.text(
            f"<p>Each guest boots from {listed}, and loads its own copy of what it reads into "
            f"its own memory. With {len(costs)} guests running, the host holds {len(costs)} "
            "kernels in memory, one per guest, although they are the same kernel.</p>"
            + _parts_text(found))
        for image_widget, shown in ((self.plot, bool(costs)), (self.parts, bool(found))):
            image_widget.layout.display = "block" if shown else "none"
        if costs:
            self.plot.value = plots.paired_bars_svg(
                [c.name for c in costs],
                [("given (-m)", [c.memory_mb for c in costs]),
                 ("QEMU RSS", [c.rss_mb for c in costs])],
                title="memory given to each guest, and what its QEMU holds (MiB)")
        if found:
            self.parts.value = footprint_svg(found)


# -- the answer clouds found: restore instead of boot ----------------------------------------


def run_race(rounds: int, progress: Callable[[str], None] | None = None
             ) -> restore_race.RaceResult:
    """Cold boots against restores, ``rounds`` of each; the result replaces the last race."""
    result = restore_race.race(rounds, memory_mb=guest_memory_mb(), prefix=RACE_PREFIX,
                               progress=progress)
    _races[:] = [result]
    _refresh_views(RaceView)
    return result


def last_race() -> restore_race.RaceResult | None:
    return _races[-1] if _races else None


def race_rows(result: restore_race.RaceResult) -> list[list[str]]:
    rows = [[f"round {index + 1}", f"{cold:.3f}", f"{restored:.3f}", f"{call:.3f}"]
            for index, (cold, restored, call) in enumerate(
                zip(result.cold_s, result.restore_s, result.restore_call_s, strict=True))]
    rows.append(["<b>median</b>", f"<b>{result.cold_median_s:.3f}</b>",
                 f"<b>{result.restore_median_s:.3f}</b>",
                 f"<b>{statistics.median(result.restore_call_s):.3f}</b>"])
    return rows


def race_svg(result: restore_race.RaceResult) -> bytes:
    return plots.bar_svg(
        ["cold boot", "restore from a snapshot"],
        [result.cold_median_s * 1000, result.restore_median_s * 1000],
        title=f"until the guest agent answers ({result.memory_mb} MiB guests, medians of "
        f"{result.rounds})", ylabel="milliseconds (host clock)")


def race_words(result: restore_race.RaceResult) -> str:
    return (f"A restore took {result.ratio:.0%} of a cold boot's time to the agent's first "
            f"answer: {result.restore_median_s:.2f} s against {result.cold_median_s:.2f} s "
            f"(medians of {result.rounds} each, taken in turns). Saving the ready guest paused "
            f"it for {result.snapshot_paused_s * 1000:.0f} ms; the snapshot took "
            f"{result.snapshot_mib:.0f} MiB on disk, and was deleted after the race.")


class RaceView(KitWidget):
    """A cold boot against a restore from a snapshot of a ready guest, both timed alike."""

    def __init__(self) -> None:
        super().__init__("boot or restore")
        self.rounds = widgets.IntSlider(value=RACE_ROUNDS, min=1, max=5, description="rounds")
        self.go = widgets.Button(description="Boot against restore", icon="flag-checkered",
                                 layout=widgets.Layout(width="auto"))
        self.go.on_click(self._callback("timing boots and restores", self.measure))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self._set_body(widgets.HBox([self.rounds, self.go]), self.status, self.table,
                       self.plot)
        _views.add(self)
        self.refresh()

    def measure(self) -> None:
        with working(self.status, self.go) as say:
            rounds = int(self.rounds.value)
            run_race(rounds, say)
            say.done(f"{rounds} cold boot(s) and {rounds} restore(s) timed in "
                     f"{say.seconds:.1f} s; they replace the last measurement")

    def refresh(self) -> None:
        result = last_race()
        if result is None:
            self.table.value = markup.text("<i>Nothing timed yet: press the button.</i>")
            self.plot.layout.display = "none"
            return
        header = ["", "cold boot (s)", "restore (s)", "restore, identity refreshed (s)"]
        self.table.value = markup.text(markup.table(header, race_rows(result))
                                       + f"<p>{escape(race_words(result))}</p>")
        self.plot.value = race_svg(result)
        self.plot.layout.display = "block"


# -- exercise 1: a boot phase in the console (console) ----------------------------------------


def check_run_init(answer: str) -> Verdict:
    found = find_guest(MINE)
    if isinstance(found, Verdict):
        return found
    seconds = run_init_seconds(found)
    if seconds is None:
        return Verdict.fail(f"guest {MINE}'s console holds no 'Run /init' line for this boot.",
                            hint=f"Reboot {MINE} (its kernel prints the line as it starts "
                            "init), then look again.")
    uptime = _UPTIME.search(found.console.text())
    evidence = [f"{MINE}'s console, this boot: [{seconds:.6f}] {stopwatch.RUN_INIT}"]
    if uptime:
        evidence.append(f"its init said it was ready after {uptime.group(1)} s of guest uptime")
    if found.started_at is not None and found.ready_at is not None:
        evidence.append(f"the host's clock: {found.ready_at - found.started_at:.2f} s from "
                        "QEMU's start to the agent's first answer")
    number = _number(answer)
    if number is None:
        return Verdict.fail("type the number in the brackets of that line: seconds, such as "
                            "0.512345.", *evidence[1:])
    decimals = len(answer.strip().replace(",", ".").partition(".")[2].rstrip("0 s"))
    exact = abs(number - seconds) < 5e-7
    if not exact and decimals < 4 and abs(number - seconds) < 0.01:
        return Verdict.fail("close, but type every digit in the brackets: the last ones are "
                            "what make this boot's time its own.", *evidence[1:],
                            hint="Copy the whole number, e.g. 0.512345.")
    if not exact and abs(number - seconds) > 0.5 * 10 ** -max(4, min(decimals, 6)) + 1e-9:
        return Verdict.fail(f"{number:g} s is not when {MINE}'s kernel started init on this "
                            "boot.", *evidence[1:],
                            hint="In the console, find the line that ends 'Run /init as init "
                            "process' and read the time in brackets; or type "
                            "dmesg | grep 'Run /init' in the console's input line.")
    return Verdict.ok(f"{MINE}'s kernel started init {seconds:.3f} s after the kernel itself "
                      "started, on the guest's own clock, which only begins with the kernel: "
                      "QEMU's start and the firmware come before its zero.", *evidence)


def solve_run_init() -> str:
    found = ensure_running(guest())
    seconds = run_init_seconds(found)
    return "" if seconds is None else f"{seconds:.6f}"


# -- exercise 2: a guest of your own size, and its footprint (code) --------------------------


def check_footprint(answer: str) -> Verdict:
    found = find_guest(MINE)
    if isinstance(found, Verdict):
        return found
    want = task_memory_mb()
    given = hypervisor_memory_mb(found)
    if round(given) != want:
        return Verdict.fail(f"guest {MINE} has {given:.0f} MiB; your task asks for {want} MiB.",
                            f"the hypervisor (QMP query-memory-size-summary): {given:.0f} MiB",
                            hint=f"Start it again with your size: kit.Guest('{MINE}', "
                            f"memory_mb={want}, replace=True).start()")
    parts = footprint.of_guest(found)
    if parts is None:
        return Verdict.fail(f"guest {MINE} has no QEMU process to measure.",
                            hint=f"Start {MINE} again.")
    touched = parts.parts[footprint.GUEST_RAM]
    evidence = [f"the hypervisor (QMP): {given:.0f} MiB given",
                f"QEMU's memory map, read now: {parts.total_mib:.1f} MiB held, of which "
                f"{touched:.1f} MiB is guest RAM the guest has touched"]
    if "Footprint(" in answer:
        return Verdict.fail("that is the whole footprint; the task asks for one part of it, a "
                            "number of MiB.", *evidence,
                            hint="Take one part: .parts[footprint.GUEST_RAM] of the footprint.")
    number = _number(answer)
    if number is None:
        return Verdict.fail("your cell gave no number of MiB.", *evidence,
                            hint="footprint.of_guest(new_mine).parts[footprint.GUEST_RAM] is "
                            "a number of MiB.")
    if abs(number - touched) > max(3.0, 0.15 * touched):
        return Verdict.fail(f"{number:g} MiB is not the guest RAM {MINE} has touched.",
                            *evidence,
                            hint="Read it from the footprint of the running guest: "
                            "footprint.of_guest(new_mine).parts[footprint.GUEST_RAM]; the "
                            "total is more than the guest's own part.")
    return Verdict.ok(f"{MINE} was given {want} MiB and has touched only {touched:.0f} MiB of "
                      f"it; its QEMU holds {parts.total_mib:.0f} MiB in all: the rest is the "
                      "hypervisor's own.", *evidence)


def solve_footprint() -> float:
    found = restart_with(guest(), memory_mb=task_memory_mb())
    parts = footprint.of_guest(found)
    return 0.0 if parts is None else parts.parts[footprint.GUEST_RAM]


# -- exercise 3: guests until a total of your own (widget) ------------------------------------


def check_crowd() -> Verdict:
    target = task_total_mb()
    guests = crowd()
    if not guests:
        return Verdict.fail(f"no guest of the crowd ({PREFIX}1, {PREFIX}2...) runs yet.",
                            hint="Press Add a guest, and watch the total grow.")
    rss = [qemu_rss_mb(g) for g in guests]
    total = sum(rss)
    boot_ids = {g.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()
                for g in guests}
    evidence = [f"{g.name}: its QEMU holds {r:.0f} MiB (psutil, now)"
                for g, r in zip(guests, rss, strict=True)]
    evidence += [f"together: {total:.0f} MiB; your total to reach: {target} MiB",
                 f"{len(boot_ids)} different boot_id(s) among {len(guests)} guest(s)"]
    if total < target:
        return Verdict.fail(f"{len(guests)} guest(s) hold {total:.0f} MiB together; your "
                            f"total is {target} MiB.", *evidence,
                            hint="Add another guest and watch the total in the table.")
    spare = total - min(rss)
    if len(guests) > 1 and spare >= target * SLACK:
        return Verdict.fail(f"{len(guests)} guests are more than needed: without one of them, "
                            f"the others still hold {spare:.0f} MiB.", *evidence,
                            hint="Press Stop the last, then check again.")
    return Verdict.ok(f"{len(guests)} guests were needed to pass {target} MiB: each costs the "
                      f"host about {total / len(guests):.0f} MiB, and each booted a kernel of "
                      "its own.", *evidence)


def solve_crowd() -> None:
    target = task_total_mb()
    while sum(qemu_rss_mb(g) for g in crowd()) < target and len(crowd()) < CROWD_MAX:
        add_guest()
    while len(crowd()) > 1:
        rss = [qemu_rss_mb(g) for g in crowd()]
        if sum(rss) - min(rss) < target:
            break
        remove_guest()


# -- exercise 4: a clone that never booted (code) ---------------------------------------------


def task_word() -> str:
    """The mark this learner leaves in l7-mine's memory, e.g. 'cedar-quartz-417'."""
    return personal.secret("l7-mark")


@dataclass(frozen=True)
class Inside:
    """What a guest says of itself through its agent: its kernel's boot, its name, the mark."""

    boot_id: str
    uptime_s: float
    hostname: str
    mark: str


BOOT_ID = "/proc/sys/kernel/random/boot_id"


def look_inside(guest: Guest) -> Inside:
    said = guest.run(f"cat {BOOT_ID} /proc/uptime /proc/sys/kernel/hostname; "
                     f"cat {MARK_FILE} 2>/dev/null || true").stdout.splitlines()
    boot_id, uptime, hostname, *mark = [*said, "", "", ""]
    seconds = _number(uptime)
    return Inside(boot_id.strip(), seconds or 0.0, hostname.strip(), " ".join(mark).strip())


def booted_since(mine: Inside, snap: Snapshot) -> bool:
    """Has the guest booted again since ``snap`` was taken of it?  Its uptime says.

    Had it run on, its uptime now would be its uptime at the snapshot plus
    the time since; a new boot started it again from zero.  The margin
    allows for an emulated clock that drifts a little from the host's.
    """
    info = snap.info
    expected = (info.uptime_s or 0.0) + max(0.0, time.time() - info.created)
    return mine.uptime_s < expected - max(1.0, 0.1 * expected)


def snapshot_source(guest: Guest) -> str | None:
    """The guest a running guest's snapshot was taken of (None: it booted)."""
    if guest.restored_from is None:
        return None
    try:
        return guest.restored_from.info.source
    except SnapshotError:  # a damaged manifest: say so as "unknown", not as a crash
        return "an unknown guest"


def restored_guests() -> list[Guest]:
    """This notebook's running guests started from a snapshot, but l7-mine."""
    return [g for g in registry.guests() if g.name != MINE and g.restored_from is not None
            and g.state == GuestState.RUNNING]


def _pick_clone(found: list[Guest]) -> Guest:
    """The clone to check: the one called l7-clone if it is there, else the latest."""
    return next((g for g in found if g.name == CLONE), found[-1])


def check_restore() -> Verdict:
    mine = find_guest(MINE)
    if isinstance(mine, Verdict):
        return mine
    restored = restored_guests()
    if not restored:
        itself = (f" ({MINE} itself was started from a snapshot: give the clone a name of its "
                  "own)" if mine.restored_from is not None else "")
        return Verdict.fail(f"no guest started from a snapshot runs in this notebook{itself}.",
                            hint=f"snap = mine.snapshot('{MY_SNAPSHOT}'), then clone = "
                            f"kit.Guest.from_snapshot(snap, '{CLONE}').")
    ours = [g for g in restored if snapshot_source(g) == MINE]
    if not ours:
        seen = "; ".join(f"{g.name} from a snapshot of {snapshot_source(g)}" for g in restored)
        return Verdict.fail(f"no running guest was started from a snapshot of {MINE} ({seen}).",
                            hint=f"Take the snapshot of {MINE} itself: mine.snapshot(...).")
    clone = _pick_clone(ours)
    assert clone.restored_from is not None
    there, here = look_inside(mine), look_inside(clone)
    word = task_word()
    evidence = [f"{MINE}: QEMU pid {mine.pid}, host name {there.hostname}, kernel boot_id "
                f"{there.boot_id}",
                f"{clone.name}: QEMU pid {clone.pid}, host name {here.hostname}, kernel boot_id "
                f"{here.boot_id}",
                f"{clone.name}.restored_from: snapshot {clone.restored_from.name} of {MINE}",
                f"{MARK_FILE} in {clone.name}: {here.mark or '(no such file)'}"]
    if clone.pid == mine.pid:
        return Verdict.fail(f"{clone.name} and {MINE} are one QEMU process.", *evidence,
                            hint="Start the clone with kit.Guest.from_snapshot(snap, 'l7-clone').")
    if word not in here.mark:
        return Verdict.fail(f"{clone.name} has not got your word ({word}) in {MARK_FILE}.",
                            *evidence,
                            hint="Run the cell that writes your word into l7-mine first, then "
                            "take the snapshot: it holds what the guest had at that moment. Stop "
                            "the old clone before you save again under the same name.")
    if here.boot_id != there.boot_id:
        return _different_boots(there, clone, clone.restored_from, evidence)
    return Verdict.ok(f"{clone.name} is a second machine (QEMU pid {clone.pid}, not {mine.pid}) "
                      f"that never booted: its kernel's boot_id is {MINE}'s, and your word was "
                      f"in its memory, where {MINE} wrote it before the snapshot. What differs was "
                      f"changed on purpose after the restore: its name ({here.hostname}), its "
                      "MAC, its clock and its randomness.", *evidence)


def _different_boots(mine: Inside, clone: Guest, snap: Snapshot, evidence: list[str]
                     ) -> Verdict:
    """Why the clone's boot_id is not l7-mine's: l7-mine booted again since the snapshot.

    (Linux draws a boot_id when it is first read; the guest's init reads it at
    boot, so a snapshot always holds the boot_id of the boot it saved.)
    """
    hint = ("Stop the clone, run the cell that writes your word (it reads the boot_id too), "
            "then save l7-mine again (replace=True keeps the name) and start the clone from "
            "the new snapshot.")
    since = (f" (its uptime is {mine.uptime_s:.0f} s)" if booted_since(mine, snap) else "")
    return Verdict.fail(f"{MINE} has booted again since that snapshot{since}: its boot_id is "
                        f"not the one {clone.name} carries.", *evidence, hint=hint)


def solve_restore() -> Guest:
    mine = ensure_running(guest())
    mine.run(f"echo {task_word()} > {MARK_FILE}")
    for snap in snapshots():
        if snap.name == MY_SNAPSHOT:
            for user in snap.users():
                user.stop()
    snap = mine.snapshot(MY_SNAPSHOT, replace=True)
    return Guest.from_snapshot(snap, CLONE, replace=True)


def lesson_snapshots() -> list[Snapshot]:
    """The snapshots this lesson made (their names start with ``l7-``)."""
    return [snap for snap in snapshots() if snap.name.startswith(PREFIX)]


def tidy_snapshots() -> list[str]:
    """Stop the guests started from this lesson's snapshots, delete them; what was done."""
    done = []
    for snap in lesson_snapshots():
        users = snap.users()
        for user in users:
            user.stop()
        size = snap.size_bytes / 2**20
        snap.delete()
        stopped = f" after stopping {', '.join(u.name for u in users)}" if users else ""
        done.append(f"snapshot {snap.name} ({size:.0f} MiB on disk) deleted{stopped}")
    return done


# -- predictions -------------------------------------------------------------------------


def measure_boot_time() -> float:
    return time_boots(1)[0].total_s


def measure_rss() -> float:
    return qemu_rss_mb(ensure_running(guest()))


def host_available_mb() -> float:
    return float(psutil.virtual_memory().available) / 2**20


def host_memory() -> str:
    """One sentence on this host's memory, for the learner to predict from."""
    memory = psutil.virtual_memory()
    return (f"This host has {memory.total / 2**20:,.0f} MiB of memory, of which "
            f"{memory.available / 2**20:,.0f} MiB is available now.")


def measure_fit() -> float:
    guests = crowd() or [ensure_running(guest())]
    per_guest = sum(qemu_rss_mb(g) for g in guests) / len(guests)
    _per_guest_seen[:] = [per_guest]
    return float(math.floor(host_available_mb() / per_guest)) if per_guest else 0.0


def _explain_restore() -> str:
    result = last_race()
    if result is None:
        return ""
    return (f"In the same run a cold boot took {result.cold_median_s:.2f} s to the same "
            f"moment: the restore took {result.ratio:.0%} of that. No kernel booted and no "
            "init ran: QEMU loaded a machine whose system was already running. The race below "
            "times a few of each, in turns.")


def _explain_fit(guess: float, fits: float) -> str:
    per_guest = _per_guest_seen[0] if _per_guest_seen else 0.0
    return (f"Each guest costs this host about {per_guest:.0f} MiB (its QEMU's RSS), not the "
            f"{guest_memory_mb()} MiB it was given: its own kernel, QEMU's program and, under "
            "TCG, a translation cache. Memory is not the only limit: all of them would share "
            f"{psutil.cpu_count() or 1} CPU(s), and the kit lets one user run at most "
            f"{limits.max_guests()} guests here.")


boot_time = Prediction(
    "l7-p-boot",
    "From the call to `start()` until its web server answers over HTTP: how many seconds "
    "will one guest's boot take on this host?", measure_boot_time, unit="s",
    explain=lambda guess, got: (
        "The stopwatch below splits that time into phases: most of it is the guest kernel's "
        "boot and its init, work a container (lesson 8) never does."),
)
rss = Prediction(
    "l7-p-rss",
    f"Your guest `{MINE}` was given {guest_memory_mb()} MiB. On the host, how many MiB does "
    "its QEMU process hold (its RSS)?", measure_rss, unit="MiB",
    explain=lambda guess, got: (
        "The guest touches only part of the memory it was given, while QEMU adds its own "
        "program, heap and translation cache: the footprint below shows each part."),
)
restore_time = Prediction(
    "l7-p-restore",
    "The stopwatch timed cold boots above. Now a guest of the same size is saved once it is "
    "ready, and a new guest is started from that snapshot: how many seconds from the call "
    "until its guest agent answers?", lambda: run_race(1).restore_median_s, unit="s",
    explain=lambda guess, got: _explain_restore(),
)
fit = Prediction(
    "l7-p-fit",
    f"Guests like these were each given {guest_memory_mb()} MiB. In the memory this host has "
    "available now (printed above), how many of them could run at once?", measure_fit,
    unit="guests", explain=_explain_fit,
)


# -- the lesson ---------------------------------------------------------------------------

run_init = Checkpoint(
    "l7-run-init", "A boot phase in the console",
    f"In the serial console of `{MINE}`, find the line where its kernel hands over to "
    "init (`Run /init as init process`), and type the time in its brackets: seconds on the "
    "guest's own clock, with all its digits: it differs at every boot.",
    check_run_init, answer_label="seconds:", solve=solve_run_init,
    hint="Scroll the console to the line ending 'Run /init as init process', or type "
    "dmesg | grep 'Run /init' in the console's input line and press Enter.",
    solution="In the console's input line, ask the guest's kernel log for the line:",
    code="dmesg | grep 'Run /init'",
)
footprint_exercise = Checkpoint(
    "l7-footprint", "What your guest really touched",
    f"Make `{MINE}` again with **your** memory size (the cell prints it), then read, from its "
    "footprint, how many MiB of guest RAM the guest has really touched.",
    check_footprint, takes_answer=True, solve=solve_footprint,
    hint=f"kit.Guest('{MINE}', memory_mb=..., replace=True).start() makes it again; "
    "footprint.of_guest(new_mine).parts[footprint.GUEST_RAM] is the guest's own part.",
    solution="Start the guest with your size, then take the guest-RAM part of its footprint:",
    code=f"new_mine = kit.Guest('{MINE}', memory_mb=lesson7.task_memory_mb(), "
    "replace=True).start()\n"
    "touched = footprint.of_guest(new_mine).parts[footprint.GUEST_RAM]",
)
crowd_exercise = Checkpoint(
    "l7-crowd", "Guests until your total",
    "Add guests (button **Add a guest**) until their QEMUs together hold at least **your** "
    "total of host memory (the cell prints it), with not one guest more than needed. Then "
    "press Check.",
    check_crowd, solve=solve_crowd,
    hint="Watch the column 'all so far' as you add guests; if you passed your total with one "
    "guest to spare, press **Stop the last**.",
    solution="Add guests one at a time until the total passes yours, in code too:",
    code="while sum(lesson7.qemu_rss_mb(g) for g in lesson7.crowd()) < "
    "lesson7.task_total_mb():\n    lesson7.add_guest()",
)

restore_exercise = Checkpoint(
    "l7-restore", "A clone that never booted",
    f"Write **your** word (the cell prints it) into `{MARK_FILE}` in `{MINE}`, save `{MINE}` as a "
    f"snapshot, and start a guest called `{CLONE}` from it. The check compares the two guests.",
    check_restore, takes_answer=False, solve=solve_restore,
    hint="g.snapshot('name') saves a running guest and returns the snapshot; "
    "kit.Guest.from_snapshot(snap, 'name') starts a new guest from it.",
    solution="Save the guest, then start a second guest from what was saved:",
    code=f"snap = mine.snapshot('{MY_SNAPSHOT}', replace=True)\n"
    f"clone = kit.Guest.from_snapshot(snap, '{CLONE}', replace=True)",
)

quiz = Quiz([
    Question("l7-q1", "Three guests of the same image ran here. How many kernels did the host "
             "hold in memory?", [
        Choice("One, shared by all three", False,
               "Each guest reported its own boot_id: each kernel booted on its own. Sharing "
               "the host's kernel is what containers do."),
        Choice("Four: one per guest, plus the host's", True,
               "One per guest, each booted separately in its own QEMU's memory, plus the "
               "host's own kernel, which runs the QEMUs."),
        Choice("None: a guest's kernel stays on the disk image until needed", False,
               "A running kernel lives in memory; each guest's kernel is in its QEMU's memory."),
    ]),
    Question("l7-q2", "Why is a guest's QEMU RSS not the memory it was given (-m)?", [
        Choice("The host reserves exactly -m for every guest, plus a fixed fee", False,
               "The measured RSS was not -m plus a constant: untouched guest memory costs "
               "nothing until the guest uses it."),
        Choice("Untouched pages cost nothing; QEMU adds its own", True,
               "The footprint showed the guest's touched RAM as one part, QEMU's program, "
               "heap and translation cache as the others."),
        Choice("RSS counts only the guest's kernel", False,
               "RSS counts every page of the QEMU process resident in host memory, whoever "
               "uses it."),
    ]),
    Question("l7-q3", "In the stopwatch, what runs between QEMU's start and the kernel's first "
             "byte?", [
        Choice("Nothing at all: QEMU starts the kernel's code the moment it is launched", False,
               "QEMU first builds the machine and loads the kernel; a small firmware then "
               "jumps into it."),
        Choice("QEMU builds the machine; a small firmware jumps into the kernel", True,
               "QEMU loads the kernel itself (-kernel); qboot (microvm) or SeaBIOS (q35) "
               "starts it at once: no boot menu, no GRUB. A cloud VM booting from its disk "
               "runs firmware and a boot loader first."),
        Choice("A full BIOS with its menu, then GRUB reading the disk", False,
               "There is firmware, but no menu and no boot loader: QEMU had already put the "
               "kernel in memory, which is why this phase is short here."),
    ]),
    Question("l7-q4", "A container starts no kernel. Which phases of a VM boot would it skip?", [
        Choice("Only the web server's start, since the rest is shared", False,
               "The application still starts in a container; it is the machine and its OS "
               "that are skipped."),
        Choice("Machine, firmware, kernel, most of init", True,
               "A container is processes on the host's running kernel: nothing to emulate, "
               "nothing to boot (lesson 8 measures it)."),
        Choice("None: a container boots the same phases, only from a smaller image", False,
               "It boots nothing: there is no second kernel, whatever the image's size."),
    ]),
    Question("l7-q5", "Your guest's console said 'Run /init' at about half a second, on the "
             "guest's own clock. What does that number leave out?", [
        Choice("Nothing: it counts from the moment start() was called on the host", False,
               "The guest's clock only starts with its kernel; the kit's checks, QEMU's start "
               "and the firmware came before its zero."),
        Choice("What ran before its kernel", True,
               "The kit's checks, QEMU building the machine and the firmware all happen before "
               "the guest's clock starts; the host's stopwatch counts them."),
        Choice("The kernel's own boot, which the guest's clock does not count", False,
               "The kernel's boot is exactly what those seconds count: from the kernel's start "
               "to init."),
    ]),
    Question("l7-q6", "A guest started from a snapshot answered in a fraction of a cold boot's "
             "time. Why?", [
        Choice("Its kernel booted faster, from a disk the host had cached", False,
               "Its kernel did not boot at all: the clone reported the boot_id of the guest "
               "it was saved from."),
        Choice("It skipped the boot: the saved machine was already running", True,
               "QEMU loaded the devices, the CPU registers and the memory as they were saved; "
               "the kernel and init had finished before the snapshot, so they carry on."),
        Choice("A snapshot holds only the disk, which loads faster than a kernel", False,
               "A snapshot holds the whole machine: devices, CPU state, memory and the disk's "
               "writes. The memory is what lets the system carry on without a boot."),
    ]),
])

lesson = Lesson(7, [run_init, footprint_exercise, crowd_exercise, restore_exercise], quiz,
                [boot_time, rss, fit, restore_time])
