"""One QEMU process: its command, the kit's ends of its channels, and its exit.

A guest usually has one for its whole life; a live migration gives it a
second (the destination) while the first still runs, which is why the
process is a thing of its own and not only attributes of the guest.
Spawn it on the kit loop thread: its parent-death signal fires when the
thread that forked it ends (see :mod:`kit.core.kitloop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit.hypervisor import qemu
from kit.hypervisor.channels import GuestChannels

log = logging.getLogger(__name__)


@dataclass
class QemuProcess:
    """A started QEMU: ``exited`` is done, with its exit code, once it has exited."""

    popen: subprocess.Popen[bytes]
    channels: GuestChannels
    command: list[str]
    exited: asyncio.Future[int] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL QEMU's whole process group (idempotent)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    async def exited_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), seconds)
        except TimeoutError:
            return False
        return True


def spawn(spec: qemu.MachineSpec, log_path: Path, *, append: bool = False,
          extra_fds: Sequence[int] = ()) -> QemuProcess:
    """Start QEMU for ``spec`` (on the kit loop), its output going to ``log_path``.

    ``extra_fds`` are inherited too (a snapshot file, a migration socket).
    """
    loop = asyncio.get_running_loop()
    channels = GuestChannels()
    fds = channels.qemu_fds()
    command = qemu.build_command(spec, fds)
    try:
        with open(log_path, "ab" if append else "wb") as log_file:
            popen = subprocess.Popen(
                command, pass_fds=[fds.qmp, fds.console, fds.agent, *extra_fds],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env=qemu.environment(os.environ),
            )
    except BaseException:
        channels.release_qemu_ends()
        raise
    channels.release_qemu_ends()
    process = QemuProcess(popen, channels, command, loop.create_future())
    _watch_exit(loop, process)
    return process


def _watch_exit(loop: asyncio.AbstractEventLoop, process: QemuProcess) -> None:
    """Resolve ``process.exited`` the moment QEMU exits, whoever ended it (a pidfd)."""
    pidfd = os.pidfd_open(process.pid)

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        code = process.popen.wait()
        if not process.exited.done():
            process.exited.set_result(code)

    loop.add_reader(pidfd, on_exit)
