"""Quizzes: feedback on every answer, recorded, usable without a browser."""

from __future__ import annotations

import pytest

from kit.core.errors import InvalidInput
from kit.lesson import Choice, Question, Quiz, progress


def question(qid: str = "t-q1") -> Question:
    return Question(qid, "Which one?", [
        Choice("the wrong one", False, "because it is wrong"),
        Choice("the right one", True, "because it is right"),
    ])


def test_every_answer_gets_its_own_why() -> None:
    q = question()
    wrong, right = q.answer(0), q.answer(1)
    assert not wrong and wrong.why == "because it is wrong" and "✖ Not quite" in str(wrong)
    assert right and right.why == "because it is right" and "✔ Right" in str(right)
    assert q.right_choice == 1 and q.last == right
    assert "✔ Right" in right._repr_html_()


def test_answers_are_recorded_once_bound() -> None:
    quiz = Quiz([question("t-q1"), question("t-q2")])
    quiz.bind(2)
    quiz.question("t-q1").answer(0)
    quiz.question("t-q1").answer(1)
    quiz.question("t-q2").answer(0)
    saved = progress.lesson_progress(2).answers
    assert saved["t-q1"] == progress.Answer(1, True, 2)
    assert not saved["t-q2"].correct
    assert quiz.score() == (1, 2)


@pytest.mark.parametrize("choice", [-1, 2, "1", None])
def test_an_answer_that_is_not_a_choice_is_refused(choice: object) -> None:
    with pytest.raises(InvalidInput, match="not one of the choices"):
        question().answer(choice)  # type: ignore[arg-type]


def test_questions_need_one_right_choice_and_every_why() -> None:
    with pytest.raises(InvalidInput, match="exactly one right"):
        Question("x", "?", [Choice("a", True, "w"), Choice("b", True, "w")])
    with pytest.raises(InvalidInput, match="every choice needs"):
        Question("x", "?", [Choice("a", True, "w"), Choice("b", False, "")])
    with pytest.raises(InvalidInput, match="different ids"):
        Quiz([question("a"), question("a")])


def test_the_widget_answers_and_scores() -> None:
    quiz = Quiz([question("t-q1"), question("t-q2")])
    view = quiz.view
    first = view.questions[0]
    first.answer_button.click()  # nothing chosen yet
    assert "choose an answer first" in first.feedback.value
    first.choices.value = 0
    first.answer_button.click()
    assert "✖ Not quite" in first.feedback.value and "because it is wrong" in first.feedback.value
    first.choices.value = 1
    first.answer_button.click()
    assert "✔ Right" in first.feedback.value
    assert "1 right of 1 answered (2 in all)" in view.score.value
