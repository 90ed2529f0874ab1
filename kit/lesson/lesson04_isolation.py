"""Lesson 4, Isolation: two guests, the experiments' boxes, the checkpoints and the quiz.

The notebook ``lessons/04-isolation.ipynb`` shows these; the tests import
them and check each checkpoint both ways.  The lesson's two guests are
``alpha`` (two vCPUs: it plays the troublemaker) and ``beta`` (the neighbour
that keeps serving); checks find them by name, however they were started.
The experiments themselves live in :mod:`kit.labs.isolation`; this module only
shows their records and checks the learner's tasks.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import psutil

from kit.core import validate
from kit.core.errors import InvalidInput
from kit.core.state import GuestState
from kit.hypervisor import fleet, registry
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.labs import isolation
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest
from kit.lesson.lesson import Lesson, beside, ensure_running
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget
from kit.widgets.guest_panel import GuestPanel
from kit.widgets.live_diagram import LiveDiagram

ALPHA, BETA = "alpha", "beta"
PREFERRED_PORTS = {ALPHA: 8041, BETA: 8042}
MEMORY_MB = 128
FILE_PATH = "/www/hello.txt"
FILE_TEXT = "hello from alpha\n"

_made: dict[str, Guest] = {}


# -- the guests ----------------------------------------------------------------------------


def guest(name: str) -> Guest:
    """The lesson's guest ``name`` (alpha or beta): the live one, else one made for it."""
    if name not in PREFERRED_PORTS:
        raise InvalidInput(f"lesson 4 has no guest {name!r}.",
                           hint=f"Its guests are {ALPHA} and {BETA}.")
    live = registry.get(name)
    if live is not None:
        return live
    if name not in _made or _made[name].state == GuestState.STOPPED:
        _made[name] = Guest(name, memory_mb=MEMORY_MB, cpus=2 if name == ALPHA else 1,
                            forwards={_port_for(name): 80}, replace=True)
    return _made[name]


def guests() -> tuple[Guest, Guest]:
    return guest(ALPHA), guest(BETA)


def _port_for(name: str) -> int:
    """8041 for alpha, 8042 for beta, unless something else holds that port."""
    wanted = PREFERRED_PORTS[name]
    return wanted if validate.port_is_free(wanted) else net.free_port()


def start_both(timeout: float = 90.0) -> tuple[Guest, Guest]:
    """Make sure both guests run (booting them side by side); a button's boot is waited for."""
    pair = guests()
    failures = [e for e in fleet.each(pair, lambda g: ensure_running(g, timeout)) if e]
    if failures:
        raise failures[0]
    return pair


def with_diagram(demo: widgets.Widget, highlight: str | None = None) -> widgets.HBox:
    """A demo (or the guests' panels) beside the live diagram of both guests."""
    return beside(demo, LiveDiagram(list(guests()), highlight=highlight))


def panels() -> widgets.HBox:
    """Both guests' control panels, beside their live diagram."""
    return with_diagram(widgets.VBox([GuestPanel(g) for g in guests()]))


def url(g: Guest, path: str = "/") -> str:
    return f"http://127.0.0.1:{isolation.web_port(g)}/{path.lstrip('/')}"


# -- the experiments' boxes -------------------------------------------------------------------


