"""Lesson 6, Advantages: each advantage shown or measured on this host.

Isolation (a file in one instance is absent from another), resource
utilization (how many guests this host could hold, from the memory a real
guest takes, and how busy each QEMU process is), flexibility (guests of
another architecture or kernel beside ours, when this kit has the image),
scalability (instances added and removed, timed).  The notebook
``lessons/06-advantages.ipynb`` shows these; the tests import them.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import ipywidgets as widgets
import psutil

from kit.core import validate
from kit.guestos import images
from kit.hypervisor.fleet import start as start_all
from kit.hypervisor.guest import Guest
from kit.labs import cloud as kcloud
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import parse_number
from kit.lesson.lesson import Lesson
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget

TYPE = "t.nano"
PREFIX = "app"
NOTE_PATH = "/root/note.txt"
SCALE_TARGET = 3
CPU_SAMPLE_S = 1.0

_cloud: kcloud.Cloud | None = None
_history: list[tuple[float, int, str, float]] = []  # (time, running, what, seconds)
_started = time.monotonic()


def cloud() -> kcloud.Cloud:
    global _cloud
    if _cloud is None:
        _cloud = kcloud.Cloud()
    return _cloud


def reset() -> None:
    global _cloud
    if _cloud is not None:
        _cloud.terminate_all()
    _cloud = None
    _history.clear()


def fleet(count: int = 2) -> list[kcloud.Instance]:
    """At least ``count`` running instances (launched as needed), oldest first."""
    missing = count - len(cloud().running())
    if missing > 0:
        scale_to(count)
    return cloud().running()


# -- isolation ----------------------------------------------------------------------------


def has_note(instance: kcloud.Instance) -> bool:
    return instance.guest.run(["test", "-e", NOTE_PATH]).ok


def isolation_rows(instances: list[kcloud.Instance]) -> list[list[str]]:
    return [[escape(i.id), "✔ present" if has_note(i) else "✖ absent"] for i in instances]


def write_note_and_look(instances: list[kcloud.Instance]) -> widgets.HTML:
    """Write the note in the first instance, then ask every instance whether it has it."""
    instances[0].guest.run(f"echo written in the first instance > {NOTE_PATH}")
    return widgets.HTML(markup.table(["instance", NOTE_PATH], isolation_rows(instances)))


# -- utilization ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utilization:
    """This host's load and room, measured from real guests."""

    rss_mb: dict[str, float]  # instance id -> QEMU's resident memory
    cpu_percent: dict[str, float]  # instance id -> QEMU's CPU use over the sample
    available_mb: int
    host_cpu_percent: float

    @property
    def per_guest_mb(self) -> float:
        return max(self.rss_mb.values()) if self.rss_mb else 0.0

    @property
    def more_guests(self) -> int:
        """How many more guests of this size the host's free memory could hold."""
        spare = self.available_mb - validate.HOST_MEMORY_RESERVE_MB
        return int(spare // self.per_guest_mb) if self.per_guest_mb else 0


def measure_utilization(instances: list[kcloud.Instance]) -> Utilization:
    """Resident memory and CPU share of each instance's QEMU, and the host's free memory."""
    processes = {i.id: psutil.Process(i.guest.pid) for i in instances if i.guest.pid}
    for process in processes.values():
        process.cpu_percent(None)
    psutil.cpu_percent(None)
    time.sleep(CPU_SAMPLE_S)
    return Utilization(
        rss_mb={k: p.memory_info().rss / 2**20 for k, p in processes.items()},
        cpu_percent={k: p.cpu_percent(None) for k, p in processes.items()},
        available_mb=validate.available_memory_mb(),
        host_cpu_percent=psutil.cpu_percent(None),
    )


class UtilizationView(KitWidget):
    """Each QEMU's memory and CPU, and how many more guests this host could hold."""

    def __init__(self, instances: list[kcloud.Instance]) -> None:
        super().__init__("utilization")
        self.instances = instances
        self.summary = widgets.HTML()
        self.memory_plot = widgets.Image(format="png")
        self.cpu_plot = widgets.Image(format="png")
        button = widgets.Button(description="Measure again", icon="refresh")
        button.on_click(self._callback("measuring", self.measure))
        self.last: Utilization | None = None
        self._set_body(button, self.summary, widgets.HBox([self.memory_plot, self.cpu_plot]))
        self._guarded("measuring", self.measure)()

    def measure(self) -> Utilization:
        found = measure_utilization(self.instances)
        self.last = found
        ids = list(found.rss_mb)
        self.memory_plot.value = plots.bar_png(
            ids, [found.rss_mb[k] for k in ids], title="host memory held by each guest",
            ylabel="MiB (QEMU resident)")
        self.cpu_plot.value = plots.bar_png(
            ids, [found.cpu_percent[k] for k in ids], title="CPU used by each guest (1 s)",
            ylabel="% of one host CPU", color=plots.ORANGE)
        self.summary.value = markup.text(
            f"Each guest holds up to <b>{found.per_guest_mb:.0f} MiB</b> of host memory; the "
            f"host has <b>{found.available_mb} MiB</b> available and keeps "
            f"{validate.HOST_MEMORY_RESERVE_MB} MiB for itself, so its memory could hold "
            f"about <b>{found.more_guests}</b> more guests like these. The host's CPUs were "
            f"{found.host_cpu_percent:.0f}% busy over the last second.")
        return found


# -- flexibility ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of machine to boot beside the cloud's instances."""

    label: str
    arch: str
    kernel: str  # "auto" (the kit's own kernel where built) or "debian"

    @property
    def guest_name(self) -> str:
        return f"other-{self.arch.replace('_', '-')}-{self.kernel}"


def other_kinds() -> list[Kind]:
    """Machines unlike the instances this host can boot now.

    Debian's own kernel on x86-64 (built into an image on first use, then
    cached), and every other architecture whose image setup has built.
    """
    kinds = [Kind("x86-64, Debian's kernel", "x86_64", "debian")]
    kinds += [Kind(f"{arch}, emulated", arch, "auto") for arch in images.supported_arches()
              if arch != "x86_64" and images.find_image(arch) is not None]
    return kinds


def flexibility() -> tuple[list[list[str]], str]:
    """Boot every other kind at once beside an instance; rows of what each reports."""
    base = fleet(1)[0]
    kinds = other_kinds()
    images.ensure_image("x86_64", kernel="debian")
    guests = [Guest(kind.guest_name, memory_mb=_memory_for(kind), arch=kind.arch,
                    kernel=kind.kernel, replace=True) for kind in kinds]
    try:
        _start_together(guests)
        rows = [_kind_row(f"{base.id} ({base.type.name})", base.guest)]
        rows += [_kind_row(kind.label, guest) for kind, guest in zip(kinds, guests, strict=True)]
    finally:
        for guest in guests:
            guest.stop()
    note = "" if any(kind.arch != "x86_64" for kind in kinds) else (
        "No image of another architecture is built here, so only another kernel runs beside "
        "ours. With the aarch64 image built (python -m kit image --arch aarch64), an ARM "
        "guest would run beside them on this same host.")
    return rows, note


def _memory_for(kind: Kind) -> int:
    image = images.find_image(kind.arch, kind.kernel)
    return max(128, image.min_memory_mb if image else 128)


def _start_together(guests: list[Guest]) -> None:
    """Start them in parallel (an emulated ARM guest takes several seconds); re-raise a failure."""
    start_all(guests, stop_on_failure=False)


def _kind_row(label: str, guest: Guest) -> list[str]:
    machine = guest.run(["uname", "-m"]).stdout.strip()
    release = guest.run(["uname", "-r"]).stdout.strip()
    return [escape(label), escape(machine), escape(release), str(guest.pid)]


class FlexibilityView(KitWidget):
    """Different machines on one host: each guest's architecture and kernel."""

    def __init__(self) -> None:
        super().__init__("flexibility")
        self.output = widgets.HTML()
        button = widgets.Button(description="Boot the other kinds", icon="play")
        button.on_click(self._callback("booting other kinds", self.show))
        self._set_body(button, self.output)

    def show(self) -> None:
        rows, note = flexibility()
        table = markup.table(["guest", "uname -m", "uname -r", "QEMU pid"], rows)
        host = (f"<p>This host: {escape(platform.machine())}, kernel "
                f"{escape(platform.release())}.</p>")
        self.output.value = markup.text(table + host + (f"<p><i>{escape(note)}</i></p>"
                                                         if note else ""))


# -- scalability ------------------------------------------------------------------------------


def scale_to(count: int) -> float:
    """Add or remove instances until ``count`` run; returns the seconds it took."""
    the_cloud = cloud()
    running = the_cloud.running()
    started = time.monotonic()
    if count > len(running):
        the_cloud.run_instances(type=TYPE, count=count - len(running), name_prefix=PREFIX)
        what = f"+{count - len(running)}"
    elif count < len(running):
        the_cloud.terminate_instances([i.id for i in running[count:]])
        what = f"-{len(running) - count}"
    else:
        return 0.0
    seconds = time.monotonic() - started
    _history.append((time.monotonic() - _started, len(the_cloud.running()), what, seconds))
    return seconds


def history_rows() -> list[list[str]]:
    rows = []
    for _, running, what, seconds in _history:
        changed = abs(int(what))
        rows.append([escape(what), str(running), f"{seconds:.1f} s",
                     f"{seconds / changed:.2f} s" if changed else ""])
    return rows


class ScaleView(KitWidget):
    """Scale the fleet with a slider; each change is timed and plotted."""

    def __init__(self) -> None:
        super().__init__("scaling")
        self.target = widgets.IntSlider(value=max(1, len(cloud().running())), min=1, max=4,
                                        description="instances")
        self.apply = widgets.Button(description="Scale", icon="arrows-v")
        self.table = widgets.HTML()
        self.plot = widgets.Image(format="png")
        self.apply.on_click(self._callback("scaling", self.scale))
        self._set_body(widgets.HBox([self.target, self.apply]), self.table, self.plot)
        self.refresh()

    def scale(self) -> None:
        scale_to(int(self.target.value))
        self.refresh()

    def refresh(self) -> None:
        self.table.value = markup.text(markup.table(
            ["change", "running after", "took", "per instance"], history_rows()))
        if _history:
            times = [0.0] + [t for t, *_ in _history]
            counts = [0] + [n for _, n, *_ in _history]
            self.plot.value = plots.step_png(times, counts, title="instances running",
                                             xlabel="seconds into the lesson",
                                             ylabel="instances")


# -- the checks ---------------------------------------------------------------------------------


def check_isolated() -> Verdict:
    running = cloud().running()
    if len(running) < 2:
        return Verdict.fail(f"{len(running)} instance(s) run; this check needs two.",
                            hint="Run the cell that starts the fleet: lesson6.fleet(2).")
    first, second = running[0], running[1]
    evidence = (f"{first.id}: {NOTE_PATH} {'present' if has_note(first) else 'absent'}",
                f"{second.id}: {NOTE_PATH} {'present' if has_note(second) else 'absent'}")
    if not has_note(first):
        return Verdict.fail(f"there is no {NOTE_PATH} in {first.id} yet.", *evidence,
                            hint=f"Write it there: first.guest.run('echo hi > {NOTE_PATH}').")
    if has_note(second):
        return Verdict.fail(f"{second.id} has a {NOTE_PATH} too: it was written there "
                            "separately.", *evidence,
                            hint=f"Remove it from {second.id} (rm {NOTE_PATH}); write only "
                            f"in {first.id}.")
    return Verdict.ok(f"the file exists in {first.id} only: the two guests share nothing.",
                      *evidence)


def check_fit(answer: str) -> Verdict:
    running = cloud().running()
    if not running:
        return Verdict.fail("no instance runs to measure.", hint="Start the fleet first.")
    number = parse_number(answer)
    if number is None:
        return Verdict.fail("type a whole number of guests.")
    now = measure_utilization(running[:1]).more_guests
    evidence = (f"measured now: {now} more guests fit in free memory",)
    if abs(number - now) > max(2, now * 0.15):
        return Verdict.fail(f"{number} is far from what the host's free memory allows now.",
                            *evidence, hint="Read 'could hold about N more guests' in the "
                            "utilization box (press Measure again first).")
    return Verdict.ok(f"about {now} more guests would fit: one host, many servers.", *evidence)


def check_scaled() -> Verdict:
    running = cloud().running()
    evidence = [f"{i.id}: {i.state}, QEMU pid {i.guest.pid}" for i in running]
    if len(running) != SCALE_TARGET:
        return Verdict.fail(f"{len(running)} instances run; the task asks for {SCALE_TARGET}.",
                            *evidence, hint=f"Set the slider to {SCALE_TARGET}, press Scale.")
    return Verdict.ok(f"{SCALE_TARGET} instances run, each added in seconds.", *evidence,
                      *(f"{row[0]} took {row[2]}" for row in history_rows()))


isolated = Checkpoint(
    "l6-isolated", "A file in one server only",
    f"Write a file **{NOTE_PATH}** in the **first** instance only; the kit checks that the "
    "second does not have it.",
    check_isolated, hint=f"Run a command in the first instance: echo hi > {NOTE_PATH}.",
    solution="Use the guest agent of the first instance, as below.",
    code=f'first.guest.run("echo hi > {NOTE_PATH}")',
)
fit = Checkpoint(
    "l6-fit", "How many more would fit?",
    "Type how many more guests like these this host's free memory could hold, as measured.",
    check_fit, answer_label="more guests:",
    hint="The utilization box says 'could hold about N more guests'.",
    solution="Read the number from the utilization box, or use the line below.",
    code="lesson6.fit.verify(lesson6.measure_utilization(lesson6.cloud().running()).more_guests)",
)
scaled = Checkpoint(
    "l6-scaled", "Scale out",
    f"Scale the fleet to **{SCALE_TARGET} instances** with the slider.",
    check_scaled, hint=f"Move the slider to {SCALE_TARGET} and press Scale.",
    solution="Use the slider, or the line below.",
    code=f"lesson6.scale_to({SCALE_TARGET})",
)

quiz = Quiz([
    Question("l6-q1", "You wrote a file in one instance. Why was it missing in the other?", [
        Choice("The other instance had not synchronised yet", False,
               "There is nothing to synchronise: each guest has its own files, in its own "
               "memory, and never sees the other's."),
        Choice("Each virtual machine has its own operating system and files", True,
               "Isolation: one guest cannot read or damage another's files, which is why "
               "strangers can share a host."),
        Choice("Files are only visible to the user who wrote them", False,
               "Both guests are separate computers; users do not come into it."),
    ]),
    Question("l6-q2", "What does 'resource utilization' mean as an advantage of VMs?", [
        Choice("Each VM gets a whole physical machine", False,
               "The opposite: many VMs share one machine's CPUs and memory."),
        Choice("Several operating systems share one physical machine, keeping it busy", True,
               "You measured it: each guest takes a slice of memory and CPU, and many fit "
               "on one host that would otherwise sit mostly idle."),
        Choice("VMs use no memory when idle", False,
               "Each idle guest still held tens of MiB of host memory, as measured."),
    ]),
    Question("l6-q3", "What does 'flexibility' refer to?", [
        Choice("Running different operating systems (or architectures) on one machine", True,
               "Each guest boots its own kernel; it need not be the host's, nor even for the "
               "host's kind of processor."),
        Choice("Changing a VM's memory while it runs", False,
               "Memory was fixed while a guest ran (lesson 1); flexibility is about what "
               "runs, not resizing."),
        Choice("Moving the host between rooms", False, "That is not what virtualization gives."),
    ]),
    Question("l6-q4", "How long did adding an instance take here, and why does it matter?", [
        Choice("Seconds, so capacity can follow demand", True,
               "No hardware was bought or installed; a cloud scales the same way, by starting "
               "or ending virtual machines."),
        Choice("Days, like buying a server", False,
               "You timed it: a few seconds per instance on this host."),
        Choice("Nothing: instances exist before they are launched", False,
               "Each launch started a new QEMU process and booted a kernel."),
    ]),
])

lesson = Lesson(6, [isolated, fit, scaled], quiz)
