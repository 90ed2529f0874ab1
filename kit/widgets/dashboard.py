"""The dashboard: one guest's layer diagram, control panel and console, side by side.

One call in a lesson (``kit.widgets.Dashboard(g)``) gives the learner
everything needed to watch a machine change while driving it.
"""

from __future__ import annotations

import ipywidgets as widgets

from kit.hypervisor.guest import Guest
from kit.widgets.base import KitWidget, resolve_guest
from kit.widgets.console_view import ConsoleView
from kit.widgets.guest_panel import GuestPanel
from kit.widgets.live_diagram import LiveDiagram


class Dashboard(KitWidget):
    """A live diagram of the layers beside a guest panel and its console.

    ``highlight`` names a layer for the diagram to emphasise (see
    :class:`LiveDiagram`).  On a narrow page the two halves wrap, one above
    the other, and the console keeps its newest line in view
    (:class:`kit.widgets.base.LogView`).
    """

    def __init__(self, guest: Guest | str, highlight: str | None = None) -> None:
        super().__init__("dashboard")
        self.guest = resolve_guest(guest)
        self.diagram = LiveDiagram(guests=[self.guest], highlight=highlight)
        self.panel = GuestPanel(self.guest)
        self.console = ConsoleView(self.guest, height="16em")
        half = {"flex": "1 1 28em", "min_width": "22em"}
        # The diagram sets its own minimum width (the one its text stays readable at):
        # when the page cannot give both halves that much, the row wraps.
        self.diagram.layout.flex = half["flex"]
        self._set_body(widgets.HBox(
            [self.diagram, widgets.VBox([self.panel, self.console], layout=widgets.Layout(**half))],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start",
                                  grid_gap="12px")))
