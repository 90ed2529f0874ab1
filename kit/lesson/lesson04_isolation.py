"""Lesson 4, Isolation: two guests, the experiments, the exercises, the predictions, the quiz.

The notebook ``lessons/04-isolation.ipynb`` shows these; the tests import
them and check each exercise both ways.  The lesson's two guests are
``alpha`` (two vCPUs: it plays the troublemaker) and ``beta`` (the neighbour
that keeps serving); checks find them by name, however they were started.
The experiments themselves live in :mod:`kit.labs.isolation`; this module
shows their records and checks the learner's tasks.

The exercises are the learner's own work:

1. write a secret of their own into a file in alpha, and show from code that
   beta does not have it (checked in both guests, through their agents);
2. make alpha run out of memory with the memory-hog box (checked in alpha's
   kernel log, with beta's web server asked from the host);
3. crash alpha's kernel on purpose while the host keeps asking beta's web
   page (checked with QMP ``query-status`` of both, and beta's answers).

Two predictions: whether the host can read a password that only alpha's
disk holds, out of alpha's memory (it can: ``dump-guest-memory``), and how
much slower beta works while alpha keeps its vCPUs busy (the noisy
neighbour).  The lesson also shows, live, that the guests are sealed off
from each other's services on the network until a way out is opened: with
its internet door shut, beta cannot reach alpha's port forward on the
host's loopback; opened for a moment, it can.
"""

from __future__ import annotations

import mmap
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from kit.core import validate
from kit.core.errors import InvalidInput
from kit.core.state import GuestState
from kit.hypervisor import fleet, registry
from kit.hypervisor.doors import internet
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.labs import isolation
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest, plant, plant_on_every_boot
from kit.lesson.lesson import Lesson, beside, ensure_running
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget
from kit.widgets.guest_panel import GuestPanel
from kit.widgets.live_diagram import LiveDiagram

ALPHA, BETA = "alpha", "beta"
# Each learner's own pair of host ports, drawn once from this range (their seed):
# learners of one server share its ports, so fixed ones (8041, 8042) collided
# when a class started lesson 4 together.
PORT_RANGE = (30000, 39998)
GUEST_NAMES = (ALPHA, BETA)
MEMORY_MB = 128
SECRET_PATH = "/root/secret.txt"
PASSWORD_PATH = "/etc/kit-password"
FILE_PATH = "/www/hello.txt"  # what beta fetches from alpha through the host
FILE_TEXT = "hello from alpha\n"
HOST_FROM_GUEST = "10.0.2.2"  # the host, as eth0's (restricted) user network shows it
HOST_THROUGH_DOOR = internet.HOST_ADDRESS  # the host, through the internet door

_made: dict[str, Guest] = {}


def secret() -> str:
    """The words this learner writes into alpha (theirs alone, e.g. 'cedar-quartz-417')."""
    return personal.secret("l4-secret")


def password() -> str:
    """A password of this learner's that the kit writes into alpha's disk at every boot."""
    return personal.secret("l4-password")


plant_on_every_boot(ALPHA, PASSWORD_PATH, password)


# -- the guests ----------------------------------------------------------------------------


def guest(name: str) -> Guest:
    """The lesson's guest ``name`` (alpha or beta): the live one, else one made for it."""
    if name not in GUEST_NAMES:
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
    """This learner's port for ``name`` (alpha's, or the next for beta), else a free one."""
    wanted = personal.number("l4-port", *PORT_RANGE, step=2) + GUEST_NAMES.index(name)
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



_latest: dict[str, tuple[Experiment, Guest, Guest]] = {}


def memory_box(a: Guest, b: Guest) -> Experiment:
    box = Experiment(
        f"Let {a.name} run out of memory",
        f"A program in {a.name} grows a string until no memory is left; meanwhile the host "
        f"watches QEMU's memory, its own, and {b.name}'s web page.",
        [(f"🐷 Run a memory hog in {a.name}", isolation.MEMORY_HOG,
          lambda: hog_html(isolation.memory_hog(a, b)))])
    _latest["memory"] = (box, a, b)
    return box


_last_neighbour: list[isolation.NeighbourReport] = []


def measure_neighbour(quiet: Guest, noisy: Guest) -> isolation.NeighbourReport:
    """The noisy-neighbour measurement; the last one is kept for the box to show."""
    report = isolation.noisy_neighbour(quiet, noisy)
    _last_neighbour[:] = [report]
    return report


