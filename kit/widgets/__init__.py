"""Widgets that lessons compose: each one works alone, and they fit together.

Each widget is an ``ipywidgets`` box, so ``display(w)`` shows it and it can sit
inside another box.  Each shows its own failures in plain words, with the fix,
in a banner at its top, and records them, so that ``kit.raise_recorded_errors()``
at the end of a notebook fails a headless run when a button would have failed.
Each lets go of its listeners on ``close()``.

    import kit, kit.widgets
    g = kit.Guest("web1")
    kit.widgets.Dashboard(g)          # diagram + panel + console
    kit.widgets.GuestPanel(g)         # start, pause, resume, reboot, stop
    kit.widgets.ConsoleView(g)        # the serial console, with an input line
    kit.widgets.QMPExplorer(g)        # the hypervisor's JSON protocol
    kit.widgets.AgentExplorer(g)      # the guest agent: OS info, processes, files
    kit.widgets.HostView()            # the infrastructure layer
    kit.widgets.LiveDiagram([g])      # the live layer diagram
    kit.widgets.ControlRoom()         # every guest of yours on this host, stop-all
    kit.widgets.DoorsPanel(g, link)   # port forward, shared folder, link: open/close
"""

from __future__ import annotations

from kit.widgets.agent_explorer import AgentExplorer
from kit.widgets.base import ErrorBanner, KitWidget, LogView
from kit.widgets.console_view import ConsoleView
from kit.widgets.control_room import ControlRoom
from kit.widgets.dashboard import Dashboard
from kit.widgets.doors_panel import DoorsPanel
from kit.widgets.guest_panel import GuestPanel
from kit.widgets.host_view import HostView
from kit.widgets.live_diagram import LiveDiagram
from kit.widgets.qmp_explorer import QMPExplorer

__all__ = [
    "AgentExplorer",
    "ConsoleView",
    "ControlRoom",
    "Dashboard",
    "DoorsPanel",
    "ErrorBanner",
    "GuestPanel",
    "HostView",
    "KitWidget",
    "LiveDiagram",
    "LogView",
    "QMPExplorer",
]

