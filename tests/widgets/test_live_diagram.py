"""The live diagram: redrawn from lifecycle events, throttled, drawn off the kit loop.

The first tests feed the registry by hand with a stand-in guest (no QEMU); the
ones marked ``guest`` boot a real guest and pause, resume and stop it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import pytest

import kit
from kit.core import incidents
from kit.core.errors import InvalidInput, SetupError
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.view import diagram
from kit.widgets.live_diagram import MIN_INTERVAL_S, LiveDiagram, _draw_worker
from tests.waiting import kit_loop_after, wait_until

WITHIN_S = 1.0  # how soon a change must be on screen (the aim is 0.5 s)
REFRESH_S = 0.1  # the slow refresh, in the test of it



class NoDoors:
    def openings(self) -> tuple[()]:
        return ()


@dataclass
class StandIn:
    """Just enough of a guest for a snapshot: lets the tests announce any state at will."""

    name: str
    state: GuestState = GuestState.RUNNING
    pid: int | None = None
    accelerator: None = None
    memory_mb: int = 128
    cpus: int = 1
    arch: str = "x86_64"
    image: None = None
    forwards: dict[int, int] = field(default_factory=dict)
    doors: NoDoors = field(default_factory=NoDoors)
    moving_to: int | None = None
    last_migration: None = None

    def change(self, state: str) -> None:
        self.state = GuestState(state)
        registry.announce(self, state)  # type: ignore[arg-type]


def wait_for(condition: Callable[[], bool], seconds: float = WITHIN_S) -> bool:
    return wait_until(condition, seconds, interval=0.01)


def settled(view: LiveDiagram) -> None:
    """Return once every redraw asked for so far has been drawn (none is pending).

    A change asks the throttle, which hands the drawing to the one draw thread
    at most MIN_INTERVAL_S later: wait for those two, in that order.
    """
    kit_loop_after(MIN_INTERVAL_S)
    _draw_worker().submit(lambda: None).result(10)
    assert not view._throttle._pending


def shown(view: LiveDiagram, name: str) -> str | None:
    """The state the widget's current picture shows for guest ``name``."""
    assert view.svg in view.value
    return diagram.shown_state(view.svg, name, view.graph_id)


def words(view: LiveDiagram) -> str:
    """The picture's text, as a person reads it (entities decoded, one space apart)."""
    return " ".join(" ".join(ElementTree.fromstring(view.svg).itertext()).split())


@pytest.fixture
def view() -> Iterator[LiveDiagram]:
    made = LiveDiagram()
    yield made
    made.close()


# -- without QEMU ------------------------------------------------------------------


def test_starts_with_a_picture_scaled_by_css(view: LiveDiagram) -> None:
    assert view.render_count == 1
    assert view.value.startswith('<div class="kit-live-diagram"')
    narrowest = diagram.min_width_px(view.svg)
    assert view.readable_width_px == narrowest
    assert f'<svg style="width:100%;min-width:{narrowest:.0f}px;' in view.value
    assert "no guests yet" in words(view)


def test_the_widget_asks_for_the_width_its_text_is_readable_at(view: LiveDiagram) -> None:
    """A row of widgets that gives it less (beside a panel) wraps it onto a row of its own."""
    wanted = f"min({view.readable_width_px:.0f}px, 100%)"
    assert view.layout.min_width == wanted
    view.layout.min_width = "20em"  # what kit.lesson.beside sets on each part
    assert view.layout.min_width == wanted


def test_it_comes_with_a_dark_palette_a_legend_and_words(view: LiveDiagram) -> None:
    StandIn("sim1").change("paused")
    assert wait_for(lambda: shown(view, "sim1") == "paused")
    assert 'body[data-jp-theme-light="false"] .kit-live-diagram [fill=' in view.value
    assert "kit-diagram-legend" in view.value and "▶ running" in view.value
    assert "The diagram in words" in view.value
    assert "sim1" in view.summary and "paused" in view.summary
    root = ElementTree.fromstring(view.svg)
    assert root.get("role") == "img"
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None and "sim1 paused" in (title.text or "")
    assert view.value.startswith('<div class="kit-live-diagram" style="max-width:100%;'
                                 "color:var(--jp-content-font-color1")


