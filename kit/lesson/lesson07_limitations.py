"""Lesson 7, Limitations: heavy, slow to boot, one kernel per guest, each measured here.

Three demonstrations, each a widget with a plot:

* :class:`StopwatchView`: a few boots timed phase by phase (:mod:`kit.labs.stopwatch`);
* :class:`CrowdView`: guests added one at a time (``l7-1``, ``l7-2``...), the
  host memory all their QEMUs hold after each, and the proof that each one
  booted a kernel of its own (a different ``boot_id`` per guest);
* :class:`SizesView`: the sizes of the image's kernel and root disk (or initramfs) and,
  for each running guest, the memory it was given against what QEMU holds, and
  what holds it (:mod:`kit.hypervisor.footprint`).

The notebook ``lessons/07-limitations.ipynb`` shows these; the tests import them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import ipywidgets as widgets
import psutil

from kit.core.errors import SetupError
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import footprint, registry
from kit.hypervisor.guest import Guest
from kit.labs import stopwatch
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import parse_number
from kit.lesson.lesson import Lesson
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget

PREFIX = "l7-"
CROWD_TARGET = 3
BOOTS_TARGET = 3
STOPWATCH_GUEST = "l7-stopwatch"

_boots: list[stopwatch.BootPhases] = []
_crowd: list[tuple[int, float]] = []  # (guests running, their QEMUs' total RSS in MiB)


def reset() -> None:
    """Forget this lesson's measurements and stop its guests."""
    stop_crowd()
    _boots.clear()
    _crowd.clear()


def guest_memory_mb() -> int:
    image = images.find_image()
    return max(64, image.min_memory_mb if image else 64)


# -- the boot stopwatch -----------------------------------------------------------------------


def time_boots(count: int) -> list[stopwatch.BootPhases]:
    """Boot ``count`` guests one after another, timed; adds them to the lesson's record."""
    found = stopwatch.measure_boots(count, STOPWATCH_GUEST, guest_memory_mb())
    _boots.extend(found)
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


def boots_png(measured: list[stopwatch.BootPhases]) -> bytes:
    labels = [f"boot {i + 1}" for i in range(len(measured))]
    series = [(words, [b.durations()[name] for b in measured])
              for name, words in stopwatch.PHASES]
    return plots.stacked_png(labels, series, title="where each boot's time went",
                             ylabel="seconds (host clock)")


class StopwatchView(KitWidget):
    """Boot a few guests, one after another, and show each boot's phases."""

    def __init__(self) -> None:
        super().__init__("boot stopwatch")
        self.count = widgets.IntSlider(value=BOOTS_TARGET, min=1, max=5, description="boots")
        self.go = widgets.Button(description="Time the boots", icon="clock-o")
        self.go.on_click(self._callback("timing boots", self.measure))
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png")
        self._set_body(widgets.HBox([self.count, self.go]), self.table, self.plot)
        self.refresh()

    def measure(self) -> None:
        self.go.disabled = True
        try:
            time_boots(int(self.count.value))
        finally:
            self.go.disabled = False
        self.refresh()

    def refresh(self) -> None:
        measured = boots()
        if not measured:
            self.table.value = markup.text("<i>No boot timed yet: press the button.</i>")
            return
        header = ["phase", *(f"boot {i + 1} (s)" for i in range(len(measured)))]
        note = ("<p>The kernel wrote to the serial port from its first message "
                "(<code>earlycon</code>), so its first byte marks where QEMU's part ends.</p>")
        self.table.value = markup.text(markup.table(header, boot_rows(measured)) + note)
        self.plot.value = boots_png(measured)


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


def qemu_rss_mb(guest: Guest) -> float:
    try:
        return float(psutil.Process(guest.pid).memory_info().rss) / 2**20 if guest.pid else 0.0
    except psutil.Error:
        return 0.0


def per_guest_mb() -> float:
    """The average host memory (QEMU RSS, MiB) of this lesson's running crowd; 0 if none."""
    guests = crowd()
    return sum(qemu_rss_mb(g) for g in guests) / len(guests) if guests else 0.0


def guest_cost(guest: Guest) -> GuestCost:
    boot_id = guest.run(["cat", "/proc/sys/kernel/random/boot_id"]).stdout.strip()
    kernel = guest.run(["uname", "-r"]).stdout.strip()
    return GuestCost(guest.name, guest.memory_mb, qemu_rss_mb(guest), boot_id, kernel)


def add_guests(target: int) -> list[tuple[int, float]]:
    """Start crowd guests one at a time up to ``target``; after each, the total RSS."""
    running = crowd()
    for number in range(len(running) + 1, target + 1):
        Guest(f"{PREFIX}{number}", memory_mb=guest_memory_mb(), replace=True).start()
        now = crowd()
        _crowd.append((len(now), sum(qemu_rss_mb(g) for g in now)))
    return list(_crowd)


def stop_crowd() -> None:
    for guest in crowd():
        guest.stop()


