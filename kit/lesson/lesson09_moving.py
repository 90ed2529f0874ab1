"""Lesson 9, Moving a running computer: the learner's web server moved into a new QEMU, live.

The notebook ``lessons/09-moving.ipynb`` shows these; the tests import them
and check each exercise both ways.

The learner's own guest ``l9-web`` serves HTTP through a forward on a host
port of their own.  The kit notes what its kernel says of itself as soon as
it has booted (:class:`Before`: the QEMU process, the boot id, the uptime,
the processes), so that after a move it can show what stayed and what
changed.  :class:`LatencyChart` asks for the guest's page every 10 ms
(:mod:`kit.labs.latency`) and draws how long each request took, the failed
ones, and the longest time without an answer.

The exercises are the learner's own work:

1. leave a mark of their own in the guest (a page with their word), checked
   from the host through the forward;
2. move the guest with ``g.migrate()``, checked by what the host and the
   guest's kernel say: a new QEMU process, the same boot id, an uptime that
   went on, the mark still served;
3. read the pause off the chart and type it, checked against what the
   chart's own requests measured, so only a move the chart watched passes.

One prediction comes first: how long the web server will not answer.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from kit.applications import apps
from kit.core import validate
from kit.core.errors import GuestError, KitError
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.hypervisor.migration import MigrationReport
from kit.infrastructure import net
from kit.labs import isolation, latency
from kit.labs.latency import LatencySampler, Sample
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest, plant
from kit.lesson.lesson import Lesson, ensure_running
from kit.lesson.lesson07_limitations import guest_memory_mb
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup, plots
from kit.view.markup import escape
from kit.widgets.base import KitWidget

NAME = "l9-web"
PROBE = "l9-probe"  # the prediction's own guest: the learner's moves stay theirs to make
PORT_RANGE = (40000, 44999)  # each learner's own host port, drawn from their seed
MARK_PATH = "/www/mark.txt"
SETTLE_S = 2.0  # the chart keeps watching this long after a move, to show the recovery
REDRAW_S = 1.0  # the chart is drawn again at most this often while it watches
MOST_POINTS = 1500  # drawn in the whole view; more are merged (the slowest of each bucket)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")

_made: dict[str, Guest] = {}
_watches: list[LatencySampler] = []  # the lesson's watches, newest last
_views: weakref.WeakSet[KitWidget] = weakref.WeakSet()
_lock = threading.Lock()


def mark() -> str:
    """The word this learner leaves in their web server, e.g. 'cedar-quartz-417'."""
    return personal.secret("l9-mark")


def _port() -> int:
    """This learner's host port for the web server, else a free one."""
    wanted = personal.number("l9-port", *PORT_RANGE)
    return wanted if validate.port_is_free(wanted) else net.free_port()


def guest() -> Guest:
    """The learner's web server: the live guest called ``l9-web``, else one made for it."""
    live = registry.get(NAME)
    if live is not None:
        return live
    made = _made.get(NAME)
    if made is None or made.state == GuestState.STOPPED:
        made = _made[NAME] = Guest(NAME, memory_mb=guest_memory_mb(),
                                   forwards={_port(): apps.WEB_PORT}, replace=True)
    return made


def url(g: Guest, path: str = "/") -> str:
    return f"http://{net.LOOPBACK}:{apps.host_port(g)}/{path.lstrip('/')}"


# -- what the guest was before it moved ---------------------------------------------------------


@dataclass(frozen=True)
class Before:
    """What the host and the guest's kernel said right after the guest booted."""

    guest: Guest
    pid: int
    inside: isolation.ProcessTable  # boot id, uptime, processes: the guest's own words
    at: float  # time.monotonic() when it was asked
    mark_seen: bool = False  # the learner's mark was served before the move


_before: list[Before] = []


def before() -> Before | None:
    """The note taken on the learner's guest as it booted, if the lesson has one."""
    return _before[0] if _before else None