class Experiment(KitWidget):
    """A box with a few buttons, each running one experiment; its report below them.

    Experiments take seconds, so a button runs its experiment in the
    background, with every button disabled meanwhile; ``run(i)`` does the
    same in the calling thread (for notebook cells and tests).
    """

    def __init__(self, title: str, intro: str,
                 actions: Sequence[tuple[str, str, Callable[[], str]]]) -> None:
        super().__init__(f"experiment '{title}'")
        self.actions = list(actions)
        self.report = widgets.HTML()
        self.status = widgets.HTML()
        self.buttons = [widgets.Button(description=label, tooltip=tip,
                                       layout=widgets.Layout(width="auto"))
                        for label, tip, _ in self.actions]
        for index, button in enumerate(self.buttons):
            button.on_click(self._callback(self.actions[index][0], self._starter(index)))
        self._set_body(widgets.HTML(markup.text(f"<b>{escape(title)}</b><br>"
                                               f"{markup.inline(intro)}")),
                       widgets.HBox(self.buttons, layout=widgets.Layout(flex_flow="row wrap")),
                       self.status, self.report)
        self.layout.border = "1px solid #bbb"
        self.layout.padding = "6px 10px"
        self.last_job: threading.Thread | None = None

    def run(self, index: int = 0) -> str:
        """Run action ``index`` now, here; show and return its report (HTML)."""
        label = self.actions[index][0]
        self._busy(True, f"… {label}: working (the guests are asked live)")
        try:
            self.report.value = self.actions[index][2]()
        finally:
            self._busy(False, "")
        return str(self.report.value)

    def _starter(self, index: int) -> Callable[[], None]:
        def start() -> None:
            self.last_job = self._in_background(self.actions[index][0],
                                                lambda: self.run(index))
        return start

    def _busy(self, busy: bool, text: str) -> None:
        for button in self.buttons:
            button.disabled = busy
        self.status.value = f"<i>{escape(text)}</i>" if text else ""


def files_box(a: Guest, b: Guest, path: str = FILE_PATH) -> Experiment:
    def write() -> str:
        isolation.write_file(a, path, FILE_TEXT)
        return look()

    def look() -> str:
        return files_html(isolation.look_for_file([a, b], path), [a, b], path)

    return Experiment(
        "One file, two guests",
        f"Write `{path}` inside {a.name} (through its guest agent), then ask both guests "
        "whether they have it, and ask both web servers for it from the host.",
        [(f"✎ Write {path} in {a.name}", "guest-file-open/write/close in " + a.name, write),
         ("🔍 Look in both guests", "cat inside each guest, and an HTTP GET to each", look)])


def processes_box(a: Guest, b: Guest) -> Experiment:
    def compare() -> str:
        return processes_html([isolation.process_table(g) for g in (a, b)])

    def sleeper() -> str:
        isolation.start_sleeper(a)
        return compare()

    return Experiment(
        "Two process lists",
        "Each guest's kernel lists its own processes; the host sees each guest as one QEMU "
        "process.",
        [("⟳ Compare the process lists", "ps inside each guest, through its agent", compare),
         (f"+ Start a sleep in {a.name}", f"sleep 600 & inside {a.name} only", sleeper)])


def crash_box(a: Guest, b: Guest) -> Experiment:
    def crash() -> str:
        return crash_html(isolation.crash_while_serving(a, b))

    def reboot() -> str:
        ensure_running(a)
        return (f"<p>{escape(a.name)} rebooted: QMP says "
                f"<b>{escape(isolation.hypervisor_status(a))}</b>.</p>")

    return Experiment(
        f"Crash {a.name}'s kernel while {b.name} serves",
        f"The host requests {b.name}'s page every 50 ms; halfway, {a.name}'s kernel is made to "
        "panic (`echo c > /proc/sysrq-trigger`).",
        [(f"💥 Crash {a.name}", f"panic {a.name}'s kernel; QMP reports GUEST_PANICKED", crash),
         (f"↻ Reboot {a.name}", "QMP system_reset, then wait for the guest's agent", reboot)])


def memory_box(a: Guest, b: Guest) -> Experiment:
    return Experiment(
        f"Let {a.name} run out of memory",
        f"A program in {a.name} grows a string until no memory is left; meanwhile the host "
        f"watches QEMU's memory, its own, and {b.name}'s web page.",
        [(f"🐷 Run a memory hog in {a.name}", isolation.MEMORY_HOG,
          lambda: hog_html(isolation.memory_hog(a, b)))])


