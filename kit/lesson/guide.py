"""The instructor guide's answer key, written from the lessons themselves.

Every exercise's task, hint and solution, every prediction's question, and
every quiz question's right answer with its explanation come from the lesson
modules the notebooks run, so the key in ``docs/instructor-guide.md`` cannot
drift from what learners see: ``python -m kit guide --write`` rewrites it,
and a test fails when the document and the lessons differ.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from kit.lesson import catalog
from kit.lesson.checkpoint import Checkpoint
from kit.lesson.lesson import Lesson
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Quiz

BEGIN = "<!-- answer key: written by `python -m kit guide --write`; do not edit by hand -->"
END = "<!-- end of the answer key -->"


def lesson_of(info: catalog.LessonInfo) -> Lesson:
    """The :class:`Lesson` object of a catalogued lesson (its module's ``lesson``)."""
    lesson = importlib.import_module(info.module).lesson
    assert isinstance(lesson, Lesson)
    return lesson


def answer_key() -> str:
    """The whole key, lesson by lesson, as Markdown."""
    parts = [_lesson_key(info, lesson_of(info)) for info in catalog.LESSONS if info.available]
    return "\n".join(parts)


def with_key(document: str) -> str:
    """``document`` with the text between :data:`BEGIN` and :data:`END` replaced by the key."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(document):
        raise ValueError(f"the guide has no {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{answer_key()}\n{END}", document)


def write(path: Path) -> bool:
    """Rewrite the key in the guide at ``path``; True if it changed."""
    old = path.read_text()
    new = with_key(old)
    if new != old:
        path.write_text(new)
    return new != old


# -- one lesson ---------------------------------------------------------------------------


def _lesson_key(info: catalog.LessonInfo, lesson: Lesson) -> str:
    lines = [f"### Lesson {info.number} · {info.title}", ""]
    for number, checkpoint in enumerate(lesson.checkpoints, 1):
        lines += _exercise(number, checkpoint)
    if lesson.predictions:
        lines += ["**Predictions** (each answer is measured on the learner's own machine, "
                  "so there is no fixed key):", ""]
        lines += [f"- {_one_line(p.question)}" + _choices(p) for p in lesson.predictions]
        lines.append("")
    if lesson.quiz is not None:
        lines += _quiz(lesson.quiz)
    return "\n".join(lines)


def _exercise(number: int, checkpoint: Checkpoint) -> list[str]:
    return [
        f"**Exercise {number} · {checkpoint.title}** (`{checkpoint.id}`)",
        "",
        f"- Task: {_one_line(checkpoint.task)}",
        f"- Hint: {_one_line(checkpoint.hint)}",
        f"- Solution: {_one_line(checkpoint.solution)}",
        "",
        "```python",
        checkpoint.code.rstrip(),
        "```",
        "",
    ]


def _choices(prediction: Prediction) -> str:
    if not prediction.choices:
        return f" (a number{', in ' + prediction.unit.strip() if prediction.unit else ''})"
    return " Choices: " + "; ".join(f"*{_one_line(c)}*" for c in prediction.choices) + "."


def _quiz(quiz: Quiz) -> list[str]:
    lines = ["**Quiz**", ""]
    for number, question in enumerate(quiz.questions, 1):
        right = next(c for c in question.choices if c.correct)
        lines.append(f"{number}. {_one_line(question.prompt)} **{_one_line(right.text)}**: "
                     f"{_one_line(right.why)}")
    lines.append("")
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())
