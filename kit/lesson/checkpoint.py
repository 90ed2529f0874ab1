"""Checkpoints: an exercise the learner does, checked by the kit against the live state.

A checkpoint never takes the learner's word for it: its ``check`` function
asks the real thing (QMP, the guest agent, an HTTP request from the host,
the host's process table) and returns a :class:`Verdict`.  The same call
serves the "Check" button, the ``cp.verify(answer)`` that ends an exercise
cell, and the tests, which verify each checkpoint both ways: it passes when
the task is done, and fails, with its hint, when it is not.

The learner does the work.  An exercise cell ships with a blank,
``___``, and ``verify(___)`` answers kindly that it is waiting for them
(no try is counted).  After a try, a stuck learner gets the hint, and then
may show the solution (unless the instructor switched solutions off,
:mod:`kit.lesson.classroom`); the progress file records whether each pass
came alone, after the hint, or with the solution shown.  In the
instructor's demo mode, checking runs the exercise's own ``solve`` first,
and the pass is recorded as a demo, never as the learner's.

A check that raises (the guest vanished mid-check, a bug) must not show a
traceback to a learner: :meth:`Checkpoint.verify` turns the exception into a
verdict in plain words and records it with :mod:`kit.core.incidents`, so a
headless run still fails at ``kit.raise_recorded_errors()``.  Expected
situations (no guest yet, the guest is paused) are therefore answered by the
check itself, as failed verdicts with a hint, not by raising.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from kit.core import incidents
from kit.core.blank import BlankNotFilled, is_blank
from kit.core.errors import InvalidInput, KitError
from kit.lesson import classroom, progress
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget, describe_error

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Check = Callable[..., "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What a check found: passed or not, why in words, and the evidence it measured.

    ``hint`` is filled in from the checkpoint when a failed check gives none;
    ``error`` is set when the check could not run at all.  ``bool(verdict)``
    is ``passed``, so ``assert cp.verify()`` reads naturally in tests.
    """

    passed: bool
    message: str
    evidence: tuple[str, ...] = ()
    hint: str = ""
    error: str = ""
    waiting: bool = False  # the learner has not filled in the exercise yet: no try
    demo: bool = False  # passed by the exercise's own solution, in demo mode

    @classmethod
    def ok(cls, message: str, *evidence: str) -> Verdict:
        return cls(True, message, tuple(evidence))

    @classmethod
    def fail(cls, message: str, *evidence: str, hint: str = "") -> Verdict:
        return cls(False, message, tuple(evidence), hint)

    @classmethod
    def waiting_for_you(cls, message: str, hint: str = "") -> Verdict:
        return cls(False, message, hint=hint, waiting=True)

    @property
    def kind(self) -> str:
        if self.waiting:
            return "todo"
        if self.passed:
            return "demo" if self.demo else "passed"
        return "error" if self.error else "failed"

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark, word = markup.BOXES[self.kind][:2]
        lines = [f"{mark} {word}: {self.message}", *(f"  measured: {e}" for e in self.evidence)]
        if self.hint and not self.passed:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines).replace("**", "")

    def _repr_html_(self) -> str:
        return verdict_html(self)


def verdict_html(verdict: Verdict) -> str:
    evidence = "".join(f"<li>{markup.inline(e)}</li>" for e in verdict.evidence)
    body = markup.inline(verdict.message)
    if evidence:
        body += f'<ul style="margin:2px 0 2px 1em;padding:0">{evidence}</ul>'
    return markup.box(verdict.kind, body)


