"""Waiting for something a background thread does, without sleeping longer than needed."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """True as soon as ``condition()`` is; False if it is still false after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
