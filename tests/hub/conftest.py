"""What the tests of the class hub share: root, and a hub folder other users may enter."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hub import places
from kit.hub.places import HubPlaces

#: A hub makes accounts, chowns files and starts servers as other users.
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="a class hub needs root (accounts, servers as learners)")


@pytest.fixture
def hub_places() -> Iterator[HubPlaces]:
    """A hub folder of its own, under /tmp: pytest's own folder is closed to other users."""
    root = Path(tempfile.mkdtemp(prefix="kit-hub-test-"))
    root.chmod(0o755)
    yield places.places(root / "hub")
    shutil.rmtree(root, ignore_errors=True)
