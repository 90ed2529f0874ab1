"""The instructor's class settings, shown in the control room: demo mode and solutions.

The control room (a widget of the layer below) shows the machines; this
panel adds what belongs to the course: the two switches of
:mod:`kit.lesson.classroom`, and this user's progress with how each pass
came (alone, after the hint, with the solution, in demo mode).
"""

from __future__ import annotations

import ipywidgets as widgets

from kit.lesson import classroom
from kit.lesson.overview import ProgressOverview
from kit.view.markup import escape
from kit.widgets.base import KitWidget


class ClassPanel(KitWidget):
    """Two toggles (demo mode, solutions) and the progress table."""

    def __init__(self) -> None:
        super().__init__("class settings")
        self.demo = widgets.ToggleButton(
            description="demo mode", icon="play", layout=widgets.Layout(width="auto", flex="none"),
            tooltip="Exercises solve themselves when checked, so Run All presents a lesson; "
            "passes are recorded as demo, never as the learner's")
        self.solutions = widgets.ToggleButton(
            description="solutions allowed", icon="key",
            layout=widgets.Layout(width="auto", flex="none"),
            tooltip="Whether a stuck learner may show an exercise's solution after a try")
        self.note = widgets.HTML()
        self.overview = ProgressOverview()
        self.demo.observe(self._guarded("switching demo mode", self._demo_changed), names="value")
        self.solutions.observe(self._guarded("switching solutions", self._solutions_changed),
                               names="value")
        self._set_body(widgets.HTML("<b>Class settings</b>"),
                       widgets.HBox([self.demo, self.solutions]), self.note, self.overview)
        self.refresh()

    def refresh(self) -> None:
        self.demo.value = classroom.demo_mode()
        self.solutions.value = classroom.solutions_allowed()
        fixed = [name for name in ("KIT_DEMO", "KIT_SOLUTIONS")
                 if classroom.fixed_by_environment(name)]
        self.demo.disabled = "KIT_DEMO" in fixed
        self.solutions.disabled = "KIT_SOLUTIONS" in fixed
        where = escape(classroom.settings_file())
        self.note.value = (f"<small>Saved in <code>{where}</code>; every lesson reads it at each "
                           "check." + (f" Fixed by the environment: {', '.join(fixed)}."
                                       if fixed else "") + "</small>")

    def _demo_changed(self, change: dict[str, object]) -> None:
        if bool(change["new"]) != classroom.demo_mode():
            classroom.set_demo_mode(bool(change["new"]))
        self.refresh()

    def _solutions_changed(self, change: dict[str, object]) -> None:
        if bool(change["new"]) != classroom.solutions_allowed():
            classroom.set_solutions_allowed(bool(change["new"]))
        self.refresh()