def neighbour_box(quiet: Guest, noisy: Guest) -> Experiment:
    return Experiment(
        "The noisy neighbour",
        f"Time a fixed task in {quiet.name} (counting to {isolation.CPU_LOOPS:,} in its "
        f"shell), alone, then while {noisy.name} keeps all its {noisy.cpus} vCPUs busy.",
        [("⏱ Measure", "3 timed runs alone, 3 with the neighbour busy, in turns",
          lambda: neighbour_html(isolation.noisy_neighbour(quiet, noisy)))])


# -- the reports, as HTML -----------------------------------------------------------------------


def _yes(flag: bool, yes: str = "✔ yes", no: str = "✖ no") -> str:
    return f"<b>{yes}</b>" if flag else no


def files_html(look: isolation.FileLook, pair: Sequence[Guest], path: str) -> str:
    rows = []
    for g in pair:
        served = isolation.request_once(isolation.web_port(g), path.removeprefix("/www"))
        text = look.contents.get(g.name)
        rows.append([f"<b>{escape(g.name)}</b>", _yes(text is not None),
                     f"<code>{escape((text or '').strip())}</code>",
                     f"{escape(url(g, path.removeprefix('/www')))} → "
                     f"{served.status or escape(served.error)}"])
    return markup.table(["guest", f"has {escape(path)}?", "its content",
                        "asked from the host (HTTP)"], rows)


def processes_html(tables: Sequence[isolation.ProcessTable]) -> str:
    head = markup.table(
        ["", *(f"<b>{escape(t.guest)}</b>" for t in tables)],
        [["QEMU's PID on the host", *(str(t.qemu_pid) for t in tables)],
         ["its kernel's boot id", *(f"<code>{escape(t.boot_id[:13])}…</code>" for t in tables)],
         ["up for", *(f"{t.uptime_s:.0f} s" for t in tables)],
         ["processes", *(str(len(t.processes)) for t in tables)],
         ["PID 1", *(f"<b>{escape(t.pid1)}</b>" for t in tables)]])
    names = [{n for _, n in t.processes} for t in tables]
    columns = []
    for table, others in zip(tables, [names[1], names[0]], strict=False):
        lines = [f"{pid:>4} {name}" + ("   ← only here" if name not in others else "")
                 for pid, name in table.processes if not name.startswith("kworker")]
        columns.append(f'<div style="flex:1 1 14em"><b>inside {escape(table.guest)}</b>'
                       f"{pre(chr(10).join(lines), '18em')}</div>")
    return (head + '<p><small>(kernel worker threads, kworker/…, left out)</small></p>'
            '<div style="display:flex;gap:12px;flex-wrap:wrap">' + "".join(columns) + "</div>")


def requests_strip(log: isolation.ServiceLog, mark_at: float | None = None) -> str:
    """One mark per request: ✔ answered, ✖ not; a 💥 where the crash happened."""
    marks = []
    for request in log.requests:
        if mark_at is not None and request.at_s >= mark_at:
            marks.append("💥")
            mark_at = None
        marks.append("✔" if request.ok else "✖")
    return f'<span style="font-family:monospace;word-break:break-all">{"".join(marks)}</span>'


def crash_html(report: isolation.CrashReport) -> str:
    log = report.neighbour_service
    rows = [[f"<b>{escape(report.victim)}</b>", escape(report.victim_status),
             "its kernel panicked; the pvpanic device told QEMU, which paused it"],
            [f"<b>{escape(report.neighbour)}</b>", escape(report.neighbour_status),
             escape(str(log))]]
    last = "\n".join(report.panic_lines) or "(no panic line on the console yet)"
    return (markup.table(["guest", "QMP query-status", "what it means"], rows)
            + f"<p>Requests to {escape(report.neighbour)} from the host, in order: "
            + requests_strip(log, report.crash_at_s) + "</p>"
            + f"<p><small>{escape(report.victim)}'s last words on its console:</small></p>"
            + pre(last, "8em"))


