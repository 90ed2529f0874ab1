"""The instructor guide's answer key is the lessons' own: it cannot drift from them."""

from __future__ import annotations

from pathlib import Path

from kit.lesson import catalog, guide

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "instructor-guide.md"


def test_the_guides_answer_key_is_the_lessons_own() -> None:
    text = GUIDE.read_text()
    assert guide.with_key(text) == text, (
        "docs/instructor-guide.md's answer key differs from the lessons: run "
        "python -m kit guide --write")


def test_the_key_has_every_exercise_solution_and_right_answer() -> None:
    key = guide.answer_key()
    for info in catalog.LESSONS:
        lesson = guide.lesson_of(info)
        assert f"### Lesson {info.number} · {info.title}" in key
        for checkpoint in lesson.checkpoints:
            assert f"(`{checkpoint.id}`)" in key and checkpoint.code.rstrip() in key
        for question in lesson.quiz.questions if lesson.quiz else ():
            right = next(c for c in question.choices if c.correct)
            assert " ".join(right.text.split()) in key


def test_the_guide_covers_running_a_class() -> None:
    text = GUIDE.read_text()
    for needed in ("./setup.sh hub", "Projector mode", "KIT_SOLUTIONS=0", "--reset",
                   "demo mode", "Questions to discuss"):
        assert needed in text, needed
