"""Every widget test fails if a callback or background task recorded an error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kit.core import incidents


@pytest.fixture(autouse=True)
def no_unexpected_errors() -> Iterator[None]:
    incidents.clear()
    yield
    assert not incidents.recorded(), incidents.recorded()