def hog_html(report: isolation.HogReport) -> str:
    oom = "\n".join(report.oom_lines) or "(no OOM report: the hog ended another way)"
    rows = [
        ["the hog's exit", f"{report.exit_code}" + (" (killed: signal 9)"
                                                    if report.exit_code == 137 else "")],
        [f"{escape(report.guest)}'s own kernel", _yes(report.killed_by_oom,
                                                      "✔ its OOM killer stopped the hog",
                                                      "no OOM kill seen")],
        [f"{escape(report.guest)} afterwards", _yes(report.guest_still_running,
                                                    "✔ still running", "✖ not answering")],
        [f"QEMU of {escape(report.guest)} (RSS)",
         f"{report.rss_before_mb:.0f} → peak {report.rss_peak_mb:.0f} MiB "
         f"(grew {report.rss_growth_mb:.0f} MiB; the guest was given {report.memory_mb} MiB)"],
        ["host's available memory",
         f"{report.host_available_before_mb:.0f} → lowest "
         f"{report.host_available_lowest_mb:.0f} MiB"],
        [f"{escape(report.neighbour)}'s web page", escape(str(report.neighbour_service))],
    ]
    return (markup.table(["", "measured"], rows)
            + f"<p><small>{escape(report.guest)}'s kernel log (dmesg):</small></p>"
            + pre(oom, "8em"))


def neighbour_html(report: isolation.NeighbourReport) -> str:
    longest = max(report.alone_s + report.crowded_s)
    rows: list[tuple[str, Sequence[float]]] = [
        (f"{escape(report.quiet)} alone", report.alone_s),
        (f"while {escape(report.noisy)} burns {report.burners} vCPUs", report.crowded_s)]
    bars = "".join(_bar(label, times, longest) for label, times in rows)
    return (bars + f"<p><b>{report.slowdown:.1f} times</b> as long with a busy neighbour "
            f"(medians: {report.alone_median_s:.2f} s alone, {report.crowded_median_s:.2f} s "
            f"crowded). This host has {report.host_cpus} CPUs for "
            f"{report.burners + 1} busy virtual CPUs, and other work: its load average was "
            f"{report.host_load:.1f} as the measurement began (1.0 = one CPU's worth of "
            "programs wanting to run).</p>")


