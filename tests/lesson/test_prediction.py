"""Predictions: committed first, then measured, both saved; refused kindly when not a guess."""

from __future__ import annotations

import pytest

from kit.core.errors import InvalidInput
from kit.lesson import progress
from kit.lesson.prediction import Prediction


def test_a_committed_guess_is_measured_compared_and_saved() -> None:
    measured = []
    p = Prediction("t-p-mem", "How much?", lambda: measured.append(1) or 171.0, unit="MiB",
                   explain=lambda g, m: "The kernel keeps some for itself.", lesson=1)
    assert not measured  # nothing is measured before the learner commits
    outcome = p.commit("180")
    assert outcome.predicted == 180 and outcome.measured == 171
    assert "180 MiB" in outcome.words and "171 MiB" in outcome.words
    assert "within 10 %" in outcome.words and "keeps some" in outcome.words
    assert progress.lesson_progress(1).predictions == {"t-p-mem": (180.0, 171.0)}


def test_the_gap_is_said_in_words() -> None:
    p = Prediction("t-p-gap", "How long?", lambda: 2.0, unit="s")
    assert "5.0 times the measurement" in p.commit(10).words
    assert "4.0 times less" in p.commit(0.5).words


def test_a_choice_prediction() -> None:
    p = Prediction("t-p-choice", "Which starts first?", lambda: 1,
                   choices=["the VM", "the container"])
    assert "was right" in p.commit("the container").words
    assert "not what you predicted" in p.commit(0).words
    with pytest.raises(InvalidInput, match="not one of the choices"):
        p.commit("a cat")


def test_a_guess_that_is_not_a_number_is_refused_kindly() -> None:
    p = Prediction("t-p-bad", "How many?", lambda: 3.0)
    with pytest.raises(InvalidInput, match="not a number") as info:
        p.commit("lots")
    assert "no penalty" in (info.value.hint or "")


def test_demo_mode_shows_the_measurement_and_saves_no_prediction(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIT_DEMO", "1")
    p = Prediction("t-p-demo", "How much?", lambda: 5.0, lesson=1)
    p._repr_mimebundle_()
    assert p.last is not None and p.last.predicted is None and "demo" in p.last.words
    assert progress.lesson_progress(1).predictions == {}
