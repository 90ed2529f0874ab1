"""Every lesson, as a learner meets it: JupyterLab in a real browser, run, clicked, read.

For each notebook in ``lessons/`` (a scratch copy of it): open it, Run All
from the Run menu in the instructor's **demo mode**, wait until every cell
has run, check what the page shows and that every exercise passed as a demo
(never as the learner's); then switch demo mode off, as for a learner, and do
the lesson's own steps (``plans.py``), among them at least one exercise
solved by typing its solution into its cell; then shut the kernel down from
the Kernel menu and check that its guests went with it.  The browser console
must stay free of errors throughout.

A failing step leaves a screenshot, the page's text, the browser console
and JupyterLab's log in a folder that the failure message names.
``KIT_SCREENSHOTS=1`` also saves each lesson's picture to docs/screenshots/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect

from kit.lesson import classroom, progress
from tests.browser import processes
from tests.browser.conftest import Chromium, assert_no_qemu_left
from tests.browser.lab import LESSONS, JupyterLab
from tests.browser.notebook import WIDGET_MIME, LessonPage
from tests.browser.plans import Plan, plan_for
from tests.lesson.test_notebooks import EXERCISE_LESSONS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.guest]

LESSON_FILES = sorted(path.name for path in LESSONS.glob("*.ipynb"))
KERNEL_GONE_S = 10.0
ERRORS_CHECK = "import kit; kit.raise_recorded_errors(); print('no recorded errors')"

# Browser-console lines that say nothing about the kit: each with the reason.
HARMLESS_CONSOLE: tuple[str, ...] = (
    # (none yet: add a fragment of the message and say why it is harmless)
)


@pytest.mark.parametrize("file", LESSON_FILES, ids=[Path(f).stem for f in LESSON_FILES])
def test_lesson_in_the_browser(file: str, open_lesson: Callable[[str], LessonPage],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    lesson = open_lesson(file)
    # Read and switch what this server's kernels read: their progress and class settings.
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(lesson.lab.progress_file))
    plan = plan_for(lesson.name)
    with lesson.evidence_on_failure("open the lesson"):
        lesson.open()
    with lesson.evidence_on_failure("Run All in demo mode"):
        classroom.set_demo_mode(True)
        try:
            lesson.run_all()
        finally:
            classroom.set_demo_mode(False)  # from here on, a learner at work
        notebook = lesson.save_and_read()
        check_every_cell_ran(notebook)
        check_every_exercise_passed_as_demo(lesson)
    with lesson.evidence_on_failure("widgets rendered"):
        check_widgets_rendered(lesson, notebook, plan)
    for step in plan.steps:
        with lesson.evidence_on_failure(step.name):
            step(lesson)
    with lesson.evidence_on_failure("no failure shown or recorded"):
        assert not lesson.problems_shown(), lesson.problems_shown()
        assert lesson.add_cell_and_run(ERRORS_CHECK).strip() == "no recorded errors"
    with lesson.evidence_on_failure("Kernel → Shut Down Kernel"):
        check_kernel_shutdown_takes_guests(lesson, plan)
    with lesson.evidence_on_failure("browser console"):
        assert not real_errors(lesson.console_errors), real_errors(lesson.console_errors)


def test_nothing_is_left_behind(lab: JupyterLab, chromium: Chromium) -> None:
    """After the lessons: stopping JupyterLab and the browser leaves no process of theirs.

    Polite shutdowns only (the server's API, the browser's close): whatever
    had to be killed afterwards is a failure.  QEMU is checked by its pidfile
    in this session's runtime folder, since an orphan is no longer anyone's child.
    """
    kernels = lab.kernel_pids()
    killed = lab.stop() | chromium.stop()
    assert not killed, f"had to be killed: {processes.describe(killed)}"
    assert not processes.alive(kernels)
    assert_no_qemu_left()


# -- the default checks, for every lesson ---------------------------------------------


def check_every_cell_ran(notebook: nbformat.NotebookNode) -> None:
    """Every code cell has an execution count, and none shows an error."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        assert cell.execution_count is not None, f"cell {index} did not run:\n{cell.source}"
        for output in cell.outputs:
            assert output.output_type != "error", (
                f"cell {index} failed: {output.ename}: {output.evalue}\n{cell.source}")


def check_every_exercise_passed_as_demo(lesson: LessonPage) -> None:
    """The progress file: every exercise of the lesson shown in demo mode, none as the learner's."""
    if not lesson.name[:2].isdigit() or int(lesson.name[:2]) not in EXERCISE_LESSONS:
        return
    done = progress.lesson_progress(int(lesson.name[:2]))
    assert done.checkpoint_ids and set(done.demo) == set(done.checkpoint_ids), done
    assert done.passed == (), f"demo passes recorded as the learner's: {done.passed}"
    expect(lesson.notebook.get_by_text("▶ Demo").first).to_be_visible()


def check_widgets_rendered(lesson: LessonPage, notebook: nbformat.NotebookNode,
                           plan: Plan) -> None:
    """Each widget the kernel displayed is drawn in the page (not an error, not 'Loading')."""
    displayed = sum(WIDGET_MIME in output.get("data", {})
                    for cell in notebook.cells if cell.cell_type == "code"
                    for output in cell.outputs)
    if plan.expect_widgets:
        assert displayed, "the lesson displayed no widget"
    expect(lesson.widget_outputs()).to_have_count(displayed)
    if displayed:
        expect(lesson.notebook.locator(".widget-button:visible").first).to_be_visible()


def check_kernel_shutdown_takes_guests(lesson: LessonPage, plan: Plan) -> None:
    guests = processes.qemu_pids()
    if plan.guests_at_end:
        assert guests, "no guest runs before the kernel shutdown: the check would prove nothing"
    tracebacks = lesson.tracebacks()
    lesson.shut_down_kernel()
    left = processes.wait_gone(guests, KERNEL_GONE_S)
    assert not left, f"the kernel is down but its guests live on: {processes.describe(left)}"
    assert not processes.qemu_pids()
    assert lesson.tracebacks() == tracebacks, "the kernel printed a traceback as it shut down"


def real_errors(lines: list[str]) -> list[str]:
    return [line for line in lines if not any(noise in line for noise in HARMLESS_CONSOLE)]