class Checkpoint:
    """A task, a check against the live state, a hint after a wrong try, and a solution.

    ``check`` takes no argument, or, with ``takes_answer`` (the default when
    ``answer_label`` is given), the learner's answer as a string: what their
    cell computed, or what they typed in the widget's box (``answer_label``).
    ``solution`` says in words how to do the task; ``code`` is what does it.
    ``solve`` does the task (and returns the answer, if one is taken): demo
    mode runs it, and the tests use it to check that the check passes when
    the task is done.  ``lesson`` (set by :class:`kit.lesson.Lesson`) is
    where passes are recorded in the learner's progress.
    """

    def __init__(self, id: str, title: str, task: str, check: Check, hint: str,
                 solution: str, *, code: str = "", answer_label: str | None = None,
                 takes_answer: bool | None = None, solve: Callable[[], object] | None = None,
                 lesson: int | None = None) -> None:
        if not ID_PATTERN.match(id):
            raise InvalidInput(f"{id!r} cannot be a checkpoint id.",
                               hint="Use lower-case letters, digits and '-', e.g. 'l1-memory'.")
        if not hint or not solution:
            raise InvalidInput(f"checkpoint {id} needs a hint and a solution.",
                               hint="A learner who is stuck needs both.")
        self.id, self.title, self.task = id, title, task
        self.hint, self.solution, self.code = hint, solution, code
        self.answer_label = answer_label
        self.takes_answer = answer_label is not None if takes_answer is None else takes_answer
        self.solve = solve
        self.lesson = lesson
        self.tries = 0
        self.hint_seen = False
        self.solution_seen = False
        self.last: Verdict | None = None
        self._check = check
        self._lock = threading.Lock()
        self._view: CheckpointView | None = None

    def __repr__(self) -> str:
        status = self.last.kind if self.last else "not checked yet"
        return f"<Checkpoint {self.id}: {self.title} ({status})>"

    def verify(self, answer: object = None) -> Verdict:
        """Run the check now; show the verdict in the widget, record it, return it.

        ``answer`` is what the learner's exercise cell computed (or ``___``,
        the blank, when they have not written it yet); for a checkpoint that
        takes no answer it is only looked at for the blank.  If omitted, what
        is typed in the widget's answer box is used.
        """
        demo = classroom.demo_mode() and self.solve is not None
        if demo:
            answer = self._run_solution(answer)
        elif self._still_blank(answer):
            return self._show(self._waiting(), counted=False)
        verdict = self._run_check(self._answer_text(answer))
        if not verdict.passed and not verdict.hint:
            verdict = dataclasses.replace(verdict, hint=self.hint)
        if demo:
            verdict = dataclasses.replace(verdict, demo=True)
        verdict = self._record(verdict, "demo" if demo else self.how())
        return self._show(verdict, counted=not demo)

    def how(self) -> str:
        """How a pass now would have come: alone, after the hint, or with the solution."""
        if self.solution_seen:
            return "solution"
        return "hint" if self.hint_seen else "alone"

    def show_solution(self) -> str:
        """The solution in words and code (what the widget's button shows), if allowed."""
        if not classroom.solutions_allowed():
            return "Your instructor has switched solutions off for this class: ask them."
        if self.tries == 0:
            return "Try the exercise once first: the hint comes after a try, then the solution."
        self.solution_seen = True
        return self.solution + (f"\n\n    {self.code}" if self.code else "")

    def check(self, answer: object = None) -> CheckpointView:
        """What an exercise cell ends with: verify ``answer`` and show the exercise's widget.

        The widget holds the verdict, the hint after a wrong try, and the
        "show solution" control; :meth:`verify` returns the bare verdict.
        """
        view = self.view
        self.verify(answer)
        return view

    @property
    def view(self) -> CheckpointView:
        """The widget (made on first use, then shared by every display)."""
        if self._view is None:
            self._view = CheckpointView(self)
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Shown as its widget; in demo mode, the exercise first solves itself (Run All)."""
        passed = self.last is not None and self.last.passed
        if classroom.demo_mode() and self.solve is not None and not passed:
            self.verify()
        return self.view._repr_mimebundle_(**kwargs)

    # -- inside ---------------------------------------------------------------------

    def _still_blank(self, answer: object) -> bool:
        if is_blank(answer):
            return True
        typed = "" if self._view is None else str(self._view.answer.value).strip()
        return self.answer_label is not None and answer is None and not typed

    def _waiting(self) -> Verdict:
        where = ("type your answer in the box and press Check" if self.answer_label else
                 "replace ___ in the cell above with your code, then run the cell again")
        return Verdict.waiting_for_you(f"this exercise is waiting for you: {where}.",
                                       hint=self.hint)

    def _run_solution(self, answer: object) -> object:
        """Demo mode: do the task with the exercise's own solution; its answer if it gives one."""
        assert self.solve is not None
        produced = self.solve()
        return produced if answer is None or is_blank(answer) else answer

    def _show(self, verdict: Verdict, *, counted: bool) -> Verdict:
        with self._lock:
            if counted:
                self.tries += 1
                if not verdict.passed and verdict.hint:
                    self.hint_seen = True
            self.last = verdict
        if self._view is not None:
            self._view.show_verdict(verdict, self.tries)
        return verdict

    def _answer_text(self, answer: object) -> str:
        if answer is None and self._view is not None:
            return str(self._view.answer.value).strip()
        return "" if answer is None else str(answer).strip()

    def _run_check(self, answer: str) -> Verdict:
        try:
            result = self._check(answer) if self.takes_answer else self._check()
            if not isinstance(result, Verdict):
                raise TypeError(f"the check of {self.id} returned {result!r}, not a Verdict")
            return result
        except BlankNotFilled as error:
            return Verdict.waiting_for_you(str(error), hint=self.hint)
        except Exception as error:
            incidents.record(error, f"checkpoint {self.id}")
            what, fix = describe_error(error)
            return Verdict(False, f"the check could not run: {what}", hint=fix, error=what)

    def _record(self, verdict: Verdict, how: str) -> Verdict:
        if self.lesson is None:
            return verdict
        try:
            progress.record_checkpoint(self.lesson, self.id, verdict.passed, how)
        except KitError as error:  # the lesson goes on; the learner is told
            return dataclasses.replace(
                verdict, evidence=(*verdict.evidence, f"(not saved: {error.message})"))
        return verdict


