"""The guest panel: buttons follow the state, and really drive a real guest."""

from __future__ import annotations

import pytest

import kit
from kit.core import incidents
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import registry
from kit.view.diagram import LEGEND_STATES, look
from kit.widgets import GuestPanel
from kit.widgets.guest_panel import allowed_actions, badge_html, cpu_choices, memory_choices
from tests.waiting import wait_until


def enabled(panel: GuestPanel) -> set[str]:
    return {name for name, button in panel.buttons.items() if not button.disabled}


# -- without QEMU -------------------------------------------------------------------


@pytest.mark.parametrize("state", list(GuestState))
def test_every_state_has_buttons_and_a_badge_with_words(state: str) -> None:
    assert allowed_actions(state, busy=False) <= {"start", "pause", "resume", "reboot", "stop"}
    html = badge_html(state)
    assert look(state).word in html and look(state).mark in html
    assert state in LEGEND_STATES  # the badge and the diagram's legend agree


def test_only_start_makes_sense_for_a_machine_that_is_not_running() -> None:
    assert allowed_actions("created", busy=False) == {"start"}
    assert allowed_actions("stopped", busy=False) == {"start"}
    assert allowed_actions("running", busy=False) == {"pause", "reboot", "stop"}
    assert allowed_actions("paused", busy=False) == {"resume", "reboot", "stop"}


def test_while_busy_only_stop_is_offered() -> None:
    assert allowed_actions("booting", busy=True) == {"stop"}
    assert allowed_actions("created", busy=True) == frozenset()


def test_paused_stripes_become_css_stripes() -> None:
    assert "repeating-linear-gradient" in badge_html("paused")
    assert "double" in badge_html("crashed")


def test_the_badge_has_a_dark_palette_too() -> None:
    """Its colours come from the diagram's look, and their dark twins under a dark theme."""
    html = badge_html("running")
    assert 'role="status"' in html and "kit-state-running" in html
    assert 'body[data-jp-theme-light="false"] .kit-state-running{' in html
    assert "background:#" not in html.split("<span")[1]  # no fixed colour on the badge itself


def test_no_button_label_is_cut_off(guest_name: str) -> None:
    """ipywidgets gives a button 148 px: "show QEMU command" did not fit ("show QEMU c…")."""
    panel = GuestPanel(guest_name)
    try:
        buttons = [*panel.buttons.values(), panel.show_command]
        for button in buttons:
            width = button.layout.width or ""
            if width.endswith("em"):  # 13 px text: about 0.6 em a character, and the icon
                assert float(width[:-2]) >= 0.6 * len(button.description) + 1.5, button
            else:
                assert width == "auto", (button.description, width)
    finally:
        panel.close()


def test_memory_choices_never_go_below_the_kernel_minimum() -> None:
    assert [m for _, m in memory_choices(96, 128)] == [96, 128, 192, 256]
    assert [m for _, m in memory_choices(128, 160)] == [128, 160, 192, 256]
    assert cpu_choices(2, 1) == [1, 2]


def test_a_new_panel_offers_start_only(guest_name: str) -> None:
    panel = GuestPanel(guest_name)
    try:
        assert panel.badge_state == "created"
        assert enabled(panel) == {"start"}
        assert "not started" in panel.badge.value
        panel.show_command.value = True
        assert "no command yet" in panel.command_view.value
        assert panel.command_view.layout.display == "block"
    finally:
        panel.close()


def test_close_unsubscribes(guest_name: str) -> None:
    before = len(registry._listeners)
    panel = GuestPanel(kit.Guest(guest_name))
    assert len(registry._listeners) > before
    panel.close()
    assert len(registry._listeners) == before


