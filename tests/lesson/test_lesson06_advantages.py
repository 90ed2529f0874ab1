"""Lesson 6's checkpoints, each checked both ways on a real fleet of small instances."""

from __future__ import annotations

import pytest

from kit.hypervisor import registry
from kit.lesson import lesson06_advantages as lesson6
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson6.lesson, 6)


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    lesson6.reset()
    fails_with_hint(lesson6.isolated.verify(), "0 instance")
    fails_with_hint(lesson6.fit.verify("3"), "no instance")
    fails_with_hint(lesson6.scaled.verify(), "0 instances")
    try:
        first, second = lesson6.fleet(2)[:2]
        fails_with_hint(lesson6.isolated.verify(), "no /root/note.txt")
        second.guest.run("echo hi > /root/note.txt")
        first.guest.run("echo hi > /root/note.txt")
        fails_with_hint(lesson6.isolated.verify(), "too")
        second.guest.run("rm /root/note.txt")
        assert lesson6.isolated.verify()

        usage = lesson6.UtilizationView(lesson6.cloud().running())
        assert usage.last is not None and usage.last.more_guests > 0
        assert bytes(usage.memory_plot.value).startswith(b"\x89PNG")
        fails_with_hint(lesson6.fit.verify("many"), "whole number")
        fails_with_hint(lesson6.fit.verify(str(usage.last.more_guests * 10 + 50)), "far from")
        assert lesson6.fit.verify(usage.last.more_guests)

        rows, note = lesson6.flexibility()
        releases = {row[2] for row in rows}
        assert len(rows) == 1 + len(lesson6.other_kinds()) and len(releases) >= 2, rows
        assert note or any("aarch64" in row[1] for row in rows)

        scale = lesson6.ScaleView()
        fails_with_hint(lesson6.scaled.verify(), "2 instances")
        scale.target.value = lesson6.SCALE_TARGET
        scale.apply.click()
        assert lesson6.scaled.verify()
        assert bytes(scale.plot.value).startswith(b"\x89PNG")
        scale.target.value = 1
        scale.apply.click()
        assert len(lesson6.cloud().running()) == 1
        fails_with_hint(lesson6.scaled.verify(), "1 instances")
    finally:
        lesson6.cloud().terminate_all()
        lesson6.lesson.finish()
        lesson6.reset()
    assert registry.guests() == []
    assert set(progress.lesson_progress(6).passed) == {c.id for c in lesson6.lesson.checkpoints}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson6.quiz is not None
    for question in lesson6.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
