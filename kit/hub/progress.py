"""The class's progress, as the instructor reads it: one record per learner.

How each learner's progress reaches the instructor without anyone reading
another learner's files: a drop folder (:mod:`kit.hub.places`), in which
each learner has a folder of their own that only they may write and only
the instructors' group may read::

    progress/                0751 root:kit-instructors   learners may pass, not list
        alice/               2750 alice:kit-instructors  bob may not even enter
            progress.json    0640 alice:kit-instructors

The hub makes both, as root, before the learner's server starts
(:func:`kit.hub.spawning.prepare_progress`), and points the learner's
``KIT_PROGRESS_FILE`` at that file; the kit writes it as always (a lock, a
temporary file that replaces the old one) and keeps its mode.  The
instructor's own server runs as a member of the group, so the control room
there reads the class with :func:`class_progress`; root may too.  Nothing
else of a learner's (their home, their lesson copies) is open to anyone.

Why a folder per learner and not one file each in a shared folder: the
kit's writer needs to make a temporary file beside the progress file, and a
folder in which everyone may make files is one where anyone may also make
one under someone else's name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kit.core.errors import SetupError
from kit.hub import places
from kit.hub.places import PROGRESS_NAME
from kit.lesson.progress import LessonProgress, lessons_in


@dataclass(frozen=True)
class LearnerRecord:
    """What one learner's file says, or why it could not be read."""

    learner: str
    lessons: dict[int, LessonProgress] = field(default_factory=dict)
    updated_at: float | None = None  # the file's last change (time.time() seconds)
    problem: str | None = None  # None when the file was read

    @property
    def started(self) -> bool:
        return any(lesson.status != "not started" for lesson in self.lessons.values())

    @property
    def passed(self) -> int:
        """Checkpoints this learner passed (not in demo mode), over every lesson."""
        return sum(len(lesson.passed) for lesson in self.lessons.values())


def class_progress(learners: Iterable[str] | None = None,
                   drop: Path | None = None) -> list[LearnerRecord]:
    """Every learner's progress, by name; ``learners`` None: whoever has a folder.

    ``drop`` is the hub's drop folder (``$KIT_HUB_DIR/progress`` by default,
    which the hub sets in its servers).  A learner listed but without a file
    yet, or whose file cannot be read, gets a record saying so, not an error:
    one learner's broken file must not hide the class.
    """
    folder = drop or places.places().progress
    names = sorted(learners) if learners is not None else _folders(folder)
    return [read_learner(folder, name) for name in names]


def read_learner(drop: Path, learner: str) -> LearnerRecord:
    """One learner's record from the drop folder."""
    path = drop / learner / PROGRESS_NAME
    try:
        with path.open() as file:
            updated = os.fstat(file.fileno()).st_mtime
            data = json.load(file)
    except FileNotFoundError:
        return LearnerRecord(learner, problem="no progress yet (their server never started)")
    except PermissionError:
        return LearnerRecord(learner, problem=f"{path} may not be read by this user: the "
                             "instructors' group reads it (log in as the instructor)")
    except (OSError, ValueError) as error:
        return LearnerRecord(learner, problem=f"{path} cannot be read: {error}")
    try:
        return LearnerRecord(learner, lessons_in(data), updated)
    except (AttributeError, TypeError, ValueError, KeyError):
        return LearnerRecord(learner, updated_at=updated,
                             problem=f"{path} is not a progress record")


def _folders(drop: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in drop.iterdir()
                      if entry.is_dir() and not entry.name.startswith("."))
    except FileNotFoundError:
        return []
    except PermissionError:
        raise SetupError(f"{drop} may not be listed by this user.",
                         hint="The instructors' group lists it: read the class's progress as "
                         "the instructor (or as root).") from None
