"""The class at a glance: what the instructor's class view shows, and its CSV.

Built from three sources, each read the one way it may be:

* each learner's progress file, through the hub's drop folder
  (:func:`kit.hub.progress.class_progress`): never their home, never their
  lesson copies;
* the host's process table, for each learner's live guests: a QEMU process
  of theirs (its real user) is a guest of theirs.  ``/proc`` shows every
  process's owner and command line to every user unless it is mounted with
  ``hidepid`` (:func:`processes_visible` says so, and then the count is
  unknown, not zero);
* the lessons themselves (:func:`course`): the checkpoints and questions,
  their titles, prompts and choices.  The columns and every text come from
  the lessons, never from a learner's file, so a hand-edited file can add
  neither a column nor words of its own to the instructor's page (or to the
  CSV they open in a spreadsheet).

What is derived, and how:

* a checkpoint's status for a learner: passed ``alone``, after the ``hint``,
  with the ``solution`` shown, only in ``demo`` mode, ``tried`` and not
  passed, or ``not tried``;
* a quiz's score: right answers (the latest answer to each question), how
  many were right at the first try, how many answered;
* the most common wrong answers: each wrong choice a learner ever gave
  (``wrong`` in their file), each learner counted once per choice;
* who is stuck: a learner whose latest try, on any checkpoint, failed; stuck
  since their first try at that checkpoint.  Their longest-stuck comes
  first: whom to walk over to.
"""

from __future__ import annotations

import csv
import datetime
import functools
import io
import itertools
import logging
import os
import pwd
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from kit.hub import places
from kit.hub.progress import LearnerRecord, class_progress
from kit.lesson import catalog, guide
from kit.lesson.progress import LessonProgress

log = logging.getLogger(__name__)

#: The instructor's server's environment names the class's learners (the hub
#: sets it, :func:`kit.hub.spawning.environment`), so a learner who never
#: logged in is on the list too; without it, whoever has a drop folder is.
ROSTER_ENV = "KIT_CLASS_LEARNERS"

# A checkpoint's status for one learner, from best to not begun.
STATUSES = ("alone", "hint", "solution", "demo", "tried", "not tried")
MARKS = {"alone": "✔", "hint": "☞", "solution": "✎", "demo": "▶", "tried": "✖",
         "not tried": "○"}
WORDS = {"alone": "passed alone", "hint": "passed after the hint",
         "solution": "passed with the solution shown", "demo": "shown in demo mode only",
         "tried": "tried, not passed yet", "not tried": "not tried yet"}


# -- the lessons --------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionOutline:
    """One quiz question as the lesson asks it."""

    id: str
    lesson: int
    prompt: str
    choices: tuple[str, ...]
    right: int


@dataclass(frozen=True)
class LessonOutline:
    """One lesson's checkpoints (id, title) and questions, in the lesson's order."""

    number: int
    title: str
    checkpoints: tuple[tuple[str, str], ...]
    questions: tuple[QuestionOutline, ...]

    def checkpoint_title(self, checkpoint_id: str) -> str:
        return dict(self.checkpoints).get(checkpoint_id, checkpoint_id)


@functools.cache
def course() -> tuple[LessonOutline, ...]:
    """Every lesson whose module exists, outlined from the module (imported once: ~0.5 s)."""
    outlines = []
    for info in catalog.LESSONS:
        try:
            lesson = guide.lesson_of(info)
        except ModuleNotFoundError:  # a lesson listed as coming
            continue
        questions = tuple(
            QuestionOutline(q.id, info.number, q.prompt, tuple(c.text for c in q.choices),
                            q.right_choice)
            for q in (lesson.quiz.questions if lesson.quiz else ()))
        outlines.append(LessonOutline(info.number, info.title,
                                      tuple((c.id, c.title) for c in lesson.checkpoints),
                                      questions))
    return tuple(outlines)


# -- one learner ----------------------------------------------------------------------------


