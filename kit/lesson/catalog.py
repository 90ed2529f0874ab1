"""The list of lessons, in one place: number, title, notebook file and time.

Lesson 0's progress overview, each lesson's header and the README all read
this table, so a lesson added or renamed is changed here once.  A lesson
whose notebook does not exist yet is listed as "coming", never hidden: the
learner sees the whole course from the first day.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kit.core import paths
from kit.core.errors import InvalidInput


@dataclass(frozen=True)
class LessonInfo:
    """One lesson of the course, as the overview and the headers show it."""

    number: int
    title: str
    file: str
    minutes: int

    @property
    def path(self) -> Path:
        return lessons_dir() / self.file

    @property
    def module(self) -> str:
        """The lesson's own module, named like its notebook: 04-isolation -> lesson04_isolation."""
        stem = self.file.removesuffix(".ipynb").split("-", 1)[1].replace("-", "_")
        return f"kit.lesson.lesson{self.number:02d}_{stem}"

    @property
    def available(self) -> bool:
        """Whether its notebook exists yet (later lessons may still be written)."""
        return self.path.exists()


LESSONS: tuple[LessonInfo, ...] = (
    LessonInfo(0, "Welcome and setup check", "00-welcome.ipynb", 15),
    LessonInfo(1, "What is a virtual machine", "01-what-is-a-vm.ipynb", 30),
    LessonInfo(2, "Host and guest", "02-host-and-guest.ipynb", 40),
    LessonInfo(3, "The layers, one by one", "03-layers.ipynb", 45),
    LessonInfo(4, "Isolation", "04-isolation.ipynb", 40),
    LessonInfo(5, "Why it changed computing: the cloud", "05-cloud.ipynb", 45),
    LessonInfo(6, "Advantages", "06-advantages.ipynb", 30),
    LessonInfo(7, "Limitations", "07-limitations.ipynb", 45),
    LessonInfo(8, "The transition to containers", "08-containers.ipynb", 35),
    LessonInfo(9, "Moving a running computer", "09-moving.ipynb", 30),
)


def lessons_dir() -> Path:
    return paths.lessons_dir()


def lesson_info(number: int) -> LessonInfo:
    """The lesson numbered ``number``, or a plain-words error listing the real ones."""
    for info in LESSONS:
        if info.number == number:
            return info
    raise InvalidInput(
        f"there is no lesson {number!r}.",
        hint=f"The lessons are numbered {LESSONS[0].number} to {LESSONS[-1].number}.",
    )
