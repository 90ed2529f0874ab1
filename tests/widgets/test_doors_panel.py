"""The doors panel: each toggle shows a door as it is, and really opens and closes it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import kit
from kit.core import incidents
from kit.guestos import images
from kit.infrastructure.net import free_port, http_get
from kit.widgets import DoorsPanel
from kit.widgets.doors_panel import forward_words
from tests.waiting import wait_until

# -- without QEMU -------------------------------------------------------------------


def test_forwards_in_words() -> None:
    assert forward_words({}) == "no port of this host leads into the guest"
    assert forward_words({9000: 22, 8080: 80}) == (
        "127.0.0.1:8080 → guest port 80; 127.0.0.1:9000 → guest port 22")


def test_a_guest_not_started_has_every_door_closed_and_says_why(image: images.GuestImage) -> None:
    panel = DoorsPanel(kit.Guest("d-panel"))
    try:
        assert "start it" in panel.note.value
        for toggle in (panel.forward, panel.share):
            assert toggle.disabled and not toggle.value and "closed" in toggle.description
        assert "no shared folder was declared" in panel.share_state.value
        assert panel.link_toggle not in _all_children(panel)  # no link given: no link row
    finally:
        panel.close()


def test_a_link_row_when_a_link_is_given(image: images.GuestImage) -> None:
    a, b = kit.Guest("d-pa"), kit.Guest("d-pb")
    link = kit.Link(a, b)
    panel = DoorsPanel(a, link)
    try:
        assert panel.link_toggle in _all_children(panel)
        assert "cable pulled out" in panel.link_state.value and "10.0.3.2" in panel.link_state.value
    finally:
        panel.close()


def test_the_internet_door_can_be_set_before_the_start(image: images.GuestImage) -> None:
    g = kit.Guest("d-inet")
    panel = DoorsPanel(g)
    try:
        assert not panel.internet.disabled and "closed" in panel.internet.description
        assert "reaches nothing" in panel.internet_state.value
        panel.internet.value = True  # a click
        assert g.internet_open and "open" in panel.internet.description
        assert "outbound NAT" in panel.internet_state.value
        panel.internet.value = False
        assert not g.internet_open
    finally:
        panel.close()


def _all_children(widget: object) -> list[object]:
    found = []
    for child in getattr(widget, "children", ()):
        found += [child, *_all_children(child)]
    return found


# -- with real guests ----------------------------------------------------------------


@pytest.mark.guest
def test_toggles_drive_real_doors(image: images.GuestImage, guest_name: str,
                                  tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("shared\n")
    a = kit.Guest(f"{guest_name}a", shared_folder=tmp_path)
    b = kit.Guest(f"{guest_name}b")
    link = kit.Link(a, b)
    panel = DoorsPanel(a, link)
    try:
        with a, b:
            assert wait_until(lambda: not panel.forward.disabled and not panel.link_toggle.disabled)
            _forward_toggle(panel, a)
            _share_toggle(panel, a)
            _link_toggle(panel, link)
            _a_refused_click_is_shown_and_undone(panel, a)
    finally:
        panel.close()


def _forward_toggle(panel: DoorsPanel, a: kit.Guest) -> None:
    port = free_port()
    panel.host_port.value = port
    panel.forward.value = True  # what a click does
    assert a.forwards == {port: 80} and "open" in panel.forward.description
    assert "<html" in http_get(port).lower()
    assert f"127.0.0.1:{port} → guest port 80" in panel.forward_state.value
    panel.forward.value = False
    assert a.forwards == {} and "closed" in panel.forward.description


def _share_toggle(panel: DoorsPanel, a: kit.Guest) -> None:
    panel.share.value = True
    assert a.share_open and "mounted:" in panel.share_state.value
    assert a.run("cat /mnt/share/note.txt").stdout == "shared\n"
    a.close_share()  # a lesson cell closes it: the toggle follows
    assert wait_until(lambda: not panel.share.value)


def _link_toggle(panel: DoorsPanel, link: kit.Link) -> None:
    panel.link_toggle.value = True
    assert link.is_up and "plugged in" in panel.link_state.value
    link.down()  # from a cell
    assert wait_until(lambda: not panel.link_toggle.value)


def _a_refused_click_is_shown_and_undone(panel: DoorsPanel, a: kit.Guest) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        panel.host_port.value = busy.getsockname()[1]
        panel.forward.value = True
    assert not panel.forward.value and a.forwards == {}
    assert "already taken" in panel.banner.text and "What to do" in panel.banner.text
    assert incidents.recorded()  # a headless run would fail here, as it should
    incidents.clear()
