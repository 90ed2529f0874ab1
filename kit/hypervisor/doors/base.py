"""What every door is: the one small interface the guest, the diagram and the panel use.

A door is a place where data crosses between a guest and the world.  Each
kind is one module of this package with one :class:`Door` subclass; a guest
holds one door of every kind (:class:`kit.hypervisor.doors.GuestDoors`) and
calls the same five methods on each, whatever it is:

* :meth:`Door.check_before_start`: refuse a start the door would make fail;
* :meth:`Door.configure`: add the door's part to QEMU's command line;
* :meth:`Door.after_launch`: set the door up in the fresh QEMU;
* :meth:`Door.on_state`: follow the guest's state (a reboot unmounts, say);
* :meth:`Door.openings`: the door as plain data, for pictures and panels.

Opening and closing are each kind's own methods (a forward needs two ports, a
shared folder none), reached through ``g.doors.<kind>`` or the guest's
shortcuts (``g.open_forward(8080, 80)``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from kit.core.state import HYPERVISOR_ANSWERS, GuestState
from kit.hypervisor import qemu, registry

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest


@dataclass(frozen=True)
class Opening:
    """One door of one guest, as plain data: what a diagram draws and a panel lists."""

    kind: str  # the door's kind: "forward", "share", "link", ...
    key: str  # tells apart doors of one kind on one guest (a host port, a link number)
    is_open: bool
    host_side: str  # the host's end, e.g. "127.0.0.1:8080" or a folder
    guest_side: str  # the guest's end, e.g. "port 80" or "/mnt/share"
    words: str  # the whole door in one line of plain words
    guest_can_write: bool = True  # can data flow out of the guest through it
    between: tuple[str, str] | None = None  # the two guests a door joins, in its own order


class Door(ABC):
    """One kind of door of one guest.  Subclass it in a module of its own."""

    kind: ClassVar[str]

    def __init__(self, guest: Guest) -> None:
        self.guest = guest

    @classmethod
    def for_guest(cls, guest: Guest, options: Mapping[str, object]) -> Door:
        """Make this guest's door from the door options given to ``kit.Guest(...)``."""
        del options
        return cls(guest)

    def check_before_start(self) -> None:  # noqa: B027  (a hook: most doors need none)
        """Refuse, with a clear error, a start that this door would make fail."""

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        """QEMU's machine with this door's part added (devices, kernel arguments)."""
        return spec

    def after_launch(self) -> None:  # noqa: B027  (a hook)
        """Set the door up in a freshly started QEMU."""

    def on_state(self, state: GuestState) -> None:  # noqa: B027  (a hook)
        """Follow the guest's state; called on the kit loop at every change."""

    @abstractmethod
    def openings(self) -> tuple[Opening, ...]:
        """This door as it is now (none if it was never declared)."""

    # -- for subclasses --

    def require_hypervisor(self, action: str) -> None:
        """Refuse ``action`` unless QEMU is up and answers QMP."""
        self.guest.require_state(action, *HYPERVISOR_ANSWERS)

    def announce(self) -> None:
        """Tell every listener (diagrams, panels) that this guest's doors changed."""
        registry.announce(self.guest, self.guest.state)
