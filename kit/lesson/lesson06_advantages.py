"""Lesson 6, Advantages: each advantage shown or measured on this host, and done by the learner.

The notebook ``lessons/06-advantages.ipynb`` shows these; the tests import
them and check each exercise both ways.  The lesson's fleet is a
:class:`kit.labs.cloud.Cloud` of its own (:func:`cloud`).

The exercises are the learner's own work, on the live host:

1. **scalability**: add this learner's number of instances in one step with
   ``lesson6.scale_to(n)`` (or the slider), timed; checked by QMP on each;
2. **utilization**: fill a memory slice of this learner's own size with as
   many instances as fit, reasoning from the measured resident memory of
   one guest; checked with the host's process table (psutil);
3. **flexibility, kernels**: start a guest that boots another kernel than
   the fleet's (Debian's), checked with the guest's own ``uname -r``;
4. **flexibility, architectures**: start an aarch64 guest on this x86-64
   host, checked with QMP's ``query-target`` and the guest's ``uname -m``.

Two predictions come before measurements: the time to add one instance,
and how busy the host's CPUs are with the fleet sitting idle.  Isolation,
lesson 4's subject, is a short demonstration here.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets
import psutil

from kit.core import validate
from kit.core.errors import InvalidInput
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.labs import cloud as kcloud
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.lesson import Lesson
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget

TYPE = "t.nano"
PREFIX = "app"
NOTE_PATH = "/root/note.txt"
SCALE_STEPS = (2, 3)
SLICE_MB = (200, 360, 40)  # low, high, step of this learner's memory slice
CPU_SAMPLE_S = 1.0
OTHER_KERNEL = "other-kernel"
OTHER_ARCH = "other-arch"
FOREIGN_ARCH = "aarch64"

_cloud: kcloud.Cloud | None = None
_started = time.monotonic()


@dataclass(frozen=True)
class Change:
    """One change of the fleet's size, timed."""

    at: float  # seconds into the lesson
    running: int  # instances running after it
    delta: int  # instances added (+) or removed (-)
    seconds: float
    source: str  # "you" (the learner's call or the slider), "setup", "prediction"

    @property
    def what(self) -> str:
        return f"{self.delta:+d}"

    @property
    def per_instance(self) -> float:
        return self.seconds / abs(self.delta) if self.delta else 0.0


_history: list[Change] = []


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
    """At least ``count`` running instances (launched as needed, as the lesson's setup)."""
    if count > len(cloud().running()):
        scale_to(count, source="setup")
    return cloud().running()


# -- this learner's own values --------------------------------------------------------------


def scale_step() -> int:
    """How many instances this learner adds in one step."""
    return SCALE_STEPS[personal.number("l6-scale-step", 0, len(SCALE_STEPS) - 1)]


def slice_mb() -> int:
    """This learner's slice of the host: MiB of host memory to fill with instances."""
    return personal.number("l6-slice", *SLICE_MB)


# -- isolation (a reminder of lesson 4) ----------------------------------------------------------


def has_note(instance: kcloud.Instance) -> bool:
    return instance.guest.run(["test", "-e", NOTE_PATH]).ok


def write_note_and_look(instances: list[kcloud.Instance]) -> widgets.HTML:
    """Write a note in the first instance, then ask every instance whether it has it."""
    instances[0].guest.run(f"echo written in the first instance > {NOTE_PATH}")
    rows = [[escape(i.id), "✔ present" if has_note(i) else "✖ absent"] for i in instances]
    return widgets.HTML(markup.table(["instance", NOTE_PATH], rows))


# -- scalability ------------------------------------------------------------------------------


def scale_to(count: int, source: str = "you") -> float:
    """Add or remove instances until ``count`` run; returns the seconds it took."""
    count = _check_count(count)
    the_cloud = cloud()
    running = the_cloud.running()
    started = time.monotonic()
    if count > len(running):
        the_cloud.run_instances(type=TYPE, count=count - len(running), name_prefix=PREFIX)
    elif count < len(running):
        the_cloud.terminate_instances([i.id for i in running[count:]])
    else:
        return 0.0
    seconds = time.monotonic() - started
    _history.append(Change(time.monotonic() - _started, len(the_cloud.running()),
                           count - len(running), seconds, source))
    return seconds


