"""Lesson 0's exercises, each checked both ways on a real guest.

Each passes when its task is done (done here the way the learner would: the
setup box's Boot button, a line typed on the console, the panel's Pause)
and fails, with its hint, when it is not.  One guest serves all of them (a
boot costs seconds); the lesson's own ``finish()`` stops it, as the
notebook's last cell does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit.core.blank import ___
from kit.hypervisor import accelerator, doctor, registry
from kit.infrastructure.hostinfo import Accelerator
from kit.lesson import lesson00_welcome as lesson0
from kit.lesson import progress
from tests.lesson.verdicts import assert_every_solution_passes, fails_with_hint


def test_the_lesson_has_its_exercises_a_prediction_and_a_quiz() -> None:
    assert len(lesson0.lesson.checkpoints) >= 3 and lesson0.lesson.quiz is not None
    assert lesson0.lesson.number == 0
    for checkpoint in lesson0.lesson.checkpoints:
        assert checkpoint.lesson == 0 and checkpoint.code and checkpoint.hint
        assert checkpoint.solve is not None
    assert [p.id for p in lesson0.lesson.predictions] == ["l0-p-boot"]


def test_ready_fails_without_an_image_and_passes_with_it(
        image: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setenv("KIT_CACHE_DIR", str(tmp_path))  # a cache with no image in it
        fails_with_hint(lesson0.ready.verify(), "guest image")
    assert lesson0.ready.verify()


@pytest.mark.guest
def test_every_exercise_both_ways(image: object) -> None:
    setup = lesson0.setup_check()
    first = setup.guest
    assert first.name == lesson0.GUEST and registry.get(lesson0.GUEST) is None
    for checkpoint in (lesson0.boot, lesson0.note, lesson0.paused):
        fails_with_hint(checkpoint.verify(), "no guest called first")
    fails_with_hint(lesson0.ask.verify("{'status': 'running'}"), "no guest called first")
    assert lesson0.ask.verify(___).waiting  # an unedited cell waits, kindly
    assert "not running" in lesson0.hypervisor_says()
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
        assert "paused" in lesson0.hypervisor_says()

        paused_answer = first.qmp("query-status")
        fails_with_hint(lesson0.ask.verify(paused_answer), "resume it first")
        fails_with_hint(lesson0.ask.verify("running"), "not QMP's answer")
        first.resume()
        fails_with_hint(lesson0.ask.verify(paused_answer), "QMP says running")
        assert lesson0.ask.verify(first.qmp("query-status"))

        outcome = lesson0.boot_time.commit(20)  # a laptop's guess
        assert 0 < outcome.measured < 60 and "microvm" in outcome.words
    finally:
        lesson0.lesson.finish()
    assert registry.guests() == [] and first.state == "stopped"
    done = progress.lesson_progress(0)
    assert {"l0-boot", "l0-note", "l0-pause", "l0-ask"} <= set(done.passed) and done.finished
    assert set(done.how.values()) <= {"alone", "hint"} and done.demo == ()
    assert set(done.predictions) == {"l0-p-boot"}


@pytest.mark.guest
def test_the_boot_prediction_times_a_guest_of_its_own_when_first_is_down(image: object) -> None:
    assert registry.get(lesson0.GUEST) is None
    seconds = lesson0.measure_boot()
    assert 0 < seconds < 60
    assert registry.guests() == []  # the timed guest was stopped again


@pytest.mark.guest
def test_each_solution_does_its_exercise(image: object) -> None:
    try:
        assert_every_solution_passes(lesson0.lesson)
    finally:
        kit.stop_all()


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson0.quiz is not None
    for question in lesson0.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
    assert len(progress.lesson_progress(0).answers) == len(lesson0.quiz.questions)


def test_a_kvm_that_is_there_but_broken_is_no_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The accelerator row says KVM does not work here, in words; QEMU's line is one click away."""
    raw = ("QEMU exited with code -6 before init ran: qemu-system-x86_64: "
           "../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == "
           "cpu->kvm_msr_buf->nmsrs' failed.")
    broken = Accelerator("tcg", "broken", f"/dev/kvm exists but a probe guest failed under KVM "
                                          f"({raw}); using software emulation (TCG) instead.")
    monkeypatch.setattr(accelerator, "accelerator", lambda: broken)
    found = [doctor.Check("QEMU", True, "/usr/bin/qemu-system-x86_64"),
             doctor.Check("accelerator", True, f"{broken.label}: {broken.reason}",
                          required=False)]
    html = lesson0.setup_table(found)
    row = html.split("<tr>")[-1]
    assert "✔ ok" in html.split("<tr>")[-2]  # the other rows are as before
    assert "✔ ok" not in row and "⚠ TCG, slower" in row
    plain, details = row.split("<details>")
    assert "present on this machine but does not work here" in plain
    assert "slower but correct" in plain and "kvm_buf_set_msrs" not in plain
    assert "kvm_buf_set_msrs: Assertion" in details
