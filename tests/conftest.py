"""Shared fixtures: a real guest image, and a check that no guest is left behind."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import kit
from kit import images

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests keep their guests' sockets and logs in a folder of their own."""
    folder = tmp_path_factory.mktemp("runtime")
    os.environ["KIT_RUNTIME_DIR"] = str(folder)
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def our_qemu_pids() -> set[int]:
    """QEMUs started by this test session (their pidfile is in our runtime folder).

    Other programs on the machine may run QEMU too; they are none of our business.
    """
    import psutil

    from kit import paths

    marker = str(paths.runtime_dir())
    found = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        if (process.info["name"] or "").startswith("qemu-system") and any(
            marker in word for word in process.info["cmdline"] or []
        ):
            found.add(process.pid)
    return found
