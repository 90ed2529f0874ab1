"""Every lesson notebook runs top to bottom on a real kernel, and leaves no guest behind."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import our_qemu_pids
from tests.lesson.test_notebooks import (
    CELL_TIMEOUT_S,
    EXERCISE_LESSONS,
    KERNEL_START_S,
    NOTEBOOK_TIMEOUT_S,
)

ALL = sorted((Path(__file__).parent.parent / "lessons").glob("*.ipynb"))
# Lessons of exercises run twice in tests/lesson/test_notebooks.py (as shipped, and
# in demo mode); the other notebooks run here once.
LESSONS = [p for p in ALL if not (p.name[:2].isdigit() and int(p.name[:2]) in EXERCISE_LESSONS)]



def test_there_are_lessons() -> None:
    assert LESSONS


@pytest.mark.guest
@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_top_to_bottom(path: Path, image: object) -> None:
    before = our_qemu_pids()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, startup_timeout=KERNEL_START_S,
                   kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    assert our_qemu_pids() <= before, "the lesson left a QEMU running"


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_lesson_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
