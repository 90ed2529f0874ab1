"""Quizzes: multiple choice, with feedback on every answer, right or wrong.

Every choice carries its own explanation (``why``): a learner who picks a
wrong answer learns why it is wrong, and one who guessed right learns why it
is right.  Answers are recorded in the learner's progress.  The same
:meth:`Question.answer` serves the widget and headless use (tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from kit.core.errors import InvalidInput, KitError
from kit.lesson import personal, progress
from kit.lesson.checkpoint import ID_PATTERN
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget


@dataclass(frozen=True)
class Choice:
    """One answer to offer, whether it is right, and why (shown whichever is picked)."""

    text: str
    correct: bool
    why: str


@dataclass(frozen=True)
class Feedback:
    """What the learner is told after answering."""

    question_id: str
    choice: int
    correct: bool
    text: str  # the choice they picked
    why: str
    saved: bool = True

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        mark = "✔ Right" if self.correct else "✖ Not quite"
        return f"{mark}: {self.why}"

    def _repr_html_(self) -> str:
        return feedback_html(self)


def feedback_html(feedback: Feedback) -> str:
    note = "" if feedback.saved else " <small>(your answer could not be saved)</small>"
    return markup.box("right" if feedback.correct else "wrong",
                     f"<i>{markup.inline(feedback.text)}</i>: {markup.inline(feedback.why)}{note}")


class Question:
    """A multiple-choice question with exactly one right choice."""

    def __init__(self, id: str, prompt: str, choices: Sequence[Choice]) -> None:
        if not ID_PATTERN.match(id):
            raise InvalidInput(f"{id!r} cannot be a question id.",
                               hint="Use lower-case letters, digits and '-', e.g. 'l1-q1'.")
        if len(choices) < 2 or sum(c.correct for c in choices) != 1:
            raise InvalidInput(f"question {id} needs two or more choices, exactly one right.",
                               hint="Mark one Choice with correct=True.")
        if not all(c.why for c in choices):
            raise InvalidInput(f"question {id}: every choice needs a 'why'.",
                               hint="Feedback is given on every answer, right or wrong.")
        self.id, self.prompt, self.choices = id, prompt, tuple(choices)
        self.lesson: int | None = None
        self.last: Feedback | None = None

    def __repr__(self) -> str:
        return f"<Question {self.id}: {self.prompt[:40]}>"

    @property
    def right_choice(self) -> int:
        return next(i for i, c in enumerate(self.choices) if c.correct)

    def display_order(self) -> list[int]:
        """The choices' indices in the order this learner sees them.

        Shuffled per learner and question (and the same every time for that
        learner), so the place of the right answer tells nothing, and two
        neighbours do not see the same list.
        """
        return personal.shuffled(f"quiz:{self.id}", range(len(self.choices)))

    def answer(self, choice: int) -> Feedback:
        """Answer with the choice's index (from 0); returns feedback and records it."""
        if not isinstance(choice, int) or not 0 <= choice < len(self.choices):
            raise InvalidInput(f"{choice!r} is not one of the choices of question {self.id}.",
                               hint=f"Give a number from 0 to {len(self.choices) - 1}.")
        picked = self.choices[choice]
        saved = self._record(choice, picked.correct)
        self.last = Feedback(self.id, choice, picked.correct, picked.text, picked.why, saved)
        return self.last

    def _record(self, choice: int, correct: bool) -> bool:
        if self.lesson is None:
            return True
        try:
            progress.record_answer(self.lesson, self.id, choice, correct)
        except KitError:
            return False
        return True


class Quiz:
    """A few questions, shown together, each answered on its own."""

    def __init__(self, questions: Sequence[Question], *, title: str = "Quiz") -> None:
        ids = [q.id for q in questions]
        if not questions or len(set(ids)) != len(ids):
            raise InvalidInput("a quiz needs questions with different ids.",
                               hint=f"These ids are given: {ids}.")
        self.questions = tuple(questions)
        self.title = title
        self._view: QuizView | None = None

    def bind(self, lesson: int) -> None:
        for question in self.questions:
            question.lesson = lesson

    def question(self, id: str) -> Question:
        for question in self.questions:
            if question.id == id:
                return question
        raise InvalidInput(f"this quiz has no question {id!r}.",
                           hint=f"Its questions are {[q.id for q in self.questions]}.")

    def score(self) -> tuple[int, int]:
        """(right, answered) in this session, by each question's latest answer."""
        answered = [q.last for q in self.questions if q.last is not None]
        return sum(1 for f in answered if f.correct), len(answered)

    @property
    def view(self) -> QuizView:
        if self._view is None:
            self._view = QuizView(self)
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)


class QuestionView(widgets.VBox):  # type: ignore[misc]
    """One question: the prompt, the choices, an Answer button and the feedback."""

    def __init__(self, question: Question, number: int, on_answer: Any) -> None:
        self.question = question
        prompt = markup.inline(question.prompt)
        self.prompt = widgets.HTML(markup.text(f"<b>{number}.</b> {prompt}"))
        self.choices = widgets.RadioButtons(
            options=[(question.choices[i].text, i) for i in question.display_order()],
            value=None, layout=widgets.Layout(width="auto"))
        self.answer_button = widgets.Button(description="Answer", icon="check")
        self.feedback = widgets.HTML()
        self.answer_button.on_click(on_answer)
        super().__init__([self.prompt, self.choices, self.answer_button, self.feedback],
                         layout=widgets.Layout(margin="4px 0 10px 0"))

    def submit(self) -> Feedback | None:
        """Answer with the selected choice (nothing happens if none is selected)."""
        if self.choices.value is None:
            self.feedback.value = markup.box("pending", "choose an answer first.")
            return None
        feedback = self.question.answer(int(self.choices.value))
        self.feedback.value = feedback_html(feedback)
        return feedback


class QuizView(KitWidget):
    """Every question of a quiz, and the score so far."""

    def __init__(self, quiz: Quiz) -> None:
        super().__init__("quiz")
        self.quiz = quiz
        self.score = widgets.HTML()
        self.questions = [
            QuestionView(q, i + 1, self._callback(f"answering {q.id}", self._answered(i)))
            for i, q in enumerate(quiz.questions)]
        self._set_body(widgets.HTML(f'<div style="font-size:1.05em"><b>? {escape(quiz.title)}'
                                    "</b> <small>(feedback after every answer)</small></div>"),
                       *self.questions, self.score)
        self._show_score()

    def _answered(self, index: int) -> Any:
        def run() -> None:
            self.questions[index].submit()
            self._show_score()
        return run

    def _show_score(self) -> None:
        right, answered = self.quiz.score()
        total = len(self.quiz.questions)
        self.score.value = f"<b>Score:</b> {right} right of {answered} answered ({total} in all)"
