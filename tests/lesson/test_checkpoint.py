"""Checkpoints: a verdict from a live check, a hint after a wrong try, errors in words."""

from __future__ import annotations

import pytest

from kit.core import incidents
from kit.core.errors import GuestNotRunning, InvalidInput
from kit.lesson import Checkpoint, Verdict, progress


def make(check: object, **kwargs: object) -> Checkpoint:
    return Checkpoint("t-check", "A task", "Do the `thing`.", check,  # type: ignore[arg-type]
                      hint="the general hint", solution="how to do it", **kwargs)


def test_a_passing_check_gives_a_passed_verdict_without_hint() -> None:
    cp = make(lambda: Verdict.ok("done", "measured 1"))
    verdict = cp.verify()
    assert verdict and verdict.passed and verdict.kind == "passed"
    assert verdict.evidence == ("measured 1",) and verdict.hint == ""
    assert cp.tries == 1 and cp.last is verdict


def test_a_failing_check_always_carries_a_hint() -> None:
    assert make(lambda: Verdict.fail("not done")).verify().hint == "the general hint"
    specific = make(lambda: Verdict.fail("not done", hint="the specific hint")).verify()
    assert specific.hint == "the specific hint"
    assert not specific and specific.kind == "failed"


def test_an_exception_becomes_plain_words_and_is_recorded() -> None:
    def broken() -> Verdict:
        raise GuestNotRunning("guest x is stopped.", hint="Start it.")

    verdict = make(broken).verify()
    assert not verdict.passed and verdict.kind == "error"
    assert "guest x is stopped" in verdict.message and verdict.hint == "Start it."
    assert "Traceback" not in str(verdict)
    assert [i.where for i in incidents.recorded()] == ["checkpoint t-check"]


def test_a_check_that_returns_no_verdict_is_a_bug_reported_in_words() -> None:
    verdict = make(lambda: True).verify()
    assert verdict.kind == "error" and "not a Verdict" in verdict.message
    assert incidents.recorded()


def test_a_checkpoint_with_an_answer_box_passes_the_answer_as_text() -> None:
    seen: list[str] = []

    def check(answer: str) -> Verdict:
        seen.append(answer)
        return Verdict.ok("fine") if answer == "42" else Verdict.fail("no")

    cp = make(check, answer_label="the answer:")
    assert cp.verify(42) and not cp.verify(" 41 ")
    cp.view.answer.value = "42"
    assert cp.verify()  # no answer given: the box's text is used
    assert seen == ["42", "41", "42"]


def test_passes_are_recorded_once_bound_to_a_lesson() -> None:
    cp = make(lambda: Verdict.fail("no"))
    cp.verify()
    assert progress.all_progress() == {}  # not bound: nothing recorded
    cp.lesson = 3
    cp.verify()
    assert progress.lesson_progress(3).tries == {"t-check": 1}


def test_the_widget_shows_verdict_then_hint_then_solution() -> None:
    state = {"done": False}
    cp = make(lambda: Verdict.ok("done") if state["done"] else Verdict.fail("not yet done"))
    view = cp.view
    assert cp.view is view and "Not checked yet" in view.verdict.value
    assert view.hint.layout.display == "none" and view.solution.layout.display == "none"
    assert view.answer.layout.display == "none"  # this checkpoint asks no answer
    view.check_button.click()
    assert "✖ Not yet" in view.verdict.value and "not yet done" in view.verdict.value
    assert view.hint.layout.display == "block" and "the general hint" in view.hint.value
    state["done"] = True
    view.check_button.click()
    assert "✔ Passed" in view.verdict.value and view.hint.layout.display == "none"
    view.solution_button.value = True
    assert view.solution.layout.display == "block" and "how to do it" in view.solution.value
    assert "<code" in view.task.value  # `thing` is shown as code


def test_verify_from_code_updates_a_shown_widget() -> None:
    cp = make(lambda: Verdict.ok("done"))
    view = cp.view
    cp.verify()
    assert "✔ Passed" in view.verdict.value and "Passed: done" in view.verdict_text


def test_verdicts_read_without_colour() -> None:
    for verdict, words in [(Verdict.ok("a"), "✔ Passed"), (Verdict.fail("b"), "✖ Not yet"),
                           (Verdict(False, "c", error="c"), "⚠ The check could not run")]:
        assert words in verdict._repr_html_() and words in str(verdict)


@pytest.mark.parametrize("bad_id", ["", "Has Caps", "x" * 70, "-dash"])
def test_bad_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(bad_id, "t", "task", lambda: Verdict.ok("x"), hint="h", solution="s")


def test_a_checkpoint_needs_a_hint_and_a_solution() -> None:
    with pytest.raises(InvalidInput, match="hint and a solution"):
        Checkpoint("x", "t", "task", lambda: Verdict.ok("x"), hint="", solution="s")
