"""Lesson 5's checkpoints, each checked both ways on a real cloud of two instances."""

from __future__ import annotations

import pytest

from kit.hypervisor import registry
from kit.lesson import lesson05_cloud as lesson5
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson5.lesson, 5)


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    lesson5.reset()
    fails_with_hint(lesson5.launch.verify(), "0 t.nano")
    fails_with_hint(lesson5.metadata.verify("i-0001"), "no instance")
    fails_with_hint(lesson5.refused.verify(), "not refused")
    fails_with_hint(lesson5.failover.verify(), "no requests")
    try:
        console = lesson5.CloudConsole()
        console.launch_button.click()  # the button's own path: a background launch
        assert console.wait() and not console.banner.children[0].value
        assert lesson5.launch.verify()
        first = lesson5.cloud().running()[0]
        fails_with_hint(lesson5.metadata.verify(""), "type")
        fails_with_hint(lesson5.metadata.verify(first.name), "host name")
        fails_with_hint(lesson5.metadata.verify("i-ffff"), "does not call itself")
        assert lesson5.metadata.verify(first.read_own_metadata("instance-id"))
        assert lesson5.MetadataView(first).ask()["instance-id"] == first.id

        assert "InsufficientInstanceCapacity" in lesson5.try_too_many()
        assert len(lesson5.cloud().instances()) == 2
        assert lesson5.refused.verify()

        demo = lesson5.BalancerDemo()
        demo.send.click()
        fails_with_hint(lesson5.failover.verify(), "no instance was stopped")
        demo.stop_one.value = True
        demo.send.click()
        assert lesson5.failover.verify()
    finally:
        lesson5.cloud().terminate_all()
        lesson5.lesson.finish()
        lesson5.reset()
    assert registry.guests() == []
    assert set(progress.lesson_progress(5).passed) == {c.id for c in lesson5.lesson.checkpoints}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson5.quiz is not None
    for question in lesson5.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
