"""Every lesson runs top to bottom twice: as shipped it passes nothing; in demo mode, everything.

A lesson that passes itself when someone presses Run All teaches nothing and
records a lie, so the shipped notebook, run unedited, must leave every
exercise waiting for the learner (the progress file says so).  An instructor
presenting with ``KIT_DEMO=1`` must see every exercise solve itself, and
those passes must be recorded as demo, never as the learner's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kit.lesson import catalog, progress
from tests.conftest import our_qemu_pids

# A cell that hangs must be reported by nbclient, naming the cell, before pytest-timeout
# ends the whole test with a stack dump: so one cell's bound (and the kernel's start)
# fits well inside the test's.  tests/test_suite_honesty.py checks the relation.
CELL_TIMEOUT_S = 120  # one cell: a few guests booting under TCG on a busy 2-core host
KERNEL_START_S = 60
NOTEBOOK_TIMEOUT_S = 600  # the whole notebook (each takes under a minute here), kernel to last cell

pytestmark = [pytest.mark.guest, pytest.mark.slow, pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)]

# Every lesson; KIT_TEST_LESSONS=2,4 runs only those (while writing a lesson).
EXERCISE_LESSONS = [int(n) for n in os.environ.get("KIT_TEST_LESSONS", "").split(",") if n] or [
    info.number for info in catalog.LESSONS]


def run_notebook(number: int, *, demo: bool) -> None:
    info = catalog.lesson_info(number)
    notebook = nbformat.read(info.path, as_version=4)
    env = {"KIT_DEMO": "1" if demo else "0"}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(notebook, timeout=CELL_TIMEOUT_S, startup_timeout=KERNEL_START_S,
                       kernel_name="python3",
                       resources={"metadata": {"path": str(info.path.parent)}}).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize("number", EXERCISE_LESSONS)
def test_as_shipped_no_exercise_passes(number: int, image: object,
                                       progress_file: Path) -> None:
    before = our_qemu_pids()
    run_notebook(number, demo=False)
    assert our_qemu_pids() <= before, "the lesson left a QEMU running"
    done = progress.lesson_progress(number)
    assert done.finished, "the last cell did not run"
    assert done.passed == () and done.demo == (), f"Run All passed exercises: {done}"
    assert done.predictions == {}, "a prediction was committed for the learner"
    assert len(done.checkpoint_ids) >= 3


@pytest.mark.parametrize("number", EXERCISE_LESSONS)
def test_in_demo_mode_every_exercise_passes_as_demo(number: int, image: object,
                                                    progress_file: Path) -> None:
    before = our_qemu_pids()
    run_notebook(number, demo=True)
    assert our_qemu_pids() <= before, "the lesson left a QEMU running"
    done = progress.lesson_progress(number)
    assert set(done.demo) == set(done.checkpoint_ids) and len(done.demo) >= 3, done
    assert done.passed == (), "a demo pass was recorded as the learner's"
    saved = json.loads(progress_file.read_text())["lessons"][str(number)]
    assert all("how" not in c for c in saved["checkpoints"].values())