def remember_before(g: Guest) -> Before | None:
    """Note what ``g`` is now, unless it has moved since it booted (then the note stays).

    Taken once per boot: the note must describe the guest *before* any move.
    """
    with _lock:
        known = before()
        if known is not None and known.guest is g and (known.pid == g.pid
                                                       or g.last_migration is not None):
            return known
        if g.last_migration is not None or g.pid is None:
            return known
        noted = Before(g, g.pid, isolation.process_table(g), time.monotonic())
        _before[:] = [noted]
        return noted


def _note_mark_seen(g: Guest) -> None:
    with _lock:
        known = before()
        if known is not None and known.guest is g and known.pid == g.pid:
            _before[:] = [Before(known.guest, known.pid, known.inside, known.at, True)]


def _on_state(g: Guest, state: str) -> None:
    """A fresh boot of the learner's guest: note it (off the kit loop, which must not wait)."""
    if (g.name != NAME or state != GuestState.RUNNING or g.moving_to is not None
            or g.last_migration is not None):
        return
    known = before()
    if known is not None and known.guest is g and known.pid == g.pid:
        return
    threading.Thread(target=_remember_quietly, args=(g,), daemon=True,
                     name="kit-l9-before").start()


def _remember_quietly(g: Guest) -> None:
    with contextlib.suppress(KitError):  # the guest went away: the check says so later
        remember_before(g)


registry.subscribe(_on_state)


# -- watching the page -----------------------------------------------------------------------


def start_watch(g: Guest) -> LatencySampler:
    """Ask for ``g``'s page every 10 ms from now on (one watch at a time: older ones stop)."""
    port = apps.host_port(g)
    stop_watching()
    sampler = LatencySampler(port, pid_of=lambda: g.pid,
                             keep_going=lambda: g.state.has_process, label=g.name)
    with _lock:
        _watches[:] = [*_watches[-3:], sampler]
    return sampler.start()


def stop_watching() -> None:
    """Stop every watch of the lesson (the notebook's last cell; a new watch; reset)."""
    for sampler in list(_watches):
        sampler.stop()


def answers_after(sampler: LatencySampler, since_s: float) -> int:
    return sum(1 for s in sampler.samples() if s.ok and s.at_s > since_s)


def wait_for_answers(sampler: LatencySampler, count: int = 5, since_s: float = -1.0,
                     seconds: float = 20.0) -> bool:
    """Wait until the watch has ``count`` answers after ``since_s``; False if it never had."""
    return eventually(lambda: answers_after(sampler, since_s), lambda n: n >= count,
                      seconds=seconds, every=0.05) >= count


def watch_move(g: Guest) -> tuple[LatencySampler, MigrationReport]:
    """Move ``g`` while a watch asks for its page: a few answers before, a few after."""
    sampler = start_watch(g)
    try:
        wait_for_answers(sampler)
        report = g.migrate()
        wait_for_answers(sampler, since_s=sampler.seconds())
    finally:
        sampler.stop("stopped after the move")
    return sampler, report


def last_watched_move(name: str | None = NAME) -> LatencySampler | None:
    """The newest watch (of guest ``name``; None: of any) that saw the guest move."""
    for sampler in reversed(_watches):
        if name is not None and sampler.label != name:
            continue
        if latency.moved_at(sampler.samples()):
            return sampler
    return None


# -- the chart ----------------------------------------------------------------------------


