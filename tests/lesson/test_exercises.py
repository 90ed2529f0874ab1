"""Exercises: a blank waits kindly, passes record how they came, demo passes stay apart."""

from __future__ import annotations

import pytest

from kit.core.blank import ___
from kit.lesson import Checkpoint, Verdict, classroom, progress


def make(check: object, **kwargs: object) -> Checkpoint:
    cp = Checkpoint("t-ex", "A task", "Do the `thing`.", check,  # type: ignore[arg-type]
                    hint="the general hint", solution="how to do it", code="do()", **kwargs)
    cp.lesson = 1
    return cp


class Task:
    """A stand-in for the live machine: done or not."""

    def __init__(self) -> None:
        self.done = False

    def check(self) -> Verdict:
        return Verdict.ok("done") if self.done else Verdict.fail("not yet")

    def solve(self) -> None:
        self.done = True


def test_a_blank_answer_waits_kindly_and_counts_no_try() -> None:
    task = Task()
    cp = make(task.check, solve=task.solve)
    verdict = cp.verify(___)
    assert verdict.waiting and verdict.kind == "todo" and not verdict.passed
    assert "replace ___" in verdict.message
    assert cp.tries == 0 and not cp.hint_seen
    assert progress.lesson_progress(1).tries == {}


def test_a_blank_used_inside_the_learners_code_also_waits() -> None:
    def check(answer: str) -> Verdict:
        ___.strip()  # the learner's code reached the blank
        return Verdict.ok("never")

    verdict = make(check, takes_answer=True).verify("x")
    assert verdict.waiting and "still has a blank" in verdict.message


def test_passes_record_alone_after_the_hint_or_with_the_solution() -> None:
    alone, hinted, shown = Task(), Task(), Task()
    cp_alone = make(alone.check)
    alone.done = True
    assert cp_alone.verify()
    cp_hint = Checkpoint("t-hint", "B", "b", hinted.check, hint="h", solution="s")
    cp_hint.lesson = 1
    assert not cp_hint.verify() and cp_hint.hint_seen
    hinted.done = True
    assert cp_hint.verify()
    cp_sol = Checkpoint("t-sol", "C", "c", shown.check, hint="h", solution="s", code="x()")
    cp_sol.lesson = 1
    assert "first" in cp_sol.show_solution()  # no solution before a try
    assert not cp_sol.verify()
    assert "x()" in cp_sol.show_solution()
    shown.done = True
    assert cp_sol.verify()
    how = progress.lesson_progress(1).how
    assert how == {"t-ex": "alone", "t-hint": "hint", "t-sol": "solution"}


def test_solutions_can_be_switched_off_for_a_class(monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task()
    cp = make(task.check)
    cp.verify()
    monkeypatch.setenv("KIT_SOLUTIONS", "0")
    assert "switched solutions off" in cp.show_solution() and not cp.solution_seen
    monkeypatch.delenv("KIT_SOLUTIONS")
    classroom.set_solutions_allowed(False)
    assert not classroom.solutions_allowed()
    classroom.set_solutions_allowed(True)
    assert "do()" in cp.show_solution()


def test_demo_mode_solves_the_exercise_and_records_it_as_demo(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DEMO", "1")
    task = Task()
    cp = make(task.check, solve=task.solve)
    verdict = cp.verify(___)  # an unedited cell, presented by the instructor
    assert verdict.passed and verdict.demo and verdict.kind == "demo"
    done = progress.lesson_progress(1)
    assert done.demo == ("t-ex",) and done.passed == ()  # never the learner's
    assert cp.tries == 0


def test_demo_mode_gives_the_solutions_answer_to_an_exercise_that_takes_one(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    def check(answer: str) -> Verdict:
        return Verdict.ok("right") if answer == "42" else Verdict.fail("wrong")

    cp = make(check, takes_answer=True, solve=lambda: 42)
    assert not cp.verify(___).passed and cp.verify(___).waiting
    monkeypatch.setenv("KIT_DEMO", "yes")
    assert cp.verify(___).passed


def test_displaying_an_exercise_in_demo_mode_solves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    task = Task()
    cp = make(task.check, solve=task.solve)
    cp._repr_mimebundle_()
    assert cp.last is None  # not in demo mode: displaying does nothing
    monkeypatch.setenv("KIT_DEMO", "1")
    cp._repr_mimebundle_()
    assert task.done and cp.last is not None and cp.last.demo


def test_check_returns_the_widget_with_the_verdict() -> None:
    task = Task()
    cp = make(task.check)
    view = cp.check(___)
    assert view is cp.view and "Your turn" in view.verdict.value
    assert view.solution_button.layout.display == "none"  # no solution before a try
    cp.check()
    assert view.solution_button.layout.display == "flex"
