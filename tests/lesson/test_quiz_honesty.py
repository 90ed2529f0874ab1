"""Honest quizzes: the right answer cannot be spotted by its length or its place.

Across the course, the right choice may be the strictly longest in at most
40 % of the questions (a learner who always picks the longest would
otherwise score), and the order each learner sees is shuffled for them.
"""

from __future__ import annotations

import importlib

from kit.lesson import catalog
from kit.lesson.quiz import Question

MAX_LONGEST_SHARE = 0.40


def every_question() -> list[Question]:
    questions: list[Question] = []
    for info in catalog.LESSONS:
        quiz = importlib.import_module(info.module).lesson.quiz
        questions += list(quiz.questions) if quiz is not None else []
    return questions


def right_is_strictly_longest(question: Question) -> bool:
    right = len(question.choices[question.right_choice].text)
    others = [len(c.text) for i, c in enumerate(question.choices) if i != question.right_choice]
    return right > max(others)


def test_the_right_choice_is_rarely_the_longest() -> None:
    questions = every_question()
    longest = [q.id for q in questions if right_is_strictly_longest(q)]
    share = len(longest) / len(questions)
    assert share <= MAX_LONGEST_SHARE, (
        f"the right choice is the strictly longest in {len(longest)} of {len(questions)} "
        f"questions ({share:.0%}): {longest}")


def test_every_question_is_shuffled_for_the_learner() -> None:
    for question in every_question():
        order = question.display_order()
        assert sorted(order) == list(range(len(question.choices)))
        assert question.display_order() == order  # stable for this learner


def test_the_course_has_enough_questions() -> None:
    assert len(every_question()) >= 40
