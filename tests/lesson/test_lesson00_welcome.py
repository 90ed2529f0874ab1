"""Lesson 0's checkpoints, each checked both ways on a real guest.

Each passes when its task is done and fails, with its hint, when it is not.
One guest serves all of them (a boot costs seconds); the lesson's own
``finish()`` stops it, as the notebook's last cell does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit.hypervisor import registry
from kit.lesson import lesson00_welcome as lesson0
from kit.lesson import progress
from tests.lesson.verdicts import fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert len(lesson0.lesson.checkpoints) >= 3 and lesson0.lesson.quiz is not None
    assert lesson0.lesson.number == 0
    for checkpoint in lesson0.lesson.checkpoints:
        assert checkpoint.lesson == 0 and checkpoint.code


def test_ready_fails_without_an_image_and_passes_with_it(
        image: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("KIT_CACHE_DIR", str(tmp_path))  # a cache with no image in it
        fails_with_hint(lesson0.ready.verify(), "guest image")
    assert lesson0.ready.verify()


@pytest.mark.guest
def test_boot_note_and_pause_both_ways(image: object) -> None:
    setup = lesson0.setup_check()
    first = setup.guest
    assert first.name == lesson0.GUEST and registry.get(lesson0.GUEST) is None
    for checkpoint in (lesson0.boot, lesson0.note, lesson0.paused):
        fails_with_hint(checkpoint.verify(), "no guest called first")
    try:
        setup.boot_button.click()
        assert setup.wait(120) and first.state == "running"
        assert lesson0.boot.verify()

        fails_with_hint(lesson0.note.verify(), "no file /tmp/note.txt")
        first.run("echo goodbye > /tmp/note.txt")
        fails_with_hint(lesson0.note.verify(), "goodbye")
        console = kit.widgets.ConsoleView(first)
        console.input.value = "echo hello > /tmp/note.txt"
        console.submit()
        assert lesson0.note.verify()

        fails_with_hint(lesson0.paused.verify(), "running, not paused")
        first.pause()
        assert lesson0.paused.verify()
        fails_with_hint(lesson0.boot.verify(), "is paused")  # boot wants it running
        kit.lesson.ensure_running(first)
        assert first.qmp("query-status")["status"] == "running"
    finally:
        lesson0.lesson.finish()
    assert registry.guests() == [] and first.state == "stopped"
    done = progress.lesson_progress(0)
    assert {"l0-boot", "l0-note", "l0-pause"} <= set(done.passed) and done.finished


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson0.quiz is not None
    for question in lesson0.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
    assert len(progress.lesson_progress(0).answers) == len(lesson0.quiz.questions)
