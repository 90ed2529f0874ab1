"""The lesson framework: exercises, predictions, quizzes, progress, and small lesson helpers.

A lesson notebook is where the learner works: prose, predictions, and
exercise cells with a blank (``___``) for their code.  Everything it checks
lives in a content module named like the notebook
(``kit/lesson/lesson04_isolation.py`` for ``lessons/04-isolation.ipynb``),
which tests import too.  The shape every lesson follows (lesson 1 is the
example)::

    # kit/lesson/lessonNN_stem.py
    from kit.lesson import Checkpoint, Choice, Lesson, Prediction, Question, Quiz, Verdict
    from kit.lesson.checks import find_guest

    def check_served() -> Verdict:              # asks the LIVE state, never the learner
        found = find_guest("web")               # a failed Verdict if not running
        if isinstance(found, Verdict):
            return found
        ...                                     # QMP, the agent, HTTP from the host
        return Verdict.ok("the page is served", "HTTP GET 127.0.0.1:8080 -> 200")

    served = Checkpoint("l2-served", "Open the door", "Forward host port 8080 ...",
                        check_served, hint="...", solution="...", code="one line",
                        solve=open_the_door)    # demo mode runs it; the tests use it
    guess = Prediction("l2-p-time", "How long will ...?", measure, unit="s")
    quiz = Quiz([Question("l2-q1", "...", [Choice("...", True, "why right"),
                                           Choice("...", False, "why wrong")])])
    lesson = Lesson(2, [served, ...], quiz, [guess])   # binds them to lesson 2's progress

    # the notebook
    from kit.lesson import ___
    from kit.lesson import lessonNN_stem as lessonN
    lessonN.lesson.begin()                      # header; notes the lesson was opened
    lessonN.guess                               # predict, then the kit measures
    opened = ___  # ✎ your code                 # an exercise cell, shipped with a blank
    lessonN.served.check(opened)                # verdict, hint after a try, solution
    lessonN.quiz                                # the quiz widget
    lessonN.lesson.finish()                     # last cell: stop guests, save, raise errors

No cell of a shipped notebook completes an exercise: run unedited, a
lesson passes nothing; with ``KIT_DEMO=1`` (:mod:`kit.lesson.classroom`)
every exercise runs its own ``solve``, recorded as a demo.

Checkpoints (:mod:`kit.lesson.checkpoint`)
    ``Checkpoint(id, title, task, check, hint, solution, code="", answer_label=None)``.
    ``check()`` returns a :class:`Verdict` (``Verdict.ok(message, *evidence)`` or
    ``Verdict.fail(message, *evidence, hint=...)``); with ``answer_label`` the
    widget has an answer box and ``check(answer: str)`` gets its text.
    ``cp.verify(answer=None) -> Verdict`` runs the check (what the Check button
    does), shows the verdict in the widget, records it; a failed verdict always
    carries a hint; an exception becomes a plain-words verdict and is recorded
    in :mod:`kit.core.incidents`.  ``bool(verdict) == verdict.passed``.
    Displaying a checkpoint shows its widget (``cp.view``): task, answer box,
    Check, verdict (✔/✖/⚠ and words), hint after a wrong try, show solution.
Check helpers (:mod:`kit.lesson.checks`)
    ``find_guest(name, states=("running",))`` -> the live Guest, or a failed
    Verdict with a hint; ``eventually(probe, done, seconds)`` for effects that
    land a moment later; ``parse_number(answer)``.
Quizzes (:mod:`kit.lesson.quiz`)
    ``Quiz([Question(id, prompt, [Choice(text, correct, why), ...])])``, one right
    choice per question, a ``why`` on every choice.  ``question.answer(i) ->
    Feedback`` (``.correct``, ``.why``), recorded in progress; ``quiz.score()``.
Progress (:mod:`kit.lesson.progress`)
    One JSON file per learner: ``$KIT_PROGRESS_FILE``, else
    ``~/.local/share/kit/progress.json``; locked, atomically replaced.
    ``lesson_progress(n)`` -> ``LessonProgress`` (``.status``, ``.passed``,
    ``.answers``); ``reset(n=None)``.  ``progress_overview()`` is lesson 0's table.
The course (:mod:`kit.lesson.catalog`)
    ``LESSONS``: number, title, notebook file, minutes, for lessons 0 to 9; a
    lesson whose notebook does not exist yet shows as "coming".
Lessons (:mod:`kit.lesson.lesson`)
    ``Lesson(number, checkpoints, quiz)`` with ``.begin()``, ``.finish()``,
    ``.checkpoint(id)``; ``finish(lesson_or_number=None)`` for any notebook;
    ``beside(demo, diagram)``; ``ensure_running(guest)`` (start, resume, or wait
    for a button's boot); ``restart_with(guest, memory_mb=, cpus=)``.
Demonstrations
    ``InsideOutside(guest)`` and ``guest_view``/``host_view``/``side_by_side``
    (:mod:`kit.lesson.compare`): the same questions asked inside and outside;
    ``OneProcess(guest)``, ``machine_process``, ``vcpu_threads`` and
    ``CommandExplained(guest)`` (:mod:`kit.lesson.machine`): the VM as one host
    process and its real command line; ``SetupCheck(guest)``
    (:mod:`kit.lesson.setup`): lesson 0's readiness check, image build, first boot;
    ``lesson4.Experiment`` and its boxes (processes, memory hog, noisy
    neighbour), which show the records :mod:`kit.labs.isolation` measures;
    ``lesson7.StopwatchView``, ``CrowdView``, ``SizesView`` (boot phases from
    :mod:`kit.labs.stopwatch`, memory as guests are added, image sizes) and
    ``lesson8.CompareView`` (a :mod:`kit.labs.containers` container beside a VM) and
    ``lesson9.LatencyChart`` (a guest's page timed every 10 ms by :mod:`kit.labs.latency`
    while the guest moves into a new QEMU).

Objectives and key points are Markdown cells in the notebooks: they read
before anything runs.
"""

from __future__ import annotations

from kit.core.blank import ___
from kit.lesson.catalog import LESSONS, LessonInfo, lesson_info
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest, parse_number
from kit.lesson.class_panel import ClassPanel
from kit.lesson.compare import InsideOutside, guest_view, host_view, side_by_side
from kit.lesson.lesson import Lesson, beside, ensure_running, finish, restart_with
from kit.lesson.machine import CommandExplained, OneProcess, machine_process, vcpu_threads
from kit.lesson.overview import progress_overview
from kit.lesson.prediction import Prediction
from kit.lesson.progress import lesson_progress
from kit.lesson.quiz import Choice, Feedback, Question, Quiz
from kit.lesson.setup import SetupCheck

__all__ = [
    "LESSONS",
    "Checkpoint",
    "Choice",
    "ClassPanel",
    "CommandExplained",
    "Feedback",
    "InsideOutside",
    "Lesson",
    "LessonInfo",
    "OneProcess",
    "Prediction",
    "Question",
    "Quiz",
    "SetupCheck",
    "Verdict",
    "___",
    "beside",
    "ensure_running",
    "eventually",
    "find_guest",
    "finish",
    "guest_view",
    "host_view",
    "lesson_info",
    "lesson_progress",
    "machine_process",
    "parse_number",
    "progress_overview",
    "restart_with",
    "side_by_side",
    "vcpu_threads",
]