def neighbour_box(quiet: Guest, noisy: Guest) -> Experiment:
    """The measurement as bars; it shows the prediction's measurement, if one was made."""
    box = Experiment(
        "The noisy neighbour",
        f"Time a fixed task in {quiet.name} (counting to {isolation.CPU_LOOPS:,} in its "
        f"shell), alone, then while {noisy.name} keeps all its {noisy.cpus} vCPUs busy. "
        "Each measurement replaces the last.",
        [("⏱ Measure (again)", "3 timed runs alone, 3 with the neighbour busy, in turns",
          lambda: neighbour_html(measure_neighbour(quiet, noisy)))])
    if _last_neighbour:
        box.report.value = neighbour_html(_last_neighbour[0])
    else:
        box.report.value = markup.box("pending", "commit your prediction above, or press "
                                      "⏱ Measure: the measurement takes a few seconds.")
    return box




# -- the reports, as HTML -----------------------------------------------------------------------


def _yes(flag: bool, yes: str = "✔ yes", no: str = "✖ no") -> str:
    return f"<b>{yes}</b>" if flag else no


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
            f'<div role="img" aria-label="{median:.2f} seconds" '
            f'style="background:var(--jp-brand-color1);height:14px;width:{width:.0f}%">'
            "</div></div>")




# -- a watch on the neighbour's web server -------------------------------------------------


