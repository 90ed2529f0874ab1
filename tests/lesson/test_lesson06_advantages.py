"""Lesson 6's exercises, each checked both ways on a real fleet of small instances.

Each passes when the learner's task is done (done here the way the learner
would: the line of code of the solution, or the slider and its button) and
fails, with its hint, when it is not.
"""

from __future__ import annotations

import pytest

from kit.core.blank import ___
from kit.guestos import images
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.lesson import lesson06_advantages as lesson6
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_four_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson6.lesson, 6)
    assert len(lesson6.lesson.checkpoints) >= 4 and len(lesson6.lesson.predictions) >= 2
    assert all(c.solve is not None for c in lesson6.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert lesson6.scale_step() in lesson6.SCALE_STEPS
    low, high, step = lesson6.SLICE_MB
    assert low <= lesson6.slice_mb() <= high and lesson6.slice_mb() % step == 0


@pytest.mark.guest
@pytest.mark.slow
def test_every_exercise_both_ways(image: object, monkeypatch: pytest.MonkeyPatch) -> None:
    lesson6.reset()
    fails_with_hint(lesson6.scale.verify(), "not scaled")
    fails_with_hint(lesson6.pack.verify(), "no instance runs")
    fails_with_hint(lesson6.kernel.verify(), "runs another kernel")
    fails_with_hint(lesson6.arch.verify(), "another architecture")
    assert lesson6.scale.verify(___).waiting  # an unedited cell waits, kindly
    try:
        first, second = lesson6.fleet(2)[:2]
        fails_with_hint(lesson6.scale.verify(), "not scaled")  # the setup is not the learner's
        looked = lesson6.write_note_and_look([first, second]).value
        assert "present" in looked and "absent" in looked

        assert lesson6.add_one.commit(2).measured > 0
        assert len(lesson6.cloud().running()) == 3
        view = lesson6.ScaleView()
        view.target.value = 2
        view.apply.click()  # the slider's own path: scale in by one
        assert not view.banner.text and len(lesson6.cloud().running()) == 2
        fails_with_hint(lesson6.scale.verify(), "your last change was -1")
        step = lesson6.scale_step()
        assert lesson6.scale_to(len(lesson6.cloud().running()) + step) > 0
        assert lesson6.scale.verify()
        view.refresh()
        assert bytes(view.speed_plot.value).startswith(b"<?xml")
        assert bytes(view.size_plot.value).startswith(b"<?xml")
        lesson6.cloud().terminate_instances([lesson6.cloud().running()[-1].id])
        fails_with_hint(lesson6.scale.verify(), "changed since")

        usage = lesson6.UtilizationView()
        assert usage.last is not None and usage.last.more_guests > 0 and not usage.banner.text
        assert bytes(usage.memory_plot.value).startswith(b"<?xml")
        assert lesson6.idle_cpu.commit(5).measured >= 0
        one = usage.last.per_guest_mb
        monkeypatch.setattr(lesson6, "slice_mb", lambda: round(2.5 * one))  # two fit, not three
        fails_with_hint(lesson6.pack.verify(), "more than your slice")
        lesson6.scale_to(1)
        fails_with_hint(lesson6.pack.verify(), "still free")
        lesson6.scale_to(2)
        assert lesson6.pack.verify()

        other_kernel = Guest(lesson6.OTHER_KERNEL, kernel="debian").start()
        assert lesson6.kernel.verify(other_kernel)
        if images.find_image(lesson6.FOREIGN_ARCH) is None:
            pytest.skip("no aarch64 image is built on this machine")
        other_arch = Guest(lesson6.OTHER_ARCH, arch=lesson6.FOREIGN_ARCH).start()
        assert lesson6.arch.verify(other_arch)
        kinds = lesson6.KindsView().look()
        assert len({m.release for m in kinds}) >= 3
        assert {m.machine for m in kinds} >= {"x86_64", lesson6.FOREIGN_ARCH}
    finally:
        lesson6.reset()
        lesson6.lesson.finish()
    assert registry.guests() == []
    done = progress.lesson_progress(6)
    assert set(done.passed) == {c.id for c in lesson6.lesson.checkpoints}
    assert set(done.predictions) == {"l6-p-add", "l6-p-cpu"}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson6.quiz is not None
    for question in lesson6.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
