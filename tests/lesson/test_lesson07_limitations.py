"""Lesson 7's checkpoints, each checked both ways on real boots and a real crowd of guests."""

from __future__ import annotations

import pytest

from kit.hypervisor import footprint, registry
from kit.lesson import lesson07_limitations as lesson7
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson7.lesson, 7)


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    lesson7.reset()
    fails_with_hint(lesson7.timed.verify("kernel"), "0 boot")
    fails_with_hint(lesson7.kernels.verify(), "0 guest")
    fails_with_hint(lesson7.per_guest.verify("100"), "no guest")
    try:
        watch = lesson7.StopwatchView()
        watch.count.value = 2
        watch.go.click()
        fails_with_hint(lesson7.timed.verify("kernel"), "2 boot")
        watch.count.value = 1
        watch.go.click()
        assert bytes(watch.plot.value).startswith(b"\x89PNG")
        slowest = lesson7.slowest_phase(lesson7.boots())
        wrong = next(name for name in ("agent", "kit") if name != slowest)
        fails_with_hint(lesson7.timed.verify(wrong), "not the phase")
        assert lesson7.timed.verify(slowest)

        crowd = lesson7.CrowdView()
        crowd.target.value = 2
        crowd.go.click()
        fails_with_hint(lesson7.kernels.verify(), "2 guest")
        crowd.target.value = lesson7.CROWD_TARGET
        crowd.go.click()
        assert bytes(crowd.plot.value).startswith(b"\x89PNG")
        assert [n for n, _ in lesson7._crowd] == [1, 2, 3]
        assert lesson7.kernels.verify()

        each = lesson7.per_guest_mb()
        fails_with_hint(lesson7.per_guest.verify("lots"), "whole number")
        fails_with_hint(lesson7.per_guest.verify(str(round(each * 3))), "far from")
        assert lesson7.per_guest.verify(str(round(each)))

        sizes = lesson7.SizesView()
        assert "the kernel" in sizes.text.value and bytes(sizes.plot.value).startswith(b"\x89PNG")
        # What holds each QEMU's memory: one stacked bar per guest, and the guest's own share.
        assert bytes(sizes.parts.value).startswith(b"\x89PNG")
        assert "the guest's own memory" in sizes.text.value
        found = lesson7.footprints()
        assert sorted(found) == ["l7-1", "l7-2", "l7-3"]
        assert all(f.parts[footprint.GUEST_RAM] > 1 for f in found.values())
    finally:
        lesson7.lesson.finish()
        lesson7.reset()
    assert registry.guests() == []
    assert set(progress.lesson_progress(7).passed) == {c.id for c in lesson7.lesson.checkpoints}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson7.quiz is not None
    for question in lesson7.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
