"""The lesson frame: binding, the header, and the last cell (without guests)."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from kit.core import incidents
from kit.core.errors import InvalidInput
from kit.core.incidents import RecordedErrors
from kit.lesson import Checkpoint, Choice, Lesson, Question, Quiz, Verdict, beside, progress
from kit.lesson import finish as finish_notebook
from kit.lesson.projector import PROJECTOR_CSS, ProjectorToggle
from kit.lesson.reset_control import ResetLesson


def lesson() -> Lesson:
    cps = [Checkpoint(f"t-{n}", n, "task", lambda: Verdict.ok("ok"), hint="h", solution="s")
           for n in ("a", "b")]
    quiz = Quiz([Question("t-q", "?", [Choice("x", True, "y"), Choice("z", False, "w")])])
    return Lesson(6, cps, quiz)


def test_a_lesson_binds_its_checkpoints_and_questions() -> None:
    made = lesson()
    assert [c.lesson for c in made.checkpoints] == [6, 6]
    assert made.quiz is not None and made.quiz.questions[0].lesson == 6
    assert made.checkpoint("t-a").title == "a"
    with pytest.raises(InvalidInput, match="no checkpoint"):
        made.checkpoint("t-zzz")


def test_duplicate_checkpoint_ids_are_refused() -> None:
    cp = Checkpoint("t-a", "a", "task", lambda: Verdict.ok("ok"), hint="h", solution="s")
    with pytest.raises(InvalidInput, match="one id"):
        Lesson(6, [cp, cp])


def test_begin_shows_the_header_and_notes_the_lesson() -> None:
    header, controls = lesson().begin().children
    assert "Lesson 6: Advantages" in header.value and "2 checkpoints" in header.value
    projector, reset = controls.children
    assert isinstance(projector, ProjectorToggle) and not projector.toggle.value
    assert isinstance(reset, ResetLesson) and reset.notebook == "06-advantages.ipynb"
    noted = progress.lesson_progress(6)
    assert noted.opened and noted.checkpoint_ids == ("t-a", "t-b")
    assert noted.question_ids == ("t-q",)


def test_finish_records_and_sums_up() -> None:
    made = lesson()
    made.checkpoints[0].verify()
    made.finish()
    done = progress.lesson_progress(6)
    assert done.finished and done.status == "in progress"
    assert "✔ passed" in made.summary_html() and "○ not yet" in made.summary_html()


def test_finish_raises_what_buttons_met() -> None:
    incidents.record(RuntimeError("a button broke"), "a test button")
    with pytest.raises(RecordedErrors, match="a button broke"):
        lesson().finish()
    incidents.record(RuntimeError("again"), "a test button")
    with pytest.raises(RecordedErrors):
        finish_notebook(7)
    assert progress.lesson_progress(7).finished


def test_beside_lets_parts_wrap() -> None:
    row = beside(widgets.HTML("a"), widgets.HTML("b"))
    assert row.layout.flex_flow == "row wrap" and len(row.children) == 2


def test_the_last_cell_stops_containers_too() -> None:
    from kit.labs import containers
    from kit.lesson.lesson import stop_lesson_guests

    box = containers.Container("t-last-cell")
    box.start()
    assert f"container {box.name}" in stop_lesson_guests()
    assert containers.containers() == [] and containers.leftover_processes() == []


def test_projector_mode_enlarges_the_page_and_is_remembered() -> None:
    first = ProjectorToggle()
    assert first.sheet.value == ""
    first.toggle.value = True  # a click
    assert "--jp-content-font-size1" in first.sheet.value and progress.projector()
    second = ProjectorToggle()  # the next lesson opens as the last was left
    assert second.toggle.value and second.sheet.value == PROJECTOR_CSS
    second.toggle.value = False
    assert second.sheet.value == "" and not progress.projector()
