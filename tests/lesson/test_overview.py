"""Lesson 0's overview: every lesson, this learner's status, "coming" for unwritten ones."""

from __future__ import annotations

import pytest

from kit.lesson import catalog, overview, progress


def rows_by_number() -> dict[int, overview.OverviewRow]:
    return {row.number: row for row in overview.overview_rows()}


def test_a_new_learner_has_started_nothing() -> None:
    rows = rows_by_number()
    assert set(rows) == {info.number for info in catalog.LESSONS}
    assert rows[0].status == "not started" and rows[0].checkpoints == ""


def test_unwritten_lessons_are_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    real = catalog.LESSONS
    ghost = catalog.LessonInfo(9, "A future lesson", "09-not-written-yet.ipynb", 10)
    monkeypatch.setattr(catalog, "LESSONS", (*real[:-1], ghost))
    assert rows_by_number()[9].status == "coming"
    assert "… coming" in overview.overview_html(overview.overview_rows())


def test_progress_shows_as_status_and_counts() -> None:
    progress.record_opened(1, ["a", "b"], ["q1", "q2"])
    progress.record_checkpoint(1, "a", passed=True)
    progress.record_answer(1, "q1", 1, correct=True)
    progress.record_opened(0, ["x"], [])
    progress.record_checkpoint(0, "x", passed=True)
    rows = rows_by_number()
    assert (rows[1].status, rows[1].checkpoints, rows[1].quiz) == (
        "in progress", "1 of 2", "1 right of 2")
    assert rows[0].status == "done"
    html = overview.overview_html(list(rows.values()))
    assert "◐ in progress" in html and "✔ done" in html


def test_the_widget_says_where_progress_is_kept() -> None:
    view = overview.progress_overview()
    assert "progress.json" in view.where.value and "Welcome" in view.table.value
    progress.record_opened(0, ["x"], [])
    view.refresh_button.click()
    assert "◐ in progress" in view.table.value
