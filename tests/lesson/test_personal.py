"""Personal values: the same for one learner every time, different for another."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.lesson import personal, progress
from kit.lesson.quiz import Choice, Question


@pytest.fixture(autouse=True)
def fresh_seed() -> None:
    personal.seed.cache_clear()


def test_values_are_stable_for_a_learner_and_in_range() -> None:
    first = (personal.number("mem", 130, 250, 2), personal.secret("s"))
    personal.seed.cache_clear()
    assert (personal.number("mem", 130, 250, 2), personal.secret("s")) == first
    assert 130 <= first[0] <= 250 and first[0] % 2 == 0
    assert first[1].count("-") == 2


def test_another_learner_gets_other_values(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mine = [personal.secret(f"s{i}") for i in range(5)]
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(tmp_path / "other.json"))
    personal.seed.cache_clear()
    assert [personal.secret(f"s{i}") for i in range(5)] != mine
    assert isinstance(progress.load()["seed"], int)


def test_quiz_choices_are_shuffled_per_learner_but_stable() -> None:
    q = Question("t-q", "?", [Choice(str(i), i == 0, "why") for i in range(5)])
    order = q.display_order()
    assert sorted(order) == list(range(5)) and q.display_order() == order
    others = set()
    for n in range(12):
        personal.seed.cache_clear()
        progress.reset()
        data_path = progress.progress_file()
        data_path.unlink(missing_ok=True)
        others.add(tuple(q.display_order()))
        del n
    assert len(others) > 1  # learners do not all see the same order
