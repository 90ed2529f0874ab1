"""Lesson 1's exercises, each checked both ways on a real guest.

Each passes when the learner's task is done (done here the way the learner
would: the code of the solution, or the terminal's renice as a syscall) and
fails, with its hint, when it is not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kit.core.blank import ___
from kit.hypervisor import registry
from kit.lesson import lesson01_what_is_a_vm as lesson1
from kit.lesson import progress, vcpu_threads
from kit.lesson.lesson import ensure_running
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_three_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson1.lesson, 1)
    assert len(lesson1.lesson.predictions) >= 2
    assert all(c.solve is not None for c in lesson1.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert 144 <= lesson1.task_memory_mb() <= 256 and lesson1.task_memory_mb() % 16 == 0
    assert lesson1.secret() == lesson1.secret() and lesson1.secret().count("-") == 2


@pytest.mark.guest
def test_every_exercise_both_ways(image: object) -> None:
    mine = lesson1.guest()
    fails_with_hint(lesson1.secret_exercise.verify("x"), "no guest called mine")
    fails_with_hint(lesson1.machine.verify(), "no guest called mine")
    fails_with_hint(lesson1.renice.verify(), "no guest called mine")
    assert lesson1.secret_exercise.verify(___).waiting  # an unedited cell waits, kindly
    try:
        ensure_running(mine)
        assert not Path(lesson1.SECRET_PATH).exists()  # only the guest has it
        fails_with_hint(lesson1.secret_exercise.verify("cedar-onyx-123"), "not what your guest")
        assert lesson1.secret_exercise.verify(mine.run("cat /etc/kit-secret"))

        fails_with_hint(lesson1.machine.verify(), f"your task asks for {lesson1.task_memory_mb()}")
        fails_with_hint(lesson1.renice.verify(), "no second virtual CPU")
        mine = lesson1.solve_machine()
        assert lesson1.machine.verify()

        fails_with_hint(lesson1.renice.verify(), "still has nice")
        cpu0, cpu1 = vcpu_threads(mine)[:2]
        os.setpriority(os.PRIO_PROCESS, cpu0.tid, 10)  # the wrong thread
        fails_with_hint(lesson1.renice.verify(), "still has nice 0")
        os.setpriority(os.PRIO_PROCESS, cpu1.tid, 10)  # what `renice -n 10 -p TID` does
        fails_with_hint(lesson1.renice.verify(), "CPU 1 alone")  # but CPU 0 too
        os.setpriority(os.PRIO_PROCESS, cpu0.tid, 0)
        assert lesson1.renice.verify()

        given = lesson1.task_memory_mb()
        memtotal = lesson1.memtotal.commit(given)
        assert 0.5 * given < memtotal.measured < given and "kernel" in memtotal.words
        rss = lesson1.rss.commit(given)
        assert rss.measured > 0
    finally:
        lesson1.lesson.finish()
    assert registry.guests() == []
    done = progress.lesson_progress(1)
    assert set(done.passed) == {c.id for c in lesson1.lesson.checkpoints}
    assert set(done.predictions) == {"l1-p-memtotal", "l1-p-rss"}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson1.quiz is not None
    for question in lesson1.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
