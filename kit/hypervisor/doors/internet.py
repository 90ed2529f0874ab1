"""The internet door: the one way out of a guest, closed until someone opens it.

Without it a guest reaches nothing outside itself.  Its first network card
(eth0, which carries the port forwards *into* the guest) is QEMU user
networking with ``restrict=on``: QEMU answers the guest's packets to the
host or beyond by dropping them.  This door is a second card on a second,
unrestricted user network (``10.0.4.0/24``, the host at ``10.0.4.2``), whose
cable QMP ``set_link`` plugs in and pulls out while the guest runs.  Plugged
in, the guest reaches what the host reaches (outbound NAT), the host's own
loopback included; pulled out, QEMU drops every frame, whatever the guest
does with its routes: the seal is the hypervisor's, not the guest's.

QEMU starts every card plugged in, so the guest's QEMU starts paused (``-S``)
and runs only after :meth:`InternetDoor.after_launch` has pulled the cable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kit.core.errors import InvalidInput
from kit.hypervisor import qemu
from kit.hypervisor.doors.base import Door, Opening

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

log = logging.getLogger(__name__)

SUBNET = "10.0.4.0/24"
GUEST_ADDRESS = "10.0.4.15"
HOST_ADDRESS = "10.0.4.2"  # QEMU's router on this network: the host, as the guest sees it
CARD = qemu.OutboundNic(id="inet", mac="52:54:00:00:04:0f", subnet=SUBNET)


class InternetDoor(Door):
    """The guest's way out: outbound NAT through the host, live, closed by default."""

    kind = "internet"

    def __init__(self, guest: Guest, open_at_start: bool = False) -> None:
        super().__init__(guest)
        self.is_open = open_at_start

    @classmethod
    def for_guest(cls, guest: Guest, options: Mapping[str, object]) -> Door:
        wanted = options.get("internet", False)
        if not isinstance(wanted, bool):
            raise InvalidInput(f"internet must be True or False, not {wanted!r}.",
                               hint="kit.Guest('web', internet=True) starts with the door open; "
                               "g.open_internet() and g.close_internet() change it live.")
        return cls(guest, wanted)

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        args = (f"kit.internet_mac={CARD.mac}", f"kit.internet_ip={GUEST_ADDRESS}/24",
                f"kit.internet_gw={HOST_ADDRESS}")
        return dataclasses.replace(spec, outbound=CARD,
                                   kernel_args=(*spec.kernel_args, *args))

    def after_launch(self) -> None:
        """Give the fresh card the door's state before the guest's first instruction."""
        self._set_link(self.is_open)

    def open(self) -> None:
        """Let the guest reach out: what the host reaches, its loopback included."""
        self._change(True)

    def close(self) -> None:
        """Cut the guest off again: connections it has open stop at once."""
        self._change(False)

    def openings(self) -> tuple[Opening, ...]:
        up = self.is_open and self.guest.state.has_process
        words = (f"open: the guest reaches what this host reaches, through {HOST_ADDRESS} "
                 "(outbound NAT; the host's own 127.0.0.1 included)" if self.is_open else
                 "closed: the guest reaches nothing outside itself")
        return (Opening(self.kind, "internet", up, "the host's networks (NAT)",
                        f"eth {GUEST_ADDRESS}", words),)

    def _change(self, wanted: bool) -> None:
        if self.guest.state.has_process:
            self.require_hypervisor(f"{'open' if wanted else 'close'} the internet door of guest")
            self._set_link(wanted)
        self.is_open = wanted
        log.info("guest %s: internet door %s", self.guest.name, "opened" if wanted else "closed")
        self.announce()

    def _set_link(self, up: bool) -> None:
        self.guest.qmp("set_link", {"name": CARD.nic_id, "up": up})
