"""Lesson 0's overview: every lesson of the course, and how far this learner got.

Read from :mod:`kit.lesson.catalog` (what lessons exist) and
:mod:`kit.lesson.progress` (what this learner did); a lesson whose notebook
is not written yet says "coming".  Marks and words carry the status, so the
table reads in greyscale.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets

from kit.lesson import catalog, progress
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget

MARKS = {"done": "✔", "in progress": "◐", "not started": "○", "coming": "…"}


@dataclass(frozen=True)
class OverviewRow:
    number: int
    title: str
    file: str
    minutes: int
    status: str  # "done", "in progress", "not started" or "coming"
    checkpoints: str  # "2 of 4", or "" when not known yet
    quiz: str  # "3 right of 4", or ""
    how: str = ""  # "2 alone, 1 after the hint" (+ "3 in demo"), or ""


def overview_rows() -> list[OverviewRow]:
    """One row per lesson of the catalog, with this learner's progress."""
    known = progress.all_progress()
    return [_row(info, known.get(info.number)) for info in catalog.LESSONS]


def _row(info: catalog.LessonInfo, done: progress.LessonProgress | None) -> OverviewRow:
    status = done.status if done else "not started"
    if not info.available and status == "not started":
        status = "coming"
    checkpoints = quiz = ""
    if done and done.checkpoint_ids:
        passed = len(set(done.passed) & set(done.checkpoint_ids))
        checkpoints = f"{passed} of {len(done.checkpoint_ids)}"
    if done and done.question_ids:
        quiz = f"{done.correct_answers} right of {len(done.question_ids)}"
    return OverviewRow(info.number, info.title, info.file, info.minutes, status,
                       checkpoints, quiz, how_words(done) if done else "")


HOW_WORDS = {"alone": "alone", "hint": "after the hint", "solution": "with the solution"}


def how_words(done: progress.LessonProgress) -> str:
    """How the passes came, e.g. "2 alone, 1 after the hint; 3 shown in demo mode"."""
    counts = [sum(1 for how in done.how.values() if how == key) for key in HOW_WORDS]
    parts = [f"{n} {words}" for n, words in zip(counts, HOW_WORDS.values(), strict=True) if n]
    demo = [cid for cid in done.demo if cid not in done.passed]
    text = ", ".join(parts)
    if demo:
        text += ("; " if text else "") + f"{len(demo)} shown in demo mode"
    return text


def overview_html(rows: list[OverviewRow]) -> str:
    cells = []
    for row in rows:
        title = (escape(row.title) if row.status == "coming"
                 else f'<a href="{escape(row.file)}" target="_blank">{escape(row.title)}</a>')
        cells.append([str(row.number), title, f"{row.minutes} min",
                      f"{MARKS[row.status]} {escape(row.status)}",
                      escape(row.checkpoints or "—"), escape(row.how or "—"),
                      escape(row.quiz or "—")])
    return markup.table(["#", "lesson", "time", "status", "checkpoints passed", "how", "quiz"],
                        cells)


class ProgressOverview(KitWidget):
    """The table of lessons and this learner's progress, with a refresh button."""

    def __init__(self) -> None:
        super().__init__("progress overview")
        self.rows: list[OverviewRow] = []
        self.table = widgets.HTML()
        self.where = widgets.HTML()
        self.refresh_button = widgets.Button(description="refresh", icon="refresh")
        self.refresh_button.on_click(self._callback("reading your progress", self.refresh))
        self._set_body(widgets.HTML("<b>Your progress through the lessons</b>"),
                       self.table, widgets.HBox([self.refresh_button, self.where]))
        self._callback("reading your progress", self.refresh)()

    def refresh(self) -> None:
        self.rows = overview_rows()
        self.table.value = overview_html(self.rows)
        self.where.value = (f"<small>saved for you in "
                            f"<code>{escape(progress.progress_file())}</code></small>")


def progress_overview() -> ProgressOverview:
    """The widget lesson 0 shows: which lessons you have done."""
    return ProgressOverview()
