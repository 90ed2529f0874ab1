"""The kit: learn how virtual machines work on tiny, real QEMU guests.

The whole lesson-facing surface is here::

    import kit
    g = kit.Guest("web1", memory_mb=128, cpus=1, forwards={8080: 80})
    g.start()                 # boots; returns once the guest agent answers
    g.run("uname -r")         # the guest OS, through the QEMU guest agent
    g.qmp("query-status")     # the hypervisor, through QMP
    g.console.text()          # the serial console since its first byte
    g.pause(); g.resume(); g.reboot(); g.stop()
    g.open_forward(8080, 80); g.open_share(); kit.Link(a, b).up()   # doors
    snap = g.snapshot("ready"); c = kit.Guest.from_snapshot(snap, "web2")  # save, clone
    kit.snapshots(); snap.delete(); g.migrate()   # list, delete; move to a new QEMU, live
    kit.guests(); kit.stop_all(); kit.host()
    kit.raise_recorded_errors()  # errors from widget callbacks, raised at last
    kit.trace("web1")         # show every QMP and agent message of web1 (kit.trace() for all)
    kit.stopwatch.measure_boots(3)            # a boot split into phases (lesson 7)
    with kit.containers.Container("c1") as c: c.run("uname -r")   # no kernel (lesson 8)

The package below is arranged as the layers it teaches (docs/architecture.md):
core <- infrastructure <- guestos <- hypervisor <- applications <- labs <- view
<- widgets <- lesson; this module is the small facade above them.
"""

import logging

from kit.core.errors import (
    AgentError,
    BootTimeout,
    GuestError,
    GuestNotRunning,
    HostLimit,
    ImageError,
    InvalidInput,
    KitError,
    LaunchError,
    MigrationError,
    NameInUse,
    QMPError,
    SetupError,
    SnapshotError,
)
from kit.core.incidents import raise_recorded as raise_recorded_errors
from kit.core.logs import trace
from kit.core.state import GuestState
from kit.hypervisor.accelerator import host
from kit.hypervisor.doors import Link
from kit.hypervisor.guest import Guest, RunResult
from kit.hypervisor.migration import MigrationReport
from kit.hypervisor.registry import guests, stop_all
from kit.hypervisor.snapshot import Snapshot, snapshots
from kit.infrastructure.hostinfo import Accelerator, HostInfo
from kit.labs import containers, stopwatch

__all__ = [
    "Accelerator",
    "AgentError",
    "BootTimeout",
    "Guest",
    "GuestError",
    "GuestNotRunning",
    "GuestState",
    "HostInfo",
    "HostLimit",
    "ImageError",
    "InvalidInput",
    "KitError",
    "LaunchError",
    "Link",
    "MigrationError",
    "MigrationReport",
    "NameInUse",
    "QMPError",
    "RunResult",
    "SetupError",
    "Snapshot",
    "SnapshotError",
    "containers",
    "guests",
    "host",
    "raise_recorded_errors",
    "snapshots",
    "stop_all",
    "stopwatch",
    "trace",
]

# A library configures no logging of its own: records go nowhere until the
# application (or kit.trace) adds a handler.
logging.getLogger("kit").addHandler(logging.NullHandler())
