"""Predict, then observe: the learner commits a guess before the kit measures.

A measurement read after a guess teaches more than one read cold: the gap
between the two is what the learner remembers.  So a prediction widget asks
first (a number, or one of a few choices), and only once the learner commits
does the kit measure, live, and show both side by side with a sentence on
the gap.  Both are saved in the learner's progress.

In the instructor's demo mode the measurement is shown at once and nothing
is recorded as the learner's prediction.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from kit.core.errors import InvalidInput, KitError
from kit.lesson import classroom, progress
from kit.lesson.checkpoint import ID_PATTERN
from kit.view import markup
from kit.widgets.base import KitWidget, set_button_style

log = logging.getLogger(__name__)

Explain = Callable[[float, float], str]


@dataclass(frozen=True)
class Outcome:
    """A committed prediction and what was then measured."""

    prediction_id: str
    predicted: float | None  # None in demo mode
    measured: float
    words: str  # the prediction, the measurement and the gap, in one or two sentences

    def __str__(self) -> str:
        return self.words

    def _repr_html_(self) -> str:
        return markup.box("demo" if self.predicted is None else "hint", markup.inline(self.words),
                          word="Measured")


class Prediction:
    """Ask ``question``; after the learner commits, ``measure()`` and compare.

    ``measure`` returns a number (in ``unit``), or with ``choices`` the index
    of the choice that turned out true.  ``explain(predicted, measured)``
    adds the sentence that says what the gap means.
    """

    def __init__(self, id: str, question: str, measure: Callable[[], float], *,
                 unit: str = "", choices: Sequence[str] | None = None,
                 explain: Explain | None = None, lesson: int | None = None) -> None:
        if not ID_PATTERN.match(id):
            raise InvalidInput(f"{id!r} cannot be a prediction id.",
                               hint="Use lower-case letters, digits and '-', e.g. 'l1-p-memory'.")
        self.id, self.question, self.unit = id, question, unit
        self.choices = tuple(choices) if choices else None
        self.lesson = lesson
        self.last: Outcome | None = None
        self._measure = measure
        self._explain = explain
        self._lock = threading.Lock()
        self._view: PredictionView | None = None

    def __repr__(self) -> str:
        return f"<Prediction {self.id}: {self.question[:40]}>"

    def commit(self, predicted: object) -> Outcome:
        """The learner's guess is final: measure now, compare, save both, show them."""
        guess = self._parse(predicted)
        measured = float(self._measure())
        outcome = Outcome(self.id, guess, measured, self._words(guess, measured))
        self._save(outcome)
        return self._show(outcome)

    def observe_in_demo(self) -> Outcome:
        """Demo mode: the measurement alone, recorded as nobody's prediction."""
        measured = float(self._measure())
        words = f"measured: {self._value(measured)} (demo: no prediction)."
        if self._explain is not None:
            words += " " + self._explain(measured, measured)
        return self._show(Outcome(self.id, None, measured, words))

    @property
    def view(self) -> PredictionView:
        if self._view is None:
            self._view = PredictionView(self)
        return self._view

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if classroom.demo_mode() and self.last is None:
            try:
                self.observe_in_demo()
            except KitError as error:  # said in the widget, like a failed measurement
                self.view.result.value = markup.box(
                    "error", markup.inline(f"{error.message} {error.hint or ''}"),
                    word="Cannot measure here")
        return self.view._repr_mimebundle_(**kwargs)

    # -- inside ----------------------------------------------------------------------

    def _parse(self, predicted: object) -> float:
        if self.choices is not None:
            if isinstance(predicted, str) and predicted in self.choices:
                return float(self.choices.index(predicted))
            if isinstance(predicted, int) and 0 <= predicted < len(self.choices):
                return float(predicted)
            raise InvalidInput(f"{predicted!r} is not one of the choices.",
                               hint=f"Pick one of: {', '.join(self.choices)}.")
        try:
            value = float(str(predicted).strip())
        except ValueError:
            raise InvalidInput(f"{predicted!r} is not a number.",
                               hint=f"Type a number{' in ' + self.unit if self.unit else ''}, "
                               "your best guess: there is no penalty for being far off.") from None
        if not math.isfinite(value):
            raise InvalidInput(f"{predicted!r} is not a number.", hint="Type a plain number.")
        return value

    def _value(self, value: float) -> str:
        if self.choices is not None:
            return f"“{self.choices[int(value)]}”"
        number = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{number} {self.unit}".strip()

    def _words(self, guess: float, measured: float) -> str:
        if self.choices is not None:
            verdict = ("your prediction was right" if int(guess) == int(measured) else
                       "not what you predicted")
        elif measured == 0:
            verdict = "exactly" if guess == 0 else "off"
        else:
            ratio = guess / measured
            verdict = ("within 10 % of it" if 0.9 <= ratio <= 1.1 else
                       f"{ratio:.1f} times the measurement" if ratio > 1 else
                       f"{1 / ratio:.1f} times less than the measurement" if ratio > 0 else
                       "on the wrong side of zero")
        words = (f"you predicted {self._value(guess)}; the kit measured "
                 f"{self._value(measured)}: {verdict}.")
        if self._explain is not None:
            words += " " + self._explain(guess, measured)
        return words

    def _save(self, outcome: Outcome) -> None:
        if self.lesson is None or outcome.predicted is None:
            return
        try:
            progress.record_prediction(self.lesson, self.id, outcome.predicted, outcome.measured)
        except KitError as error:  # the lesson goes on; the widget still shows both
            log.warning("prediction %s not saved: %s", self.id, error.message)

    def _show(self, outcome: Outcome) -> Outcome:
        with self._lock:
            self.last = outcome
        if self._view is not None:
            self._view.show(outcome)
        return outcome


