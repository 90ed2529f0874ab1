"""Many guests, many threads: every request answered, none confused with another."""

from __future__ import annotations

import threading

import pytest

import kit
from benchmarks.load import hammer
from kit.guestos import images

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_requests_from_many_threads_to_many_guests(
    image: images.GuestImage, guest_name: str
) -> None:
    guests = [kit.Guest(f"{guest_name}-{i}") for i in range(4)]
    starters = [threading.Thread(target=g.start) for g in guests]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    try:
        result = hammer(guests, seconds=10, rate=50, threads=6)
        assert result["errors"] == 0, result["first_errors"]
        assert result["requests"] > 300
        names = {g.agent("guest-get-host-name")["host-name"] for g in guests}
        assert names == {g.name for g in guests}
    finally:
        kit.stop_all()
