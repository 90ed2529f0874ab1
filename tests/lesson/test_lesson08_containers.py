"""Lesson 8's checkpoints, each checked both ways on a real container beside a real VM."""

from __future__ import annotations

import platform
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kit.hypervisor import registry
from kit.labs import containers
from kit.lesson import lesson08_containers as lesson8
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson8.lesson, 8)


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    lesson8.stop_all()
    fails_with_hint(lesson8.own_view.verify(), "not running")
    fails_with_hint(lesson8.kernel.verify(platform.release()), "not running")
    fails_with_hint(lesson8.host_pid.verify("1"), "not running")
    try:
        view = lesson8.CompareView()
        view.go.click()
        assert bytes(view.plot.value).startswith(b"\x89PNG")
        sides = lesson8.last()
        box, vm = sides["container"], sides["virtual machine"]
        assert box.kernel == platform.release() != vm.kernel
        assert box.hostname == lesson8.BOX and vm.hostname == lesson8.VM
        assert box.ready_s > 0 and vm.ready_s > 0 and box.rss_mb > 0 and vm.rss_mb > 0
        assert lesson8.own_view.verify()

        fails_with_hint(lesson8.kernel.verify(vm.kernel), "virtual machine's own kernel")
        fails_with_hint(lesson8.kernel.verify("0.0.1"), "does not report")
        assert lesson8.kernel.verify(box.kernel)

        running = lesson8.box()
        assert running is not None and running.pid is not None
        fails_with_hint(lesson8.host_pid.verify("a lot"), "whole number")
        fails_with_hint(lesson8.host_pid.verify(str(running.pid + 100000)), "not")
        assert lesson8.host_pid.verify(str(running.pid))
    finally:
        lesson8.stop_all()
        lesson8.lesson.finish()
    assert registry.guests() == [] and containers.containers() == []
    assert containers.leftover_processes() == []
    assert set(progress.lesson_progress(8).passed) == {c.id for c in lesson8.lesson.checkpoints}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson8.quiz is not None
    for question in lesson8.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)


NOTEBOOK = Path(__file__).parent.parent.parent / "lessons" / "08-containers.ipynb"


@pytest.mark.guest
@pytest.mark.slow
def test_the_notebook_leaves_no_container_process(image: object) -> None:
    """tests/test_lessons.py checks QEMU; this checks the containers of the same run."""
    assert containers.leftover_processes() == []
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    assert containers.leftover_processes() == []