def _thinned(points: list[Sample]) -> list[Sample]:
    """At most :data:`MOST_POINTS` samples: the slowest of each run of neighbours."""
    if len(points) <= MOST_POINTS:
        return points
    size = -(-len(points) // MOST_POINTS)
    return [max(points[i:i + size], key=lambda s: s.ms) for i in range(0, len(points), size)]


def _draw(axes: Any, samples: Sequence[Sample], gap: latency.Gap | None, title: str,
          thin: bool) -> None:
    answered = [s for s in samples if s.ok]
    if thin:
        answered = _thinned(answered)
    failed = [s for s in samples if not s.ok]
    axes.plot([s.at_s for s in answered], [max(s.ms, 0.1) for s in answered], ls="none",
              color=plots.BLUE, marker="o", markersize=2.5, label="answered: time it took")
    if failed:
        axes.scatter([s.at_s for s in failed], [max(s.ms, 0.1) for s in failed], marker="x",
                     color="#D55E00", s=18, zorder=3,
                     label=f"failed ({', '.join(sorted({s.error for s in failed}))})")
    for index, when in enumerate(latency.moved_at(samples)):
        axes.axvline(when, color="#555555", ls="--", lw=0.8,
                     label="from here, the new QEMU holds the guest" if index == 0 else None)
    if gap is not None:
        axes.axvspan(gap.start_s, gap.end_s, color=plots.ORANGE, alpha=0.4, lw=0,
                     label=f"longest gap without an answer: {gap.ms:.0f} ms")
        axes.axvline((gap.start_s + gap.end_s) / 2, color=plots.ORANGE, lw=1.2, alpha=0.7)
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("seconds since the watch began", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.spines[["top", "right"]].set_visible(False)


def chart_svg(samples: Sequence[Sample]) -> bytes:
    """Request times over the watch; failures, the move and the longest gap marked.

    Once a gap spans a move, a second panel zooms in on it, where its width
    can be read.
    """
    gap = latency.longest_gap(samples)
    zoom = gap is not None and gap.spans_move
    figure = plots.new_figure(8.0 if zoom else 6.0, 3.0)
    if zoom:
        whole, near = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    else:
        whole, near = figure.subplots(), None
    _draw(whole, samples, gap, "every request of the watch", thin=True)
    whole.set_ylabel("request took (ms, log scale)", fontsize=8)
    if near is not None and gap is not None:
        window = [s for s in samples if gap.start_s - 0.3 <= s.at_s <= gap.end_s + 0.3]
        _draw(near, window, gap, f"around the move: {gap.ms:.0f} ms without an answer",
              thin=False)
    handles, labels = whole.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False,
                  bbox_to_anchor=(0.5, -0.2))
    return plots.to_svg(figure)


def watch_words(sampler: LatencySampler) -> str:
    """The watch in one line: requests, answers, failures, the longest gap, who serves now."""
    samples = sampler.samples()
    answered = sum(s.ok for s in samples)
    gap = latency.longest_gap(samples)
    longest = f"; longest gap without an answer: <b>{gap.ms:.0f} ms</b>" if gap else ""
    moved = latency.moved_at(samples)
    pids = [s.pid for s in samples if s.pid is not None]
    served = (f"QEMU pid {pids[0]}, then pid {pids[-1]}" if moved and pids else
              f"QEMU pid {pids[-1]}" if pids else "no QEMU yet")
    state = ("watching" if sampler.running else
             escape(sampler.why_stopped or "stopped"))
    return (f"{state}: <code>http://127.0.0.1:{sampler.port}{escape(sampler.path)}</code> every "
            f"{sampler.every * 1000:.0f} ms for {sampler.seconds():.1f} s · {len(samples)} "
            f"requests, {answered} answered, {len(samples) - answered} failed · served by "
            f"{served}{longest}")


class LatencyChart(KitWidget):
    """Ask the learner's web server for its page every 10 ms, and draw what each request took.

    It starts watching at once if the guest runs (``start=False`` waits for
    the button); it stops by itself a couple of seconds after it has seen the
    guest move, after three minutes, when the guest stops, or on Stop.
    """

    def __init__(self, start: bool = True) -> None:
        super().__init__("latency chart")
        self.watch_button = widgets.Button(description="Watch", icon="play",
                                           tooltip="Ask for the page every 10 ms, from now on",
                                           layout=widgets.Layout(width="auto"))
        self.stop_button = widgets.Button(description="Stop", icon="stop",
                                          layout=widgets.Layout(width="auto"))
        self.watch_button.on_click(self._callback("starting the watch", self.start))
        self.stop_button.on_click(self._callback("stopping the watch", self.stop))
        self.status = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT,
                                  layout=widgets.Layout(display="none"))
        self.sampler: LatencySampler | None = None
        self.drawer: threading.Thread | None = None
        self._set_body(widgets.HBox([self.watch_button, self.stop_button]), self.status,
                       self.plot)
        _views.add(self)
        self._on_close(self.stop)
        if start:
            self.attempt("starting the watch", self.start)
        else:
            self.status.value = markup.text("<i>Press Watch to start asking.</i>")

    def start(self) -> None:
        """Start a new watch of the learner's guest (the last one's chart is replaced)."""
        live = registry.get(NAME)
        if live is None or live.state != GuestState.RUNNING:
            self.status.value = markup.text(
                f"<i>Your web server {NAME} is not running: start it (section 1), then "
                "press Watch.</i>")
            return
        remember_before(live)
        self.sampler = start_watch(live)
        self.status.value = markup.text(watch_words(self.sampler))
        self.drawer = self._in_background("drawing the chart", self._follow)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def refresh(self) -> None:
        """Draw the watch as it is now (its thread does it every second while it watches)."""
        if self.sampler is None:
            return
        samples = self.sampler.samples()
        self.status.value = markup.text(watch_words(self.sampler))
        if samples:
            self.plot.value = chart_svg(samples)
            self.plot.layout.display = "block"

    def _follow(self) -> None:
        """While the watch runs: redraw now and then, never while the guest is moving.

        Drawing holds Python's lock for a tenth of a second; during a move it
        would only delay the requests it is there to time.
        """
        sampler = self.sampler
        assert sampler is not None
        live = registry.get(NAME)
        drawn = 0.0
        while sampler.running and not self._closed:
            moved = latency.moved_at(sampler.samples())
            if moved and sampler.seconds() - moved[0] >= SETTLE_S:
                sampler.stop(f"stopped {SETTLE_S:g} s after the move")
                break
            moving = live is not None and live.moving_to is not None
            if not moving and time.monotonic() - drawn >= REDRAW_S:
                self.refresh()
                drawn = time.monotonic()
            time.sleep(0.1)
        sampler.stop()
        if not self._closed:
            self.refresh()