def crowd_png() -> bytes:
    xs = [n for n, _ in _crowd]
    given = [n * guest_memory_mb() for n in xs]
    return plots.line_png(xs, [("host memory held by all QEMUs (RSS)", [r for _, r in _crowd]),
                               ("memory given to the guests (-m)", given)],
                          title="host memory as guests are added", xlabel="guests running",
                          ylabel="MiB")


class CrowdView(KitWidget):
    """Add guests one by one; each boots its own kernel and holds its own memory."""

    def __init__(self) -> None:
        super().__init__("guests and kernels")
        self.target = widgets.IntSlider(value=CROWD_TARGET, min=1, max=4, description="guests")
        self.go = widgets.Button(description="Add guests", icon="plus")
        self.go.on_click(self._callback("adding guests", self.add))
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png")
        self._set_body(widgets.HBox([self.target, self.go]), self.table, self.plot)
        self.refresh()

    def add(self) -> None:
        add_guests(int(self.target.value))
        self.refresh()

    def refresh(self) -> None:
        costs = [guest_cost(g) for g in crowd()]
        rows = [[escape(c.name), f"{c.memory_mb}", f"{c.rss_mb:.0f}",
                 f"<code>{escape(c.boot_id[:8])}…</code>", escape(c.kernel)] for c in costs]
        self.table.value = markup.text(
            markup.table(["guest", "given (MiB)", "QEMU RSS (MiB)", "its kernel's boot_id",
                         "kernel"], rows) if rows else "<i>No guest yet: press Add guests.</i>")
        if _crowd:
            self.plot.value = crowd_png()


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
    """What holds each running crowd guest's host memory, by guest name."""
    found = {g.name: footprint.of_guest(g) for g in crowd()}
    return {name: parts for name, parts in found.items() if parts is not None}