def _check_count(count: object) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise InvalidInput(f"{count!r} is not a number of instances.",
                           hint="Give a whole number, 1 or more: lesson6.scale_to(3).")
    return count


def history() -> list[Change]:
    return list(_history)


def history_rows() -> list[list[str]]:
    words = {"you": "you", "setup": "the lesson's setup", "prediction": "your prediction"}
    return [[escape(c.what), str(c.running), f"{c.seconds:.1f} s", f"{c.per_instance:.2f} s",
             escape(words.get(c.source, c.source))] for c in _history]


def _scale_with_progress(count: int, show: Callable[[str], None]) -> float:
    """``scale_to(count)`` on a thread, saying every 0.3 s which instances are still booting."""
    result: list[float] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(scale_to(count))
        except BaseException as error:  # handed back to the caller below
            failure.append(error)

    before = {i.id for i in cloud().instances()}
    job = threading.Thread(target=work, name="kit-scale", daemon=True)
    started = time.monotonic()
    job.start()
    while job.is_alive():
        job.join(0.3)
        new = [i for i in cloud().instances() if i.id not in before]
        states = ", ".join(f"{i.id} {i.state}" for i in new) or "asking the cloud"
        show(f"scaling to {count}: {time.monotonic() - started:.1f} s ({states})…")
    if failure:
        raise failure[0]
    return result[0] if result else 0.0


class ScaleView(KitWidget):
    """Scale the fleet with a slider; each change is timed, tabled and plotted."""

    def __init__(self) -> None:
        super().__init__("scaling")
        self.target = widgets.IntSlider(value=max(1, len(cloud().running())), min=1, max=6,
                                        description="instances")
        self.apply = widgets.Button(description="Scale", icon="arrows-v")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.size_plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self.speed_plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self.apply.on_click(self._callback("scaling", self.scale))
        self._set_body(widgets.HBox([self.target, self.apply]), self.status, self.table,
                       widgets.HBox([self.size_plot, self.speed_plot]))
        self.refresh()

    def scale(self) -> None:
        def show(words: str) -> None:
            self.status.value = f"<i>{escape(words)}</i>"

        try:
            _scale_with_progress(int(self.target.value), show)
        finally:
            self.status.value = ""
            self.refresh()

    def refresh(self) -> None:
        """The table and both plots, drawn anew from the whole history (never piled up)."""
        self.table.value = markup.text(markup.table(
            ["change", "running after", "took", "per instance", "by"], history_rows()))
        if not _history:
            return
        times = [0.0] + [c.at for c in _history]
        counts = [0] + [c.running for c in _history]
        self.size_plot.value = plots.step_svg(times, counts, title="instances running",
                                              xlabel="seconds into the lesson",
                                              ylabel="instances")
        added = [c for c in _history if c.delta > 0]
        if added:
            self.speed_plot.value = plots.bar_svg(
                [f"{c.what} ({n + 1})" for n, c in enumerate(added)],
                [c.per_instance for c in added], title="seconds per instance added",
                ylabel="seconds", color=plots.ORANGE)


def check_scale() -> Verdict:
    step = scale_step()
    running = cloud().running()
    evidence = [f"{i.id}: QMP status {i.guest.qmp('query-status')['status']}, QEMU pid "
                f"{i.guest.pid}" for i in running]
    yours = [c for c in _history if c.source == "you"]
    if not yours:
        return Verdict.fail("you have not scaled the fleet yet.", *evidence,
                            hint=f"{len(running)} instances run now; lesson6.scale_to(n) with "
                            f"n = {len(running)} + {step} adds your {step} in one step.")
    last = yours[-1]
    evidence.append(f"your last change: {last.what} in {last.seconds:.1f} s, leaving "
                    f"{last.running} running")
    if last.delta != step:
        return Verdict.fail(f"your last change was {last.what}; the task is to add {step} in one "
                            "step.", *evidence,
                            hint=f"lesson6.scale_to(n) with n = the number running now "
                            f"({len(running)}) + {step}.")
    if len(running) != last.running:
        return Verdict.fail(f"{len(running)} instances run now, but your scale-out left "
                            f"{last.running}: the fleet has changed since.", *evidence,
                            hint=f"Scale out by {step} once more, then check at once.")
    not_running = [e for e in evidence if "QMP status running" not in e and e.startswith("i-")]
    if not_running:
        return Verdict.fail("not every instance is running.", *evidence,
                            hint="Wait a second for the boots to finish, then check again.")
    ones = [c for c in _history if c.delta == 1]
    compare = (f"; adding one took {ones[-1].seconds:.1f} s" if ones else "")
    return Verdict.ok(f"{step} servers added in {last.seconds:.1f} s, "
                      f"{last.per_instance:.2f} s per instance{compare}: no hardware bought.",
                      *evidence)