# -- what stayed, what changed -----------------------------------------------------------------


def _mark_served(g: Guest) -> str | None:
    """The text the guest serves at /mark.txt through the forward, or None."""
    try:
        reply = apps.fetch(apps.host_port(g), "/mark.txt", timeout=5)
    except (OSError, GuestError):
        return None
    return reply.body.strip() if reply.ok else None


def stayed_rows(was: Before, g: Guest, now: isolation.ProcessTable,
                served: str | None) -> list[list[str]]:
    """Before and now, row by row, with what each row means."""
    elapsed = time.monotonic() - was.at
    moved = g.pid != was.pid
    httpd_then = ", ".join(map(str, was.inside.pids_named("httpd"))) or "—"
    httpd_now = ", ".join(map(str, now.pids_named("httpd"))) or "—"
    rows = [
        ["the host's QEMU process (pid)", str(was.pid), str(g.pid),
         "<b>changed</b>: a new process holds the guest" if moved else "the same: not moved yet"],
        ["the guest kernel's boot id", f"<code>{escape(was.inside.boot_id[:13])}…</code>",
         f"<code>{escape(now.boot_id[:13])}…</code>",
         "the same kernel, never booted again" if now.boot_id == was.inside.boot_id else
         "<b>different</b>: the kernel booted again"],
        ["uptime, on the guest's clock", f"{was.inside.uptime_s:.1f} s",
         f"{now.uptime_s:.1f} s",
         f"went on ({now.uptime_s - was.inside.uptime_s:+.1f} s while {elapsed:.1f} s passed "
         "on the host)" if now.uptime_s >= was.inside.uptime_s else "<b>started again</b>"],
        ["processes inside (<code>ps</code>)", str(len(was.inside.processes)),
         str(len(now.processes)), "the same programs (the agent's own shell comes and goes)"],
        ["the web server's pid inside (httpd)", httpd_then, httpd_now,
         "the same process, never restarted" if httpd_then == httpd_now else "changed"],
        [f"your mark, <code>{MARK_PATH}</code> from the host",
         "seen" if was.mark_seen else "not seen yet", escape(served or "not served"),
         "still served: the guest's files are in its memory, which moved with it"
         if served == mark() else "write it first (exercise 1)"],
    ]
    report = g.last_migration
    if moved and report is not None:
        memory = ("shared: both QEMUs map one memfd, none was copied" if report.memory_shared
                  else f"copied ({report.transferred_mb:.1f} MiB sent)")
        rows.append(["the guest's memory", "", "", memory])
        rows.append(["paused, as QEMU counts it (stop to cont)", "", f"{report.paused_ms:.0f} ms",
                     "the guest's whole stop; the chart's gap adds the forward reopening"])
    return rows


