"""The dashboard: diagram, panel and console together, for one guest."""

from __future__ import annotations

import pytest

import kit
from kit.guestos import images
from kit.hypervisor import registry
from kit.widgets import ConsoleView, Dashboard, GuestPanel, LiveDiagram
from tests.waiting import wait_until


def test_parts_share_one_guest(guest_name: str) -> None:
    board = Dashboard(guest_name, highlight="hypervisor")
    try:
        assert isinstance(board.panel, GuestPanel) and isinstance(board.console, ConsoleView)
        assert isinstance(board.diagram, LiveDiagram)
        assert board.panel.guest is board.console.guest is board.guest
        assert board.diagram.highlight == "hypervisor"
        assert repr(board) == f"<Dashboard of guest {guest_name}>"
    finally:
        board.close()


def test_a_wrong_layer_name_is_refused_at_once(guest_name: str) -> None:
    with pytest.raises(kit.InvalidInput, match="is not a layer"):
        Dashboard(guest_name, highlight="kernel")


def test_close_closes_every_part_and_lets_go_of_listeners(guest_name: str) -> None:
    before = len(registry._listeners)
    board = Dashboard(guest_name)
    board.close()
    assert len(registry._listeners) == before
    assert board.panel.comm is None and board.console.comm is None
    assert board.diagram.comm is None


@pytest.mark.guest
def test_dashboard_drives_a_real_guest(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name)
    board = Dashboard(g)
    try:
        assert "○ no process yet" in board.diagram.svg
        board.panel.buttons["start"].click()
        assert board.panel.wait(60) and g.state == "running"
        assert wait_until(lambda: "KIT-READY" in board.console.text, 5)
        assert wait_until(lambda: ">vCPUs running<" in board.diagram.svg, 5)
        board.panel.buttons["pause"].click()
        assert wait_until(lambda: "vCPUs ❚❚ stopped" in board.diagram.svg, 5)
        board.panel.buttons["stop"].click()
        assert board.panel.wait(30) and g.state == "stopped"
        assert wait_until(lambda: "■ no process" in board.diagram.svg, 5)
    finally:
        board.close()
        g.stop()
