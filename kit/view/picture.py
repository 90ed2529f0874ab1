"""A still picture of every layer, for diagrams and views to draw.

Views never ask QEMU or the guest anything themselves: they take a snapshot
(cheap: no QMP, no agent; process figures from psutil) and draw it.  Being
plain frozen data, a snapshot can be built by hand in tests, and two
snapshots can be compared to see what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from kit.applications import apps
from kit.core.state import GuestState
from kit.hypervisor import accelerator, registry
from kit.hypervisor.doors import Opening
from kit.hypervisor.guest import Guest


@dataclass(frozen=True)
class Service:
    """An application inside a guest, and the host port that reaches it, if any."""

    name: str
    guest_port: int
    host_port: int | None = None


@dataclass(frozen=True)
class SharedFolder:
    host_path: str
    guest_path: str
    writable: bool = False


@dataclass(frozen=True)
class Move:
    """A live migration of a guest between two QEMU processes, under way or just done.

    The diagram draws both processes: while ``done`` is False the new one is
    receiving the machine; afterwards the old one stays as a faded trace, so
    the learner sees where the guest came from.
    """

    old_pid: int
    new_pid: int
    done: bool
    paused_ms: float | None = None


@dataclass(frozen=True)
class GuestSnapshot:
    name: str
    state: str
    accelerator: str  # "kvm", "tcg" or "" before the first start
    memory_mb: int
    cpus: int
    arch: str = "x86_64"
    pid: int | None = None
    kernel: str = ""
    rss_mb: float | None = None
    threads: int | None = None
    services: tuple[Service, ...] = ()
    shared_folders: tuple[SharedFolder, ...] = ()
    # Doors of kinds the diagram has no special drawing for (a door added later).
    other_doors: tuple[Opening, ...] = ()
    move: Move | None = None  # a live migration under way, or the last one


@dataclass(frozen=True)
class LinkPicture:
    """A network cable between two guests; ``up`` is whether it carries traffic now.

    (A picture of a :class:`kit.Link`, the cable itself.)
    """

    a: str
    b: str
    up: bool = True


@dataclass(frozen=True)
class HostSnapshot:
    hostname: str
    cpu_model: str
    cpus: int
    memory_total_mb: int
    memory_available_mb: int
    accelerator: str
    accelerator_label: str
    kvm: str


@dataclass(frozen=True)
class Snapshot:
    host: HostSnapshot
    guests: tuple[GuestSnapshot, ...] = ()
    links: tuple[LinkPicture, ...] = field(default=())


# Door kinds the diagram draws in a way of their own; any other kind gets a plain door.
DRAWN_KINDS = frozenset({"forward", "share", "link"})


def take(guests: Iterable[Guest] | None = None) -> Snapshot:
    """The live state of the host and of ``guests`` (default: every live guest)."""
    chosen = list(registry.guests() if guests is None else guests)
    return Snapshot(host=host_snapshot(), guests=tuple(guest_snapshot(g) for g in chosen),
                    links=tuple(_links(chosen)))


def host_snapshot() -> HostSnapshot:
    info = accelerator.host(probe=False)
    accel = accelerator.accelerator()
    return HostSnapshot(
        hostname=info.hostname, cpu_model=info.cpu_model, cpus=info.cpus,
        memory_total_mb=info.memory_total_mb, memory_available_mb=info.memory_available_mb,
        accelerator=accel.name, accelerator_label=accel.label, kvm=accel.kvm,
    )


def guest_snapshot(guest: Guest) -> GuestSnapshot:
    rss, threads = _process_figures(guest.pid if guest.state != GuestState.STOPPED else None)
    image = guest.image
    doors = guest.doors.openings()
    return GuestSnapshot(
        name=guest.name, state=guest.state,
        accelerator=guest.accelerator.name if guest.accelerator else "",
        memory_mb=guest.memory_mb, cpus=guest.cpus, arch=guest.arch,
        pid=guest.pid if guest.state != GuestState.STOPPED else None,
        kernel=image.kernel_version if image else "",
        rss_mb=rss, threads=threads, services=tuple(_services(guest)),
        shared_folders=tuple(SharedFolder(o.host_side, o.guest_side, o.guest_can_write)
                             for o in doors if o.kind == "share" and o.is_open),
        other_doors=tuple(o for o in doors if o.kind not in DRAWN_KINDS),
        move=_move(guest),
    )


def _move(guest: Guest) -> Move | None:
    """The guest's migration under way, else its last one, while it still runs."""
    if guest.state == GuestState.STOPPED or guest.pid is None:
        return None
    if guest.moving_to is not None:
        return Move(guest.pid, guest.moving_to, done=False)
    last = guest.last_migration
    if last is not None and last.new_pid == guest.pid:
        return Move(last.old_pid, last.new_pid, done=True, paused_ms=last.paused_ms)
    return None


def _services(guest: Guest) -> list[Service]:
    """The applications the guest image runs, with the host ports forwarded to them."""
    by_guest_port = {guest_port: host_port for host_port, guest_port in guest.forwards.items()}
    known = apps.services(guest)  # the image's web server + API, and any the guest adds
    return [Service(name, port, by_guest_port.get(port)) for port, name in sorted(known.items())]


def _links(guests: list[Guest]) -> list[LinkPicture]:
    """The cables between the guests shown (one picture per cable, not per end)."""
    names = {g.name for g in guests}
    seen: dict[tuple[str, str], LinkPicture] = {}
    for guest in guests:
        for door in guest.doors.openings():
            if door.kind == "link" and door.between and set(door.between) <= names:
                seen[door.between] = LinkPicture(*door.between, door.is_open)
    return list(seen.values())


def _process_figures(pid: int | None) -> tuple[float | None, int | None]:
    if pid is None:
        return None, None
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return process.memory_info().rss / 2**20, process.num_threads()
    except psutil.Error:
        return None, None
