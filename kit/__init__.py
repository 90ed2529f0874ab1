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
    kit.guests(); kit.stop_all(); kit.host()
    kit.raise_recorded_errors()  # errors from widget callbacks, raised at last
    kit.stopwatch.measure_boots(3)            # a boot split into phases (lesson 7)
    with kit.containers.Container("c1") as c: c.run("uname -r")   # no kernel (lesson 8)
"""

from kit import containers, stopwatch
from kit.doors import Link
from kit.errors import (
    AgentError,
    BootTimeout,
    GuestError,
    GuestNotRunning,
    HostLimit,
    ImageError,
    InvalidInput,
    KitError,
    LaunchError,
    NameInUse,
    QMPError,
    SetupError,
)
from kit.guest import Guest, RunResult
from kit.incidents import raise_recorded as raise_recorded_errors
from kit.infrastructure import Accelerator, HostInfo, host
from kit.registry import guests, stop_all

__all__ = [
    "Accelerator",
    "AgentError",
    "BootTimeout",
    "Guest",
    "GuestError",
    "GuestNotRunning",
    "HostInfo",
    "HostLimit",
    "ImageError",
    "InvalidInput",
    "KitError",
    "LaunchError",
    "Link",
    "NameInUse",
    "QMPError",
    "RunResult",
    "SetupError",
    "containers",
    "guests",
    "host",
    "raise_recorded_errors",
    "stop_all",
    "stopwatch",
]
