"""Doors: the only places where data crosses between a guest and the world.

Nothing crosses until a door is opened: not the host into a guest, and not
a guest out to the host or beyond (its user network is ``restrict=on``).
Each kind of door is one module here, one :class:`~kit.hypervisor.doors.base.Door`
subclass, listed once in :data:`KINDS`:

* :mod:`.forward`, a **port forward**: host ``127.0.0.1:HOST`` reaches guest
  port ``GUEST``, opened and closed live;
* :mod:`.share`, a **shared folder**: one host folder, declared before the
  start, mounted at ``/mnt/share`` over 9p when the door opens;
* :mod:`.link`, a **link**: a cable between two guests' second network cards;
* :mod:`.internet`, the **internet** door: the guest's one way out (outbound
  NAT through the host), opened and closed live.

To add a door: write its module (a ``Door`` subclass with its own open and
close methods), add the class to :data:`KINDS`, and test it in
``tests/hypervisor/doors/``.  The guest, the diagram and the doors panel
reach it through :class:`GuestDoors` and :class:`~.base.Opening` alone.
Every change is announced through :mod:`kit.hypervisor.registry`, so diagrams
redraw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from kit.core.state import GuestState
from kit.hypervisor import qemu
from kit.hypervisor.doors.base import Door, Opening
from kit.hypervisor.doors.forward import ForwardDoor, check_forward
from kit.hypervisor.doors.internet import InternetDoor
from kit.hypervisor.doors.link import LINK_PREFIX, LINK_SUBNET, Link, LinkDoor
from kit.hypervisor.doors.share import SHARE_MOUNT, SHARE_TAG, ShareDoor, check_shared_folder

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

__all__ = [
    "KINDS", "LINK_PREFIX", "LINK_SUBNET", "SHARE_MOUNT", "SHARE_TAG", "Door", "ForwardDoor",
    "GuestDoors", "InternetDoor", "Link", "LinkDoor", "Opening", "ShareDoor", "check_forward",
    "check_shared_folder",
]

# Every kind of door a guest has, in the order panels list them.
KINDS: tuple[type[Door], ...] = (ForwardDoor, ShareDoor, LinkDoor, InternetDoor)

D = TypeVar("D", bound=Door)


class GuestDoors:
    """One guest's doors, one of each kind: ``g.doors``."""

    def __init__(self, guest: Guest, options: Mapping[str, object]) -> None:
        self._doors = [kind.for_guest(guest, options) for kind in KINDS]

    def __iter__(self) -> Iterator[Door]:
        return iter(self._doors)

    def get(self, kind: type[D]) -> D:
        """The door of this kind, e.g. ``g.doors.get(ShareDoor)``."""
        for door in self._doors:
            if isinstance(door, kind):
                return door
        raise LookupError(f"no {kind.__name__} door: add it to kit.hypervisor.doors.KINDS")

    @property
    def forward(self) -> ForwardDoor:
        return self.get(ForwardDoor)

    @property
    def share(self) -> ShareDoor:
        return self.get(ShareDoor)

    @property
    def link(self) -> LinkDoor:
        return self.get(LinkDoor)

    @property
    def internet(self) -> InternetDoor:
        return self.get(InternetDoor)

    def openings(self) -> tuple[Opening, ...]:
        """Every door of the guest as plain data, for pictures and panels."""
        return tuple(opening for door in self._doors for opening in door.openings())

    # -- what the guest calls, on every door alike --

    def check_before_start(self) -> None:
        for door in self._doors:
            door.check_before_start()

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        for door in self._doors:
            spec = door.configure(spec)
        return spec

    def after_launch(self) -> None:
        for door in self._doors:
            door.after_launch()

    def on_state(self, state: GuestState) -> None:
        for door in self._doors:
            door.on_state(state)
