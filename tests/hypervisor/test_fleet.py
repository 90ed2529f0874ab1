"""Several guests at once: errors come back to the caller, a failed start leaves nothing."""

from __future__ import annotations

import threading

import pytest

import kit
from kit.guestos import images
from kit.hypervisor import fleet


def test_each_returns_every_error_in_order_and_bounds_its_threads() -> None:
    seen: set[str] = set()
    lock = threading.Lock()

    def action(n: int) -> None:
        with lock:
            seen.add(threading.current_thread().name)
        if n % 2:
            raise ValueError(n)

    errors = fleet.each(list(range(10)), action, workers=3)
    assert [type(e).__name__ if e else None for e in errors] == [None, "ValueError"] * 5
    assert len(seen) <= 3 and all(name.startswith("kit-fleet") for name in seen)
    assert fleet.each([], action) == []


@pytest.mark.guest
def test_a_failed_start_stops_the_ones_that_started(
    image: images.GuestImage, guest_name: str
) -> None:
    good = kit.Guest(f"{guest_name}-ok")
    never = kit.Guest(f"{guest_name}-no", boot_timeout=3, kernel_args=["init=/bin/sh",
                                                                        "rdinit=/bin/sh"])
    with pytest.raises(kit.BootTimeout):
        fleet.start([good, never])
    assert good.state == "stopped" and never.state == "stopped"
    assert kit.guests() == []


@pytest.mark.guest
def test_start_and_stop_side_by_side(image: images.GuestImage, guest_name: str) -> None:
    guests = [kit.Guest(f"{guest_name}-{i}") for i in range(3)]
    fleet.start(guests)
    try:
        assert {g.state for g in guests} == {"running"}
    finally:
        fleet.stop(guests)
    assert {g.state for g in guests} == {"stopped"}
