""""Start this lesson afresh": a learner's own copy of a lesson, replaced by a fresh one.

Under each lesson's header.  It asks before it acts, keeps the old copy
beside the new one (:func:`kit.lesson.workspace.reset`), and then says how to
see the fresh copy in JupyterLab, which still shows the old one until it
reloads the file.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets

from kit.core import paths
from kit.core.errors import InvalidInput
from kit.lesson import workspace
from kit.view.markup import escape
from kit.widgets.base import KitWidget, set_button_style


def notebook_folder(notebook: str) -> Path:
    """Where the open copy of ``notebook`` is: the kernel's folder, where Jupyter starts it."""
    here = Path.cwd()
    return here if (here / notebook).exists() else workspace.learner_folder()


class ResetLesson(KitWidget):
    """A button that gives the learner a fresh copy of this lesson, after asking."""

    def __init__(self, notebook: str) -> None:
        super().__init__("start this lesson afresh")
        self.notebook = notebook
        self.ask = widgets.Button(description="Start this lesson afresh…", icon="undo",
                                  tooltip="a fresh copy of this notebook; yours is kept",
                                  layout=widgets.Layout(width="auto"))
        self.confirm = widgets.Button(description="Yes: a fresh copy",
                                      layout=widgets.Layout(width="auto", display="none"))
        set_button_style(self.confirm, "warning")
        self.cancel = widgets.Button(description="Cancel",
                                     layout=widgets.Layout(width="auto", display="none"))
        self.message = widgets.HTML()
        self.ask.on_click(self._callback("asking", self._ask))
        self.cancel.on_click(self._callback("cancelling", self._hide_question))
        self.confirm.on_click(self._callback("making a fresh copy", self.reset))
        self._set_body(widgets.HBox([self.ask, self.confirm, self.cancel]), self.message)

    def _ask(self) -> None:
        folder = notebook_folder(self.notebook)
        self.message.value = (f"<small>Your copy, {escape(self.notebook)}, will be kept beside "
                              f"the fresh one in {escape(str(folder))}. Go on?</small>")
        self.confirm.layout.display = self.cancel.layout.display = "inline-flex"

    def _hide_question(self) -> None:
        self.confirm.layout.display = self.cancel.layout.display = "none"
        self.message.value = ""

    def reset(self) -> Path:
        """Make the fresh copy now; returns where the old one went."""
        self._hide_question()
        folder = notebook_folder(self.notebook)
        if folder.resolve() == paths.lessons_dir().resolve():
            raise InvalidInput(
                "this notebook is the kit's own copy, not yours: there is nothing to reset.",
                hint="Work on your own copies: ./setup.sh lab opens them (made in "
                "~/kit-lessons), or python -m kit lessons makes them.")
        backup = workspace.reset(self.notebook, folder)
        self.message.value = (
            f"<small>✔ A fresh copy is on disk; yours is now {escape(backup.name)}. To see it, "
            "choose <b>File → Reload Notebook from Disk</b> (or close this tab without "
            "saving and open the lesson again).</small>")
        return backup
