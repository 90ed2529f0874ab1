"""The instructor's class view: the whole class on one page of the control room.

On a class hub (``./setup.sh hub CLASSFILE``), the instructor's control room
shows, for every learner, what :mod:`kit.hub.report` reads: each checkpoint
of a lesson (passed alone, after the hint, with the solution shown, in demo
mode, tried, or not yet), the quiz score, the most common wrong answers, who
has been stuck longest and on what, and each learner's live guests; and it
exports the lot as CSV.

Why here, in the hub's package, and not among the widgets: it reads the
hub's drop folder and the learners' accounts, which only a class hub has;
the layers below know nothing of a class.

Why the CSV is a ``data:`` link: ipywidgets has no file download, and a
file written beside the notebook is not reachable by a link in every place
the control room is shown (Voila serves no files by default).  The link
carries the CSV itself; the browser saves it under the name it gives.

Every mark has its words beside it, in the legend and in each cell's title
and label (for screen readers), and the cells' tints only add to the marks:
the table reads in greyscale and on a projector.  Colours come from the
theme (:mod:`kit.view.markup`).

Learners' names and times of work are on this page: it is the instructor's,
not for the projector, so it has no projector mode.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import ipywidgets as widgets

from kit.core.errors import SetupError
from kit.hub import places
from kit.hub.progress import LearnerRecord
from kit.hub.report import (
    MARKS,
    STATUSES,
    WORDS,
    ClassReport,
    LessonOutline,
    account_uid,
    class_report,
)
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget, Throttle, on_loop

TITLE = "The class"
NO_CLASS = (
    "<b>No class here.</b> This server is not a class hub's, so there is no class to show. "
    "To teach a class on one server, start its hub as root with "
    "<code>./setup.sh hub CLASSFILE</code>, log in to it as the instructor, and open this page "
    "there. (On the hub's own machine, <code>KIT_HUB_DIR</code> names the hub's folder, if it "
    "is not <code>/var/lib/kit-hub</code>.)")
STUCK_SHOWN = 5  # learners in the "stuck longest" list

# The cells' tints (Okabe-Ito accents, mixed into the theme's background): they only add to
# the marks, which say the same in greyscale.
ACCENTS = {"alone": "#009E73", "hint": "#56B4E9", "solution": "#E69F00", "demo": "#CC79A7",
           "tried": "#D55E00"}
CELL = f"padding:2px 8px;border:1px solid {markup.BORDER};text-align:center;white-space:nowrap"
HEAD = f"padding:2px 8px;border:1px solid {markup.BORDER};text-align:left;vertical-align:bottom"
ROW_HEAD = f"padding:2px 8px;border:1px solid {markup.BORDER};text-align:left;white-space:nowrap"


class ClassRoom(KitWidget):
    """The class on a hub, refreshed every ``refresh_every`` seconds (None: only by the button).

    ``learners`` and ``drop`` default to the hub's (the roster it gave this
    server, its drop folder); ``uid_of`` finds a learner's user id, for
    their guests.  Off a hub, it says so and what to do.
    """

    def __init__(self, *, learners: Iterable[str] | None = None, drop: Path | None = None,
                 refresh_every: float | None = 10.0,
                 uid_of: Callable[[str], int | None] = account_uid) -> None:
        super().__init__("class view")
        self.add_class("kit-class-room")
        self._learners = list(learners) if learners is not None else None
        self._drop = drop
        self._uid_of = uid_of
        self._lesson_chosen = False  # by the instructor: then refreshes keep it
        self._setting = False  # the lesson is being set by this code, not chosen
        self.report: ClassReport | None = None
        self._build()
        self._refresher = Throttle(self._guarded("refreshing", self._refresh_on_loop), 0.3)
        self._on_close(self._refresher.close)
        if refresh_every:
            self._poke_every(refresh_every, self._refresher)
        self.attempt("reading the class", self.refresh)  # a failure shows in the banner

    # -- building ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.title = widgets.HTML(f'<div style="font-size:1.3em;font-weight:bold">{TITLE}</div>')
        self.note = widgets.HTML()
        self.refresh_button = widgets.Button(description="↻ Refresh",
                                             tooltip="Read every learner's progress again now")
        self.refresh_button.on_click(self._callback("refreshing", self.refresh))
        self.lesson = widgets.Dropdown(description="Lesson", options=[],
                                       layout=widgets.Layout(width="auto"))
        self.lesson.observe(self._guarded("choosing a lesson", self._lesson_changed),
                            names="value")
        self.export = widgets.HTML()
        self.status = widgets.HTML()
        self.stuck = widgets.HTML()
        self.checkpoints_title = widgets.HTML()
        self.checkpoints = widgets.HTML()
        self.legend = widgets.HTML(legend_html())
        self.wrong_title = widgets.HTML()
        self.wrong = widgets.HTML()
        self.overview = widgets.HTML()
        self.controls = widgets.HBox(
            [self.refresh_button, self.lesson, self.export],
            layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap", align_items="center"))
        self.body = widgets.VBox([
            self.controls, self.status, self.stuck, self.checkpoints_title, self.checkpoints,
            self.legend, self.wrong_title, self.wrong,
            widgets.HTML("<b>Every lesson</b>"), self.overview])
        self._set_body(self.title, self.note, self.body)

    # -- reading the class ----------------------------------------------------------------------

    def on_hub(self) -> bool:
        """Whether there is a class to read: a drop folder given, or the hub's (set or found)."""
        if self._drop is not None or os.environ.get("KIT_HUB_DIR"):
            return True
        return places.places().progress.is_dir()

    def refresh(self) -> None:
        """Read the class again and show it (on the kit loop, so refreshes never interleave)."""
        on_loop(self._refresh_on_loop, timeout=60)

    def _refresh_on_loop(self) -> None:
        if self._closed:
            return
        if not self.on_hub():
            self._show_note(NO_CLASS)
            return
        try:
            report = class_report(self._learners, self._drop, uid_of=self._uid_of)
        except SetupError as error:  # a learner's server: the drop folder is not theirs to list
            self._show_note(f"<b>The class cannot be read here.</b> {escape(error.message)} "
                            f"{escape(error.hint or '')}")
            return
        self.report = report
        self._show_note("")
        self._choose_lesson(report)
        self._show(report)

    def _show_note(self, html: str) -> None:
        _assign(self.note, markup.text(html) if html else "")
        self.body.layout.display = "none" if html else "flex"
        if html:
            self.report = None

    def _choose_lesson(self, report: ClassReport) -> None:
        options = [(f"{lesson.number}: {lesson.title}", lesson.number)
                   for lesson in report.lessons]
        if list(self.lesson.options) != options:
            value = self.lesson.value
            self._setting = True
            try:
                self.lesson.options = options
                self.lesson.value = value if value in dict(options).values() else None
            finally:
                self._setting = False
        if not self._lesson_chosen or self.lesson.value is None:
            busiest = report.busiest_lesson()
            if busiest is None and report.lessons:
                busiest = report.lessons[0].number
            if busiest is not None and busiest != self.lesson.value:
                self._set_lesson(busiest)

    def _set_lesson(self, number: int) -> None:
        self._setting = True
        try:
            self.lesson.value = number
        finally:
            self._setting = False

    def _lesson_changed(self, _change: object) -> None:
        if self._setting:
            return
        self._lesson_chosen = True
        on_loop(self._show_again, timeout=30)

    def _show_again(self) -> None:
        if self.report is not None and not self._closed:
            self._show(self.report)

    def _show(self, report: ClassReport) -> None:
        shown = sum(1 for r in report.records if r.problem is None)
        _assign(self.status, (
            f'<small style="color:{markup.QUIET_TEXT}">{len(report.records)} learner'
            f"{'s' if len(report.records) != 1 else ''} ({shown} with progress), read from "
            f"<code>{escape(report.drop)}</code> at "
            f"{time.strftime('%H:%M:%S', time.localtime(report.made_at))}</small>"))
        _assign(self.export, export_html(report))
        _assign(self.stuck, stuck_html(report))
        lesson = self._lesson_shown(report)
        if lesson is None:
            for widget in (self.checkpoints_title, self.checkpoints, self.wrong_title,
                           self.wrong):
                _assign(widget, "")
        else:
            _assign(self.checkpoints_title,
                    f"<b>Lesson {lesson.number}: {escape(lesson.title)}</b>")
            _assign(self.checkpoints, checkpoints_html(report, lesson))
            _assign(self.wrong_title,
                    f"<b>The most common wrong answers in lesson {lesson.number}</b>")
            _assign(self.wrong, wrong_answers_html(report, lesson))
        _assign(self.overview, overview_html(report))

    def _lesson_shown(self, report: ClassReport) -> LessonOutline | None:
        if self.lesson.value is None:
            return None
        try:
            return report.lesson(int(self.lesson.value))
        except KeyError:
            return None

    def show_lesson(self, number: int) -> None:
        """Show lesson ``number``'s checkpoints and wrong answers (as the dropdown does)."""
        self.lesson.value = number

    # -- the CSV ----------------------------------------------------------------------------------

    def csv_text(self) -> str:
        """The class as last read, as CSV ("" before the class could be read)."""
        return self.report.csv() if self.report is not None else ""

    def save_csv(self, path: Path | str | None = None) -> Path:
        """Write the CSV to ``path`` (by default, under its own name in this folder)."""
        if self.report is None:
            raise SetupError("there is no class to export here.",
                             hint="Open the control room on a class hub, as the instructor.")
        target = Path(path) if path is not None else Path.cwd() / self.report.csv_name
        target.write_text(self.report.csv())
        return target

    # -- refreshing --------------------------------------------------------------------------------