class ServingWatch:
    """The host asks one guest's web page every ``every`` seconds, from a thread.

    It runs from :func:`watch_serving` until stopped (or for ``limit_s`` at
    most), so that a crash elsewhere happens while the neighbour is being
    asked.  Times are kept on the wall clock too, to line up with the
    moment QEMU reported the crash.
    """

    def __init__(self, g: Guest, every: float = 0.05, limit_s: float = 300.0) -> None:
        self.guest = g.name
        self.port = isolation.web_port(g)
        self.every, self.limit_s = every, limit_s
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._requests: list[isolation.Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kit-serving-watch", daemon=True)
        self._thread.start()

    @property
    def log(self) -> isolation.ServiceLog:
        return isolation.ServiceLog(self.port, tuple(self._requests))

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def since(self, wall_time: float) -> isolation.ServiceLog:
        """The requests made from ``wall_time`` (seconds since 1970) on."""
        return isolation.ServiceLog(self.port, tuple(
            r for r in self._requests if self.started_wall + r.at_s >= wall_time))

    def stop(self) -> isolation.ServiceLog:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.log

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() - self.started < self.limit_s:
            self._requests.append(isolation.request_once(self.port, since=self.started))
            self._stop.wait(self.every)

    def _repr_html_(self) -> str:
        state = "is asking" if self.running else "asked"
        return markup.box("hint", escape(
            f"The host {state} {self.guest}'s web page every {self.every * 1000:.0f} ms: "
            f"{self.log}."), word="Watching")


_watch: list[ServingWatch] = []


def watch_serving(g: Guest) -> ServingWatch:
    """Start asking ``g``'s web page from the host every 50 ms (a previous watch stops)."""
    stop_watching()
    watch = ServingWatch(g)
    _watch.append(watch)
    return watch


def stop_watching() -> None:
    while _watch:
        _watch.pop().stop()


def panic_time(g: Guest) -> float | None:
    """When QEMU last reported GUEST_PANICKED for ``g`` (seconds since 1970), if it did."""
    times = [float(e["time"]) for e in list(g.qmp_log) if e.get("event") == "GUEST_PANICKED"]
    return times[-1] if times else None


def requests_strip(log: isolation.ServiceLog, mark_at: float | None = None) -> str:
    """One mark per request: ✔ answered, ✖ not; a 💥 where the crash happened."""
    marks = []
    for request in log.requests:
        if mark_at is not None and request.at_s >= mark_at:
            marks.append("💥")
            mark_at = None
        marks.append("✔" if request.ok else "✖")
    return f'<span style="font-family:monospace;word-break:break-all">{"".join(marks)}</span>'


def crash_report() -> widgets.HTML:
    """What the host saw of the crash: QMP's word on both guests, beta's answers, alpha's end."""
    statuses = dict(crashed_guests())
    if statuses.get(ALPHA) != "guest-panicked":
        return widgets.HTML(markup.box("todo", escape(
            f"{ALPHA} is {statuses.get(ALPHA, 'not running')}: crash its kernel in the exercise "
            "above first, then run this cell again."), word="Not yet"))
    a = registry.get(ALPHA)
    assert a is not None
    rows = [[f"<b>{escape(name)}</b>", escape(status),
             "its kernel panicked; the pvpanic device told QEMU, which paused it"
             if status == "guest-panicked" else "carries on"]
            for name, status in statuses.items()]
    strip = ""
    if _watch:
        watch = _watch[-1]
        crashed_at = panic_time(a)
        mark = None if crashed_at is None else crashed_at - watch.started_wall
        after = watch.since(crashed_at) if crashed_at is not None else watch.log
        strip = (f"<p>Requests to {escape(watch.guest)} from the host, in order "
                 f"({escape(str(watch.log))}; after the crash: {after.answered} of "
                 f"{after.total} answered): {requests_strip(watch.log, mark)}</p>")
    last = "\n".join(line.strip() for line in a.console.tail(12).splitlines()
                     if "panic" in line.lower() or "sysrq" in line.lower())
    return widgets.HTML(markup.text(
        markup.table(["guest", "QMP query-status", "what it means"], rows) + strip
        + f"<p><small>{escape(ALPHA)}'s last words on its console:</small></p>"
        + pre(last or "(no panic line on the console)", "8em")))


# -- the host reads a guest's memory ---------------------------------------------------------


@dataclass(frozen=True)
class MemoryLook:
    """What the host found in one guest's memory, dumped with QMP ``dump-guest-memory``."""

    guest: str
    dump_mb: float
    seconds: float
    looked_for: str
    found: int  # how many times
    contexts: tuple[str, ...]  # the bytes around the first finds, printable ones as they are

    @property
    def readable(self) -> bool:
        return self.found > 0


_last_look: list[MemoryLook] = []


def read_guest_memory(g: Guest, text: str) -> MemoryLook:
    """Dump ``g``'s whole memory to a host file (QMP), and look for ``text`` in it.

    The guest is not asked anything: QEMU holds its RAM as QEMU's own memory
    and writes it out.  The file is deleted as soon as it has been searched.
    """
    folder = Path(tempfile.mkdtemp(prefix="kit-memory-"))
    path = folder / f"{g.name}.dump"
    try:
        start = time.monotonic()
        g.qmp("dump-guest-memory", paging=False, protocol=f"file:{path}", timeout=60)
        seconds = time.monotonic() - start
        needle = text.encode()
        contexts: list[str] = []
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found, at = 0, m.find(needle)
            while at != -1:
                found += 1
                if len(contexts) < 3:
                    raw = m[max(0, at - 24):at + len(needle) + 24]
                    contexts.append("".join(chr(b) if 32 <= b < 127 else "." for b in raw))
                at = m.find(needle, at + 1)
            size = m.size() / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    look = MemoryLook(g.name, size, seconds, text, found, tuple(contexts))
    _last_look[:] = [look]
    return look


def memory_look_html(look: MemoryLook) -> str:
    shown = "the first ones" if look.found > len(look.contexts) else "each"
    found = (f"found <b>{look.found} times</b>; {shown} amid these bytes (a dot for each "
             "byte that is not a printable letter):"
             + markup.code_block("\n".join(look.contexts)) if look.readable else
             "not found in this dump (the page that held it had been reused): run the "
             "measurement again.")
    return markup.text(
        f"<p>QMP <code>dump-guest-memory</code> wrote {escape(look.guest)}'s whole memory "
        f"({look.dump_mb:.0f} MiB) to a file on the host in {look.seconds:.2f} s. The host "
        f"searched it for the password <code>{escape(look.looked_for)}</code>: {found}</p>")


def memory_seen() -> widgets.HTML:
    """The last memory dump's findings (made by the prediction when it is committed)."""
    if not _last_look:
        return widgets.HTML(markup.box("todo", "commit your prediction above first; then run "
                                       "this cell again.", word="Not yet"))
    return widgets.HTML(memory_look_html(_last_look[0]))


# -- the network: sealed, until a way out is opened ---------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One try, from inside a guest, to fetch a page through the host."""

    when: str  # the door's state, in words
    address: str
    reply: str  # the status line, or why nothing came

    @property
    def reached(self) -> bool:
        return " 200 " in self.reply


def _try_through_host(src: Guest, address: str, port: int, path: str) -> str:
    line = (f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {port}")
    result = src.run(line, timeout=15)
    reply = result.stdout.replace("\r", "")
    return reply.splitlines()[0] if reply else f"no answer: {result.stderr.strip() or 'timed out'}"


def attempts_through_the_host(src: Guest, dst: Guest) -> list[Attempt]:
    """From inside ``src``, ask for ``dst``'s page through the host: door shut, open, shut.

    ``dst``'s port forward listens on the host's 127.0.0.1, for the host
    alone.  With its internet door shut, ``src`` reaches nothing of the
    host; open, its connections leave as the host's own, and so reach every
    service of the host's loopback, that forward included.  The door is
    shut again before this returns, whatever happens.
    """
    isolation.write_file(dst, FILE_PATH, FILE_TEXT)
    port = isolation.web_port(dst)
    path = FILE_PATH.removeprefix("/www")
    was_open = src.internet_open
    found = [Attempt("door shut", address, _try_through_host(src, address, port, path))
             for address in (HOST_FROM_GUEST, HOST_THROUGH_DOOR)]
    src.open_internet()
    try:
        found.append(Attempt("door open", HOST_THROUGH_DOOR,
                             _try_through_host(src, HOST_THROUGH_DOOR, port, path)))
    finally:
        if not was_open:
            src.close_internet()
    found.append(Attempt("door shut again", HOST_THROUGH_DOOR,
                         _try_through_host(src, HOST_THROUGH_DOOR, port, path)))
    return found


def through_the_host(src: Guest, dst: Guest) -> widgets.HTML:
    """The attempts of :func:`attempts_through_the_host`, as a table the learner reads."""
    found = attempts_through_the_host(src, dst)
    port = isolation.web_port(dst)
    rows = "".join(
        f"<tr><td>{escape(a.when)}</td><td><code>{escape(a.address)}:{port}</code></td>"
        f"<td>{'✔ reached' if a.reached else '✘ not reached'}: {escape(a.reply)}</td></tr>"
        for a in found)
    return widgets.HTML(markup.text(
        f"<p>Inside <b>{escape(src.name)}</b>, asking for {escape(dst.name)}'s "
        f"<code>{escape(FILE_PATH)}</code> through {escape(dst.name)}'s port forward on the "
        f"host's 127.0.0.1:{port}:</p>"
        f"<table><tr><th>{escape(src.name)}'s internet door</th><th>address</th>"
        f"<th>result</th></tr>{rows}</table>"))


# -- the checks ------------------------------------------------------------------------------


def _both() -> tuple[Guest, Guest] | Verdict:
    found = [find_guest(name) for name in (ALPHA, BETA)]
    for item in found:
        if isinstance(item, Verdict):
            return item
    a, b = found
    assert isinstance(a, Guest) and isinstance(b, Guest)
    return a, b


def _shown(text: str | None) -> str:
    return "no such file" if text is None else repr(text.strip()[:60])


def check_secret(answer: str) -> Verdict:
    pair = _both()
    if isinstance(pair, Verdict):
        return pair
    mine = secret()
    in_alpha, in_beta = (isolation.read_file(g, SECRET_PATH) for g in pair)
    evidence = (f"{ALPHA}: cat {SECRET_PATH} (through its agent) → {_shown(in_alpha)}",
                f"{BETA}: cat {SECRET_PATH} (through its agent) → {_shown(in_beta)}")
    if in_alpha is None or mine not in in_alpha:
        return Verdict.fail(f"{ALPHA} has no {SECRET_PATH} with your secret in it yet.",
                            *evidence, hint=f"alpha.run(\"echo {mine} > {SECRET_PATH}\") "
                            f"writes it, inside {ALPHA}.")
    if in_beta is not None and mine in in_beta:
        return Verdict.fail(f"{BETA} has your secret too: it was written there as well.",
                            *evidence, hint=f"Remove it from {BETA} (beta.run(\"rm "
                            f"{SECRET_PATH}\")): the point is to write in one guest only.")
    if mine in answer:
        return Verdict.fail("your cell's answer holds your secret: it came from "
                            f"{ALPHA}, not from {BETA}.", *evidence,
                            hint=f"Ask {BETA} for the file: beta.run(\"cat {SECRET_PATH}\").")
    return Verdict.ok(f"your secret is on {ALPHA}'s disk only: {BETA}, asked for the same "
                      "file, has none.", *evidence)


def solve_secret() -> object:
    a, b = start_both()
    a.run(f"echo {secret()} > {SECRET_PATH}")
    return b.run(["cat", SECRET_PATH])


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


def solve_oom() -> None:
    a, b = start_both()
    box, *pair = _latest.get("memory", (None, None, None))
    if box is not None and pair[0] is a and pair[1] is b:
        box.run(0)  # the instructor sees the box's report fill in
    else:
        isolation.memory_hog(a, b)


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


def check_crash() -> Verdict:
    statuses = dict(crashed_guests())
    if not statuses:
        return _none_started()
    evidence: list[str] = [f"QMP query-status of {n}: {s}" for n, s in statuses.items()]
    if statuses.get(BETA) == "guest-panicked":
        return Verdict.fail(f"{BETA} is the one that crashed; the task is to crash {ALPHA} "
                            f"while {BETA} serves.", *evidence,
                            hint="Reboot beta (kit.lesson.ensure_running(beta)), then crash "
                            "alpha: alpha.crash().")
    if statuses.get(ALPHA) != "guest-panicked":
        state = statuses.get(ALPHA, "not running")
        return Verdict.fail(f"{ALPHA} is {state}: its kernel has not crashed.", *evidence,
                            hint="alpha.crash() makes alpha's kernel panic: it writes c to "
                            "/proc/sysrq-trigger inside alpha, and waits for QEMU's report.")
    if statuses.get(BETA) != "running":
        return Verdict.fail(f"{BETA} is not running beside the crashed {ALPHA}.", *evidence,
                            hint=f"Start {BETA} again (its panel), keep {ALPHA} crashed, "
                            "and check.")
    a, b = registry.get(ALPHA), registry.get(BETA)
    assert a is not None and b is not None
    crashed_at = panic_time(a)
    watch = next((w for w in _watch if w.guest == BETA), None)
    if watch is not None and crashed_at is not None:
        during = watch.since(crashed_at)
        evidence.append(f"{BETA}'s web page, asked every 50 ms since the crash: {during}")
        if during.total and not during.all_ok:
            return Verdict.fail(f"{BETA} missed requests after {ALPHA} crashed.", *evidence,
                                hint="Look at beta's console; check again in a moment.")
    served = isolation.serve_check(isolation.web_port(b), 10)
    evidence.append(f"{BETA}'s web page from the host now: {served}")
    if not served.all_ok:
        return Verdict.fail(f"{BETA} did not answer every request.", *evidence,
                            hint="Check again in a moment; look at its console if it stays so.")
    return Verdict.ok(f"{ALPHA}'s kernel crashed and QEMU reported it (GUEST_PANICKED); "
                      f"{BETA}, in its own QEMU with its own kernel, kept answering.", *evidence)


def solve_crash() -> None:
    a, b = start_both()
    if not any(w.guest == BETA and w.running for w in _watch):
        watch_serving(b)
        time.sleep(0.5)
    a.crash()


# -- predictions -------------------------------------------------------------------------------

READS_CHOICES = (
    "Yes: the host can read it in alpha's memory",
    "No: a virtual machine's memory is sealed off from its host",
    "Only if alpha's kernel agrees to hand it over",
)


def measure_host_reads() -> float:
    """Dump alpha's memory from the host and look for the password only alpha's disk holds."""
    a = ensure_running(guest(ALPHA))
    found = isolation.read_file(a, PASSWORD_PATH)
    if found is None or password() not in found:
        plant(a, PASSWORD_PATH, password())
    a.run(["cat", PASSWORD_PATH])  # a program in alpha reads its password, as one would
    look = read_guest_memory(a, password())
    return 0.0 if look.readable else 1.0


def _reads_words(guess: float, measured: float) -> str:
    look = _last_look[0] if _last_look else None
    times = f" ({look.found} times)" if look is not None else ""
    return ("The host found it" + times + " with one QMP command, without asking alpha: QEMU "
            "holds a guest's RAM as its own memory, so whoever controls the host can read "
            "every byte. Only memory encryption changes that: AMD SEV and Intel TDX encrypt a "
            "guest's memory with keys the host never sees." if measured == 0 else
            "Not found this time, but the dump was the guest's whole memory, readable by the "
            "host: measure again.")


def measure_slowdown() -> float:
    a, b = start_both()
    return measure_neighbour(b, a).slowdown


def _slowdown_words(guess: float, measured: float) -> str:
    report = _last_neighbour[0] if _last_neighbour else None
    if report is None:
        return ""
    return (f"This host has {report.host_cpus} real CPUs for {report.burners + 1} busy virtual "
            f"CPUs (its load average was {report.host_load:.1f} as it began): {BETA}'s one "
            "vCPU thread had to take turns with alpha's. Nothing of alpha entered beta; they "
            "only shared the processors.")


host_reads = Prediction(
    "l4-p-host-reads",
    f"At every boot the kit writes a password of yours into `{PASSWORD_PATH}` on {ALPHA}'s "
    f"disk. {BETA} cannot see it. Can the **host** read it, from outside, without asking "
    f"{ALPHA}?", measure_host_reads, choices=READS_CHOICES, explain=_reads_words,
)
slowdown = Prediction(
    "l4-p-noisy",
    f"{BETA} counts to {isolation.CPU_LOOPS:,} in its shell, first while {ALPHA} is quiet, "
    f"then while {ALPHA} keeps both of its vCPUs busy. How many **times as long** will "
    f"{BETA}'s count take with the busy neighbour? (1 means no change.)",
    measure_slowdown, unit="times", explain=_slowdown_words,
)


# -- the lesson ---------------------------------------------------------------------------------

secret_file = Checkpoint(
    "l4-secret", "A file only one guest has",
    f"Write **your secret** (the cell above prints it) into `{SECRET_PATH}` inside **{ALPHA}**, "
    f"then ask **{BETA}** for the same file, from code, and give what {BETA} answered.",
    check_secret, takes_answer=True, solve=solve_secret,
    hint=f"alpha.run(\"echo YOUR-SECRET > {SECRET_PATH}\") writes inside {ALPHA}; "
    f"beta.run(\"cat {SECRET_PATH}\") asks {BETA}.",
    solution=f"Write in {ALPHA} with its agent, then ask {BETA} the same way:",
    code=f'alpha.run(f"echo {{lesson4.secret()}} > {SECRET_PATH}")\n'
    f'in_beta = beta.run("cat {SECRET_PATH}")',
)
oom = Checkpoint(
    "l4-oom", "Out of memory, alone",
    f"Make {ALPHA} run out of memory with the box's 🐷 button, then press **Check**. The kit "
    f"looks for the OOM killer's report in {ALPHA}'s kernel log, and asks {BETA}'s web server "
    "from the host.",
    check_oom, solve=solve_oom,
    hint=f"Press 🐷 Run a memory hog in {ALPHA} and wait for its report.",
    solution="Run the memory hog with the button, or with the line below.",
    code="kit.labs.isolation.memory_hog(alpha, beta)",
)
crash = Checkpoint(
    "l4-crash", "Crash one, the other serves",
    f"While the host keeps asking {BETA}'s web page, make **{ALPHA}'s kernel crash** on "
    f"purpose, from your cell. The kit asks QEMU for the state of both guests, and {BETA}'s "
    "web server for its page.",
    check_crash, solve=solve_crash,
    hint="alpha.crash() makes alpha's kernel panic (it writes c to /proc/sysrq-trigger inside "
    "alpha) and waits until QEMU reports it.",
    solution=f"Crash {ALPHA}'s kernel; leave {BETA} alone:",
    code="crashed = alpha.crash()",
)

quiz = Quiz([
    Question("l4-q1", f"You wrote a file in {ALPHA}; {BETA} did not have it. Why?", [
        Choice("The kit deleted it from beta to keep them apart", False,
               "Nothing was deleted: beta was asked and never had it. Its files live in its "
               "own memory and disks, which alpha cannot reach."),
        Choice("Each guest keeps its own file system, on its own disk", True,
               "Each guest's OS keeps its own files, libraries and programs; a write in one "
               "touches nothing in the other."),
        Choice("beta is not allowed to read files in /root", False,
               "beta reads its own /root fine (it runs as root); it simply has no such file "
               "there."),
    ]),
    Question("l4-q2", "Both guests have a process with PID 1 called init. Is it the same "
             "process?", [
        Choice("Yes: the two guests share a single init", False,
               "They cannot share it: each guest's kernel started its own, and their kernels' "
               "boot ids differ."),
        Choice("No: each kernel numbers its own processes", True,
               "Two process tables, one per kernel; the same number means nothing across "
               "guests. The host sees each guest as one QEMU process with a host PID."),
        Choice("Yes: it is the host's PID 1, seen from inside", False,
               "The host's PID 1 is another program, in the host's own table."),
    ]),
    Question("l4-q3", f"When {ALPHA}'s kernel panicked, what did {BETA} notice?", [
        Choice("Nothing: it kept answering every request", True,
               "beta runs its own kernel in its own QEMU process; alpha's panic stopped only "
               "alpha's virtual CPUs. QEMU reported the panic (GUEST_PANICKED) and kept alpha "
               "paused for inspection."),
        Choice("Its kernel panicked too, a moment after alpha's", False,
               "The report shows beta running, with every request answered."),
        Choice("It slowed down while alpha was restarting", False,
               "alpha did not even restart: QEMU paused it. beta's answers kept their usual "
               "speed."),
    ]),
    Question("l4-q4", f"The memory hog in {ALPHA} was stopped. By whom?", [
        Choice("The host's OOM killer, to protect the host", False,
               "The host was never short: alpha's QEMU could not grow past the memory it was "
               "given (plus QEMU's own needs)."),
        Choice(f"{ALPHA}'s own kernel", True,
               "The guest's RAM is the size the host gave it (-m). Inside it, the guest kernel "
               "ran out and killed the largest program, as any Linux would; nobody else was "
               "touched."),
        Choice(f"{BETA}, which needed the memory back", False,
               "beta cannot take alpha's memory, nor hand out its own: only the host decides "
               "how much each guest has."),
    ]),
    Question("l4-q5", f"{BETA}'s task ran slower while {ALPHA} burned its vCPUs. Why, if "
             "VMs are isolated?", [
        Choice("alpha's busy loops ran inside beta as well", False,
               "They did not: beta's process list never showed them."),
        Choice("Their vCPU threads share the host's real CPUs", True,
               "Virtual CPUs are host threads; with more busy vCPUs than real CPUs, they take "
               "turns. Isolation keeps data and crashes apart, not the shared hardware's "
               "capacity. Clouds limit it with quotas, dedicated cores and pinning."),
        Choice("The measurement is wrong: VMs cannot affect each other", False,
               "The numbers were measured on this machine. Isolation has limits, and this is "
               "the best-known one: the noisy neighbour."),
    ]),
    Question("l4-q6", "What could still bring down, or break into, both guests at once?", [
        Choice("A kernel panic in one of them", False,
               "You saw it: one guest's panic stays in that guest."),
        Choice("A flaw in the host's kernel, KVM or QEMU", True,
               "Every guest stands on the same host kernel and hypervisor: a crash there, or a "
               "security flaw that lets a guest break out, reaches every guest on the host."),
        Choice("A memory hog running in one of the guests", False,
               "You saw it: the guest's own kernel stopped the hog inside the RAM it was given."),
    ]),
    Question("l4-q7", f"Who can read the secret you wrote inside {ALPHA}?", [
        Choice(f"{ALPHA}, and anyone who controls the host", True,
               "QEMU holds the guest's memory and disk on the host: dump-guest-memory found a "
               "password in it. Only memory encryption (AMD SEV, Intel TDX) keeps a host out."),
        Choice(f"{ALPHA} alone: a VM's memory is sealed", False,
               "The host dumped alpha's memory with one QMP command and found the password in "
               "it, without asking alpha."),
        Choice(f"{ALPHA}, and {BETA} too, through the network", False,
               "Even with its internet door open, beta reached alpha's web server, not its "
               "files: only what alpha serves can be fetched."),
    ]),
    Question("l4-q8", f"With its internet door open, {BETA} fetched {ALPHA}'s page through "
             "the host. How?", [
        Choice(f"Its connection left as the host's own, and {ALPHA}'s forward listens on the "
               "host's 127.0.0.1", True,
               "The door is outbound NAT through the host: whatever listens on the host's "
               "loopback, other guests' forwards included, is one connection away."),
        Choice("The two guests share one network card", False,
               "Each guest has cards of its own; the path went out of beta, through the host, "
               "and back in through alpha's forward."),
        Choice(f"{ALPHA}'s forward is open to every computer on the network", False,
               "The kit binds forwards to 127.0.0.1: only programs on this host, and guests "
               "whose way out leads through it, can use them."),
    ]),
])


class IsolationLesson(Lesson):
    """Lesson 4: at the end, also stop the watch on beta's web server."""

    def finish(self) -> None:
        stop_watching()
        super().finish()


lesson = IsolationLesson(4, [secret_file, oom, crash], quiz, [host_reads, slowdown])