def what_stayed() -> widgets.HTML:
    """Before the move and now, asked live of the host and of the guest's kernel."""
    g = registry.get(NAME)
    was = before()
    if g is None or g.state != GuestState.RUNNING:
        return widgets.HTML(markup.text(f"<i>{NAME} is not running: start it (section 1).</i>"))
    if was is None or was.guest is not g:
        return widgets.HTML(markup.text(
            f"<i>The lesson has no note of {NAME} from before a move: it is taken as the guest "
            "boots. Start it again with section 1's cell.</i>"))
    rows = stayed_rows(was, g, isolation.process_table(g), _mark_served(g))
    return widgets.HTML(markup.text(markup.table(
        ["", "after it booted", "now", "what it means"], rows)))


# -- exercise 1: leave your mark -----------------------------------------------------------


def check_mark() -> Verdict:
    found = find_guest(NAME)
    if isinstance(found, Verdict):
        return found
    try:
        where = url(found, "/mark.txt")
        reply = apps.fetch(apps.host_port(found), "/mark.txt", timeout=5)
    except GuestError as error:
        return Verdict.fail(error.message, hint=error.hint or "")
    except OSError as error:
        return Verdict.fail(f"nothing answered at {where}: {error}.",
                            hint="Is the guest's web server running? Its panel shows it.")
    if reply.status == 404:
        return Verdict.fail(f"{where} answers 404: your guest serves no mark.txt yet.",
                            hint=f"my_web.run(...) runs a shell command inside: write your "
                            f"mark with echo into {MARK_PATH}.")
    text = reply.body.strip()
    if text != mark():
        return Verdict.fail(f"{where} says {text[:60]!r}, not your mark {mark()!r}.",
                            hint=f"Write exactly {mark()} into {MARK_PATH}.")
    _note_mark_seen(found)
    return Verdict.ok(f"your mark is served from inside {NAME}, through the forward.",
                      f"GET {where} -> {reply.status}: {text}",
                      f"the guest's QEMU is host process {found.pid}")


def solve_mark() -> None:
    plant(ensure_running(guest()), MARK_PATH, mark())


# -- exercise 2: move it ----------------------------------------------------------------


def check_moved() -> Verdict:
    found = find_guest(NAME)
    if isinstance(found, Verdict):
        return found
    was = before()
    if was is None or was.guest is not found:
        return Verdict.fail(f"the lesson has no note of {NAME} from before a move.",
                            hint="Start it with section 1's cell (the note is taken as it "
                            "boots), then move it.")
    if found.pid == was.pid:
        return Verdict.fail(f"{NAME} still runs in the QEMU it booted in (host pid {was.pid}).",
                            hint="my_web.migrate() moves it into a new QEMU.")
    now = isolation.process_table(found)
    served = _mark_served(found)
    evidence = (f"host: QEMU pid {was.pid} then, {found.pid} now",
                f"guest: boot id {was.inside.boot_id[:13]}… then, {now.boot_id[:13]}… now",
                f"guest: uptime {was.inside.uptime_s:.1f} s then, {now.uptime_s:.1f} s now",
                f"your mark through the forward: {served or 'not served'}")
    if now.boot_id != was.inside.boot_id or now.uptime_s < was.inside.uptime_s:
        return Verdict.fail(f"{NAME} has a new QEMU, but its kernel booted again: it was "
                            "restarted, not moved.", *evidence,
                            hint="Start it again with section 1's cell, then move it with "
                            "my_web.migrate(), which never stops it.")
    if was.mark_seen and served != mark():
        return Verdict.fail("your mark is no longer served: the guest did not come across "
                            "whole.", *evidence, hint="Write it again, then move the guest.")
    report = found.last_migration
    how = f" ({report})" if report is not None else ""
    return Verdict.ok(f"{NAME} moved into a new QEMU process{how}, and its kernel went on "
                      "as if nothing had happened: the same boot id, an uptime that kept "
                      "counting, the same files.", *evidence)