def test_a_new_machine_of_the_same_name_is_followed(
        guest_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """kit.Guest("mine", ..., replace=True).start(): the diagram of mine shows the new one."""
    old = kit.Guest(guest_name, memory_mb=128)
    view = LiveDiagram([old])
    new = kit.Guest(guest_name, memory_mb=176)
    # What its start does before it says it is booting: it holds the name now.
    monkeypatch.setattr(registry, "get", lambda name: new if name == guest_name else None)
    try:
        assert "176 MiB" not in words(view)
        registry.announce(new, "booting")
        assert wait_for(lambda: "176 MiB" in words(view))
        assert "128 MiB" not in words(view)
    finally:
        view.close()


def test_two_diagrams_have_different_ids(view: LiveDiagram) -> None:
    other = LiveDiagram()
    try:
        assert other.graph_id != view.graph_id
        assert f'id="{other.graph_id}_host"' in other.svg
    finally:
        other.close()


def test_a_state_change_is_drawn_soon(view: LiveDiagram) -> None:
    guest = StandIn("sim1")
    guest.change("running")
    assert wait_for(lambda: shown(view, "sim1") == "running")
    guest.change("paused")
    assert wait_for(lambda: shown(view, "sim1") == "paused")
    assert view.last_change_at is not None and view.last_render_at is not None
    assert view.last_render_at >= view.last_change_at


def test_a_burst_of_changes_gives_few_redraws_and_ends_on_the_last(view: LiveDiagram) -> None:
    guest = StandIn("sim1")
    before = view.render_count
    started = time.monotonic()
    for i in range(60):
        guest.change("paused" if i % 2 else "running")
        time.sleep(0.01)
    guest.change("crashed")
    burst = time.monotonic() - started
    assert wait_for(lambda: shown(view, "sim1") == "crashed")
    settled(view)
    redraws = view.render_count - before
    assert 1 <= redraws <= burst / MIN_INTERVAL_S + 2, (redraws, burst)


def test_follow_shows_only_the_chosen_guests(view: LiveDiagram) -> None:
    one, two = StandIn("sim1"), StandIn("sim2")
    one.change("running")
    two.change("running")
    assert wait_for(lambda: shown(view, "sim2") == "running")
    view.follow(["sim1"])
    assert wait_for(lambda: shown(view, "sim2") is None)
    assert shown(view, "sim1") == "running"
    count = view.render_count
    two.change("paused")  # not followed: no redraw
    settled(view)
    assert view.render_count == count
    view.follow_all()
    assert wait_for(lambda: shown(view, "sim2") == "paused")


def test_one_name_is_one_guest_and_nonsense_is_refused(view: LiveDiagram) -> None:
    StandIn("sim1").change("running")
    view.follow("sim1")
    assert wait_for(lambda: shown(view, "sim1") == "running")
    with pytest.raises(InvalidInput, match="not a list of guests"):
        view.follow([42])  # type: ignore[list-item]


def test_highlight_can_be_changed_live(view: LiveDiagram) -> None:
    view.highlight = "hypervisor"
    assert wait_for(lambda: f"{view.graph_id}_layer_hypervisor" in view.svg
                    and 'stroke-width="3.5"' in view.svg)
    assert view.highlight == "hypervisor"
    with pytest.raises(InvalidInput, match="not a layer"):
        view.highlight = "kernel"
    with pytest.raises(InvalidInput):
        LiveDiagram(highlight="kernel")


def test_refresh_draws_now_and_returns_the_svg(view: LiveDiagram) -> None:
    count = view.render_count
    svg = view.refresh()
    assert svg == view.svg and svg.startswith("<svg")
    assert view.render_count == count + 1


def test_slow_periodic_refresh_only_while_a_guest_has_a_process() -> None:
    guest = StandIn("sim1", state="stopped")
    view = LiveDiagram(refresh_every=REFRESH_S)
    try:
        guest.change("stopped")
        assert wait_for(lambda: shown(view, "sim1") == "stopped")
        settled(view)
        count = view.render_count
        time.sleep(5 * REFRESH_S)  # the thing under test: five ticks of the refresh timer
        settled(view)
        assert view.render_count == count  # nothing moves, nothing redrawn
        guest.pid = 1
        guest.change("running")
        assert wait_for(lambda: view.render_count >= count + 3, 3.0)
    finally:
        view.close()


def test_after_close_nothing_is_redrawn(view: LiveDiagram) -> None:
    view.close()
    count = view.render_count
    StandIn("sim1").change("paused")
    settled(view)
    assert view.render_count == count


def test_without_graphviz_the_widget_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    broken = LiveDiagram()
    try:
        assert "sudo apt-get install graphviz" in broken.value
        assert "cannot be drawn" in broken.value
        assert isinstance(broken.last_error, SetupError)
        assert [type(i.error) for i in incidents.recorded()] == [SetupError]
        incidents.clear()
        with pytest.raises(SetupError):
            broken.refresh()
    finally:
        broken.close()


# -- with a real guest ---------------------------------------------------------------


@pytest.mark.guest
def test_pause_resume_stop_are_drawn(image: object, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        view = LiveDiagram([g])
        try:
            assert shown(view, g.name) == "running"
            assert f"Linux {g.image.kernel_version}" in words(view)  # type: ignore[union-attr]
            assert f"PID {g.pid}" in words(view)
            g.pause()
            assert wait_for(lambda: shown(view, g.name) == "paused"), shown(view, g.name)
            g.resume()
            assert wait_for(lambda: shown(view, g.name) == "running"), shown(view, g.name)
            g.stop()
            assert wait_for(lambda: shown(view, g.name) == "stopped"), shown(view, g.name)
            assert "no process" in words(view)
        finally:
            view.close()


@pytest.mark.guest
def test_a_fleet_view_drops_guests_once_they_stop(image: object, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        view = LiveDiagram(keep_stopped=False)
        try:
            assert wait_for(lambda: shown(view, g.name) == "running")
            g.stop()
            assert wait_for(lambda: shown(view, g.name) is None), shown(view, g.name)
        finally:
            view.close()


@pytest.mark.guest
def test_a_burst_of_real_changes_gives_few_redraws(image: object, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        view = LiveDiagram([g])
        try:
            before = view.render_count
            started = time.monotonic()
            for _ in range(5):
                g.pause()
                g.resume()
            burst = time.monotonic() - started
            # The last event (RESUME) may come a moment after resume() returns.
            assert wait_for(lambda: shown(view, g.name) == "running"
                            and view.last_render_at is not None
                            and view.last_change_at is not None
                            and view.last_render_at > view.last_change_at), shown(view, g.name)
            settled(view)
            redraws = view.render_count - before
            assert 1 <= redraws <= burst / MIN_INTERVAL_S + 2, (redraws, burst)
        finally:
            view.close()


@pytest.mark.guest
def test_following_all_or_by_name_shows_a_guest_started_later(
        image: object, guest_name: str) -> None:
    every, named = LiveDiagram(), LiveDiagram([guest_name])
    try:
        assert shown(named, guest_name) is None
        with kit.Guest(guest_name) as g:
            for view in (every, named):
                assert wait_for(lambda v=view: shown(v, g.name) == "running"), view.svg
        for view in (every, named):  # a stopped guest stays in the picture, stopped
            assert wait_for(lambda v=view: shown(v, guest_name) == "stopped")
    finally:
        every.close()
        named.close()