def solve_scale() -> float:
    return scale_to(len(cloud().running()) + scale_step())


# -- utilization ------------------------------------------------------------------------------


def rss_mb(instance: kcloud.Instance) -> float:
    """The host memory an instance's QEMU process holds (resident), in MiB."""
    assert instance.guest.pid is not None
    return float(psutil.Process(instance.guest.pid).memory_info().rss) / 2**20


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

    @property
    def fleet_cpu_share(self) -> float:
        """The fleet's CPU use as a share of all the host's CPUs, in %."""
        return sum(self.cpu_percent.values()) / (os.cpu_count() or 1)


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
    """Each running instance's memory and CPU, and how many more this host could hold."""

    def __init__(self) -> None:
        super().__init__("utilization")
        self.summary = widgets.HTML()
        self.memory_plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self.cpu_plot = widgets.Image(format=plots.IMAGE_FORMAT)
        button = widgets.Button(description="Measure again", icon="refresh")
        button.on_click(self._callback("measuring", self.measure))
        self.last: Utilization | None = None
        self._set_body(button, self.summary, widgets.HBox([self.memory_plot, self.cpu_plot]))
        self._guarded("measuring", self.measure)()

    def measure(self) -> Utilization:
        running = cloud().running()
        self.summary.value = markup.text(
            f"<i>measuring {len(running)} instance(s): each QEMU's resident memory, and its CPU "
            f"use over {CPU_SAMPLE_S:g} s…</i>")
        found = measure_utilization(running)
        self.last = found
        ids = list(found.rss_mb)
        self.memory_plot.value = plots.bar_svg(
            ids, [found.rss_mb[k] for k in ids], title="host memory held by each guest",
            ylabel="MiB (QEMU resident)")
        self.cpu_plot.value = plots.bar_svg(
            ids, [found.cpu_percent[k] for k in ids],
            title=f"CPU used by each guest ({CPU_SAMPLE_S:g} s)",
            ylabel="% of one host CPU", color=plots.ORANGE)
        total = sum(found.rss_mb.values())
        self.summary.value = markup.text(
            f"{len(ids)} instances hold <b>{total:.0f} MiB</b> of host memory together, up to "
            f"<b>{found.per_guest_mb:.0f} MiB</b> each. Together they used "
            f"<b>{found.fleet_cpu_share:.1f}%</b> of this host's {os.cpu_count() or 1} CPUs; "
            f"the whole host (every program, other users' too) was "
            f"{found.host_cpu_percent:.0f}% busy. The host has {found.available_mb} MiB "
            f"available and keeps {validate.HOST_MEMORY_RESERVE_MB} MiB for itself: room for "
            f"about <b>{found.more_guests}</b> more guests like these, by memory.")
        return found


def check_pack() -> Verdict:
    running = cloud().running()
    slice_size = slice_mb()
    if not running:
        return Verdict.fail("no instance runs: your slice is empty.",
                            hint="lesson6.scale_to(n) with the number of instances that fill "
                            f"{slice_size} MiB.")
    held = {i.id: rss_mb(i) for i in running}
    total = sum(held.values())
    mean = total / len(held)
    evidence = [f"{k}: {v:.0f} MiB resident (psutil, the host's process table)"
                for k, v in held.items()]
    evidence.append(f"together {total:.0f} MiB for {len(held)} instances; your slice is "
                    f"{slice_size} MiB")
    if total > slice_size * 1.05:
        return Verdict.fail(f"your {len(held)} instances hold {total:.0f} MiB, more than your "
                            f"slice of {slice_size} MiB.", *evidence,
                            hint="Divide your slice by the memory one instance holds (the "
                            "utilization box measures it), round down, and "
                            "lesson6.scale_to(that number).")
    if total + mean < slice_size * 0.95:
        return Verdict.fail(f"your {len(held)} instances hold {total:.0f} MiB: "
                            f"{slice_size - total:.0f} MiB of your slice is still free, room "
                            f"for another instance of about {mean:.0f} MiB.", *evidence,
                            hint="Divide your slice by the memory one instance holds, round "
                            "down, and lesson6.scale_to(that number).")
    return Verdict.ok(f"{len(held)} instances fill your {slice_size} MiB slice ({total:.0f} MiB; "
                      f"one more would need about {total + mean:.0f}). Memory, not CPU, "
                      "decided how many fit.", *evidence)