def footprint_png(found: dict[str, footprint.Footprint]) -> bytes:
    return plots.stacked_png(
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
        self.text = widgets.HTML()
        self.plot = widgets.Image(format="png")
        self.parts = widgets.Image(format="png")
        again = widgets.Button(description="Measure again", icon="refresh")
        again.on_click(self._callback("measuring", self.refresh))
        self._set_body(again, self.text, self.plot, self.parts)
        self._guarded("measuring", self.refresh)()

    def refresh(self) -> None:
        sizes = image_sizes_mb()
        costs = [guest_cost(g) for g in crowd()]
        found = footprints()
        listed = ", ".join(f"{escape(name)} {mb:.1f} MiB" for name, mb in sizes.items())
        self.text.value = markup.text(
            f"<p>Each guest boots from {listed}, and loads its own copy of what it reads into "
            f"its own memory. With {len(costs)} guests running, the host holds {len(costs)} "
            "kernels in memory, one per guest, although they are the same kernel.</p>"
            + _parts_text(found))
        if costs:
            self.plot.value = plots.paired_bars_png(
                [c.name for c in costs],
                [("given (-m)", [c.memory_mb for c in costs]),
                 ("QEMU RSS", [c.rss_mb for c in costs])],
                title="memory given to each guest, and what its QEMU holds (MiB)")
        if found:
            self.parts.value = footprint_png(found)


# -- the checks ----------------------------------------------------------------------------


def check_timed(answer: str) -> Verdict:
    measured = boots()
    if len(measured) < BOOTS_TARGET:
        return Verdict.fail(f"{len(measured)} boot(s) timed; the task asks for {BOOTS_TARGET}.",
                            hint="Press 'Time the boots' with the slider at 3.")
    slowest = slowest_phase(measured)
    medians = {name: statistics.median(b.durations()[name] for b in measured)
               for name, _ in stopwatch.PHASES}
    evidence = [f"median {name}: {seconds:.3f} s" for name, seconds in medians.items()]
    typed = answer.strip().lower()
    if not typed:
        return Verdict.fail("type the name of the slowest phase first.", *evidence)
    if typed not in slowest and slowest not in typed:
        return Verdict.fail(f"{answer!r} is not the phase with the largest median.", *evidence,
                            hint="Look at the tallest layer of the bars, or the largest row "
                            "of the table (ignore the total).")
    return Verdict.ok(f"{slowest} is the slowest phase: {medians[slowest]:.2f} s of a "
                      f"{statistics.median(b.total_s for b in measured):.2f} s boot.", *evidence)


def check_kernels() -> Verdict:
    guests = crowd()
    if len(guests) < CROWD_TARGET:
        return Verdict.fail(f"{len(guests)} guest(s) of this lesson run; the task asks for "
                            f"{CROWD_TARGET}.", hint=f"Set the slider to {CROWD_TARGET} and "
                            "press Add guests.")
    costs = [guest_cost(g) for g in guests]
    evidence = [f"{c.name}: boot_id {c.boot_id}, kernel {c.kernel}, QEMU {c.rss_mb:.0f} MiB"
                for c in costs]
    if len({c.boot_id for c in costs}) != len(costs):
        return Verdict.fail("two guests report the same boot_id.", *evidence,
                            hint="Stop the crowd and add the guests again.")
    total = sum(c.rss_mb for c in costs)
    return Verdict.ok(f"{len(costs)} guests booted {len(costs)} kernels (one boot_id each), "
                      f"and their QEMUs hold {total:.0f} MiB of host memory.", *evidence)


def check_per_guest(answer: str) -> Verdict:
    guests = crowd()
    if not guests:
        return Verdict.fail("no guest of this lesson runs to measure.",
                            hint="Press Add guests first.")
    per_guest = per_guest_mb()
    number = parse_number(answer)
    evidence = (f"measured now: {len(guests)} guests hold {per_guest * len(guests):.0f} MiB, "
                f"{per_guest:.0f} MiB each",)
    if number is None:
        return Verdict.fail("type a whole number of MiB.", *evidence)
    if abs(number - per_guest) > max(12.0, per_guest * 0.25):
        return Verdict.fail(f"{number} MiB is far from what each guest costs now.", *evidence,
                            hint="Divide the top of the blue line by the number of guests, or "
                            "read the QEMU RSS column of the table.")
    return Verdict.ok(f"each guest costs the host about {per_guest:.0f} MiB, for a "
                      f"{guest_memory_mb()} MiB machine: its own kernel, its own page "
                      "tables, QEMU itself.", *evidence)


timed = Checkpoint(
    "l7-timed", "Where does a boot's time go?",
    f"Time **{BOOTS_TARGET} boots** with the stopwatch, then type the phase that took the "
    "longest (its short name: kit, qemu_loader, kernel, init, agent or application).",
    check_timed, answer_label="slowest phase:",
    hint="Time 3 boots, then find the tallest layer in the bars.",
    solution="Time three boots and let the kit name the slowest phase, as below.",
    code="lesson7.time_boots(3)\nlesson7.timed.verify(lesson7.slowest_phase(lesson7.boots()))",
)
kernels = Checkpoint(
    "l7-kernels", "N guests, N kernels",
    f"Run **{CROWD_TARGET} guests** of this lesson at once (slider {CROWD_TARGET}, Add guests). "
    "The kit asks each for its kernel's boot_id: a random number each kernel draws when it "
    "boots.",
    check_kernels,
    hint=f"Set the slider to {CROWD_TARGET} and press Add guests.",
    solution="Add the guests with the line below.",
    code=f"lesson7.add_guests({CROWD_TARGET})",
)
per_guest = Checkpoint(
    "l7-per-guest", "What one more guest costs",
    "Type how much host memory (MiB) one guest costs, on average, as measured now.",
    check_per_guest, answer_label="MiB per guest:",
    hint="The table's QEMU RSS column has each guest's share.",
    solution="Average the QEMU RSS of the running guests, as below.",
    code="lesson7.per_guest.verify(round(lesson7.per_guest_mb()))",
)

quiz = Quiz([
    Question("l7-q1", "Three guests of the same image ran here. How many kernels did the host "
             "hold in memory?", [
        Choice("One, shared by the three", False,
               "Each guest reported its own boot_id: each kernel booted on its own. Sharing "
               "the host's kernel is what containers do."),
        Choice("Three, one per guest, plus the host's own", True,
               "Every virtual machine loads and runs a whole kernel of its own; the host runs "
               "its kernel too."),
        Choice("None: the kernel stays on disk", False,
               "A running kernel lives in memory; each guest's kernel is in its QEMU's memory."),
    ]),
    Question("l7-q2", "Why is a guest's QEMU RSS not the same as the memory it was given "
             "(-m)?", [
        Choice("QEMU holds only the guest pages that were touched, plus its own code and "
               "buffers", True,
               "Untouched guest memory costs nothing until used, while QEMU itself and its "
               "translation cache add their own share."),
        Choice("The host gives every guest exactly -m", False,
               "The measured RSS differed from -m: memory is handed out as it is used."),
        Choice("RSS counts only the guest kernel", False,
               "RSS counts every page of the QEMU process resident in host memory."),
    ]),
    Question("l7-q3", "In the stopwatch, what runs between QEMU's start and the kernel's first "
             "byte?", [
        Choice("A long BIOS menu and a boot loader", False,
               "The kit boots the kernel directly (-kernel): no menu and no boot loader, which "
               "is why that phase is short here. A full PC or cloud VM also runs firmware and "
               "a boot loader."),
        Choice("QEMU builds the machine and loads the kernel into its memory",
               True, "Then the guest CPU jumps into the kernel, which prints at once."),
        Choice("Nothing: the kernel is already running", False,
               "The kernel cannot run before QEMU has created the machine and loaded it."),
    ]),
    Question("l7-q4", "A container starts no kernel. Which phases of a VM boot would it skip?", [
        Choice("Only the web server's start", False,
               "The application still starts in a container; it is the machine and its OS "
               "that are skipped."),
        Choice("QEMU and loader, kernel boot, and most of init", True,
               "A container is processes on the host's running kernel: nothing to emulate, "
               "nothing to boot (lesson 8 measures it)."),
        Choice("None: it boots the same way", False,
               "It boots nothing: there is no second kernel."),
    ]),
])

lesson = Lesson(7, [timed, kernels, per_guest], quiz)
