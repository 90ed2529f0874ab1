"""A class's drop folder written by hand: learners' progress files with chosen moments.

The files are what the kit writes (:mod:`kit.lesson.progress`, format 1), with
try times chosen by the test, so that "stuck for 30 minutes" needs no wait.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

NOW = 1_750_000_000.0  # the moment the tests read the class at


def iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


def tried(tries: int, first: float, last: float, how: str | None = None) -> dict[str, Any]:
    """A checkpoint's entry: ``tries`` between ``first`` and ``last``; passed ``how`` at last."""
    entry: dict[str, Any] = {"tries": tries, "first_try_at": iso(first),
                             "last_try_at": iso(last)}
    if how is not None:
        entry.update(passed_at=iso(last), how=how)
    return entry


def answered(choice: int, correct: bool, wrong: list[int]) -> dict[str, Any]:
    return {"choice": choice, "correct": correct, "tries": len(wrong) + (1 if correct else 0),
            "wrong": wrong, "at": iso(NOW - 600)}


def write(drop: Path, learner: str, lessons: dict[int, dict[str, Any]]) -> Path:
    folder = drop / learner
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "progress.json"
    path.write_text(json.dumps({"format": 1, "learner": learner,
                                "lessons": {str(n): e for n, e in lessons.items()}}))
    return path


def lesson1(checkpoints: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    return {"opened_at": iso(NOW - 4000),
            "checkpoint_ids": ["l1-secret", "l1-machine", "l1-renice"],
            "question_ids": [f"l1-q{i}" for i in range(1, 6)],
            "checkpoints": checkpoints, "answers": answers}


def make_class(drop: Path) -> list[str]:
    """Five learners with folders (one with a broken file) and one never seen (erin).

    * alice passed lesson 1's three checkpoints: alone, after the hint, with the
      solution; quiz: q1 wrong (choice 0) then right, q2 right, q3 wrong (0);
    * bob passed l1-secret, and has tried l1-machine 4 times over 30 minutes;
      quiz: q1 wrong twice (0, then 2), q3 wrong (0) then right;
    * carol saw l1-secret in demo mode, tried l1-machine once 5 minutes ago;
      quiz: q1 wrong (2) then right, q3 wrong (0);
    * dave failed l1-secret two hours ago, but has since passed l1-machine:
      not stuck; he also passed lesson 0's first checkpoint;
    * frank's file is broken; erin never started (only the roster knows her).
    """
    write(drop, "alice", {1: lesson1(
        {"l1-secret": tried(1, NOW - 3600, NOW - 3600, "alone"),
         "l1-machine": tried(3, NOW - 3000, NOW - 2400, "hint"),
         "l1-renice": tried(2, NOW - 1800, NOW - 1200, "solution")},
        {"l1-q1": answered(1, True, [0]), "l1-q2": answered(1, True, []),
         "l1-q3": answered(0, False, [0])})})
    write(drop, "bob", {1: lesson1(
        {"l1-secret": tried(1, NOW - 3500, NOW - 3500, "alone"),
         "l1-machine": tried(4, NOW - 1800, NOW - 60)},
        {"l1-q1": answered(2, False, [0, 2]), "l1-q3": answered(1, True, [0])})})
    write(drop, "carol", {1: lesson1(
        {"l1-secret": {"demo_passed_at": iso(NOW - 900)},
         "l1-machine": tried(1, NOW - 300, NOW - 300)},
        {"l1-q1": answered(1, True, [2]), "l1-q3": answered(0, False, [0])})})
    write(drop, "dave", {
        0: {"opened_at": iso(NOW - 9000), "checkpoints": {
            "l0-ready": tried(1, NOW - 8000, NOW - 8000, "alone")}},
        1: lesson1({"l1-secret": tried(2, NOW - 7200, NOW - 7000),
                    "l1-machine": tried(1, NOW - 100, NOW - 100, "alone")}, {})})
    (drop / "frank").mkdir(parents=True)
    (drop / "frank" / "progress.json").write_text("{not json")
    return ["alice", "bob", "carol", "dave", "erin", "frank"]
