"""The port forward: host ``127.0.0.1:HOST`` reaches guest port ``GUEST``.

QEMU's user network forwards it; the monitor's ``hostfwd_add`` and
``hostfwd_remove`` open and close one while the guest runs.  A forward is
never bound to another interface than the host's loopback.
"""

from __future__ import annotations

import dataclasses
import logging

from kit.core import validate
from kit.core.errors import InvalidInput, QMPError
from kit.hypervisor import qemu
from kit.hypervisor.doors.base import Door, Opening

log = logging.getLogger(__name__)


def check_forward(host_port: object, guest_port: object) -> tuple[int, int]:
    """One forward's ports, with the same rules as ``kit.Guest(forwards=...)``."""
    checked = validate.check_forwards({host_port: guest_port})
    return next(iter(checked.items()))


class ForwardDoor(Door):
    """The guest's port forwards; they live in ``guest.forwards`` (host port -> guest port)."""

    kind = "forward"

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        return dataclasses.replace(spec, forwards=dict(self.guest.forwards))

    def openings(self) -> tuple[Opening, ...]:
        up = self.guest.state.has_process
        return tuple(
            Opening(self.kind, str(host), up, f"127.0.0.1:{host}", f"port {guest}",
                    f"127.0.0.1:{host} → guest port {guest}")
            for host, guest in sorted(self.guest.forwards.items()))

    def open(self, host_port: object, guest_port: object) -> None:
        host, guest = check_forward(host_port, guest_port)
        self.require_hypervisor("open a port forward to guest")
        if host in self.guest.forwards:
            raise InvalidInput(
                f"host port {host} already forwards to guest port "
                f"{self.guest.forwards[host]} of {self.guest.name}.",
                hint=f"Close it first with g.close_forward({host}), or choose another host port.")
        validate.check_host_ports_free([host])
        self._monitor(f"hostfwd_add net0 tcp:127.0.0.1:{host}-:{guest}",
                      f"open the forward 127.0.0.1:{host} → guest port {guest}",
                      "The host port may have been taken meanwhile: choose another one.")
        self.guest.forwards[host] = guest
        log.info("guest %s: forward 127.0.0.1:%d -> port %d opened", self.guest.name, host, guest)
        self.announce()

    def close(self, host_port: object) -> None:
        if host_port not in self.guest.forwards:
            open_now = ", ".join(str(p) for p in sorted(self.guest.forwards)) or "none"
            raise InvalidInput(
                f"no forward from host port {host_port!r} is open on {self.guest.name}.",
                hint=f"Open forwards (host ports): {open_now}.")
        assert isinstance(host_port, int)
        self.require_hypervisor("close a port forward of guest")
        self._monitor(f"hostfwd_remove net0 tcp:127.0.0.1:{host_port}",
                      f"close the forward from 127.0.0.1:{host_port}",
                      "Look at g.qmp('human-monitor-command', "
                      "{'command-line': 'info usernet'}) for what is open.",
                      success="removed")
        del self.guest.forwards[host_port]
        log.info("guest %s: forward from 127.0.0.1:%d closed", self.guest.name, host_port)
        self.announce()

    def _monitor(self, command_line: str, doing: str, hint: str, success: str = "") -> None:
        """One human-monitor command.  HMP answers in sentences, not errors: ``hostfwd_add``
        says nothing when it worked, ``hostfwd_remove`` says "... removed" (or "not found")."""
        reply = self.guest.qmp("human-monitor-command", {"command-line": command_line})
        text = str(reply or "").strip()
        failed = not text.endswith(success) if success else bool(text)
        if failed:
            raise QMPError(f"QEMU could not {doing}: {text}", hint=hint)
