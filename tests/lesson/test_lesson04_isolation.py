"""Lesson 4's checkpoints, each checked both ways on two real guests, and its quiz.

One boot of alpha and beta serves every checkpoint, in the lesson's order:
the file, PID 1, the memory hog, then the crash (which ends alpha's part).
The experiments are run through the lesson's own boxes, as a learner would.
"""

from __future__ import annotations

import psutil
import pytest

from kit import Guest
from kit.core import incidents
from kit.hypervisor import registry
from kit.labs import isolation
from kit.lesson import lesson04_isolation as lesson4
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_at_least_three_checkpoints_and_a_quiz() -> None:
    assert_lesson_shape(lesson4.lesson, 4)


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson4.quiz is not None
    for question in lesson4.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)


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
def test_every_checkpoint_both_ways(image: object) -> None:
    for checkpoint in (lesson4.file, lesson4.oom, lesson4.serving):
        fails_with_hint(checkpoint.verify(), "no guest called alpha")
    fails_with_hint(lesson4.pid1.verify("init"), "no guest called alpha")
    fails_with_hint(lesson4.crashed.verify("alpha"), "no guest")
    try:
        alpha, beta = lesson4.start_both()
        assert (alpha.cpus, beta.cpus) == (2, 1)
        _files(alpha, beta)
        _pid1(alpha, beta)
        _memory(alpha, beta)
        _crash(alpha, beta)
    finally:
        lesson4.lesson.finish()
    assert registry.guests() == []
    assert set(progress.lesson_progress(4).passed) == {c.id for c in lesson4.lesson.checkpoints}


def _files(alpha: Guest, beta: Guest) -> None:
    fails_with_hint(lesson4.file.verify(), "alpha has no")
    box = lesson4.files_box(alpha, beta)
    box.buttons[0].click()  # as a learner would: the write runs in the background
    assert box.last_job is not None
    box.last_job.join(30)
    assert "200" in box.report.value and "404" in box.report.value, box.report.value
    assert lesson4.file.verify()
    isolation.write_file(beta, lesson4.FILE_PATH, "me too\n")
    fails_with_hint(lesson4.file.verify(), "beta has a")
    beta.run(["rm", lesson4.FILE_PATH])
    assert lesson4.file.verify()


def _pid1(alpha: Guest, beta: Guest) -> None:
    shown = lesson4.processes_box(alpha, beta).run(1)
    assert "sleep" in shown and "only here" in shown
    fails_with_hint(lesson4.pid1.verify(""), "type")
    fails_with_hint(lesson4.pid1.verify("httpd"), "neither guest")
    host_pid1 = psutil.Process(1).name()
    if host_pid1 != "init":
        fails_with_hint(lesson4.pid1.verify(host_pid1), "host")
    assert lesson4.pid1.verify("init")
    assert lesson4.pid1.verify("/sbin/init")


def _memory(alpha: Guest, beta: Guest) -> None:
    fails_with_hint(lesson4.oom.verify(), "has not had to kill")
    shown = lesson4.memory_box(alpha, beta).run(0)
    assert "OOM killer stopped the hog" in shown, shown
    assert lesson4.oom.verify()


def _crash(alpha: Guest, beta: Guest) -> None:
    fails_with_hint(lesson4.crashed.verify("alpha"), "no guest")
    fails_with_hint(lesson4.serving.verify(), "no guest is crashed")
    shown = lesson4.crash_box(alpha, beta).run(0)
    assert "guest-panicked" in shown and "💥" in shown
    assert "✖" not in shown  # every request to beta was answered
    fails_with_hint(lesson4.crashed.verify(""), "type")
    fails_with_hint(lesson4.crashed.verify("beta"), "does not say 'beta'")
    assert lesson4.crashed.verify("alpha")
    assert lesson4.serving.verify()
    beta.stop()
    fails_with_hint(lesson4.serving.verify(), "no lesson guest is left running")
    assert not incidents.recorded()