class PredictionView(KitWidget):
    """The question, the learner's guess, a Commit button, then both values side by side."""

    def __init__(self, prediction: Prediction) -> None:
        super().__init__(f"prediction {prediction.id}")
        self.prediction = prediction
        heading = widgets.HTML(f'<div style="line-height:1.4"><b>🔮 Predict first:</b> '
                               f"{markup.inline(prediction.question)}</div>")
        if prediction.choices is not None:
            self.guess: widgets.Widget = widgets.RadioButtons(options=list(prediction.choices),
                                                              value=None)
        else:
            unit = f", {prediction.unit}" if prediction.unit else ""
            self.guess = widgets.Text(placeholder=f"your guess{unit}",
                                      layout=widgets.Layout(width="16em"))
        self.commit_button = widgets.Button(
            description="Commit, then measure", icon="lock",
            tooltip="Your guess is saved first; then the kit measures on the live machine",
            layout=widgets.Layout(width="auto"))
        set_button_style(self.commit_button, "info")
        self.result = widgets.HTML(markup.box("pending", "make your guess, then commit it."))
        self.commit_button.on_click(self._callback("measuring", self._commit))
        self._set_body(heading, widgets.HBox([self.guess, self.commit_button]), self.result)
        self.layout.border = "1px solid #bbb"
        self.layout.padding = "6px 10px"
        self.layout.margin = "8px 0"
        if prediction.last is not None:
            self.show(prediction.last)

    def show(self, outcome: Outcome) -> None:
        self.result.value = outcome._repr_html_()
        if outcome.predicted is not None:
            self.guess.disabled = True
            self.commit_button.disabled = True
            self.commit_button.description = "committed"

    def _commit(self) -> None:
        value = self.guess.value
        if value is None or str(value).strip() == "":
            self.result.value = markup.box("todo", "first type (or pick) your guess.",
                                           word="Your turn")
            return
        self.result.value = markup.box("pending", "measuring on the live machine…", word="…")
        self.prediction.commit(value)