def solve_pack() -> float:
    running = fleet(1)
    mean = sum(rss_mb(i) for i in running) / len(running)
    return scale_to(max(1, math.floor(slice_mb() / mean)))


# -- flexibility --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What one running guest says it is, asked from both sides."""

    name: str
    role: str
    qmp_arch: str  # the hypervisor's answer (QMP query-target)
    machine: str  # the guest's own uname -m
    release: str  # the guest's own uname -r
    pid: int | None
    rss_mb: float  # host memory its QEMU holds


def look_at(guest: Guest, role: str = "") -> Machine:
    held = float(psutil.Process(guest.pid).memory_info().rss) / 2**20 if guest.pid else 0.0
    return Machine(guest.name, role, str(guest.qmp("query-target").get("arch", "?")),
                   guest.run(["uname", "-m"]).stdout.strip(),
                   guest.run(["uname", "-r"]).stdout.strip(), guest.pid, held)


def fleet_release() -> str:
    """The kernel release the fleet's instances boot (asked live when one runs)."""
    running = cloud().running()
    if running:
        return running[0].guest.run(["uname", "-r"]).stdout.strip()
    image = images.find_image("x86_64")
    return image.kernel_version if image else "?"


def host_arch() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                       platform.machine())


def _others() -> list[Guest]:
    """Running guests that are not the fleet's instances."""
    fleet_guests = {id(i.guest) for i in cloud().instances()}
    return [g for g in registry.guests()
            if g.state == GuestState.RUNNING and id(g) not in fleet_guests]


def check_kernel() -> Verdict:
    ours = fleet_release()
    seen = [look_at(g) for g in _others() if g.arch == host_arch()]
    evidence = [f"the fleet's instances run kernel {ours}",
                f"this host runs kernel {platform.release()}"]
    evidence += [f"guest {m.name}: uname -r says {m.release} (QMP: {m.qmp_arch})" for m in seen]
    other = next((m for m in seen if m.release != ours), None)
    if other is None:
        return Verdict.fail(f"no {host_arch()} guest here runs another kernel than the fleet's "
                            f"({ours}).", *evidence,
                            hint=f"kit.Guest(\"{OTHER_KERNEL}\", kernel=\"debian\").start() "
                            "boots Debian's own kernel instead of the kit's.")
    return Verdict.ok(f"guest {other.name} runs kernel {other.release} beside instances running "
                      f"{ours}, on one host: each guest boots the kernel it was given.",
                      *evidence)


def solve_kernel() -> Guest:
    return Guest(OTHER_KERNEL, kernel="debian", replace=True).start()


def check_arch() -> Verdict:
    here = host_arch()
    seen = [look_at(g) for g in _others() if g.arch != here]
    evidence = [f"this host: {here} (platform.machine)"]
    evidence += [f"guest {m.name}: QMP query-target says {m.qmp_arch}, uname -m inside says "
                 f"{m.machine}" for m in seen]
    foreign = next((m for m in seen if m.qmp_arch != here and m.machine != here), None)
    if foreign is None:
        built = images.find_image(FOREIGN_ARCH) is not None
        fix = (f"kit.Guest(\"{OTHER_ARCH}\", arch=\"{FOREIGN_ARCH}\").start() boots an ARM "
               "guest." if built else
               f"This kit has no {FOREIGN_ARCH} image yet: build it in a terminal with "
               f"python -m kit image --arch {FOREIGN_ARCH}, then kit.Guest(\"{OTHER_ARCH}\", "
               f"arch=\"{FOREIGN_ARCH}\").start().")
        return Verdict.fail(f"no guest of another architecture than {here} runs here.",
                            *evidence, hint=fix)
    return Verdict.ok(f"guest {foreign.name} is an {foreign.machine} machine on this {here} "
                      "host: QEMU translates each of its instructions (TCG).", *evidence)