def test_pausing_a_guest_that_is_not_running_is_shown_and_recorded(guest_name: str) -> None:
    panel = GuestPanel(guest_name)
    try:
        panel.buttons["pause"].click()  # disabled in a browser; a test can still press it
        assert panel.banner.text.startswith(f"cannot pause guest {guest_name}: it is created, "
                                            "and this needs it running or booting.")
        assert "What to do: Start it first" in panel.banner.text
        with pytest.raises(incidents.RecordedErrors, match="cannot pause"):
            kit.raise_recorded_errors()
    finally:
        panel.close()


# -- with a real guest --------------------------------------------------------------


@pytest.mark.guest
def test_panel_drives_a_real_guest(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name)
    panel = GuestPanel(g)
    try:
        panel.memory.value = 192
        panel.cpus.value = 2
        panel.buttons["start"].click()
        assert wait_until(lambda: panel.badge_state == "booting", 5)
        assert panel.progress.layout.visibility == "visible"
        assert enabled(panel) == {"stop"}
        assert wait_until(lambda: panel.progress.value > 0, 3)
        assert "booting…" in panel.progress_label.value
        assert panel.wait(60)
        assert g.state == "running" and panel.badge_state == "running"
        assert enabled(panel) == {"pause", "reboot", "stop"}
        assert panel.progress.layout.visibility == "hidden"
        assert g.qmp("query-memory-size-summary")["base-memory"] == 192 * 2**20
        assert len(g.qmp("query-cpus-fast")) == 2
        assert "QEMU process id" in panel.details.value

        panel.show_command.value = True
        assert "-m 192" in panel.command_view.value and "-smp 2" in panel.command_view.value

        panel.buttons["pause"].click()
        assert g.qmp("query-status")["status"] == "paused"
        assert wait_until(lambda: panel.badge_state == "paused")
        assert "paused" in panel.badge.value
        assert enabled(panel) == {"resume", "reboot", "stop"}

        panel.buttons["resume"].click()
        assert g.qmp("query-status")["status"] == "running"
        assert wait_until(lambda: panel.badge_state == "running")

        panel.buttons["reboot"].click()
        assert wait_until(lambda: panel.badge_state == "booting", 5)
        assert panel.wait(60) and panel.badge_state == "running"
        assert g.run("echo back").stdout == "back\n"

        panel.buttons["stop"].click()
        assert panel.wait(30)
        assert g.state == "stopped" and panel.badge_state == "stopped"
        assert enabled(panel) == {"start"}
        assert "last stop: stopped by the kit" in panel.details.value

        panel.buttons["stop"].click()  # stopping a stopped guest is harmless
        assert panel.wait(5) and panel.banner.text == ""
    finally:
        panel.close()
        g.stop()


@pytest.mark.guest
def test_a_new_machine_of_the_same_name_takes_over_the_panel(
        image: images.GuestImage, guest_name: str) -> None:
    """Made again from code with another size (lesson 1): the panel drives and shows the new one."""
    old = kit.Guest(guest_name).start()
    panel = GuestPanel(old)
    new = kit.Guest(guest_name, memory_mb=160, cpus=2, replace=True)
    try:
        new.start()
        assert wait_until(lambda: panel.guest is new and panel.badge_state == "running", 5)
        assert panel.memory.value == 160 and panel.cpus.value == 2
        assert "160 MiB, 2 vCPUs" in panel.details.value
        panel.buttons["pause"].click()
        assert new.qmp("query-status")["status"] == "paused"
    finally:
        panel.close()
        new.stop()
        old.stop()


@pytest.mark.guest
def test_stop_during_a_boot_is_not_a_failure(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name)
    panel = GuestPanel(g)
    try:
        panel.buttons["start"].click()
        assert wait_until(lambda: panel.badge_state == "booting", 5)
        panel.buttons["stop"].click()
        assert panel.wait(30)
        assert g.state == "stopped" and panel.badge_state == "stopped"
        assert panel.banner.text == ""  # and no_unexpected_errors checks nothing was recorded
        assert enabled(panel) == {"start"}
    finally:
        panel.close()
        g.stop()
