"""A guest's state, and the sets of states the rest of the kit asks about, defined once.

A guest moves through these states (the kit loop alone changes them, from
QEMU's events and its exit)::

    created -> booting -> running <-> paused
                  ^          |  \\-> crashed (kernel panic; QEMU pauses it)
                  +- reset --+
    any live state -> stopping -> stopped -> booting (started again)

``GuestState`` is a ``StrEnum``: ``g.state == "running"`` keeps working in
notebooks and tests, and a state prints as its plain word.
"""

from __future__ import annotations

from enum import StrEnum


class GuestState(StrEnum):
    CREATED = "created"  # made, never started
    BOOTING = "booting"  # QEMU runs; the guest's init has not said it is ready
    RUNNING = "running"  # ready: the agent answers
    PAUSED = "paused"  # every virtual CPU stopped by the hypervisor
    CRASHED = "crashed"  # the guest kernel panicked; QEMU holds the machine paused
    STOPPING = "stopping"  # shutting down
    STOPPED = "stopped"  # QEMU has exited; every channel is closed

    @property
    def has_process(self) -> bool:
        """A QEMU process exists for the guest (it may be on its way out)."""
        return self not in NO_PROCESS

    @property
    def hypervisor_answers(self) -> bool:
        """QEMU is up and answers QMP: doors can be changed, the machine inspected."""
        return self in HYPERVISOR_ANSWERS


# No QEMU process: the guest can be started (again).
NO_PROCESS = frozenset({GuestState.CREATED, GuestState.STOPPED})
# QEMU is up and answers QMP (a crashed guest's QEMU too: it paused the machine).
HYPERVISOR_ANSWERS = frozenset(
    {GuestState.BOOTING, GuestState.RUNNING, GuestState.PAUSED, GuestState.CRASHED}
)
# The guest's kernel is running its code: the agent may answer, the console echoes.
GUEST_RUNNING = frozenset({GuestState.BOOTING, GuestState.RUNNING})
# A reset or stop unmounts what the guest had mounted.
UNMOUNTS = frozenset(
    {GuestState.BOOTING, GuestState.CRASHED, GuestState.STOPPING, GuestState.STOPPED}
)
