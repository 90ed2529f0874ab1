"""Which processes the browser tests started, and whether any of them is still alive.

Scoped on purpose: other programs on the machine (another developer's
JupyterLab, a QEMU of someone else) are none of our business.  A fixture
notes the processes it started (a process and its descendants); QEMU is
found by its pidfile in the test session's own runtime folder, because a guest may have been
re-parented to init by the time we look.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from kit.core import paths


def family(pid: int) -> set[int]:
    """``pid`` and all its descendants that are alive now (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return {pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def descendants_of_self() -> set[int]:
    return family(psutil.Process().pid) - {psutil.Process().pid}


def alive(pids: Iterable[int]) -> set[int]:
    """The ones among ``pids`` that still run (zombies count as gone)."""
    living = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.add(pid)
        except psutil.NoSuchProcess:
            continue
    return living


def wait_gone(pids: Iterable[int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` for ``pids`` to end; return those still alive."""
    pids = set(pids)
    deadline = time.monotonic() + seconds
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def describe(pids: Iterable[int]) -> list[str]:
    """One line per process, for an assertion message."""
    lines = []
    for pid in sorted(pids):
        try:
            process = psutil.Process(pid)
            lines.append(f"{pid} {process.name()}: {' '.join(process.cmdline())[:160]}")
        except psutil.NoSuchProcess:
            continue
    return lines


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            continue


def qemu_pids() -> set[int]:
    """QEMUs of this test session: a QEMU command with a path in our runtime folder.

    Told by the command, not the process name: a guest launched with
    ``-name NAME,process=qemu-NAME`` renames its process (``comm``) to that.
    """
    marker = str(paths.runtime_dir())
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if command and Path(command[0]).name.startswith("qemu-system") and any(
                marker in word for word in command):
            found.add(process.pid)
    return found
