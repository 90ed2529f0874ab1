"""A lesson: its checkpoints and quiz, its header, and its last cell.

A notebook holds prose and one-line calls; the lesson's content (which
checkpoints, how each is checked, the quiz) lives in a module of its own
(``kit/lesson/lessonN.py``), where tests import it.  This module gives that
content its frame:

* :meth:`Lesson.begin` shows the header (title, time, progress so far) and
  notes in the learner's progress which checkpoints and questions the lesson
  has, so lesson 0's overview can say "2 of 4" for it;
* :meth:`Lesson.finish` is the last cell: it stops every guest the notebook
  started, records the lesson as finished, shows what was done, and raises
  the errors recorded in buttons and background tasks, so a notebook run
  headless fails when a button would have failed.

Also here, two small helpers lessons use everywhere: :func:`beside` (a demo
next to its live diagram) and :func:`restart_with` (start a guest again with
other memory or vCPUs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import ipywidgets as widgets

from kit.core import incidents
from kit.core.errors import GuestError, InvalidInput, KitError
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.labs import containers
from kit.lesson import catalog, progress
from kit.lesson.checkpoint import Checkpoint
from kit.lesson.prediction import Prediction
from kit.lesson.projector import ProjectorToggle
from kit.lesson.quiz import Quiz
from kit.lesson.reset_control import ResetLesson
from kit.view import markup
from kit.view.markup import escape

HOW_WORDS = {"alone": "alone", "hint": "after the hint", "solution": "with the solution"}


def _status_words(checkpoint_id: str, done: progress.LessonProgress) -> str:
    """"✔ passed alone", "▶ shown in demo mode" or "○ not yet", for the summary."""
    if checkpoint_id in done.passed:
        return f"✔ passed {HOW_WORDS.get(done.how.get(checkpoint_id, 'alone'), '')}".strip()
    if checkpoint_id in done.demo:
        return "▶ shown in demo mode"
    return "○ not yet"


def show(widget: widgets.Widget) -> None:
    """Display in the notebook (IPython's display is untyped, hence this one wrapper)."""
    from IPython.display import display

    display(widget)  # type: ignore[no-untyped-call]


class Lesson:
    """One lesson's checkpoints and quiz, bound to its number for progress."""

    def __init__(self, number: int, checkpoints: Sequence[Checkpoint],
                 quiz: Quiz | None = None, predictions: Sequence[Prediction] = ()) -> None:
        self.info = catalog.lesson_info(number)
        ids = [c.id for c in checkpoints]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"lesson {number} has two checkpoints with one id: {ids}.",
                               hint="Give each checkpoint an id of its own.")
        self.checkpoints = tuple(checkpoints)
        self.quiz = quiz
        self.predictions = tuple(predictions)
        for checkpoint in self.checkpoints:
            checkpoint.lesson = number
        for prediction in self.predictions:
            prediction.lesson = number
        if quiz is not None:
            quiz.bind(number)

    @property
    def number(self) -> int:
        return self.info.number

    def __repr__(self) -> str:
        return f"<Lesson {self.number}: {self.info.title}>"

    def checkpoint(self, id: str) -> Checkpoint:
        for checkpoint in self.checkpoints:
            if checkpoint.id == id:
                return checkpoint
        raise InvalidInput(f"lesson {self.number} has no checkpoint {id!r}.",
                           hint=f"Its checkpoints are {[c.id for c in self.checkpoints]}.")

    def progress(self) -> progress.LessonProgress:
        return progress.lesson_progress(self.number)

    def begin(self) -> widgets.VBox:
        """The lesson's header, projector mode and a fresh start; notes the lesson was opened."""
        questions = [q.id for q in self.quiz.questions] if self.quiz else []
        note = ""
        try:
            progress.record_opened(self.number, [c.id for c in self.checkpoints], questions)
            done = self.progress()
            note = (f"Your progress so far: {len(done.passed)} of {len(self.checkpoints)} "
                    f"checkpoints passed, {done.correct_answers} quiz answers right.")
        except KitError as error:
            note = f"(Your progress cannot be saved: {error.message})"
        header = widgets.HTML(
            f'<div style="border-bottom:2px solid #0072B2;padding:4px 0;line-height:1.4">'
            f"<b>Lesson {self.number}: {escape(self.info.title)}</b> · about "
            f"{self.info.minutes} minutes · {len(self.checkpoints)} checkpoints"
            f"<br><small>{escape(note)}</small></div>")
        controls = widgets.HBox([ProjectorToggle(), ResetLesson(self.info.file)],
                                layout=widgets.Layout(grid_gap="8px", flex_flow="row wrap"))
        return widgets.VBox([header, controls])

    def summary_html(self) -> str:
        """What was done in this lesson: each checkpoint, and the quiz score."""
        done = self.progress()
        rows = [[_status_words(c.id, done), escape(c.title)] for c in self.checkpoints]
        quiz = ""
        if self.quiz is not None:
            total = len(self.quiz.questions)
            quiz = (f"<p>Quiz: {done.correct_answers} of {total} questions answered right "
                    f"({len(done.answers)} answered).</p>")
        return (f"<p><b>Lesson {self.number} — {escape(self.info.title)}: "
                f"{escape(done.status)}.</b></p>" + markup.table(["", "checkpoint"], rows) + quiz)

    def finish(self) -> None:
        """The last cell: stop this notebook's guests, save, show the summary, raise errors."""
        stopped = stop_lesson_guests()
        try:
            progress.record_finished(self.number)
            summary = self.summary_html()
        except KitError as error:
            summary = f"<p>(Progress not saved: {escape(error.message)})</p>"
        names = ", ".join(stopped) if stopped else "none were running"
        show(widgets.HTML(markup.text(f"{summary}<p>Guests stopped: {escape(names)}.</p>")))
        incidents.raise_recorded()


