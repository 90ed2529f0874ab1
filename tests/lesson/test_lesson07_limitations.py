"""Lesson 7's exercises, each checked both ways on real guests.

Each passes when the learner's task is done (done here the way the learner
would: the line read off the console, the code of the solution, the crowd
view's buttons) and fails, with its hint, when it is not.  Snapshots go to a
folder of the test's own, never the learner's cache.
"""

from __future__ import annotations

import pytest

import kit
from kit.core.blank import ___
from kit.hypervisor import footprint, registry
from kit.lesson import lesson07_limitations as lesson7
from kit.lesson import progress
from kit.lesson.lesson import ensure_running
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_four_exercises_four_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson7.lesson, 7)
    assert len(lesson7.lesson.checkpoints) == 4 and len(lesson7.lesson.predictions) == 4
    assert all(c.solve is not None for c in lesson7.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert 80 <= lesson7.task_memory_mb() <= 208 and lesson7.task_memory_mb() % 16 == 0
    assert lesson7.task_memory_mb() != lesson7.guest_memory_mb()  # the task is a change
    assert 140 <= lesson7.task_total_mb() <= 300 and lesson7.task_total_mb() % 20 == 0
    assert lesson7.task_word() == lesson7.task_word() and " " not in lesson7.task_word()


def test_the_crowd_plot_adds_up_as_guests_are_added() -> None:
    assert lesson7.cumulative([80.0, 79.0, 81.0]) == [80.0, 159.0, 240.0]


def crowd_mb() -> tuple[float, float]:
    """The crowd's total host memory, and what the others hold without its smallest guest."""
    rss = [lesson7.qemu_rss_mb(g) for g in lesson7.crowd()]
    return sum(rss), sum(rss) - min(rss, default=0.0)


@pytest.mark.guest
@pytest.mark.slow
def test_every_exercise_both_ways(image: object) -> None:
    lesson7.reset()
    fails_with_hint(lesson7.run_init.verify("0.5"), "no guest called l7-mine")
    fails_with_hint(lesson7.footprint_exercise.verify("10"), "no guest called l7-mine")
    fails_with_hint(lesson7.crowd_exercise.verify(), "no guest of the crowd")
    fails_with_hint(lesson7.restore_exercise.verify(None), "no guest called l7-mine")
    assert lesson7.footprint_exercise.verify(___).waiting  # an unedited cell waits, kindly
    assert lesson7.restore_exercise.verify(___).waiting
    assert lesson7.run_init.verify(___).waiting
    try:
        # Exercise 1: the console's 'Run /init' line, as the learner reads it.
        mine = ensure_running(lesson7.guest())
        line = next(text for text in mine.console.text().splitlines() if "Run /init" in text)
        read = line.split("]")[0].strip("[ ")
        fails_with_hint(lesson7.run_init.verify("soon"), "type the number")
        fails_with_hint(lesson7.run_init.verify(str(float(read) + 0.25)), "is not when")
        fails_with_hint(lesson7.run_init.verify(f"{float(read):.2f}"), "every digit")
        fails_with_hint(lesson7.run_init.verify(f"{float(read) + 0.0006:.6f}"), "is not when")
        assert lesson7.run_init.verify(read)

        # Exercise 2: a guest of the learner's size, and its footprint read in code.
        want = lesson7.task_memory_mb()
        fails_with_hint(lesson7.footprint_exercise.verify("20"), f"your task asks for {want}")
        new_mine = kit.Guest("l7-mine", memory_mb=want, replace=True).start()
        whole = footprint.of_guest(new_mine)
        assert whole is not None
        fails_with_hint(lesson7.footprint_exercise.verify(repr(whole)), "whole footprint")
        fails_with_hint(lesson7.footprint_exercise.verify(str(whole.total_mib)),
                        "is not the guest RAM")
        touched = footprint.of_guest(new_mine).parts[footprint.GUEST_RAM]  # type: ignore[union-attr]
        assert lesson7.footprint_exercise.verify(touched)

        # Exercise 3: guests until the learner's total, with the view's buttons.
        target = lesson7.task_total_mb()
        crowd = lesson7.CrowdView()
        crowd.add_button.click()
        while crowd_mb()[0] < target:
            fails_with_hint(lesson7.crowd_exercise.verify(), "your total is")
            crowd.add_button.click()
        assert lesson7.crowd_exercise.verify()
        assert bytes(crowd.plot.value).startswith(b"<?xml")
        crowd.add_button.click()  # one guest too many
        if crowd_mb()[1] >= target * lesson7.SLACK:
            fails_with_hint(lesson7.crowd_exercise.verify(), "more than needed")
        crowd.remove_button.click()
        assert lesson7.crowd_exercise.verify()
        assert "boot_id" in crowd.table.value

        # The stopwatch: a new measurement replaces the last one.
        watch = lesson7.StopwatchView()
        watch.count.value = 1
        watch.go.click()
        watch.go.click()
        assert len(lesson7.boots()) == 1 and "timed in" in watch.status.value
        assert bytes(watch.plot.value).startswith(b"<?xml")

        # Predictions: committed, then measured live.
        boot = lesson7.boot_time.commit(2)
        assert 0 < boot.measured < 60 and len(lesson7.boots()) == 1
        rss = lesson7.rss.commit(64)
        assert 10 < rss.measured < 1000
        fit = lesson7.fit.commit(300)
        assert fit.measured >= 1 and "CPU" in fit.words

        sizes = lesson7.SizesView()
        assert "the kernel" in sizes.text.value and bytes(sizes.plot.value).startswith(b"<?xml")
        assert bytes(sizes.parts.value).startswith(b"<?xml")
        assert "the guest's own memory" in sizes.text.value
        found = lesson7.footprints()
        assert "l7-mine" in found and "l7-1" in found
        assert all(f.parts[footprint.GUEST_RAM] > 1 for f in found.values())

        # The race: a prediction measured by one round, then the view's own rounds.
        race = lesson7.RaceView()
        restored = lesson7.restore_time.commit(0.3)
        assert restored.measured > 0 and "a cold boot took" in restored.words
        assert "timed" not in race.status.value and "median" in race.table.value
        race.rounds.value = 1
        race.go.click()
        race.go.click()
        assert "timed in" in race.status.value and bytes(race.plot.value).startswith(b"<?xml")
        assert (lesson7.last_race() or pytest.fail("no race")).rounds == 1
        assert lesson7.lesson_snapshots() == [], "the race left its snapshot"

        # Exercise 4: a clone of l7-mine that never booted, the way the learner's cell does it.
        check_clone_both_ways()
    finally:
        lesson7.lesson.finish()
        lesson7.reset()
    assert registry.guests() == [] and kit.snapshots() == []
    done = progress.lesson_progress(7)
    assert set(done.passed) == {c.id for c in lesson7.lesson.checkpoints}
    assert set(done.predictions) == {"l7-p-boot", "l7-p-rss", "l7-p-fit", "l7-p-restore"}


def check_clone_both_ways() -> None:
    """Exercise 4 fails with the right hint at each wrong step, and passes when done."""
    verify = lesson7.restore_exercise.verify
    mine = ensure_running(lesson7.guest())
    fails_with_hint(verify(None), "no guest started from a snapshot")

    other = kit.Guest.from_snapshot(lesson7.crowd()[0].snapshot("l7-other"), "l7-other")
    fails_with_hint(verify(None), "no running guest was started from a snapshot of l7-mine")
    other.stop()

    mine.run(f"rm -f {lesson7.MARK_FILE}")  # saved before the mark: the clone has none
    clone = kit.Guest.from_snapshot(mine.snapshot("l7-ready"), "l7-clone")
    fails_with_hint(verify(None), "has not got your word")
    clone.stop()

    mine.run(f"echo {lesson7.task_word()} > {lesson7.MARK_FILE}")
    snap = mine.snapshot("l7-ready", replace=True)
    clone = kit.Guest.from_snapshot(snap, "l7-clone", replace=True)
    passed = verify(clone)
    assert passed and "never booted" in passed.message, passed
    assert clone.pid != mine.pid and clone.restored_from == snap

    mine.reboot()  # l7-mine boots again: the clone no longer carries its boot
    fails_with_hint(verify(None), "has booted again")
    done = lesson7.tidy_snapshots()
    assert any("l7-ready" in line and "l7-clone" in line for line in done), done
    assert lesson7.lesson_snapshots() == [] and registry.get("l7-clone") is None

    # Linux draws a boot_id when it is first read; the guest's init reads it at boot, so a
    # snapshot taken before anyone else asked for it still holds it.
    mine.reboot()
    mine.run(f"echo {lesson7.task_word()} > {lesson7.MARK_FILE}")
    clone = kit.Guest.from_snapshot(mine.snapshot("l7-ready"), "l7-clone")
    assert verify(None)
    lesson7.tidy_snapshots()
    solved = lesson7.solve_restore()  # the demo's own solution passes too
    assert verify(None) and solved.name == "l7-clone"


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson7.quiz is not None
    for question in lesson7.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