class CheckpointView(KitWidget):
    """The checkpoint as the learner sees it: task, Check, verdict, hint, solution."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__(f"checkpoint {checkpoint.id}")
        self.checkpoint = checkpoint
        self.heading = widgets.HTML(
            f'<div style="font-size:1.05em;line-height:1.4"><b>⚑ Checkpoint: '
            f"{escape(checkpoint.title)}</b></div>")
        self.task = widgets.HTML(markup.text(markup.inline(checkpoint.task)))
        self.answer = widgets.Text(
            placeholder="type your answer here",
            description=checkpoint.answer_label or "",
            style={"description_width": "initial"},
            layout=widgets.Layout(display="flex" if checkpoint.answer_label else "none",
                                  width="28em"))
        self.check_button = widgets.Button(description="Check", icon="check",
                                           button_style="primary",
                                           tooltip="Ask the live machine whether the task is done")
        self.verdict = widgets.HTML(
            markup.box("pending", "press Check once you have done the task."))
        self.hint = widgets.HTML(layout=widgets.Layout(display="none"))
        self.solution_button = widgets.ToggleButton(
            description="show solution", icon="key",
            tooltip="After a try: how to do it (recorded as solved with the solution)",
            layout=widgets.Layout(display="none"))
        self.solution = widgets.HTML(layout=widgets.Layout(display="none"))
        self.check_button.on_click(self._callback("checking", self._check_now))
        self.solution_button.observe(self._guarded("showing the solution", self._toggle),
                                     names="value")
        self._set_body(self.heading, self.task, self.answer,
                       widgets.HBox([self.check_button, self.solution_button]),
                       self.verdict, self.hint, self.solution)
        self.layout.border = "1px solid #bbb"
        self.layout.padding = "6px 10px"
        self.layout.margin = "8px 0"
        self.verdict_text = ""
        if checkpoint.last is not None:
            self.show_verdict(checkpoint.last, checkpoint.tries)

    def show_verdict(self, verdict: Verdict, tries: int) -> None:
        """Show a verdict; after a wrong try, the hint too (assigning traits: thread-safe)."""
        self.verdict_text = str(verdict)
        attempt = "" if verdict.waiting or verdict.demo else (
            f' <small>(try {tries}, {time.strftime("%H:%M:%S")})</small>')
        self.verdict.value = verdict_html(verdict) + attempt
        if tries > 0:
            self.solution_button.layout.display = "flex"
        if verdict.passed:
            self.hint.layout.display = "none"
        elif verdict.hint:
            self.hint.value = markup.box("hint", markup.inline(verdict.hint))
            self.hint.layout.display = "block"

    def _check_now(self) -> None:
        """Say that the check runs (some wait for the guest a moment), then run it."""
        self.verdict.value = markup.box("pending", "asking the live machine…", word="…")
        self.checkpoint.verify()

    def _toggle(self, change: dict[str, Any]) -> None:
        shown = bool(change["new"])
        if shown:
            self.solution.value = _solution_html(self.checkpoint)
        self.solution.layout.display = "block" if shown else "none"
        self.solution_button.description = "hide solution" if shown else "show solution"


def _solution_html(checkpoint: Checkpoint) -> str:
    if not classroom.solutions_allowed() or checkpoint.tries == 0:
        return markup.box("hint", markup.inline(checkpoint.show_solution()))
    checkpoint.show_solution()
    code = markup.code_block(checkpoint.code) if checkpoint.code else ""
    return markup.box("solution", markup.inline(checkpoint.solution) + code)
