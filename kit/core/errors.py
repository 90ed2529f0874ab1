"""Every error the kit raises, in one place.

A learner who meets an error should be able to fix it without reading our
code, so each error carries, besides its message, what a person needs: the
command that failed, the tail of its log, its exit code, and a hint that says
what to do next.  ``str(error)`` puts all of that together.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class KitError(Exception):
    """The root of every error the kit raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        command: Sequence[str] | None = None,
        log: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.command = list(command) if command is not None else None
        self.log = log
        self.exit_code = exit_code

    def __str__(self) -> str:
        parts = [self.message]
        if self.exit_code is not None:
            parts.append(f"exit code: {self.exit_code}")
        if self.command:
            parts.append(f"command: {shlex.join(self.command)}")
        if self.log:
            tail = "\n".join(self.log.rstrip().splitlines()[-20:])
            parts.append("last lines of the log:\n" + _indent(tail))
        if self.hint:
            parts.append(f"what to do: {self.hint}")
        return "\n".join(parts)


class SetupError(KitError):
    """Something the kit needs on this machine is missing or broken."""


class ImageError(KitError):
    """The guest image could not be found or built."""


class InvalidInput(KitError, ValueError):
    """An argument was refused before anything was started."""


class GuestError(KitError):
    """A guest did not do what was asked of it."""


class NameInUse(GuestError):
    """Another live guest of this kit already has this name."""


class LaunchError(GuestError):
    """QEMU could not be started, or died while the guest was booting."""


class BootTimeout(GuestError):
    """The guest did not become ready in time."""


class GuestNotRunning(GuestError):
    """The action needs a running guest, and this one is not."""


class QMPError(GuestError):
    """The hypervisor refused a QMP command, or did not answer in time."""


class AgentError(GuestError):
    """The guest agent refused a command, or did not answer in time."""


class SnapshotError(GuestError):
    """A snapshot could not be taken, found, trusted or restored."""


class MigrationError(GuestError):
    """A live migration was refused, or failed (the guest then keeps running where it was)."""


class HostLimit(KitError):
    """The host cannot hold what was asked (memory, CPUs, guests)."""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
