"""Lesson 9's exercises, each checked both ways on a real guest that really moves.

Each passes when the learner's task is done (done here as the learner would:
a line run in the guest, ``g.migrate()`` while the chart watches, the gap
read off the chart's own measurement) and fails, with its hint, when it is
not, including when the guest was restarted instead of moved.
"""

from __future__ import annotations

import pytest

from kit.core.blank import ___
from kit.hypervisor import registry
from kit.labs import latency
from kit.labs.latency import Sample
from kit.lesson import lesson09_moving as lesson9
from kit.lesson import progress
from kit.lesson.lesson import ensure_running
from tests.lesson.verdicts import assert_every_solution_passes, assert_lesson_shape, fails_with_hint
from tests.waiting import wait_until


def test_the_lesson_has_three_exercises_a_prediction_and_a_quiz() -> None:
    assert_lesson_shape(lesson9.lesson, 9)
    assert [p.id for p in lesson9.lesson.predictions] == ["l9-p-pause"]
    assert all(c.solve is not None for c in lesson9.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert lesson9.mark().count("-") == 2
    low, high = lesson9.PORT_RANGE
    assert low <= lesson9.personal.number("l9-port", low, high) <= high


def moved_samples() -> list[Sample]:
    """Answers every 10 ms from pid 1, a 120 ms gap with refusals, then answers from pid 2."""
    before = [Sample(i * 0.012, 2.0, True, "", 1) for i in range(50)]
    refused = [Sample(0.61 + i * 0.011, 0.2, False, "refused", 1) for i in range(8)]
    after = [Sample(0.72 + i * 0.012, 3.0, True, "", 2) for i in range(50)]
    return [*before, *refused, *after]


def test_the_chart_draws_a_watch_with_its_move_and_without() -> None:
    samples = moved_samples()
    gap = latency.longest_gap(samples)
    assert gap is not None and gap.spans_move and round(gap.ms) == 132
    assert lesson9.chart_svg(samples).startswith(b"<?xml")
    assert lesson9.chart_svg(samples[:50]).startswith(b"<?xml")  # no move: one panel
    many = [Sample(i * 0.01, 1.0 + i % 7, True, "", 1) for i in range(5000)]
    thinned = lesson9._thinned(many)
    assert len(thinned) <= lesson9.MOST_POINTS and max(s.ms for s in thinned) == 7.0


def test_a_reading_is_allowed_a_little_off() -> None:
    assert lesson9.tolerance_ms(20) == 5.0
    assert lesson9.tolerance_ms(200) == pytest.approx(30.0)


def test_without_its_guest_the_chart_and_the_table_say_what_to_do() -> None:
    lesson9.reset()
    chart = lesson9.LatencyChart()
    assert chart.sampler is None and "not running" in chart.status.value
    chart.watch_button.click()
    assert chart.sampler is None and "press Watch" in chart.status.value
    chart.close()
    assert "not running" in lesson9.what_stayed().value


def test_without_a_watched_move_the_gap_cannot_pass() -> None:
    lesson9.reset()
    fails_with_hint(lesson9.gap.verify("soon"), "not a number")
    fails_with_hint(lesson9.gap.verify("80"), "has not watched")
    assert lesson9.gap.verify(___).waiting


@pytest.mark.guest
@pytest.mark.slow
def test_every_exercise_both_ways(image: object) -> None:
    lesson9.reset()
    fails_with_hint(lesson9.mark_written.verify("x"), "no guest called l9-web")
    fails_with_hint(lesson9.moved.verify(), "no guest called l9-web")
    assert lesson9.mark_written.verify(___).waiting  # an unedited cell waits, kindly
    assert lesson9.moved.verify(___).waiting
    try:
        my_web = ensure_running(lesson9.guest())
        assert wait_until(lambda: getattr(lesson9.before(), "pid", None) == my_web.pid, 20)

        # Exercise 1: the learner's mark, fetched through the forward.
        fails_with_hint(lesson9.mark_written.verify("x"), "404")
        my_web.run("echo someone-else > /www/mark.txt")
        fails_with_hint(lesson9.mark_written.verify("x"), "not your mark")
        written = my_web.run(f"echo {lesson9.mark()} > /www/mark.txt")
        assert lesson9.mark_written.verify(written)

        # Exercise 2: not moved yet; restarted is not moved.
        fails_with_hint(lesson9.moved.verify(), "still runs in the QEMU it booted in")
        booted_in = my_web.pid
        my_web.stop()
        my_web.start()
        restarted = lesson9.moved.verify()
        assert not restarted.passed and restarted.hint and not restarted.error, restarted
        assert "booted again" in restarted.message or "still runs" in restarted.message
        assert wait_until(lambda: getattr(lesson9.before(), "pid", None) == my_web.pid, 20)
        assert my_web.pid != booted_in
        assert lesson9.mark_written.verify(my_web.run(f"echo {lesson9.mark()} > /www/mark.txt"))

        # The chart watches while the learner moves the guest.
        chart = lesson9.LatencyChart()
        sampler = chart.sampler
        assert sampler is not None and sampler.running
        assert lesson9.wait_for_answers(sampler)
        fails_with_hint(lesson9.gap.verify("80"), "has not watched")
        old_pid = my_web.pid
        report = my_web.migrate()
        verdict = lesson9.moved.verify(report)
        assert verdict, verdict
        assert my_web.pid == report.new_pid != old_pid
        assert wait_until(lambda: not sampler.running, 30)
        assert "after the move" in sampler.why_stopped
        assert bytes(chart.plot.value).startswith(b"<?xml")
        assert "longest gap" in chart.status.value

        # Exercise 3: the gap read off the chart.
        gap = latency.longest_gap(sampler.samples())
        assert gap is not None and gap.spans_move and gap.ms > 0
        fails_with_hint(lesson9.gap.verify(str(round(gap.ms) + 500)), "is not the longest gap")
        assert lesson9.gap.verify(f"{gap.ms:.0f} ms")

        table = lesson9.what_stayed().value
        assert "never booted again" in table and lesson9.mark() in table
        assert "<b>changed</b>" in table and "went on" in table

        # The prediction: the move the chart watched; then the lesson's own probe guest.
        outcome = lesson9.pause.commit(100)
        assert outcome.measured == pytest.approx(gap.ms)
        probed = lesson9.probe_move()
        assert latency.moved_at(probed.samples()) and registry.get(lesson9.PROBE) is None

        assert_every_solution_passes(lesson9.lesson)  # demo mode's solutions, on the live guest
    finally:
        lesson9.lesson.finish()
        lesson9.reset()
    assert registry.guests() == []
    done = progress.lesson_progress(9)
    assert set(done.passed) == {c.id for c in lesson9.lesson.checkpoints}
    assert set(done.predictions) == {"l9-p-pause"}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson9.quiz is not None
    for question in lesson9.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
