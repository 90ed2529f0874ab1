"""The console view: bounded, throttled, follows restarts, and types on a real guest."""

from __future__ import annotations

import asyncio
import time

import pytest

import kit
from kit.core import incidents, kitloop
from kit.guestos import images
from kit.hypervisor.console import Console
from kit.widgets import ConsoleView
from kit.widgets.base import LogView
from kit.widgets.console_view import MAX_CHARS, UPDATES_PER_SECOND, keep_tail
from tests.waiting import kit_loop_after, wait_until


def feed(console: Console, chunks: list[bytes], pause: float = 0.0) -> None:
    """Push text through the console's own reader, on the kit loop, as QEMU would."""

    async def run() -> None:
        reader = asyncio.StreamReader()
        pump = asyncio.ensure_future(console.pump(reader, None))
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(pause)
        reader.feed_eof()
        await pump

    kitloop.call(run(), timeout=30)


def test_keep_tail_is_bounded_and_says_so() -> None:
    assert keep_tail("short") == "short"
    text = "".join(f"line {i}\n" for i in range(20_000))
    kept = keep_tail(text)
    assert len(kept) <= MAX_CHARS + 100
    assert kept.startswith("[… earlier output")
    assert kept.endswith("line 19999\n")
    assert "\nline " in kept[:200]  # cut at a line start


def test_text_arrives_coalesced_and_bounded(guest_name: str) -> None:
    g = kit.Guest(guest_name)
    view = ConsoleView(g)
    updates: list[object] = []
    view.screen.observe(updates.append, names="value")
    try:
        started = time.monotonic()
        feed(g.console, [f"line {i}\n".encode() * 200 for i in range(200)], pause=0.002)
        feeding = time.monotonic() - started  # about 0.5 s, more on a busy machine
        assert wait_until(lambda: view.text.endswith("line 199\n"), 2)
        assert len(view.text) <= MAX_CHARS + 100
        assert len(updates) <= feeding * 10 + 3, (len(updates), feeding)  # 10 a second
    finally:
        view.close()


def test_shows_what_the_console_had_before_the_view(guest_name: str) -> None:
    g = kit.Guest(guest_name)
    feed(g.console, [b"Linux version 6.1\r\n", b"\x1b[1mkit-init: hello\x1b[0m\n"])
    view = ConsoleView(g)
    try:
        assert view.text == "Linux version 6.1\nkit-init: hello\n"
        assert "kit-init: hello" in view.screen.value
    finally:
        view.close()


def test_the_console_keeps_its_newest_line_in_view(guest_name: str) -> None:
    """Its screen is a box of its own that scrolls from the bottom and survives updates.

    (A browser test should check what this cannot: after text arrives the
    screen's scrollTop is 0, the bottom of a reversed column, and after the
    learner scrolls up it stays where they put it.)
    """
    g = kit.Guest(guest_name)
    view = ConsoleView(g, height="11em")
    try:
        assert isinstance(view.screen, LogView)
        assert view.screen.layout.max_height == "11em"
        assert view.screen.layout.overflow == "auto"
        assert view.screen.layout.flex_flow == "column-reverse"
        feed(g.console, [f"line {i}\n".encode() for i in range(300)])
        assert wait_until(lambda: "line 299" in view.screen.value, 2)
        assert "overflow:visible;flex:none" in view.screen.value
    finally:
        view.close()


def test_an_empty_console_says_why(guest_name: str) -> None:
    view = ConsoleView(guest_name)
    try:
        assert "nothing yet" in view.screen.value and "created" in view.screen.value
    finally:
        view.close()


def test_typing_on_a_guest_that_is_not_running_is_shown_and_recorded(guest_name: str) -> None:
    view = ConsoleView(guest_name)
    try:
        view.input.value = "uname"
        view.send_button.click()
        assert view.banner.text.startswith(f"cannot type on the console of {guest_name}")
        assert "What to do: Start the guest first" in view.banner.text
        assert len(incidents.recorded()) == 1
        incidents.clear()
    finally:
        view.close()


def test_close_stops_following_the_console(guest_name: str) -> None:
    g = kit.Guest(guest_name)
    view = ConsoleView(g)
    view.close()
    feed(g.console, [b"after close\n"])
    kit_loop_after(1 / UPDATES_PER_SECOND)  # a redraw it had asked for would have run now
    assert "after close" not in view.text


@pytest.mark.guest
def test_shows_boot_text_and_a_typed_command(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name)
    view = ConsoleView(g)  # made before the start: it must follow the new console
    try:
        g.start()
        assert wait_until(lambda: "KIT-READY" in view.text, 5)
        assert "Linux version" in view.text
        view.input.value = "echo typed-$((6*7))"
        view.input._handle_custom_msg({"event": "submit"}, [])  # what Enter sends
        assert wait_until(lambda: "typed-42" in view.text, 5), view.text[-300:]
        assert view.input.value == ""
        view.input.value = "sleep 30"
        view.send_button.click()
        assert wait_until(lambda: "sleep 30\n" in view.text, 5)
        # Ctrl-C goes to what runs at that moment: wait until that is the sleep.
        assert wait_until(lambda: g.run("pidof sleep").ok, 10)
        view.interrupt_button.click()
        view.input.value = "echo after-$((1+1))"
        view.send_button.click()
        assert wait_until(lambda: "after-2" in view.text, 5), view.text[-300:]
        g.stop()
        g.start()  # a new start: a new console, followed from its first byte
        assert wait_until(lambda: view.text.count("KIT-READY") == 1 and "typed" not in view.text,
                          5), view.text[-300:]
    finally:
        view.close()
        g.stop()
