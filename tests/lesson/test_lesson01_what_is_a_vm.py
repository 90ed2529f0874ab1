"""Lesson 1's checkpoints, each checked both ways on a real guest.

Each passes when its task is done and fails, with its hint, when it is not.
Two boots serve all four: the guest as the lesson starts it (128 MiB, one
vCPU), then as the tasks ask (192 MiB, two vCPUs).
"""

from __future__ import annotations

import os
import platform

import pytest

import kit
from kit.hypervisor import registry
from kit.lesson import lesson01_what_is_a_vm as lesson1
from kit.lesson import progress, restart_with, vcpu_threads
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson1.lesson, 1)


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    mine = lesson1.guest()
    assert (mine.name, mine.memory_mb, mine.cpus) == ("mine", 128, 1)
    fails_with_hint(lesson1.kernel.verify("6.1"), "no guest called mine")
    fails_with_hint(lesson1.memory.verify(), "no guest called mine")
    fails_with_hint(lesson1.pid.verify("1"), "no guest called mine")
    fails_with_hint(lesson1.vcpus.verify("2"), "no guest called mine")
    try:
        kit.lesson.ensure_running(mine)
        inside = mine.run("uname -r").stdout.strip()
        fails_with_hint(lesson1.kernel.verify(""), "type")
        if inside != platform.release():
            fails_with_hint(lesson1.kernel.verify(platform.release()), "host's")
        fails_with_hint(lesson1.kernel.verify("1.0.0-wrong"), "does not report")
        assert lesson1.kernel.verify(inside)

        fails_with_hint(lesson1.memory.verify(), "has 128 MiB")
        fails_with_hint(lesson1.vcpus.verify("1"), "1 virtual CPU")

        fails_with_hint(lesson1.pid.verify("twelve"), "whole number")
        fails_with_hint(lesson1.pid.verify(os.getpid()), "not guest mine")
        old_pid = mine.pid
        assert lesson1.pid.verify(old_pid)

        restart_with(mine, memory_mb=192, cpus=2)
        assert lesson1.memory.verify()
        fails_with_hint(lesson1.pid.verify(old_pid), "not guest mine's QEMU")  # a new process
        assert lesson1.pid.verify(mine.pid)
        fails_with_hint(lesson1.vcpus.verify("3"), "you counted 3")
        assert lesson1.vcpus.verify(len(vcpu_threads(mine)))
        mine.pause()
        fails_with_hint(lesson1.memory.verify(), "paused")
    finally:
        lesson1.lesson.finish()
    assert registry.guests() == []
    assert set(progress.lesson_progress(1).passed) == {c.id for c in lesson1.lesson.checkpoints}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson1.quiz is not None
    for question in lesson1.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