def checkpoint_status(done: LessonProgress | None, checkpoint_id: str) -> str:
    """One of :data:`STATUSES`: how this learner stands with this checkpoint."""
    if done is None:
        return "not tried"
    if checkpoint_id in done.passed:
        how = done.how.get(checkpoint_id, "alone")
        return how if how in ("alone", "hint", "solution") else "alone"
    if checkpoint_id in done.demo:
        return "demo"
    if done.tries.get(checkpoint_id, 0) > 0:
        return "tried"
    return "not tried"


@dataclass(frozen=True)
class QuizScore:
    """One learner's quiz in one lesson, by the latest answer to each question."""

    right: int
    first_try: int  # right at the first answer
    answered: int
    questions: int

    @property
    def text(self) -> str:
        return f"{self.right}/{self.questions}" if self.answered else "-"

    @property
    def words(self) -> str:
        if not self.answered:
            return "no answer yet"
        return (f"{self.right} right of {self.questions} questions ({self.first_try} at the "
                f"first try; {self.answered} answered)")


def quiz_score(done: LessonProgress | None, lesson: LessonOutline) -> QuizScore:
    answers = done.answers if done is not None else {}
    mine = [answers[q.id] for q in lesson.questions if q.id in answers]
    return QuizScore(right=sum(1 for a in mine if a.correct),
                     first_try=sum(1 for a in mine if a.correct and a.tries == 1),
                     answered=len(mine), questions=len(lesson.questions))


@dataclass(frozen=True)
class Stuck:
    """A learner whose latest try failed: at which checkpoint, since when, how many tries."""

    learner: str
    lesson: int
    checkpoint: str
    title: str
    tries: int
    since: float  # their first try at it (time.time() seconds)
    last: float  # their latest try

    def seconds(self, now: float) -> float:
        return max(0.0, now - self.since)


def stuck_on(record: LearnerRecord, lessons: Iterable[LessonOutline]) -> Stuck | None:
    """Where this learner is stuck, or None: their latest try passed, or they tried nothing.

    Only the lessons' own checkpoints count.  Files from before tries were
    timed have no times, and so never show anyone stuck.
    """
    outlines = {lesson.number: lesson for lesson in lessons}
    latest: tuple[float, int, str] | None = None
    for number, done in record.lessons.items():
        outline = outlines.get(number)
        if outline is None:
            continue
        known = dict(outline.checkpoints)
        for checkpoint_id, moment in done.last_tried.items():
            if checkpoint_id in known and (latest is None or moment > latest[0]):
                latest = (moment, number, checkpoint_id)
    if latest is None:
        return None
    moment, number, checkpoint_id = latest
    done = record.lessons[number]
    if checkpoint_id in done.passed:
        return None
    return Stuck(record.learner, number, checkpoint_id,
                 outlines[number].checkpoint_title(checkpoint_id),
                 done.tries.get(checkpoint_id, 0),
                 done.first_tried.get(checkpoint_id, moment), moment)


# -- the class --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrongAnswer:
    """A wrong choice of one question, and who gave it (each learner once)."""

    question: QuestionOutline
    choice: int
    learners: tuple[str, ...]
    times: int  # how often it was given, all learners' tries together

    @property
    def text(self) -> str:
        return self.question.choices[self.choice]


