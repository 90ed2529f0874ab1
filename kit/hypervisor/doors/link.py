"""The link: a network cable between two guests, ``kit.Link(a, b)``.

Each guest gets a second network card, eth1, cabled to the other's by
datagrams between two unix sockets in the user's owner-only runtime folder
(no other user of the host can reach them); QMP ``set_link`` plugs the cable
in and pulls it out.  A link starts unplugged: a door is closed until
someone opens it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kit.core import paths
from kit.core.errors import GuestError, InvalidInput
from kit.core.state import HYPERVISOR_ANSWERS, GuestState
from kit.hypervisor import qemu, registry
from kit.hypervisor.doors.base import Door, Opening

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest


@runtime_checkable
class HasDoors(Protocol):
    """What a link's end must be: a guest (checked without importing the guest module)."""

    name: str
    state: GuestState
    doors: Any

LINK_SUBNET = "10.0.3"
LINK_PREFIX = 24
LINK_NETDEV = "link0"

_link_numbers = itertools.count(1)


class Link:
    """A network cable between two guests: ``kit.Link(a, b)`` before either starts.

    Each guest gets a second network card, eth1, with the address
    ``10.0.3.1`` (``a``) or ``10.0.3.2`` (``b``).  The cable is datagrams
    between two unix sockets, one per side, so either guest may start first.
    It starts unplugged: :meth:`up` plugs it in.
    """

    def __init__(self, a: Guest, b: Guest) -> None:
        _check_pair(a, b)
        self.a, self.b = a, b
        self.number = next(_link_numbers)
        self.folder = paths.runtime_dir() / f"link-{os.getpid()}-{self.number}"
        self._up = False
        for guest in (a, b):
            guest.doors.get(LinkDoor).attach(self)

    def __repr__(self) -> str:
        return f"<Link {self.a.name} ↔ {self.b.name} {'up' if self._up else 'down'}>"

    @property
    def is_up(self) -> bool:
        return self._up

    def address(self, guest: Guest) -> str:
        """The link address of ``guest`` (one of this link's two ends)."""
        return f"{LINK_SUBNET}.{self._side(guest) + 1}"

    def up(self) -> None:
        """Plug the cable in: both cards see a carrier and pass frames."""
        self._set(True)

    def down(self) -> None:
        """Pull the cable out: the cards lose the carrier; nothing passes."""
        self._set(False)

    def socket_path(self, guest: Guest) -> Path:
        """``guest``'s end of the cable: the socket its QEMU binds."""
        return self.folder / f"{'ab'[self._side(guest)]}.sock"

    def nic_for(self, guest: Guest) -> qemu.LinkNic:
        side = self._side(guest)
        other = self.b if side == 0 else self.a
        return qemu.LinkNic(
            id=LINK_NETDEV, local_path=self.socket_path(guest),
            remote_path=self.socket_path(other),
            mac=f"52:54:00:4c:{self.number % 256:02x}:{side + 1:02x}")

    def prepare_end(self, guest: Guest) -> None:
        """Before ``guest``'s QEMU starts: the folder exists, and no stale socket is in the way."""
        paths.owner_only_dir(self.folder)
        self.socket_path(guest).unlink(missing_ok=True)

    def release_end(self, guest: Guest) -> None:
        """After ``guest``'s QEMU is gone: its socket goes, and the folder with the last one."""
        self.socket_path(guest).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the other end's socket is still there
            self.folder.rmdir()

    def apply(self, guest: Guest) -> None:
        """Tell ``guest``'s QEMU the cable's state (QMP ``set_link``).

        Named by its netdev (the host end), not by the card: QEMU then drops
        the card's carrier too, and the guest sees NO-CARRIER all the same.
        Measured on QEMU 7.2 (microvm, TCG): after ``set_link`` named by the
        *card* had once put its link down, the next reset hung the guest in
        early boot; named by the netdev, every reboot came back.
        """
        guest.qmp("set_link", {"name": LINK_NETDEV, "up": self._up})

    def _set(self, up: bool) -> None:
        for guest in (self.a, self.b):
            guest.require_state(f"{'plug in' if up else 'pull out'} the link of guest",
                                *HYPERVISOR_ANSWERS)
        self._up = up
        log.info("link %s <-> %s %s", self.a.name, self.b.name,
                 "plugged in" if up else "pulled out")
        for guest in (self.a, self.b):
            self.apply(guest)
        for guest in (self.a, self.b):
            registry.announce(guest, guest.state)

    def _side(self, guest: Guest) -> int:
        if guest is self.a:
            return 0
        if guest is self.b:
            return 1
        raise InvalidInput(f"guest {guest.name} is not an end of {self!r}.",
                           hint=f"Ask about {self.a.name} or {self.b.name}.")


class LinkDoor(Door):
    """A guest's end of its links (in this kit, at most one)."""

    kind = "link"

    def __init__(self, guest: Guest) -> None:
        super().__init__(guest)
        self.links: list[Link] = []

    def attach(self, link: Link) -> None:
        """Called by :class:`Link` when it is made: this guest is one of its ends."""
        self.links.append(link)
        self.announce()

    def check_before_start(self) -> None:
        for link in self.links:
            link.prepare_end(self.guest)

    def on_state(self, state: GuestState) -> None:
        if not state.has_process:
            for link in self.links:
                link.release_end(self.guest)

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        args = tuple(f"kit.link_ip={link.address(self.guest)}/{LINK_PREFIX}"
                     for link in self.links)
        return dataclasses.replace(
            spec, links=tuple(link.nic_for(self.guest) for link in self.links),
            kernel_args=(*spec.kernel_args, *args))

    def after_launch(self) -> None:
        """Give a freshly started card its cable's state (QEMU starts every card plugged in)."""
        for link in self.links:
            link.apply(self.guest)

    def openings(self) -> tuple[Opening, ...]:
        return tuple(self._opening(link) for link in self.links)

    def _opening(self, link: Link) -> Opening:
        ends = (f"{link.a.name} {link.address(link.a)} ↔ {link.b.name} "
                f"{link.address(link.b)} on eth1")
        words = f"cable plugged in: {ends}" if link.is_up else f"cable pulled out: {ends}"
        return Opening(self.kind, str(link.number), link.is_up,
                       f"unix sockets in {link.folder}",
                       f"eth1 {link.address(self.guest)}", words,
                       between=(link.a.name, link.b.name))


def _check_pair(a: Any, b: Any) -> None:
    if not isinstance(a, HasDoors) or not isinstance(b, HasDoors):
        raise InvalidInput(f"kit.Link needs two guests, not {a!r} and {b!r}.",
                           hint="For example: a, b = kit.Guest('a'), kit.Guest('b'); "
                           "kit.Link(a, b).")
    if a is b or a.name == b.name:
        raise InvalidInput(f"a link from guest {a.name} to itself carries nothing.",
                           hint="Link two different guests: kit.Link(a, b).")
    for guest in (a, b):
        if guest.state.has_process:
            raise GuestError(
                f"guest {guest.name} is already {guest.state}: a network card can only be "
                "added before the start (this machine type has no hotplug).",
                hint="Stop it (g.stop()), make the link, then start it again.")
        if guest.doors.get(LinkDoor).links:
            raise InvalidInput(
                f"guest {guest.name} already has a link: in this kit a guest has one.",
                hint="Make another guest for another link.")
