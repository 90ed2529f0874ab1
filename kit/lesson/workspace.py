"""The learner's own copies of the lessons, kept apart from the kit's.

A learner works in a folder of their own (``~/kit-lessons`` unless
``KIT_LESSONS_DIR`` says otherwise), never in the kit's ``lessons/``: what
JupyterLab saves there (answers, outputs) is theirs, the repository stays
clean, and several learners on one server each have their own.

* :func:`copy_missing` makes the copies on first use and never overwrites one;
* :func:`reset` gives a fresh copy of one lesson, keeping the old one beside it
  (``NAME.before-reset-TIME.ipynb``): nothing a learner wrote is lost;
* :func:`drop_widget_views` is a Jupyter server ``pre_save_hook``: a saved
  notebook keeps no output that only a live kernel can draw (an ipywidget),
  so a lesson reopened later shows no "Error displaying widget: model not
  found".
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kit.core import paths
from kit.core.errors import InvalidInput

log = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DEFAULT_FOLDER = "kit-lessons"


def learner_folder() -> Path:
    """Where this learner's copies live: ``KIT_LESSONS_DIR``, else ``~/kit-lessons``."""
    chosen = os.environ.get("KIT_LESSONS_DIR")
    return Path(chosen).expanduser() if chosen else Path.home() / DEFAULT_FOLDER


def shipped_notebooks() -> list[Path]:
    """The notebooks the kit ships, as they are in its ``lessons/`` folder."""
    return sorted(paths.lessons_dir().glob("*.ipynb"))


def copy_missing(folder: Path | None = None) -> list[Path]:
    """Copy every shipped notebook the learner does not have yet; returns the new copies.

    A copy the learner already has is left as it is, edited or not: running
    this again (each ``./setup.sh lab`` does) never costs anyone their work.
    """
    target = folder or learner_folder()
    _check_folder(target)
    target.mkdir(parents=True, exist_ok=True)
    made = []
    for notebook in shipped_notebooks():
        copy = target / notebook.name
        if not copy.exists():
            shutil.copyfile(notebook, copy)
            made.append(copy)
    log.info("lesson copies in %s: %d new", target, len(made))
    return made


def reset(name: str, folder: Path | None = None) -> Path:
    """A fresh copy of one lesson (``"02"`` or ``"02-host-and-guest.ipynb"``); returns the backup.

    The learner's old copy is renamed, not deleted, so a reset by mistake
    loses nothing.
    """
    target = folder or learner_folder()
    notebook = _shipped_named(name)
    copy = target / notebook.name
    backup = copy.with_name(f"{copy.stem}.before-reset-{time.strftime('%Y%m%d-%H%M%S')}.ipynb")
    if copy.exists():
        copy.rename(backup)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, copy)
    log.info("lesson %s reset in %s (old copy: %s)", notebook.name, target, backup.name)
    return backup


def drop_widget_views(model: dict[str, Any], **_: Any) -> None:
    """Jupyter's ``pre_save_hook``: remove outputs that show a live widget, before saving.

    A widget's output is a reference to a model that lives in the running
    kernel; saved, it outlives the kernel and greets the next opening with an
    error.  Text, pictures and errors are kept.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), Mapping):
        return
    for cell in model["content"].get("cells", []):
        outputs = cell.get("outputs") if isinstance(cell, Mapping) else None
        if isinstance(outputs, list):
            cell["outputs"] = [out for out in outputs if not _shows_a_widget(out)]


def _shows_a_widget(output: object) -> bool:
    data = output.get("data") if isinstance(output, Mapping) else None
    return isinstance(data, Mapping) and WIDGET_VIEW in data


def _shipped_named(name: str) -> Path:
    notebooks = shipped_notebooks()
    for notebook in notebooks:
        if name in (notebook.name, notebook.stem) or notebook.name.startswith(f"{name}-"):
            return notebook
    known = ", ".join(n.stem for n in notebooks)
    raise InvalidInput(f"no lesson is called {name!r}.",
                       hint=f"Name one of: {known} (or just its number, e.g. 02).")


def _check_folder(folder: Path) -> None:
    shipped = paths.lessons_dir().resolve()
    if folder.resolve() == shipped:
        raise InvalidInput(f"{folder} is the kit's own lessons folder: copies go elsewhere.",
                           hint=f"Use a folder of your own, e.g. ~/{DEFAULT_FOLDER}.")
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is a file, not a folder.",
                           hint="Choose a folder for the lessons (it is made if missing).")