@dataclass(frozen=True)
class ClassReport:
    """The class as read at one moment: records, live guests, and the lessons to judge by.

    ``guests`` is None when this user cannot see other users' processes.
    """

    records: tuple[LearnerRecord, ...]
    lessons: tuple[LessonOutline, ...]
    guests: Mapping[str, tuple[str, ...]] | None
    made_at: float
    drop: Path

    def lesson(self, number: int) -> LessonOutline:
        for lesson in self.lessons:
            if lesson.number == number:
                return lesson
        raise KeyError(number)

    def status(self, record: LearnerRecord, lesson: int, checkpoint_id: str) -> str:
        return checkpoint_status(record.lessons.get(lesson), checkpoint_id)

    def quiz(self, record: LearnerRecord, lesson: LessonOutline) -> QuizScore:
        return quiz_score(record.lessons.get(lesson.number), lesson)

    def guests_of(self, learner: str) -> tuple[str, ...] | None:
        return None if self.guests is None else self.guests.get(learner, ())

    def stuck(self) -> list[Stuck]:
        """Every learner stuck now, the longest-stuck first."""
        found = [s for r in self.records if (s := stuck_on(r, self.lessons)) is not None]
        return sorted(found, key=lambda s: (s.since, s.learner))

    def wrong_answers(self, lesson: LessonOutline) -> list[tuple[QuestionOutline,
                                                                 list[WrongAnswer]]]:
        """Each question of ``lesson`` that got wrong answers, with them, commonest first.

        The questions come in the order of their commonest wrong answer (the
        one most learners chose first), so the top of the list is what to
        explain again.
        """
        found = []
        for question in lesson.questions:
            learners: dict[int, set[str]] = {}
            times: Counter[int] = Counter()
            for record in self.records:
                done = record.lessons.get(lesson.number)
                answer = done.answers.get(question.id) if done is not None else None
                if answer is None:
                    continue
                for choice in answer.wrong:
                    if 0 <= choice < len(question.choices) and choice != question.right:
                        learners.setdefault(choice, set()).add(record.learner)
                        times[choice] += 1
            wrong = sorted((WrongAnswer(question, choice, tuple(sorted(who)), times[choice])
                            for choice, who in learners.items()),
                           key=lambda w: (-len(w.learners), -w.times, w.choice))
            if wrong:
                found.append((question, wrong))
        return sorted(found, key=lambda q: (-len(q[1][0].learners), -q[1][0].times,
                                            lesson.questions.index(q[0])))

    def busiest_lesson(self) -> int | None:
        """The lesson the class worked in last (latest try), else the last one opened."""
        latest: tuple[float, int] | None = None
        opened = set()
        numbers = {lesson.number for lesson in self.lessons}
        for record in self.records:
            for number, done in record.lessons.items():
                if number not in numbers:
                    continue
                if done.opened:
                    opened.add(number)
                for moment in done.last_tried.values():
                    if latest is None or moment > latest[0]:
                        latest = (moment, number)
        if latest is not None:
            return latest[1]
        return max(opened) if opened else None

    # -- CSV ---------------------------------------------------------------------------------

    def csv_header(self) -> list[str]:
        header = ["learner", "problem", "live guests", "live guest names",
                  "last change (UTC)", "stuck on", "stuck for (minutes)", "tries there"]
        for lesson in self.lessons:
            header += [checkpoint_id for checkpoint_id, _ in lesson.checkpoints]
            header += [f"lesson {lesson.number} quiz right",
                       f"lesson {lesson.number} quiz right at first try",
                       f"lesson {lesson.number} quiz answered",
                       f"lesson {lesson.number} quiz questions"]
        return header

    def csv_rows(self) -> list[list[str]]:
        stuck = {s.learner: s for s in self.stuck()}
        rows = []
        for record in self.records:
            guests = self.guests_of(record.learner)
            here = stuck.get(record.learner)
            row = [record.learner, record.problem or "",
                   "" if guests is None else str(len(guests)),
                   "" if guests is None else " ".join(guests),
                   _iso(record.updated_at),
                   here.checkpoint if here else "",
                   f"{here.seconds(self.made_at) / 60:.0f}" if here else "",
                   str(here.tries) if here else ""]
            for lesson in self.lessons:
                if record.problem is not None:
                    row += [""] * (len(lesson.checkpoints) + 4)
                    continue
                row += [self.status(record, lesson.number, checkpoint_id)
                        for checkpoint_id, _ in lesson.checkpoints]
                score = self.quiz(record, lesson)
                row += [str(score.right), str(score.first_try), str(score.answered),
                        str(score.questions)]
            rows.append(row)
        return rows

    def csv(self) -> str:
        """The class as CSV: one row per learner, one column per checkpoint and quiz figure."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.csv_header())
        writer.writerows(self.csv_rows())
        return out.getvalue()

    @property
    def csv_name(self) -> str:
        stamp = time.strftime("%Y%m%d-%H%M", time.localtime(self.made_at))
        return f"class-progress-{stamp}.csv"


def _iso(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


# -- reading the class ------------------------------------------------------------------------


def roster() -> list[str] | None:
    """The class's learners as the hub told the instructor's server, or None."""
    names = os.environ.get(ROSTER_ENV, "").replace(",", " ").split()
    return sorted(set(names)) or None


def account_uid(learner: str) -> int | None:
    """The learner's user id, from the system's accounts (the hub made them)."""
    try:
        return pwd.getpwnam(learner).pw_uid
    except KeyError:
        return None


def class_report(learners: Iterable[str] | None = None, drop: Path | None = None, *,
                 uid_of: Callable[[str], int | None] = account_uid,
                 now: float | None = None) -> ClassReport:
    """Read the class now: every learner's file, their live guests, judged by the lessons.

    ``learners`` None: the roster the hub gave (:func:`roster`), else whoever
    has a drop folder.  :class:`kit.core.errors.SetupError` when this user
    may not list the drop folder (a learner's server).
    """
    folder = drop or places.places().progress
    names = list(learners) if learners is not None else roster()
    records = tuple(class_progress(names, folder))
    uids = {r.learner: uid for r in records if (uid := uid_of(r.learner)) is not None}
    guests = live_guests(uids) if processes_visible() else None
    return ClassReport(records, course(), guests,
                       time.time() if now is None else now, folder)


# -- live guests --------------------------------------------------------------------------------


def live_guests(uids: Mapping[str, int]) -> dict[str, tuple[str, ...]]:
    """Each learner's running QEMU processes, by guest name (``-name``), from /proc.

    A QEMU is a process whose program (its command line's first word) is a
    ``qemu-system-*``: the kit's guests and any a learner started by hand.
    Its owner is its real user.  The program's path (``/proc/PID/exe``) is
    not used: only root and the owner may read it.
    """
    learner_of = {uid: learner for learner, uid in uids.items()}
    found: dict[str, list[str]] = {learner: [] for learner in uids}
    for process in psutil.process_iter(["uids", "cmdline", "status"]):
        info = process.info
        words, owner = info.get("cmdline"), info.get("uids")
        if not words or owner is None or info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        learner = learner_of.get(owner.real)
        if learner is None or not Path(words[0]).name.startswith("qemu-system-"):
            continue
        found[learner].append(guest_name(words, process.pid))
    return {learner: tuple(sorted(names)) for learner, names in found.items()}


def guest_name(words: list[str], pid: int) -> str:
    """The name QEMU was given (``-name vm1,process=...``), else its process id."""
    for flag, value in itertools.pairwise(words):
        if flag in ("-name", "--name"):
            name = value.split(",", 1)[0].removeprefix("guest=")
            if name:
                return name
    return f"pid {pid}"


def processes_visible(mountinfo: str | None = None, *, euid: int | None = None,
                      groups: Iterable[int] | None = None) -> bool:
    """Whether this user sees other users' processes in /proc (no ``hidepid``, or exempt).

    ``hidepid=1`` (``noaccess``) lists them but hides what they run;
    ``hidepid=2`` (``invisible``) hides them.  Root, and members of the
    mount's ``gid=`` group, still see everything.  The arguments are for
    tests: this process's view by default.
    """
    if (os.geteuid() if euid is None else euid) == 0:
        return True
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return True
    options: dict[str, str] = {}
    for line in mountinfo.splitlines():
        mine, _, theirs = line.partition(" - ")
        fields, super_fields = mine.split(), theirs.split()
        if len(fields) > 4 and fields[4] == "/proc" and super_fields[:1] == ["proc"]:
            options = dict(o.partition("=")[::2] for o in super_fields[-1].split(","))
    if options.get("hidepid", "0") in ("0", "off"):
        return True
    member_of = set(os.getgroups() if groups is None else groups) | (
        {os.getegid()} if groups is None else set())
    gid = options.get("gid", "")
    return gid.isdigit() and int(gid) in member_of