def solve_arch() -> Guest:
    return Guest(OTHER_ARCH, arch=FOREIGN_ARCH, replace=True).start()


class KindsView(KitWidget):
    """Every running guest of this notebook: its architecture and kernel, asked live."""

    def __init__(self) -> None:
        super().__init__("kinds of machine")
        self.output = widgets.HTML()
        button = widgets.Button(description="Look again", icon="refresh")
        button.on_click(self._callback("asking the guests", self.look))
        self._set_body(button, self.output)
        self._guarded("asking the guests", self.look)()

    def look(self) -> list[Machine]:
        roles = {id(i.guest): f"instance {i.id}" for i in cloud().instances()}
        guests = [g for g in registry.guests() if g.state == GuestState.RUNNING]
        found = []
        for number, guest in enumerate(guests, 1):
            self.output.value = markup.text(
                f"<i>asking {escape(guest.name)} ({number} of {len(guests)}): QMP "
                "query-target, then uname inside…</i>")
            found.append(look_at(guest, roles.get(id(guest), "yours")))
        rows = [[escape(m.name), escape(m.role), escape(m.qmp_arch), escape(m.machine),
                 escape(m.release), str(m.pid), f"{m.rss_mb:.0f}"] for m in found]
        host = (f"<p>This host: {escape(host_arch())}, kernel {escape(platform.release())}. "
                f"{len({m.release for m in found})} kernel(s) and "
                f"{len({m.machine for m in found})} architecture(s) among its guests.</p>")
        self.output.value = markup.text(markup.table(
            ["guest", "", "QMP query-target", "uname -m", "uname -r", "QEMU pid", "host MiB"],
            rows) + host)
        return found


# -- predictions ---------------------------------------------------------------------------------


def measure_add_one() -> float:
    """Add one instance to the fleet, timed (it stays: the history shows it)."""
    running = fleet(1)
    return scale_to(len(running) + 1, source="prediction")


def measure_idle_cpu() -> float:
    return measure_utilization(fleet(1)).fleet_cpu_share


add_one = Prediction(
    "l6-p-add", "How many **seconds** will it take to add **one** more instance to the fleet: "
    "from the call to a guest that has booted and answers?", measure_add_one, unit="s",
    explain=lambda guess, got: (
        "Adding a server is starting a process and booting a kernel: no hardware is bought, "
        "racked or cabled. The table and the plot below keep this time, to compare with adding "
        "several at once."),
)
idle_cpu = Prediction(
    "l6-p-cpu", "Your instances are idle. Together, what share of this host's total CPU time "
    "will their QEMU processes use over one second, in %?", measure_idle_cpu, unit="%",
    explain=lambda guess, got: (
        "An idle guest's kernel sleeps until a timer or a device wakes it, so QEMU has almost "
        "nothing to run; but each guest keeps the memory it has touched. That is why a host "
        "usually runs out of memory long before it runs out of CPU for idle guests."),
)


# -- the lesson ---------------------------------------------------------------------------------