def _bar(label: str, times: Sequence[float], longest: float) -> str:
    median = sorted(times)[len(times) // 2]
    width = 100 * median / longest if longest else 0
    each = ", ".join(f"{t:.2f}" for t in times)
    return (f'<div style="margin:4px 0;line-height:1.4">{label}: <b>{median:.2f} s</b> '
            f"<small>(runs: {each})</small>"
            f'<div role="img" aria-label="{median:.2f} seconds" style="background:#0072B2;'
            f'height:14px;width:{width:.0f}%"></div></div>')


# -- the checks ------------------------------------------------------------------------------


def _both() -> tuple[Guest, Guest] | Verdict:
    found = [find_guest(name) for name in (ALPHA, BETA)]
    for item in found:
        if isinstance(item, Verdict):
            return item
    a, b = found
    assert isinstance(a, Guest) and isinstance(b, Guest)
    return a, b


def check_file() -> Verdict:
    pair = _both()
    if isinstance(pair, Verdict):
        return pair
    seen = isolation.look_for_file(pair, FILE_PATH)
    served = [isolation.request_once(isolation.web_port(g), FILE_PATH.removeprefix("/www"))
              for g in pair]
    evidence = tuple(f"{g.name}: cat {FILE_PATH} inside → "
                     f"{'found' if seen.has(g.name) else 'no such file'}; "
                     f"HTTP from the host → {r.status or r.error}"
                     for g, r in zip(pair, served, strict=True))
    if not seen.has(ALPHA):
        return Verdict.fail(f"{ALPHA} has no {FILE_PATH} yet.", *evidence,
                            hint=f"Press ✎ Write {FILE_PATH} in {ALPHA} in the box above.")
    if seen.has(BETA):
        return Verdict.fail(f"{BETA} has a {FILE_PATH} too: someone wrote it there as well.",
                            *evidence,
                            hint=f"Remove it from {BETA} (beta.run('rm {FILE_PATH}')) and "
                            "check again: the point is to write in one guest only.")
    return Verdict.ok(f"the file exists in {ALPHA} only: {BETA}'s disk never saw it.", *evidence)


def _program(answer: str) -> str:
    return answer.strip().rstrip(".").split("/")[-1].lower()


def check_pid1(answer: str) -> Verdict:
    pair = _both()
    if isinstance(pair, Verdict):
        return pair
    tables = [isolation.process_table(g) for g in pair]
    evidence = tuple(f"{t.guest}: PID 1 is {t.pid1}, kernel boot id {t.boot_id[:8]}…"
                     for t in tables)
    if not answer:
        return Verdict.fail("type the name of the program with PID 1 first.", *evidence)
    host_pid1 = _host_pid1()
    given = _program(answer)
    if any(given != t.pid1.lower() for t in tables):
        if given == host_pid1.lower():
            return Verdict.fail(f"{answer} is PID 1 of the **host**, not of the guests.",
                                *evidence, hint="Read the PID 1 row of the guests' table, "
                                "not the host's process list.")
        return Verdict.fail(f"neither guest runs {answer!r} as PID 1.", *evidence)
    return Verdict.ok(f"both guests run their own {tables[0].pid1} as PID 1: two processes "
                      "with the same number, each in its own kernel.", *evidence,
                      f"the host's PID 1 is {host_pid1}")


def _host_pid1() -> str:
    try:
        return str(psutil.Process(1).name())
    except psutil.Error:
        return platform.system()


def check_oom() -> Verdict:
    pair = _both()
    if isinstance(pair, Verdict):
        return pair
    a, b = pair
    killed, elsewhere = isolation.oom_lines(a), isolation.oom_lines(b)
    served = isolation.serve_check(isolation.web_port(b), 5)
    evidence = (f"{ALPHA}'s dmesg: {killed[-1] if killed else 'no OOM kill'}",
                f"{BETA}'s dmesg: {len(elsewhere)} OOM kill(s)",
                f"{BETA}'s web page from the host: {served}")
    if not killed:
        return Verdict.fail(f"{ALPHA}'s kernel has not had to kill anything for memory yet.",
                            *evidence, hint=f"Press 🐷 Run a memory hog in {ALPHA} above, "
                            "wait for its report, then check.")
    if not served.all_ok:
        return Verdict.fail(f"{BETA} did not answer every request.", *evidence,
                            hint=f"Is {BETA} running? Its panel shows its state.")
    return Verdict.ok(f"{ALPHA} ran out of memory and its own kernel dealt with it; {BETA} "
                      "never noticed.", *evidence)


def crashed_guests() -> list[tuple[str, str]]:
    """(name, QMP status) of each lesson guest that has a QEMU process."""
    found = []
    for name in (ALPHA, BETA):
        g = registry.get(name)
        if g is not None and g.state.has_process and g.state != GuestState.STOPPING:
            found.append((name, isolation.hypervisor_status(g)))
    return found


def _none_started() -> Verdict:
    return Verdict.fail(f"no guest called {ALPHA} or {BETA} is running in this notebook.",
                        hint="Start both guests first (their panels' ▶ Start buttons).")


def check_crashed(answer: str) -> Verdict:
    statuses = crashed_guests()
    if not statuses:
        return _none_started()
    evidence = tuple(f"QMP query-status of {n}: {s}" for n, s in statuses)
    crashed = [n for n, s in statuses if s == "guest-panicked"]
    if not crashed:
        return Verdict.fail("no guest of this lesson is crashed right now.", *evidence,
                            hint=f"Press 💥 Crash {ALPHA} above, then ask which one crashed.")
    if not answer:
        return Verdict.fail("type the name of the guest the hypervisor reports crashed.",
                            *evidence)
    if answer.strip().lower() not in crashed:
        return Verdict.fail(f"the hypervisor does not say {answer!r} crashed.", *evidence,
                            hint="Read the QMP query-status column of the crash report: "
                            "'guest-panicked' marks the crashed one.")
    return Verdict.ok(f"QEMU reports {answer.strip()} as guest-panicked.", *evidence)


def check_serving() -> Verdict:
    statuses = dict(crashed_guests())
    if not statuses:
        return _none_started()
    crashed = [n for n, s in statuses.items() if s == "guest-panicked"]
    evidence = tuple(f"QMP query-status of {n}: {s}" for n, s in statuses.items())
    if not crashed:
        return Verdict.fail("no guest is crashed right now, so nothing is proved yet.",
                            *evidence, hint=f"Crash {ALPHA} (💥 above); leave {BETA} alone.")
    healthy = [n for n in (ALPHA, BETA) if n not in crashed]
    if not healthy or statuses.get(healthy[0]) != "running":
        return Verdict.fail("no lesson guest is left running beside the crashed one.",
                            *evidence, hint=f"Start {BETA} again (its panel), keep "
                            f"{ALPHA} crashed, and check.")
    g = registry.get(healthy[0])
    assert g is not None
    served = isolation.serve_check(isolation.web_port(g), 10)
    evidence = (*evidence, f"{g.name}'s web page from the host: {served}")
    if not served.all_ok:
        return Verdict.fail(f"{g.name} did not answer every request.", *evidence,
                            hint="Check again in a moment; look at its console if it stays so.")
    return Verdict.ok(f"{crashed[0]} is crashed and {g.name} answers every request.", *evidence)


# -- the lesson ---------------------------------------------------------------------------------

file = Checkpoint(
    "l4-file", "A file only one guest has",
    f"Create `{FILE_PATH}` in **{ALPHA}** (the box's ✎ button), and not in {BETA}. The kit "
    "asks both guests through their agents, and both web servers from the host.",
    check_file,
    hint=f"Press ✎ Write {FILE_PATH} in {ALPHA}; leave {BETA} alone.",
    solution=f"Write the file in {ALPHA} with its guest agent, e.g. the line below.",
    code=f"kit.labs.isolation.write_file(alpha, {FILE_PATH!r}, {FILE_TEXT!r})",
)
pid1 = Checkpoint(
    "l4-pid1", "Whose PID 1?",
    "Each guest has a process with PID 1, the first program its kernel started. Type the "
    "name of that program (it is the same in both guests).",
    check_pid1, answer_label="the program with PID 1:",
    hint="Press ⟳ Compare the process lists and read the row 'PID 1'.",
    solution="Read it from the table, or ask a guest as below.",
    code="lesson4.pid1.verify(kit.labs.isolation.process_table(alpha).pid1)",
)
oom = Checkpoint(
    "l4-oom", "Out of memory, alone",
    f"Make {ALPHA} run out of memory (🐷 button). The kit looks for the OOM killer's report "
    f"in {ALPHA}'s kernel log, and asks {BETA}'s web server from the host.",
    check_oom,
    hint=f"Press 🐷 Run a memory hog in {ALPHA} and wait for its report.",
    solution="Run the memory hog with the button, or with the line below.",
    code="kit.labs.isolation.memory_hog(alpha, beta)",
)
crashed = Checkpoint(
    "l4-crashed", "Which guest crashed?",
    f"Crash {ALPHA}'s kernel (💥 button), then type the name of the guest that the "
    "**hypervisor** reports crashed.",
    check_crashed, answer_label="the crashed guest:",
    hint="After the crash, the report's 'QMP query-status' column says guest-panicked for "
    "one guest.",
    solution="Crash alpha, then answer alpha: QMP's query-status says guest-panicked.",
    code="alpha.crash()\nlesson4.crashed.verify('alpha')",
)
serving = Checkpoint(
    "l4-serving", "Serving through a neighbour's crash",
    f"While {ALPHA} is crashed, {BETA} must still answer every request from the host. "
    f"Leave {ALPHA} crashed and press Check.",
    check_serving,
    hint=f"{ALPHA} must be crashed (💥) and {BETA} running.",
    solution=f"Crash {ALPHA} and leave {BETA} alone; the kit then requests {BETA}'s page ten "
    "times.",
    code="lesson4.serving.verify()",
)

quiz = Quiz([
    Question("l4-q1", f"You wrote a file in {ALPHA}; {BETA} did not have it. Why?", [
        Choice("The kit deleted it from beta", False,
               "Nothing was deleted: beta was asked and never had it. Its files live in its "
               "own memory and disks, which alpha cannot reach."),
        Choice("Each guest has its own file system, inside its own virtual machine", True,
               "Each guest's OS keeps its own files, libraries and programs; a write in one "
               "touches nothing in the other."),
        Choice("beta is not allowed to read /www", False,
               "beta reads its own /www fine (its web server serves it); it simply has no such "
               "file there."),
    ]),
    Question("l4-q2", "Both guests have a process with PID 1 called init. Is it the same "
             "process?", [
        Choice("Yes: the guests share one init", False,
               "They cannot share it: each guest's kernel started its own, and their kernels' "
               "boot ids differ."),
        Choice("No: each guest's kernel numbers its own processes from 1", True,
               "Two process tables, one per kernel; the same number means nothing across "
               "guests. The host sees each guest as one QEMU process with a host PID."),
        Choice("Yes, it is the host's PID 1", False,
               "The host's PID 1 is another program, in the host's own table."),
    ]),
    Question("l4-q3", f"When {ALPHA}'s kernel panicked, what did {BETA} notice?", [
        Choice("Nothing: it went on answering every request", True,
               "beta runs its own kernel in its own QEMU process; alpha's panic stopped only "
               "alpha's virtual CPUs. QEMU reported the panic (GUEST_PANICKED) and kept alpha "
               "paused for inspection."),
        Choice("beta's kernel panicked too, a moment later", False,
               "The report shows beta running, with every request answered."),
        Choice("beta slowed down while alpha rebooted", False,
               "alpha did not even reboot: QEMU paused it. beta's answers kept their usual "
               "speed."),
    ]),
    Question("l4-q4", f"The memory hog in {ALPHA} was stopped. By whom?", [
        Choice("The host's OOM killer", False,
               "The host was never short: alpha's QEMU could not grow past the memory it was "
               "given (plus QEMU's own needs)."),
        Choice(f"{ALPHA}'s own kernel, whose OOM killer found it had used up {ALPHA}'s RAM",
               True,
               "The guest's RAM is a fixed size (-m). Inside it, the guest kernel ran out and "
               "killed the largest program, as any Linux would; nobody else was touched."),
        Choice(f"{BETA}, which needed the memory back", False,
               "beta cannot take alpha's memory, nor hand out its own: each has a fixed size."),
    ]),
    Question("l4-q5", f"{BETA}'s task ran slower while {ALPHA} burned its vCPUs. Why, if "
             "VMs are isolated?", [
        Choice("alpha's programs ran inside beta", False,
               "They did not: beta's process list never showed them."),
        Choice("Virtual CPUs are host threads; with more busy vCPUs than real CPUs, they take "
               "turns", True,
               "Isolation keeps data and crashes apart, not the shared hardware's capacity: "
               "CPU time, memory bandwidth, caches and disks are shared. Clouds limit it with "
               "quotas, dedicated cores and pinning."),
        Choice("The measurement is wrong: isolated VMs cannot affect each other at all", False,
               "The numbers were measured on this machine. Isolation has limits, and this is "
               "the best-known one: the noisy neighbour."),
    ]),
    Question("l4-q6", "What could still bring down both guests at once?", [
        Choice("A kernel panic in one of them", False,
               "You saw it: one guest's panic stays in that guest."),
        Choice("A problem of the layer they share: the host or the hypervisor", True,
               "Both guests stand on the same host and the same QEMU program; a host crash, a "
               "power cut or a hypervisor bug reaches every guest on it."),
        Choice("A memory hog in one of them", False,
               "You saw it: the guest's own kernel stopped the hog inside its fixed RAM."),
    ]),
])

lesson = Lesson(4, [file, pid1, oom, crashed, serving], quiz)
