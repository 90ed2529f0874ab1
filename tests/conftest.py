"""Shared fixtures: a real guest image, and a check that no guest is left behind."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import kit
from kit.guestos import images
from kit.infrastructure.net import free_port  # noqa: F401  (tests import it from here

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests keep their guests' sockets and logs in a folder of their own."""
    folder = tmp_path_factory.mktemp("runtime")
    os.environ["KIT_RUNTIME_DIR"] = str(folder)
    # Lessons save progress; the tests must not write into the learner's own file.
    os.environ["KIT_PROGRESS_FILE"] = str(folder / "progress.json")
    yield folder


@pytest.fixture(scope="session")
def image() -> images.GuestImage:
    """The real guest image, built once if the cache does not have it."""
    return images.ensure_image()


@pytest.fixture
def guest_name() -> str:
    return f"t{os.getpid() % 10000}-{next(_names)}"


@pytest.fixture(autouse=True)
def no_guest_left_behind() -> Iterator[None]:
    yield
    left = kit.guests()
    kit.stop_all()
    assert not left, f"the test left guests running: {left}"


def our_qemu_pids() -> set[int]:
    """QEMUs started by this test session (their pidfile is in our runtime folder).

    Other programs on the machine may run QEMU too; they are none of our business.
    """
    import psutil

    from kit.core import paths

    marker = str(paths.runtime_dir())
    found = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        # QEMU renames itself qemu-<guest> (-name ...,process=), so look at
        # the command line, which names a socket in our runtime folder.
        cmdline = process.info["cmdline"] or []
        if cmdline and "qemu-system" in cmdline[0] and any(marker in word for word in cmdline):
            found.add(process.pid)
    return found
