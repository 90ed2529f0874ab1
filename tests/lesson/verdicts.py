"""What every lesson's tests check of its checkpoints and its shape."""

from __future__ import annotations

from kit.lesson import Verdict
from kit.lesson.lesson import Lesson


def fails_with_hint(verdict: Verdict, *words: str) -> None:
    """A checkpoint that fails must fail cleanly, with a hint, saying ``words``."""
    assert not verdict.passed and verdict.hint, verdict
    assert not verdict.error, f"the check broke instead of failing: {verdict}"
    for word in words:
        assert word in verdict.message, verdict


def assert_lesson_shape(lesson: Lesson, number: int) -> None:
    """At least three checkpoints, each with its code and hint, and a quiz."""
    assert len(lesson.checkpoints) >= 3 and lesson.quiz is not None
    for checkpoint in lesson.checkpoints:
        assert checkpoint.lesson == number and checkpoint.code and checkpoint.hint


def assert_every_solution_passes(lesson: Lesson) -> None:
    """Each exercise's own ``solve`` does the task: its check then passes."""
    for checkpoint in lesson.checkpoints:
        assert checkpoint.solve is not None
        answer = checkpoint.solve()
        verdict = checkpoint.verify(answer if checkpoint.takes_answer else None)
        assert verdict, verdict
