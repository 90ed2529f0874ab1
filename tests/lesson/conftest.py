"""Every lesson test keeps the learner's progress in a file of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core import incidents


@pytest.fixture(autouse=True)
def progress_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh progress file per test, never the real learner's."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(path))
    return path


@pytest.fixture(autouse=True)
def fresh_incidents() -> Iterator[None]:
    incidents.clear()
    yield
    incidents.clear()
