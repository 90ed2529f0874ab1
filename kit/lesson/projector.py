"""Projector mode: the lesson, readable from the back of a room.

One toggle under each lesson's header.  On, it adds a style sheet to the
page that enlarges JupyterLab's text and code (through JupyterLab's own
font-size variables), the kit's widgets, its consoles and logs, and lets each
diagram take the full width of the notebook.  The choice is kept in the
progress file, so the next lesson opens the way the last one was left.

A style sheet in a widget applies to the whole page for as long as that
widget is shown; turned off, the sheet is emptied and the page is as before.
"""

from __future__ import annotations

import ipywidgets as widgets

from kit.core.errors import KitError
from kit.lesson import progress
from kit.widgets.base import KitWidget, set_button_style

# JupyterLab's defaults are 14px text and 13px code; these are about one and a half times.
PROJECTOR_CSS = """<style>
body {
  --jp-content-font-size1: 21px;
  --jp-content-font-size2: 24px;
  --jp-content-font-size3: 30px;
  --jp-content-font-size4: 36px;
  --jp-code-font-size: 19px;
  --jp-ui-font-size1: 18px;
  --jp-widgets-font-size: 18px;
  --jp-widgets-inline-height: 40px;
}
.jp-OutputArea-output .widget-html-content,
.jp-OutputArea-output .widget-label,
.jp-OutputArea-output .widget-button,
.jp-OutputArea-output .widget-toggle-button { font-size: 18px; }
.jp-OutputArea-output .kit-log,
.jp-OutputArea-output .kit-log pre { font-size: 17px; line-height: 1.35; }
.jp-OutputArea-output .kit-diagram { width: 100% !important; min-width: 100%; }
.jp-OutputArea-output .kit-diagram svg { width: 100%; height: auto; }
</style>"""


class ProjectorToggle(KitWidget):
    """The toggle, and the style sheet it puts on the page while it is on."""

    def __init__(self) -> None:
        super().__init__("projector mode")
        self.toggle = widgets.ToggleButton(
            description="Projector mode", icon="television",
            tooltip="larger text, consoles and diagrams, for a room",
            layout=widgets.Layout(width="auto"))
        self.sheet = widgets.HTML(layout=widgets.Layout(height="0px", overflow="hidden"))
        self.toggle.observe(lambda change: self._guarded("switching", self.show)(
            bool(change["new"])), names="value")
        self._set_body(self.toggle, self.sheet)
        try:
            remembered = progress.projector()
        except KitError:
            remembered = False
        self.toggle.value = remembered
        self.show(remembered, remember=False)

    def show(self, on: bool, remember: bool = True) -> None:
        """Put the style sheet on the page (or take it off), and remember the choice."""
        self.sheet.value = PROJECTOR_CSS if on else ""
        set_button_style(self.toggle, "info" if on else "")
        if remember:
            progress.record_projector(on)