def solve_moved() -> MigrationReport:
    g = ensure_running(guest())
    remember_before(g)
    running = next((s for s in reversed(_watches) if s.running and s.label == NAME), None)
    if running is not None:  # let the chart see the server answer before the move
        wait_for_answers(running)
    return g.migrate()


# -- exercise 3: read the pause ------------------------------------------------------------


def tolerance_ms(gap_ms: float) -> float:
    """How far a reading off the chart may be from the measured gap."""
    return max(5.0, 0.15 * gap_ms)


def check_gap(answer: str) -> Verdict:
    found = _NUMBER.search(answer)
    if found is None:
        return Verdict.fail(f"{answer!r} is not a number of milliseconds.",
                            hint="Type the number alone, e.g. 80.")
    value = float(found.group().replace(",", "."))
    watched = last_watched_move()
    if watched is None:
        return Verdict.fail(f"the chart has not watched {NAME} move yet.",
                            hint="Run the chart's cell (or press its Watch button), move your "
                            "guest while it watches (exercise 2), then read the gap.")
    samples = watched.samples()
    gap = latency.longest_gap(samples)
    if gap is None:
        return Verdict.fail("the chart saw no answer after the move yet.",
                            hint="Wait a second for the page to answer again, then check.")
    evidence = (f"{len(samples)} requests, {sum(not s.ok for s in samples)} failed",
                f"longest gap: {gap.start_s:.3f} s to {gap.end_s:.3f} s, {gap.ms:.0f} ms, "
                f"{gap.failed} failed requests in it"
                + (", across the move" if gap.spans_move else ""))
    if abs(value - gap.ms) > tolerance_ms(gap.ms):
        return Verdict.fail(f"{value:g} ms is not the longest gap the chart measured.",
                            hint="Look for the orange band, where no request was answered: its "
                            "width, in ms, is written in the legend and above the zoom.")
    return Verdict.ok(f"{value:g} ms: that is how long your web server did not answer while "
                      "it moved, seen from the host the way a customer would see it.",
                      *evidence)


def solve_gap() -> int:
    watched = last_watched_move()
    if watched is None:
        watched, _ = watch_move(ensure_running(guest()))
    moved = latency.moved_at(watched.samples())
    wait_for_answers(watched, count=1, since_s=moved[0] if moved else -1.0)
    gap = latency.longest_gap(watched.samples())
    return round(gap.ms) if gap is not None else 0


# -- the prediction ----------------------------------------------------------------------------


_probe_reports: list[MigrationReport] = []


def probe_move() -> LatencySampler:
    """Move a guest of the lesson's own (not the learner's) under a watch; stop it after."""
    probe = Guest(PROBE, memory_mb=guest_memory_mb(), forwards={net.free_port(): apps.WEB_PORT},
                  replace=True).start()
    try:
        sampler, report = watch_move(probe)
    finally:
        probe.stop()
    _probe_reports[:] = [report]
    return sampler


def measure_pause_ms() -> float:
    watched = last_watched_move(None) or probe_move()
    gap = latency.longest_gap(watched.samples())
    return gap.ms if gap is not None else float("nan")


def _explain_pause(guess: float, measured: float) -> str:
    report = _probe_reports[0] if _probe_reports else None
    paused = (f"QEMU itself paused the guest for {report.paused_ms:.0f} ms of it (from stop to "
              "cont); " if report is not None else "")
    return (f"{paused}the rest is the forward closing as the guest stops and opening again in "
            "the new QEMU. Inside, nothing noticed: no program was stopped or started.")


pause = Prediction(
    "l9-p-pause",
    "A running web server is moved into a new QEMU process while the host asks for its page "
    "every 10 ms. For how long will it not answer?",
    measure_pause_ms, unit="ms", explain=_explain_pause,
)


# -- the lesson ---------------------------------------------------------------------------