def _assign(widget: widgets.HTML, value: str) -> None:
    """Set only what changed: every change resends the whole value to the browser."""
    if widget.value != value:
        widget.value = value


# -- the page's pieces (plain HTML, tested on their own) -------------------------------------


def ago(seconds: float) -> str:
    """A span of time in the words a teacher glances at: 40 s, 12 min, 2 h 5 min, 3 days."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def mark_html(status: str, tries: int | None = None) -> str:
    """A status's mark, with its words for screen readers and as the tooltip.

    A checkpoint tried and not passed shows how many tries, when ``tries`` is given.
    """
    counted = status == "tried" and tries is not None
    words = WORDS[status] + (f" ({tries} tr{'ies' if tries != 1 else 'y'})" if counted else "")
    count = f"&nbsp;{tries}" if counted else ""
    return (f'<span role="img" aria-label="{escape(words)}" title="{escape(words)}">'
            f"{MARKS[status]}{count}</span>")


def legend_html() -> str:
    items = " · ".join(f"{mark_html(status)} {escape(WORDS[status])}" for status in STATUSES)
    return _note(f"{items} (✖ N: after N tries). Quiz: right answers of the lesson's "
                 "questions, by the latest answer to each.")


def _note(html: str) -> str:
    """Small print at a reading line height (an inline ``small`` keeps the widget's 28 px)."""
    return (f'<div style="font-size:0.85em;line-height:{markup.LINE_HEIGHT};'
            f'color:{markup.TEXT}">{html}</div>')


def _cell(status: str, tries: int | None = None) -> str:
    accent = ACCENTS.get(status)
    tint = markup.tint(accent, 18) if accent else ""
    return f'<td style="{CELL};{tint}color:{markup.TEXT}">{mark_html(status, tries)}</td>'


def _table(head: list[str], rows: list[str]) -> str:
    cells = "".join(f'<th scope="col" style="{HEAD}">{h}</th>' for h in head)
    return (f'<div style="overflow-x:auto;max-width:100%"><table style="width:auto;'
            f'border-collapse:collapse;line-height:{markup.LINE_HEIGHT};color:{markup.TEXT}"><thead><tr>'
            f"{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _learner_cell(record: LearnerRecord) -> str:
    return f'<th scope="row" style="{ROW_HEAD}">{escape(record.learner)}</th>'


def _guests_cell(report: ClassReport, record: LearnerRecord) -> str:
    guests = report.guests_of(record.learner)
    if guests is None:
        words = "unknown: this user cannot see other users' processes (/proc hidepid)"
        return f'<td style="{CELL}" title="{words}">?</td>'
    words = ", ".join(guests) if guests else "no guest running"
    return f'<td style="{CELL}" title="{escape(words)}">{len(guests)}</td>'


def _changed_cell(report: ClassReport, record: LearnerRecord) -> str:
    if record.updated_at is None:
        return f'<td style="{CELL}">-</td>'
    when = time.strftime("%H:%M", time.localtime(record.updated_at))
    return (f'<td style="{CELL}" title="their progress file changed at {when}">'
            f"{ago(report.made_at - record.updated_at)} ago</td>")


def checkpoints_html(report: ClassReport, lesson: LessonOutline) -> str:
    """Learners by the lesson's checkpoints, with live guests, last change and quiz score."""
    head = ["Learner", "Live guests", "Last change"]
    head += [f'<abbr title="{escape(title)} ({escape(cid)})">Ex&nbsp;{i}</abbr>'
             for i, (cid, title) in enumerate(lesson.checkpoints, 1)]
    head.append("Quiz")
    rows = []
    for record in report.records:
        cells = [_learner_cell(record), _guests_cell(report, record),
                 _changed_cell(report, record)]
        if record.problem is not None:
            cells.append(f'<td colspan="{len(lesson.checkpoints) + 1}" style="{CELL};'
                         f'text-align:left;white-space:normal;max-width:40em">'
                         f"⚠ {escape(record.problem)}</td>")
        else:
            done = record.lessons.get(lesson.number)
            for cid, _ in lesson.checkpoints:
                status = report.status(record, lesson.number, cid)
                cells.append(_cell(status, done.tries.get(cid, 0) if done else 0))
            score = report.quiz(record, lesson)
            cells.append(f'<td style="{CELL}" title="{escape(score.words)}">'
                         f"{escape(score.text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        return "<i>No learner yet: their progress appears once their server has started.</i>"
    key = " · ".join(f"<b>Ex {i}</b> {escape(title)}"
                     for i, (_, title) in enumerate(lesson.checkpoints, 1))
    return _table(head, rows) + _note(key)


def stuck_html(report: ClassReport) -> str:
    """Who has been stuck longest: their latest try failed; since their first try there."""
    stuck = report.stuck()
    if not stuck:
        return markup.box("passed", "nobody's latest try failed.", word="No one is stuck:")
    items = []
    for s in stuck[:STUCK_SHOWN]:
        items.append(
            f"<li><b>{escape(s.learner)}</b>: {ago(s.seconds(report.made_at))} on "
            f"<i>{escape(s.title)}</i> (lesson {s.lesson}, <code>{escape(s.checkpoint)}</code>),"
            f" {s.tries} tr{'ies' if s.tries != 1 else 'y'}, the latest "
            f"{ago(report.made_at - s.last)} ago</li>")
    more = (_note(f"and {len(stuck) - STUCK_SHOWN} more (in the CSV)")
            if len(stuck) > STUCK_SHOWN else "")
    return markup.box("todo", f"<ol style=\"margin:2px 0\">{''.join(items)}</ol>{more}",
                      word="Stuck longest")


def wrong_answers_html(report: ClassReport, lesson: LessonOutline) -> str:
    """Each question's wrong answers, the commonest first: what to explain again."""
    found = report.wrong_answers(lesson)
    if not found:
        return "<i>No wrong answer yet.</i>"
    parts = []
    for question, wrong in found:
        items = "".join(
            f"<li>{len(w.learners)} learner{'s' if len(w.learners) != 1 else ''} "
            f"({escape(', '.join(w.learners))}): <i>{markup.inline(w.text)}</i>"
            + (f" <small>({w.times} times)</small>" if w.times != len(w.learners) else "")
            + "</li>" for w in wrong)
        parts.append(
            f"<div><b>{escape(question.id)}</b> {markup.inline(question.prompt)} "
            f"<small>(right: <i>{markup.inline(question.choices[question.right])}</i>)</small>"
            f'<ul style="margin:2px 0 6px 0">{items}</ul></div>')
    return markup.text("".join(parts))


def overview_html(report: ClassReport) -> str:
    """Learners by the lessons anyone has begun: checkpoints passed, quiz score."""
    begun = [lesson for lesson in report.lessons
             if any(lesson.number in r.lessons for r in report.records)]
    if not begun:
        return "<i>No lesson begun yet.</i>"
    head = ["Learner"] + [f'<abbr title="{escape(lesson.title)}">Lesson&nbsp;{lesson.number}'
                          "</abbr>" for lesson in begun]
    rows = []
    for record in report.records:
        cells = [_learner_cell(record)]
        for lesson in begun:
            done = record.lessons.get(lesson.number)
            if record.problem is not None or done is None:
                cells.append(f'<td style="{CELL}" title="not begun">-</td>')
                continue
            passed = sum(1 for cid, _ in lesson.checkpoints if cid in done.passed)
            score = report.quiz(record, lesson)
            words = (f"{passed} of {len(lesson.checkpoints)} checkpoints passed; quiz: "
                     f"{score.words}")
            cells.append(f'<td style="{CELL}" title="{escape(words)}">✔&nbsp;{passed}/'
                         f"{len(lesson.checkpoints)} · quiz&nbsp;{escape(score.text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(head, rows) + _note("✔ checkpoints passed (by the learner, not in demo "
                                      "mode) · quiz: right answers · - not begun")


def export_html(report: ClassReport) -> str:
    """A link that downloads the CSV: the file itself in a ``data:`` URL, under its name."""
    data = base64.b64encode(report.csv().encode()).decode()
    style = (f"display:inline-block;padding:2px 10px;border:1px solid {markup.BORDER};"
             f"border-radius:2px;color:{markup.TEXT};text-decoration:none;"
             "background:var(--jp-layout-color2, #eeeeee)")
    return (f'<a class="kit-export-csv" download="{escape(report.csv_name)}" '
            f'href="data:text/csv;charset=utf-8;base64,{data}" style="{style}" '
            f'title="Download the class as a spreadsheet (CSV)">⬇ Export CSV</a>')
