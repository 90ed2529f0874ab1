"""The learner's own copies: made once, never overwritten, reset with a backup, saved clean."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager

from kit.core import paths
from kit.core.errors import InvalidInput
from kit.lesson import workspace
from kit.lesson.reset_control import ResetLesson

WIDGET_OUTPUT = {"output_type": "display_data", "metadata": {},
                 "data": {workspace.WIDGET_VIEW: {"model_id": "gone", "version_major": 2,
                                                  "version_minor": 0},
                          "text/plain": "VBox(children=(...))"}}
TEXT_OUTPUT = {"output_type": "stream", "name": "stdout", "text": "hello\n"}


def test_copies_are_made_once_and_never_overwritten(tmp_path: Path) -> None:
    made = workspace.copy_missing(tmp_path / "mine")
    assert {p.name for p in made} == {p.name for p in workspace.shipped_notebooks()}
    mine = tmp_path / "mine" / "02-host-and-guest.ipynb"
    mine.write_text("my own work")
    assert workspace.copy_missing(tmp_path / "mine") == []
    assert mine.read_text() == "my own work"


def test_the_default_folder_is_in_the_learners_home(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.delenv("KIT_LESSONS_DIR", raising=False)
    assert workspace.learner_folder() == Path.home() / "kit-lessons"
    monkeypatch.setenv("KIT_LESSONS_DIR", str(tmp_path))
    assert workspace.learner_folder() == tmp_path


def test_the_kits_own_folder_and_a_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="kit's own lessons folder"):
        workspace.copy_missing(paths.lessons_dir())
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInput, match="a file, not a folder"):
        workspace.copy_missing(tmp_path / "f")


def test_reset_gives_a_fresh_copy_and_keeps_the_old_one(tmp_path: Path) -> None:
    workspace.copy_missing(tmp_path)
    mine = tmp_path / "04-isolation.ipynb"
    mine.write_text("my answers")
    backup = workspace.reset("04", tmp_path)
    assert backup.read_text() == "my answers" and backup.suffix == ".ipynb"
    assert mine.read_bytes() == (paths.lessons_dir() / mine.name).read_bytes()
    with pytest.raises(InvalidInput, match="no lesson is called") as info:
        workspace.reset("99", tmp_path)
    assert "02-host-and-guest" in (info.value.hint or "")


def test_the_reset_button_asks_first_and_refuses_the_kits_own_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.copy_missing(tmp_path)
    (tmp_path / "01-what-is-a-vm.ipynb").write_text("mine")
    monkeypatch.chdir(tmp_path)
    control = ResetLesson("01-what-is-a-vm.ipynb")
    control.ask.click()
    assert "will be kept" in control.message.value
    assert (tmp_path / "01-what-is-a-vm.ipynb").read_text() == "mine"  # nothing yet
    control.confirm.click()
    assert "Reload Notebook from Disk" in control.message.value
    assert (tmp_path / "01-what-is-a-vm.ipynb").read_text() != "mine"
    monkeypatch.chdir(paths.lessons_dir())
    ResetLesson("01-what-is-a-vm.ipynb").confirm.click()  # the button's errors go to its banner
    shown = ResetLesson("01-what-is-a-vm.ipynb")
    with pytest.raises(InvalidInput, match="kit's own copy"):
        shown.reset()


def test_jupyter_saves_a_lesson_without_its_dead_widgets(tmp_path: Path) -> None:
    """Through Jupyter's own contents manager, configured as ./setup.sh lab configures it."""
    manager = FileContentsManager(root_dir=str(tmp_path),
                                  pre_save_hook="kit.lesson.workspace.drop_widget_views")
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("lesson2.doors_panel(alpha)")
    cell.outputs = [nbformat.from_dict(WIDGET_OUTPUT), nbformat.from_dict(TEXT_OUTPUT)]
    notebook.cells.append(cell)
    manager.save({"type": "notebook", "content": notebook}, "lesson.ipynb")
    saved = json.loads((tmp_path / "lesson.ipynb").read_text())
    assert [(o["output_type"], "".join(o["text"])) for o in saved["cells"][0]["outputs"]] == [
        ("stream", "hello\n")]