scale = Checkpoint(
    "l6-scale", "Scale out",
    "Add **your number of instances** (the cell above prints it) to the fleet **in one step** "
    "with `lesson6.scale_to(n)` (n: how many should run afterwards), and compare the time per "
    "instance with adding one.",
    check_scale, solve=solve_scale,
    hint="len(lesson6.cloud().running()) is how many run now; scale_to wants the total after "
    "the change.",
    solution="Ask for the number running now plus your step, in one call:",
    code="grown = lesson6.scale_to(len(lesson6.cloud().running()) + lesson6.scale_step())",
)
pack = Checkpoint(
    "l6-pack", "Fill your slice",
    "Your slice of this host is **your number of MiB** (the cell above prints it). Run **as "
    "many instances as fit in it**, by the host memory they really hold, and not one more.",
    check_pack, solve=solve_pack,
    hint="The utilization box measures what one instance holds; your slice divided by that, "
    "rounded down, is how many fit. lesson6.scale_to(n) adds or removes instances.",
    solution="Divide the slice by one instance's resident memory, round down, scale to that:",
    code="one = lesson6.rss_mb(lesson6.cloud().running()[0])\n"
    "packed = lesson6.scale_to(int(lesson6.slice_mb() // one))",
)
kernel = Checkpoint(
    "l6-kernel", "Another kernel beside them",
    "Start a guest that boots **another kernel** than the fleet's: Debian's own "
    "(`kernel=\"debian\"`), on this same host, while the fleet runs.",
    check_kernel, solve=solve_kernel,
    hint=f"kit.Guest(\"{OTHER_KERNEL}\", kernel=\"debian\") describes it; .start() boots it.",
    solution="Describe the guest with Debian's kernel and start it:",
    code=f"other_kernel = kit.Guest(\"{OTHER_KERNEL}\", kernel=\"debian\").start()",
)
arch = Checkpoint(
    "l6-arch", "Another processor",
    f"Start a guest of **another architecture**, {FOREIGN_ARCH} (ARM), on this x86-64 host.",
    check_arch, solve=solve_arch,
    hint=f"kit.Guest(\"{OTHER_ARCH}\", arch=\"{FOREIGN_ARCH}\") describes it; .start() boots "
    "it (emulation takes a few seconds).",
    solution="Describe an ARM guest and start it:",
    code=f"other_arch = kit.Guest(\"{OTHER_ARCH}\", arch=\"{FOREIGN_ARCH}\").start()",
)

quiz = Quiz([
    Question("l6-q1", "You wrote a file in one instance. Why was it missing in the other?", [
        Choice("The other instance had not synchronised yet", False,
               "There is nothing to synchronise: each guest has its own files, in its own "
               "memory, and never sees the other's."),
        Choice("Each guest has its own kernel, memory and disk", True,
               "Isolation: one guest does not see another's files or processes. Lesson 4 "
               "showed its limits: a busy guest still slows its neighbours, and a flaw in the "
               "hypervisor or host kernel would reach them all."),
        Choice("Files are only visible to the user who wrote them", False,
               "Both guests are separate computers; users do not come into it."),
    ]),
    Question("l6-q2", "Your idle instances held memory but used almost no CPU. What limits how "
             "many idle guests a host can hold?", [
        Choice("Its CPUs: each guest needs a core of its own", False,
               "vCPUs are threads that take turns; idle ones barely run. You measured it."),
        Choice("Its memory: each guest keeps what it touched", True,
               "Each guest holds tens of MiB of host memory even when idle; the free memory "
               "divided by that is how many more fit."),
        Choice("Its disk: each guest needs a full copy of the host's files", False,
               "The guests booted from a small image of their own, not from the host's files."),
    ]),
    Question("l6-q3", "Which of these is flexibility, as this lesson showed it?", [
        Choice("Other kernels and architectures on one host", True,
               "Each guest boots the kernel it is given; it need not be the host's, nor even "
               "for the host's kind of processor."),
        Choice("Changing a running guest's memory without a reboot", False,
               "That is hotplug or ballooning: QEMU/KVM, VMware and Hyper-V offer it, this kit's "
               "small machine type does not. It is not what this lesson measured."),
        Choice("One kernel shared by every guest", False,
               "That is what containers do (lesson 8); each guest here booted a kernel of its "
               "own."),
    ]),
    Question("l6-q4", "Adding several instances in one step took less time per instance than "
             "adding one. Why?", [
        Choice("The new guests reused the first guest's booted kernel", False,
               "Each new guest booted a kernel of its own (lesson 7 counts the cost)."),
        Choice("A pool of booted guests was ready", False,
               "Each launch started a new QEMU process and a new boot; this kit keeps no pool."),
        Choice("Their boots overlapped on the host's CPUs", True,
               "Several boots run side by side, on the host's CPUs and in each other's waiting "
               "time, so the step takes far less than one boot per instance."),
    ]),
    Question("l6-q5", "How long did adding one instance take here, and why does it matter?", [
        Choice("Seconds, so capacity can follow demand", True,
               "No hardware was bought or installed; a cloud scales the same way, by starting "
               "or ending virtual machines."),
        Choice("Days, like buying a server", False,
               "You timed it: a few seconds per instance on this host."),
        Choice("Nothing: instances exist before they are launched", False,
               "Each launch started a new QEMU process and booted a kernel."),
    ]),
])

lesson = Lesson(6, [scale, pack, kernel, arch], quiz, [add_one, idle_cpu])
