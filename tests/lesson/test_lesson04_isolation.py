"""Lesson 4's exercises, each checked both ways on two real guests, and its quiz.

One boot of alpha and beta serves every exercise, in the lesson's order: the
secret file, the host reading alpha's memory (a prediction), the memory hog,
the crash (which ends alpha's part), then the noisy neighbour on a rebooted
alpha.  Each exercise is done the way a learner would: the solution's code,
or the lesson's own box for the memory hog.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit import Guest
from kit.core import incidents
from kit.core.blank import ___
from kit.hypervisor import registry
from kit.labs import isolation
from kit.lesson import lesson04_isolation as lesson4
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint
from tests.waiting import wait_until


def test_the_lesson_has_three_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson4.lesson, 4)
    assert all(c.solve is not None for c in lesson4.lesson.checkpoints)
    assert {p.id for p in lesson4.lesson.predictions} == {"l4-p-host-reads", "l4-p-noisy"}
    assert lesson4.host_reads.choices == lesson4.READS_CHOICES


def test_the_quiz_gives_feedback_on_every_choice_and_hides_the_answer() -> None:
    assert lesson4.quiz is not None
    longest = 0
    for question in lesson4.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
        right = len(question.choices[question.right_choice].text)
        longest += right > max(len(c.text) for c in question.choices if not c.correct)
    assert longest <= len(lesson4.quiz.questions) / 3


def test_the_personal_values_are_this_learners() -> None:
    assert lesson4.secret() == lesson4.secret() and lesson4.secret().count("-") == 2
    assert lesson4.password() != lesson4.secret()


def test_the_neighbour_report_draws_bars_in_words() -> None:
    report = isolation.NeighbourReport("beta", "alpha", 10, 2, 2, (1.0, 1.0, 1.2),
                                       (2.0, 2.5, 2.0))
    shown = lesson4.neighbour_html(report)
    assert "2.0 times" in shown and 'aria-label="1.00 seconds"' in shown and "width:80%" in shown


def test_a_requests_strip_marks_the_crash() -> None:
    ok = isolation.Request(0.0, True, 200, 1.0)
    late = isolation.Request(1.0, True, 200, 1.0)
    strip = lesson4.requests_strip(isolation.ServiceLog(1, (ok, late)), mark_at=0.5)
    assert "✔💥✔" in strip


@pytest.mark.guest
@pytest.mark.slow
def test_every_exercise_both_ways(image: object) -> None:
    fails_with_hint(lesson4.secret_file.verify("x"), "no guest called alpha")
    fails_with_hint(lesson4.oom.verify(), "no guest called alpha")
    fails_with_hint(lesson4.crash.verify(), "no guest called alpha or beta")
    for checkpoint in lesson4.lesson.checkpoints:
        assert checkpoint.verify(___).waiting  # an unedited cell waits, kindly
    try:
        alpha, beta = lesson4.start_both()
        assert (alpha.cpus, beta.cpus) == (2, 1)
        _secret(alpha, beta)
        _host_reads(alpha)
        _memory(alpha, beta)
        _crash(alpha, beta)
        _afterwards(alpha, beta)
    finally:
        lesson4.lesson.finish()
    assert registry.guests() == []
    assert set(progress.lesson_progress(4).passed) == {c.id for c in lesson4.lesson.checkpoints}
    assert set(progress.lesson_progress(4).predictions) == {"l4-p-host-reads", "l4-p-noisy"}


def _secret(alpha: Guest, beta: Guest) -> None:
    mine = lesson4.secret()
    fails_with_hint(lesson4.secret_file.verify(beta.run(f"cat {lesson4.SECRET_PATH}")),
                    "alpha has no")
    alpha.run(f"echo {mine} > {lesson4.SECRET_PATH}")  # the learner's first line
    assert not Path(lesson4.SECRET_PATH).exists() or mine not in Path(
        lesson4.SECRET_PATH).read_text()
    fails_with_hint(lesson4.secret_file.verify(alpha.run(f"cat {lesson4.SECRET_PATH}")),
                    "came from alpha")
    beta.run(f"echo {mine} > {lesson4.SECRET_PATH}")  # written in both: not the task
    fails_with_hint(lesson4.secret_file.verify(""), "beta has your secret too")
    beta.run(["rm", lesson4.SECRET_PATH])
    in_beta = beta.run(f"cat {lesson4.SECRET_PATH}")  # the learner's second line
    assert not in_beta.ok
    assert lesson4.secret_file.verify(in_beta)


def _host_reads(alpha: Guest) -> None:
    assert "commit your prediction" in lesson4.memory_seen().value
    outcome = lesson4.host_reads.commit(lesson4.READS_CHOICES[1])  # "sealed": a wrong guess
    assert outcome.measured == 0.0 and "not what you predicted" in outcome.words
    assert "SEV" in outcome.words and "TDX" in outcome.words
    look = lesson4._last_look[0]
    assert look.found >= 1 and lesson4.password() in look.contexts[0]
    assert look.dump_mb >= lesson4.MEMORY_MB * 0.9
    assert "dump-guest-memory" in lesson4.memory_seen().value
    assert not list(Path("/tmp").glob("kit-memory-*"))  # the dump is gone


def _memory(alpha: Guest, beta: Guest) -> None:
    fails_with_hint(lesson4.oom.verify(), "has not had to kill")
    box = lesson4.memory_box(alpha, beta)
    box.buttons[0].click()  # as a learner would: the hog runs in the background
    assert box.last_job is not None
    box.last_job.join(90)
    assert "OOM killer stopped the hog" in box.report.value, box.report.value
    assert lesson4.oom.verify()


def _crash(alpha: Guest, beta: Guest) -> None:
    assert "crash its kernel" in lesson4.crash_report().value
    watch = lesson4.watch_serving(beta)
    fails_with_hint(lesson4.crash.verify(), "alpha is running")
    beta.crash()  # the wrong guest
    fails_with_hint(lesson4.crash.verify(), "beta is the one that crashed")
    kit.lesson.ensure_running(beta)
    watch = lesson4.watch_serving(beta)
    assert wait_until(lambda: watch.log.answered >= 1, 10), watch.log  # beta is being asked
    crashed = alpha.crash()  # the learner's line
    crashed_at = lesson4.panic_time(alpha)
    assert crashed_at is not None
    # beta is asked meanwhile: several requests after the crash, for the check to judge
    assert wait_until(lambda: watch.since(crashed_at).total >= 5, 10), watch.log
    verdict = lesson4.crash.verify(crashed)
    assert verdict, verdict
    assert any("since the crash" in e for e in verdict.evidence), verdict
    shown = lesson4.crash_report().value
    assert "guest-panicked" in shown and "💥" in shown and "✖" not in shown, shown
    assert watch.running
    beta.stop()
    fails_with_hint(lesson4.crash.verify(), "beta is not running")
    kit.lesson.ensure_running(beta)
    kit.lesson.ensure_running(alpha)  # reboots the crashed guest
    fails_with_hint(lesson4.crash.verify(), "alpha is running")
    assert not incidents.recorded()


def _afterwards(alpha: Guest, beta: Guest) -> None:
    attempts = lesson4.attempts_through_the_host(beta, alpha)
    assert [(a.when, a.reached) for a in attempts] == [
        ("door shut", False), ("door shut", False), ("door open", True),
        ("door shut again", False)], attempts
    assert not beta.internet_open
    shown = lesson4.through_the_host(beta, alpha).value
    assert "✔ reached" in shown and "✘ not reached" in shown
    outcome = lesson4.slowdown.commit(2)
    assert outcome.measured > 0 and "real CPUs" in outcome.words
    box = lesson4.neighbour_box(beta, alpha)
    assert "times</b> as long" in box.report.value  # the prediction's measurement


@pytest.mark.guest
def test_in_demo_mode_every_exercise_solves_itself(image: object,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DEMO", "1")
    try:
        for checkpoint in lesson4.lesson.checkpoints:
            verdict = checkpoint.verify(___)
            assert verdict.passed and verdict.demo, verdict
    finally:
        lesson4.lesson.finish()
    done = progress.lesson_progress(4)
    assert set(done.demo) == {c.id for c in lesson4.lesson.checkpoints} and done.passed == ()