def stop_lesson_guests() -> list[str]:
    """Stop every guest and container this notebook's kernel started; returns their names."""
    names = [guest.name for guest in registry.guests()]
    names += [f"container {box.name}" for box in containers.containers()]
    registry.stop_all()
    containers.stop_all()
    return names


def finish(lesson: Lesson | int | None = None) -> None:
    """The last cell of a lesson (or of any notebook that starts guests).

    With a :class:`Lesson` the lesson is recorded as finished and summed up;
    with only its number (a notebook without a content module), it is
    recorded as finished.
    """
    if isinstance(lesson, Lesson):
        lesson.finish()
        return
    stopped = stop_lesson_guests()
    note = ""
    if lesson is not None:
        try:
            progress.record_finished(catalog.lesson_info(lesson).number)
        except KitError as error:
            note = f" (Progress not saved: {error.message})"
    show(widgets.HTML(f"<p>Guests stopped: {escape(', '.join(stopped) or 'none')}."
                       f"{escape(note)}</p>"))
    incidents.raise_recorded()


def beside(*parts: widgets.Widget) -> widgets.HBox:
    """Widgets side by side (a demo and its live diagram); they wrap on a narrow page.

    A part that sets its own minimum width (a diagram too wide to read any
    narrower) keeps it, and wraps onto a row of its own where it does not fit.
    """
    for part in parts:
        part.layout.flex = "1 1 26em"
        if not part.layout.min_width:
            part.layout.min_width = "20em"
    return widgets.HBox(list(parts), layout=widgets.Layout(
        flex_flow="row wrap", align_items="flex-start", grid_gap="12px"))


def ensure_running(guest: Guest, timeout: float = 90.0) -> Guest:
    """Make sure ``guest`` runs: start, resume or reboot it as needed, or wait for a boot.

    The cell a learner may run after already pressing a button: if the
    button's boot is still going, this waits for it rather than failing.
    """
    _settle(guest, timeout)
    if not guest.state.has_process:
        guest.start()
    elif guest.state == GuestState.PAUSED:
        guest.resume()
    elif guest.state == GuestState.CRASHED:
        guest.reboot()
    return guest


def restart_with(guest: Guest, *, memory_mb: int | None = None,
                 cpus: int | None = None) -> Guest:
    """Start ``guest`` again with other memory or vCPUs (nothing to do if it already has them).

    A machine's memory and CPUs are fixed while it runs (as when a real PC
    is switched off to add RAM): changing them means a new boot.
    """
    from kit.core import validate
    from kit.guestos import images

    _settle(guest, 90.0)
    wanted_memory = guest.memory_mb if memory_mb is None else memory_mb
    wanted_cpus = guest.cpus if cpus is None else cpus
    wanted = (wanted_memory, wanted_cpus)
    if guest.state == GuestState.RUNNING and (guest.memory_mb, guest.cpus) == wanted:
        return guest
    image = images.find_image(guest.arch)
    wanted_memory = validate.check_memory(wanted_memory, image.min_memory_mb if image else 0)
    wanted_cpus = validate.check_cpus(wanted_cpus)
    guest.stop()
    guest.memory_mb, guest.cpus = wanted_memory, wanted_cpus
    return guest.start()


def _settle(guest: Guest, timeout: float) -> None:
    """Wait while the guest is booting or stopping (a button may be at work)."""
    deadline = time.monotonic() + timeout
    while guest.state in (GuestState.BOOTING, GuestState.STOPPING):
        if time.monotonic() > deadline:
            raise GuestError(f"guest {guest.name} stayed {guest.state} for {timeout:g} s.",
                             hint="Look at its console for where it stopped; stop it and "
                             "start it again.")
        time.sleep(0.1)
