"""Values of this learner's own: the answer can only come from looking, not from a neighbour.

An exercise that asks for a number shown in the text, or one every learner
shares, can be answered by copying.  So exercises draw what they need (a
secret planted in the guest, a memory size, a port) from the learner's own
seed (:func:`kit.lesson.progress.learner_seed`): stable for this learner
across kernels and days, different for the person at the next desk.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

from kit.core.errors import KitError
from kit.lesson import progress

T = TypeVar("T")
WORDS = ("amber", "basil", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
         "juniper", "kestrel", "lagoon", "maple", "nectar", "onyx", "pepper", "quartz",
         "raven", "saffron", "tundra", "umber", "violet", "willow", "yarrow", "zephyr")


@functools.cache
def seed() -> int:
    """The learner's seed; from their user name if the progress file cannot be written."""
    try:
        return progress.learner_seed()
    except KitError:
        digest = hashlib.sha256(getpass.getuser().encode()).digest()
        return int.from_bytes(digest[:6], "big")


def _rng(name: str) -> random.Random:
    return random.Random(f"{seed()}:{name}")


def number(name: str, low: int, high: int, step: int = 1) -> int:
    """A whole number in [low, high] (on ``step``), this learner's own for ``name``."""
    return _rng(name).randrange(low, high + 1, step)


def secret(name: str) -> str:
    """A short secret phrase, e.g. 'cedar-quartz-417', this learner's own for ``name``."""
    rng = _rng(name)
    return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rng.randrange(100, 1000)}"


def shuffled(name: str, items: Sequence[T]) -> list[T]:
    """``items`` in an order of this learner's own for ``name`` (the same every time)."""
    order = list(items)
    _rng(name).shuffle(order)
    return order
