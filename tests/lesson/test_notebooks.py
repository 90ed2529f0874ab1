"""Lessons 0 and 1 run headless and pass every checkpoint on their default path.

``tests/test_lessons.py`` runs every notebook and fails on errors; this test
adds what only the lesson framework knows: that the cells meant to do each
task really did it (a checkpoint that fails is not an error, so only the
progress file shows it), and that nothing leaks into the learner's real file.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kit.lesson import catalog, progress
from tests.conftest import our_qemu_pids

pytestmark = [pytest.mark.guest, pytest.mark.slow]


@pytest.mark.parametrize("number", [0, 1])
def test_the_lesson_passes_all_its_checkpoints_headless(number: int, image: object,
                                                        progress_file: Path) -> None:
    info = catalog.lesson_info(number)
    before = our_qemu_pids()
    notebook = nbformat.read(info.path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(info.path.parent)}}).execute()
    assert our_qemu_pids() <= before, "the lesson left a QEMU running"
    done = progress.lesson_progress(number)  # the kernel wrote to our temporary file
    assert done.finished and done.status == "done", done
    assert len(done.checkpoint_ids) >= 3
    assert len(done.question_ids) >= 3