mark_written = Checkpoint(
    "l9-mark", "Leave your mark",
    f"Write your mark (the cell prints it) into `{MARK_PATH}` inside your guest, with one line "
    "of code. The kit then asks for it from the host, through the port forward, as a visitor "
    "would.",
    check_mark, solve=solve_mark,
    hint="my_web.run(\"echo WORD > /www/mark.txt\") runs that shell line inside the guest; "
    "put your mark in place of WORD.",
    solution="Run echo inside the guest, through its agent:",
    code="written = my_web.run(f\"echo {lesson9.mark()} > /www/mark.txt\")",
)
moved = Checkpoint(
    "l9-moved", "Move it",
    f"Move your running guest into a new QEMU process with one line of code, while the chart "
    f"watches. The kit then compares what it noted after {NAME} booted with what the host and "
    "the guest's kernel say now.",
    check_moved, solve=solve_moved,
    hint="A Guest has a method for it: my_web.migrate(); keep its report.",
    solution="Migrate the guest, live:",
    code="report = my_web.migrate()",
)
gap = Checkpoint(
    "l9-gap", "Read the pause",
    "On the chart, read how long your web server gave no answer while it moved (the longest "
    "gap, in milliseconds) and put that number in the cell.",
    check_gap, solve=solve_gap, takes_answer=True,
    hint="The orange band is the time between the last answer from the old QEMU and the first "
    "from the new one; its width in ms is written beside it.",
    solution="Type the number the chart shows for the longest gap, e.g.:",
    code="gap_ms = 85",
)

quiz = Quiz([
    Question("l9-q1", "While your guest moved, what did the programs inside it notice?", [
        Choice("A restart: the new QEMU booted them again", False,
               "The boot id and the uptime went on unchanged: no kernel booted, no program "
               "started again."),
        Choice("Only a short pause", True,
               "The CPUs, the memory and every device went across as they were; the programs "
               "simply did not run for a moment."),
        Choice("A lost network card, which the new QEMU gave back with a new address", False,
               "The card's state moved with the rest of the machine; the guest kept its "
               "address."),
    ]),
    Question("l9-q2", "Why did the kit not copy the guest's memory into the new QEMU here?", [
        Choice("Both QEMUs map the same memory", True,
               "The guest's RAM is a memfd on this host: the new QEMU maps the very same "
               "pages, so only the devices' and CPUs' state went through the socket."),
        Choice("The guest had written nothing to its memory yet", False,
               "Its kernel, its programs and your mark all live in that memory."),
        Choice("QEMU compressed it into a few bytes", False,
               "Nothing was compressed; the report says the memory was shared, not sent."),
    ]),
    Question("l9-q3", "Why do cloud providers move running virtual machines?", [
        Choice("To make a slow VM faster by giving it a fresh, newer QEMU process", False,
               "A new QEMU runs the same machine at the same speed."),
        Choice("To update the guest's kernel without the customer noticing", False,
               "The kernel is the customer's and moves unchanged: the boot id stayed."),
        Choice("To repair or update a host without stopping customers' VMs", True,
               "The VMs move away, the host is serviced or retired, and the customers see "
               "a pause of milliseconds instead of a shutdown."),
    ]),
    Question("l9-q4", "Between two hosts in a data centre, memory cannot be shared. What do real "
             "clouds usually do?", [
        Choice("Pause the guest for as long as copying all of its memory takes", False,
               "That is what the kit does here, where nothing is copied; for gigabytes over "
               "a network the pause would last seconds."),
        Choice("Copy memory while the guest runs, then pause it to send the rest", True,
               "That is pre-copy: pages changed during the copy are sent again, and only the "
               "last few go across during a short pause."),
        Choice("Boot a fresh copy of the guest on the new host, then hand over its disk", False,
               "A boot would start every program again: that is a restart, not a move."),
    ]),
])

lesson = Lesson(9, [mark_written, moved, gap], quiz, [pause])


def reset() -> None:
    """Stop the lesson's watches and guests, and forget its notes."""
    stop_watching()
    with _lock:
        _watches.clear()
        _before.clear()
    for name in (NAME, PROBE):
        live = registry.get(name)
        if live is not None:
            live.stop()
    _made.clear()
    _probe_reports.clear()
