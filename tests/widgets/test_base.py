"""The shared machinery: error banner, guarded callbacks, throttling, closing."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import ipywidgets as widgets
import pytest

from kit.core import incidents
from kit.core.errors import GuestError
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.view.markup import pre
from kit.widgets.base import (
    ErrorBanner,
    KitWidget,
    LogView,
    Throttle,
    close_tree,
    describe_error,
    on_enter,
    working,
)
from tests.waiting import kit_loop_after


@pytest.fixture(autouse=True)
def fresh_incidents() -> Iterator[None]:
    incidents.clear()
    yield
    incidents.clear()


class Failing(KitWidget):
    """A widget whose one button always fails, the way a real one might."""

    def __init__(self, error: Exception) -> None:
        super().__init__("failing widget")
        self.button = widgets.Button(description="go")
        self.ok_button = widgets.Button(description="fine")
        self.button.on_click(self._callback("going", lambda: self._fail(error)))
        self.ok_button.on_click(self._callback("doing fine", lambda: None))
        self._set_body(self.button, self.ok_button)

    @staticmethod
    def _fail(error: Exception) -> None:
        raise error


def test_kit_errors_are_described_with_their_fix() -> None:
    what, fix = describe_error(GuestError("the guest is stopped.", hint="Start it."))
    assert (what, fix) == ("the guest is stopped.", "Start it.")


def test_other_errors_show_their_type_and_where_to_look() -> None:
    what, fix = describe_error(ZeroDivisionError("division by zero"))
    assert what == "ZeroDivisionError: division by zero"
    assert "kit.core.incidents.recorded()" in fix


def test_banner_is_hidden_until_there_is_something_to_say() -> None:
    banner = ErrorBanner()
    assert banner.layout.display == "none" and banner.text == ""
    banner.show(GuestError("cannot pause <web1>.", hint="Start it first."))
    assert banner.layout.display == "flex"
    assert banner.text == "cannot pause <web1>.\nWhat to do: Start it first."
    assert "&lt;web1&gt;" in banner.message.value  # escaped, not markup
    banner.dismiss.click()
    assert banner.layout.display == "none" and banner.text == ""


def test_banner_shows_qemu_evidence_when_the_error_has_it() -> None:
    banner = ErrorBanner()
    banner.show(GuestError("QEMU exited.", hint="Read the log.", command=["qemu", "-m", "64"],
                           log="qemu: out of memory", exit_code=1))
    assert "<details>" in banner.message.value
    assert "qemu: out of memory" in banner.message.value


def test_a_failing_callback_is_shown_and_recorded_not_raised() -> None:
    widget = Failing(GuestError("no such guest.", hint="Make one."))
    widget.button.click()
    assert widget.banner.text.startswith("no such guest.")
    [incident] = incidents.recorded()
    assert incident.where == "failing widget: going"
    with pytest.raises(incidents.RecordedErrors, match="no such guest"):
        incidents.raise_recorded()


def test_the_next_action_clears_the_old_message() -> None:
    widget = Failing(GuestError("first."))
    widget.button.click()
    assert widget.banner.text
    widget.ok_button.click()
    assert widget.banner.text == ""


def test_close_lets_go_of_registry_listeners_and_closes_children() -> None:
    before = len(registry._listeners)

    class Following(KitWidget):
        def __init__(self) -> None:
            super().__init__("following")
            self.label = widgets.Label("x")
            self._set_body(widgets.HBox([self.label]))
            self._on_close(registry.subscribe(lambda guest, state: None))

    widget = Following()
    assert len(registry._listeners) == before + 1
    widget.close()
    assert len(registry._listeners) == before
    assert widget.label.comm is None and widget.banner.comm is None
    widget.close()  # twice is harmless


def test_close_tree_closes_nested_boxes() -> None:
    inner = widgets.Label("deep")
    box = widgets.VBox([widgets.HBox([inner])])
    close_tree((box,))
    assert inner.comm is None and box.comm is None


def test_throttle_merges_pokes_and_always_runs_after_the_last() -> None:
    runs: list[float] = []
    done = threading.Event()
    throttle = Throttle(lambda: (runs.append(time.monotonic()), done.set()), 0.1)
    started = time.monotonic()
    for _ in range(200):
        throttle.poke()
        time.sleep(0.002)  # about 0.4 s of pokes (more on a busy machine)
    poking = time.monotonic() - started
    kit_loop_after(0.1)  # the run the last poke asked for is due within one interval
    assert 2 <= len(runs) <= poking / 0.1 + 2, (runs, poking)
    assert runs[-1] >= started + poking  # the last poke got a run after it
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert all(gap >= 0.09 for gap in gaps), gaps
    count = len(runs)
    throttle.close()
    throttle.poke()
    kit_loop_after(0.1)  # a run that poke had asked for would be due by now
    assert len(runs) == count


def test_pre_escapes_and_can_stick_to_the_bottom() -> None:
    html = pre("<b>hi</b>", stick_to_bottom=True)
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "column-reverse" in html
    assert "overflow:visible;flex:none" in html  # the box scrolls, not JupyterLab's pre


def test_a_log_view_is_the_box_that_scrolls_and_it_survives_updates() -> None:
    """The widget's own element scrolls (a layout of its own), from the bottom.

    Its value only fills it: replacing the value does not rebuild the box,
    so a learner who scrolled up to read is not sent back to the bottom.
    """
    view = LogView("12em", "first line")
    try:
        assert view.layout.max_height == "12em" and view.layout.overflow == "auto"
        assert view.layout.flex_flow == "column-reverse"
        assert "kit-log" in view._dom_classes
        assert view.style.background.startswith("var(--jp-")
        assert view.style.text_color.startswith("var(--jp-")
        view.show("a <b>\nb")
        assert view.text == "a <b>\nb"
        assert "a &lt;b&gt;" in view.value
        assert "max-height" not in view.value and "overflow:auto" not in view.value
        assert "overflow:visible;flex:none" in view.value
    finally:
        view.close()


class Follower(KitWidget):
    def __init__(self, guest: Guest) -> None:
        super().__init__("follower")
        self.guest = guest
        self.seen: list[tuple[int, str]] = []
        self._follow_guest(guest, lambda state: self.seen.append((self.guest.memory_mb, state)))


def test_a_widget_follows_a_new_machine_that_takes_its_guests_name(
        guest_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old, other = Guest(guest_name, memory_mb=128), Guest(f"{guest_name}x")
    widget = Follower(old)
    try:
        registry.announce(other, "booting")  # another name: not followed
        new = Guest(guest_name, memory_mb=176)
        registry.announce(new, "booting")  # not holding the name (not started): ignored
        assert widget.seen == [] and widget.guest is old
        monkeypatch.setattr(registry, "get", lambda name: new if name == guest_name else None)
        registry.announce(new, "booting")
        assert widget.guest is new and widget.seen == [(176, "booting")]
        registry.announce(old, "stopped")  # the old one is not followed any more
        assert widget.seen == [(176, "booting")]
    finally:
        widget.close()


def test_on_enter_reacts_to_the_submit_message_only() -> None:
    text = widgets.Text()
    pressed: list[str] = []
    on_enter(text, lambda: pressed.append(text.value))
    text.value = "ls"
    text._handle_custom_msg({"event": "keydown"}, [])
    text._handle_custom_msg({"event": "submit"}, [])  # what the browser sends on Enter
    assert pressed == ["ls"]


def test_attempt_runs_code_for_a_widget_and_shows_its_error_there() -> None:
    widget = Failing(GuestError("no guest", hint="start one"))
    assert widget.attempt("adding", lambda: 2 + 2) == 4
    assert widget.attempt("redrawing", lambda: Failing._fail(GuestError("gone", hint="h"))) is None
    assert "gone" in widget.banner.text
    assert [i.where for i in incidents.recorded()] == ["failing widget: redrawing"]
    incidents.clear()  # expected here: the widgets' conftest fails a test on any left


def test_working_disables_the_buttons_says_each_step_and_clears_on_failure() -> None:
    status, first, second = widgets.HTML(), widgets.Button(), widgets.Button()
    with working(status, first, second) as say:
        assert first.disabled and second.disabled
        say("counting…")
        assert "counting…" in status.value
        say.done("counted")
    assert "counted" in status.value and not first.disabled and not second.disabled
    with pytest.raises(GuestError), working(status, first) as say:
        say("trying…")
        raise GuestError("it broke", hint="h")
    assert status.value == "" and not first.disabled
