"""Each learner's progress: checkpoints passed and quiz answers, per lesson.

Kept in one small JSON file per learner (per user account):
``$KIT_PROGRESS_FILE`` if set (tests point it at a temporary file), else
``$XDG_DATA_HOME/kit/progress.json``, else ``~/.local/share/kit/progress.json``.

Why a file and not memory: a learner closes the notebook, comes back next
week, and lesson 0's overview must still say what is done.  Why these
precautions: two notebooks (or a button and a cell) may record at the same
moment, and a kernel may be killed mid-write.  So every change is a
read-modify-write under an exclusive lock, written to a temporary file that
replaces the old one in one step; a reader never sees half a file.  A file
that cannot be read (hand-edited, truncated by a full disk) is set aside
with a ``.broken-<time>`` suffix rather than lost or fatal.

The layout (``FORMAT`` 1)::

    {"format": 1, "learner": "alice",
     "lessons": {"1": {"opened_at": "...", "finished_at": "...",
                       "checkpoint_ids": ["l1-memory", ...],
                       "question_ids": ["l1-q1", ...],
                       "checkpoints": {"l1-memory": {"tries": 2, "passed_at": "...",
                                                     "how": "hint", "first_try_at": "...",
                                                     "last_try_at": "..."}},
                       "answers": {"l1-q1": {"choice": 2, "correct": true, "tries": 2,
                                             "wrong": [0], "at": "..."}},
                       "predictions": {"l1-p-memtotal": {"predicted": 180,
                                                         "measured": 171.2, "at": "..."}}}},
     "seed": 123456789}

``how`` says how a checkpoint was passed: ``alone``, after the ``hint``, with
the ``solution`` shown, or in the instructor's ``demo`` mode (a demo pass is
kept apart and never counts as the learner's).  ``first_try_at`` and
``last_try_at`` (of the counted tries) and an answer's ``wrong`` (every wrong
choice given, in order) came later, for the instructor's class view
(:mod:`kit.hub.report`: who is stuck, and on what; which wrong answers are
common); older files lack them and are read as they are, so the format is
still 1.  ``seed`` is drawn once per
learner: quizzes shuffle their choices with it and exercises derive their
personal values from it, so both stay the same for this learner and differ
from their neighbour's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import getpass
import json
import logging
import os
import secrets
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.core.errors import KitError

log = logging.getLogger(__name__)

FORMAT = 1
Data = dict[str, Any]
HOW = ("alone", "hint", "solution", "demo")


class ProgressError(KitError):
    """The progress file cannot be written (a read-only or full disk, a bad path)."""


@dataclass(frozen=True)
class Answer:
    """The learner's latest answer to one quiz question.

    ``wrong`` is every wrong choice they gave, in order (not compared: two
    answers are the same when the latest is); a file from before it was
    recorded gives at most the latest answer, if that was wrong.
    """

    choice: int
    correct: bool
    tries: int
    wrong: tuple[int, ...] = dataclasses.field(default=(), compare=False)


@dataclass(frozen=True)
class LessonProgress:
    """What one learner has done in one lesson, read from the file."""

    number: int
    opened: bool
    finished: bool
    checkpoint_ids: tuple[str, ...]
    question_ids: tuple[str, ...]
    passed: tuple[str, ...]  # passed by the learner (not in demo mode)
    tries: dict[str, int]
    answers: dict[str, Answer]
    how: dict[str, str] = dataclasses.field(default_factory=dict)  # passed id -> HOW
    demo: tuple[str, ...] = ()  # passed only in the instructor's demo mode
    predictions: dict[str, tuple[float, float | None]] = dataclasses.field(
        default_factory=dict)  # id -> (predicted, measured)
    # checkpoint id -> time.time() of its first and latest counted try (absent in old files)
    first_tried: dict[str, float] = dataclasses.field(default_factory=dict)
    last_tried: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def status(self) -> str:
        """"not started", "in progress" or "done" (every known checkpoint passed)."""
        if not (self.opened or self.passed or self.answers):
            return "not started"
        known = set(self.checkpoint_ids)
        if known and known <= set(self.passed):
            return "done"
        return "in progress"

    @property
    def correct_answers(self) -> int:
        return sum(1 for answer in self.answers.values() if answer.correct)


# -- where -------------------------------------------------------------------------


def progress_file() -> Path:
    """The file of the learner running this kernel (read anew each call, for tests)."""
    env = os.environ.get("KIT_PROGRESS_FILE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kit" / "progress.json"


# -- reading -------------------------------------------------------------------------


def load() -> Data:
    """The whole file as data (an empty record if there is none yet)."""
    with _locked():
        return _read(progress_file())


def lesson_progress(number: int) -> LessonProgress:
    return _lesson_from(load(), number)


def all_progress() -> dict[int, LessonProgress]:
    """Progress of every lesson the file mentions, by number."""
    return lessons_in(load())


def lessons_in(data: Data) -> dict[int, LessonProgress]:
    """Progress of every lesson a progress record mentions (anyone's: the hub reads them)."""
    return {int(key): _lesson_from(data, int(key)) for key in data["lessons"] if key.isdigit()}


def _lesson_from(data: Data, number: int) -> LessonProgress:
    entry = data["lessons"].get(str(number), {})
    checkpoints = entry.get("checkpoints", {})
    answers = {
        qid: Answer(int(a.get("choice", -1)), bool(a.get("correct")), int(a.get("tries", 1)),
                    _wrong_choices(a))
        for qid, a in entry.get("answers", {}).items()
    }
    return LessonProgress(
        number=number,
        opened="opened_at" in entry,
        finished="finished_at" in entry,
        checkpoint_ids=tuple(entry.get("checkpoint_ids", ())),
        question_ids=tuple(entry.get("question_ids", ())),
        passed=tuple(cid for cid, c in checkpoints.items() if c.get("passed_at")),
        tries={cid: int(c.get("tries", 0)) for cid, c in checkpoints.items()},
        answers=answers,
        how={cid: str(c.get("how", "alone")) for cid, c in checkpoints.items()
             if c.get("passed_at")},
        demo=tuple(cid for cid, c in checkpoints.items() if c.get("demo_passed_at")),
        predictions={pid: (float(p["predicted"]), _maybe_float(p.get("measured")))
                     for pid, p in entry.get("predictions", {}).items() if "predicted" in p},
        first_tried=_times(checkpoints, "first_try_at"),
        last_tried=_times(checkpoints, "last_try_at"),
    )


def _wrong_choices(answer: Data) -> tuple[int, ...]:
    """Every wrong choice recorded; in an older file, the latest answer if it was wrong."""
    wrong = answer.get("wrong")
    if isinstance(wrong, list):
        return tuple(int(choice) for choice in wrong)
    if not answer.get("correct") and isinstance(answer.get("choice"), int):
        return (int(answer["choice"]),)
    return ()


def _times(checkpoints: Data, key: str) -> dict[str, float]:
    """``key``'s moment of each checkpoint that has one, as time.time() seconds."""
    found = {}
    for cid, item in checkpoints.items():
        moment = _seconds(item.get(key))
        if moment is not None:
            found[cid] = moment
    return found


def _seconds(stamp: object) -> float | None:
    """An ISO time of this file as time.time() seconds; None if absent or not a time."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _maybe_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


# -- recording -------------------------------------------------------------------------


def record_opened(number: int, checkpoint_ids: Sequence[str],
                  question_ids: Sequence[str]) -> None:
    """A lesson was opened: note when, and which checkpoints and questions it has.

    The ids are stored so that the overview can say "2 of 4" for a lesson
    whose notebook is not open in this kernel.
    """
    def change(entry: Data) -> None:
        entry.setdefault("opened_at", _now())
        entry["checkpoint_ids"] = list(checkpoint_ids)
        entry["question_ids"] = list(question_ids)

    _update_lesson(number, change)


def record_checkpoint(number: int, checkpoint_id: str, passed: bool,
                      how: str = "alone") -> None:
    """One try at a checkpoint; the first pass is kept even if a later try fails.

    ``how`` is one of :data:`HOW`.  A pass in demo mode is kept apart
    (``demo_passed_at``): it is the instructor's, not the learner's.  Each
    counted try notes its moment (``first_try_at`` once, ``last_try_at``
    each time): how long a learner has been trying tells the instructor
    who is stuck.
    """
    if how not in HOW:
        raise ValueError(f"how={how!r}: one of {HOW}")

    def change(entry: Data) -> None:
        item = entry.setdefault("checkpoints", {}).setdefault(checkpoint_id, {})
        if how == "demo":
            if passed:
                item.setdefault("demo_passed_at", _now())
            return
        item["tries"] = int(item.get("tries", 0)) + 1
        now = _now("milliseconds")  # two tries may come within a second
        item.setdefault("first_try_at", now)
        item["last_try_at"] = now
        if passed and not item.get("passed_at"):
            item["passed_at"] = _now()
            item["how"] = how

    _update_lesson(number, change)


def record_prediction(number: int, prediction_id: str, predicted: float,
                      measured: float | None) -> None:
    """The learner's prediction, and what the kit then measured."""
    def change(entry: Data) -> None:
        entry.setdefault("predictions", {})[prediction_id] = {
            "predicted": predicted, "measured": measured, "at": _now()}

    _update_lesson(number, change)


def learner_seed() -> int:
    """This learner's own random number, drawn once and kept in the progress file."""
    seed: list[int] = []

    def change(data: Data) -> None:
        if not isinstance(data.get("seed"), int):
            data["seed"] = secrets.randbits(48)
        seed.append(int(data["seed"]))

    _update(change)
    return seed[0]


def projector() -> bool:
    """Whether this learner (or presenter) last chose projector mode."""
    return load().get("projector") is True


def record_projector(on: bool) -> None:
    def change(data: Data) -> None:
        data["projector"] = on

    _update(change)


def record_answer(number: int, question_id: str, choice: int, correct: bool) -> None:
    """The latest answer to a question, how many were given, and every wrong one.

    The wrong ones are kept for the instructor's class view, which counts
    the common ones; an older entry without them starts from its latest
    answer.
    """
    def change(entry: Data) -> None:
        answers = entry.setdefault("answers", {})
        before = answers.get(question_id, {})
        tries = int(before.get("tries", 0)) + 1
        wrong = list(_wrong_choices(before)) if before else []
        if not correct:
            wrong.append(choice)
        answers[question_id] = {"choice": choice, "correct": correct, "tries": tries,
                                "wrong": wrong, "at": _now()}

    _update_lesson(number, change)


def record_finished(number: int) -> None:
    _update_lesson(number, lambda entry: entry.__setitem__("finished_at", _now()))


def reset(number: int | None = None) -> None:
    """Forget one lesson's progress (or every lesson's, with no number): to start over."""
    def change(data: Data) -> None:
        if number is None:
            data["lessons"] = {}
        else:
            data["lessons"].pop(str(number), None)

    _update(change)


# -- the file -------------------------------------------------------------------------


def _update_lesson(number: int, change: Callable[[Data], None]) -> None:
    _update(lambda data: change(data["lessons"].setdefault(str(number), {})))


def _update(change: Callable[[Data], None]) -> None:
    path = progress_file()
    with _locked():
        data = _read(path)
        change(data)
        _write_atomically(path, data)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One writer at a time across every notebook of this learner."""
    path = progress_file()
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = lock_path.open("a")
    except OSError as error:
        raise _cannot_save(path, error) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _empty() -> Data:
    return {"format": FORMAT, "learner": _learner(), "lessons": {}}


def _read(path: Path) -> Data:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _empty()
    except OSError as error:
        raise ProgressError(f"cannot read your progress file {path}: {error}",
                            hint="Check its permissions, or set KIT_PROGRESS_FILE to "
                            "another file.") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("lessons"), dict):
            raise ValueError("not a progress record")
    except ValueError as error:
        _set_aside(path, error)
        return _empty()
    return data


def _set_aside(path: Path, error: Exception) -> None:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    broken = path.with_name(f"{path.name}.broken-{stamp}")
    with contextlib.suppress(OSError):
        path.replace(broken)
    warnings.warn(f"Your progress file {path} could not be read ({error}); it was set "
                  f"aside as {broken.name} and progress starts afresh.", stacklevel=3)


def _write_atomically(path: Path, data: Data) -> None:
    try:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as temp:
            os.fchmod(temp.fileno(), _mode_to_keep(path))
            json.dump(data, temp, indent=1, sort_keys=True)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp.name, path)
    except OSError as error:
        with contextlib.suppress(OSError, NameError):
            os.unlink(temp.name)
        raise _cannot_save(path, error) from None


def _mode_to_keep(path: Path) -> int:
    """The permissions of the file being replaced (owner-only for a new one).

    A class hub makes each learner's file readable by the instructors' group
    (:mod:`kit.hub.progress`); a rewrite must not take that away.
    """
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o600


def _cannot_save(path: Path, error: OSError) -> ProgressError:
    return ProgressError(
        f"your progress cannot be saved in {path}: {error.strerror or error}.",
        hint="Free some disk space or fix the folder's permissions; or set "
        "KIT_PROGRESS_FILE to a file you can write. The lesson itself still works.",
    )


def _learner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "learner"


def _now(timespec: str = "seconds") -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec=timespec)
