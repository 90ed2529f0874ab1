"""Moving a running machine: into a file (a snapshot), or into a new QEMU (live migration).

Both are QEMU's *migration*: the source QEMU sends the machine's state (every
device, the CPUs' registers, and the memory unless the other side already has
it) as one stream, and reports ``completed``.  The source is then paused
("postmigrate"): after a save it is set going again, after a live migration
it is retired and the destination goes on.

**The guest is paused for the whole copy** (QMP ``stop``, then ``migrate``).
QEMU's usual *pre-copy*, which sends the memory while the guest runs and then
again the pages it changed, lost pages here: under TCG on QEMU 7.2, with a
guest serving HTTP, about one move in 25 left the guest with memory from
before the move, and its kernel crashed soon after (measured on microvm and on
q35; with the guest paused first, 100 moves out of 100 were sound).  What
keeps the pause short is that the memory is mostly not copied at all: where
the guest's RAM is a memfd (:mod:`kit.hypervisor.guest_ram`), a live
migration's destination maps the same memory and a snapshot copies it
sparse, and the stream carries only the devices (``x-ignore-shared``).

On one host the stream travels through a descriptor the kit hands QEMU
(``fd:`` URIs): a file for a snapshot, one end of a socket pair for a live
migration, whose destination QEMU reads the other end (``-incoming fd:N``).
QEMU 7.2 has no ``file:`` URI, and ``exec:`` would start a program, which the
kit's seccomp sandbox forbids (``spawn=deny``).

This module also moves a guest's port forwards: the destination cannot listen
on the host ports the source holds, so it starts without them; the source's
close when the guest stops (a client is refused at once rather than left
waiting on a guest that will never answer there), and they open in the
destination once its guest runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qemu.qmp import EventListener, QMPClient
from qemu.qmp.error import QMPError as _LibraryQMPError

from kit.core import kitloop
from kit.core.errors import GuestError, MigrationError, QMPError, SetupError
from kit.core.state import GuestState
from kit.hypervisor import disks, guest_ram, qemu, registry
from kit.hypervisor.process import QemuProcess, spawn

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

log = logging.getLogger(__name__)

# QEMU's default limit, 32 MiB/s, is meant for a network shared with others:
# it made the save of a 64 MiB guest take 1.1 s here.  Within one host the
# limit is copying memory.
MAX_BANDWIDTH = 8 << 30  # bytes per second
POLL_S = 0.002
MIGRATION_FD = "kit-migration"
FINAL_STATES = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class MigrationStats:
    """What QEMU reports of one migration it sent."""

    seconds: float  # from "migrate" to "completed"
    transferred_mb: float
    finished_at: float  # time.monotonic() when the kit heard "completed"

    @classmethod
    def from_query(cls, info: dict[str, Any], began: float, finished: float) -> MigrationStats:
        ram = info.get("ram", {})
        return cls(finished - began, ram.get("transferred", 0) / 2**20, finished)


@dataclass(frozen=True)
class MigrationReport:
    """One live migration, as ``g.migrate()`` returns it."""

    old_pid: int
    new_pid: int
    seconds: float  # the whole move, from the call until the old QEMU has ended
    paused_ms: float  # the guest stopped: from "stop" in the old QEMU to "cont" in the new
    transferred_mb: float  # what went through the socket
    memory_shared: bool  # the new QEMU mapped the guest's memory itself: none was copied
    forwards_moved: tuple[int, ...] = ()

    def __str__(self) -> str:
        memory = ("its memory shared, not copied" if self.memory_shared
                  else "its memory copied")
        return (f"moved from QEMU pid {self.old_pid} to pid {self.new_pid} in "
                f"{self.seconds:.2f} s, {memory} ({self.transferred_mb:.1f} MiB sent); the "
                f"guest was paused for {self.paused_ms:.0f} ms")


# -- the stream itself, on the kit loop ------------------------------------------------------


async def send(qmp: QMPClient, fdname: str, timeout: float, *,
               ignore_shared: bool) -> MigrationStats:
    """Send the (paused) machine through ``fdname`` (given with ``getfd``) until completed.

    ``ignore_shared`` leaves out shared memory (the other side maps it, or
    the kit copies it itself).  If the migration fails, the source is left
    as it was, paused: the caller sets it going.
    """
    await qmp.execute("migrate-set-parameters", {"max-bandwidth": MAX_BANDWIDTH})
    await qmp.execute("migrate-set-capabilities", {"capabilities": [  # set every time:
        {"capability": "events", "state": True},  # they outlive a migration
        {"capability": "x-ignore-shared", "state": ignore_shared}]})
    listener = EventListener(("MIGRATION",))
    began = time.monotonic()
    with qmp.listen(listener):
        await qmp.execute("migrate", {"uri": f"fd:{fdname}"})
        status = await _final_status(qmp, listener, timeout)
    finished = time.monotonic()
    info = await query(qmp, "query-migrate")
    if status != "completed":
        raise MigrationError(
            f"QEMU's migration ended {status}: {info.get('error-desc', 'no reason given')}.",
            hint="The guest goes on where it was; try again, or look at the guest's qemu.log.")
    return MigrationStats.from_query(info, began, finished)


async def _final_status(qmp: QMPClient, listener: EventListener, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            await qmp.execute("migrate_cancel")
            raise MigrationError(
                f"the migration did not finish within {timeout:g} s.",
                hint="It was cancelled and the guest goes on; the host may be overloaded: "
                "pass a larger timeout=..., or try again.")
        try:
            event = await asyncio.wait_for(listener.get(), remaining)
        except TimeoutError:
            continue
        data = event.get("data")
        status = str(data.get("status", "")) if isinstance(data, dict) else ""
        if status in FINAL_STATES:
            return status


async def start_incoming(qmp: QMPClient, fd: int, *, ignore_shared: bool) -> None:
    """Let a destination QEMU (``-incoming defer``) read the machine from its descriptor ``fd``.

    Its capabilities must be the source's: QEMU 7.2 cannot set
    ``x-ignore-shared`` on the command line, hence ``defer``.
    """
    await qmp.execute("migrate-set-capabilities", {"capabilities": [
        {"capability": "x-ignore-shared", "state": ignore_shared}]})
    await qmp.execute("migrate-incoming", {"uri": f"fd:{fd}"})


async def incoming_done(qmp: QMPClient) -> None:
    """Wait until a destination QEMU (``-incoming``) has loaded the whole machine.

    It then stays paused (the kit starts QEMU with ``-S``) until "cont".
    """
    while True:
        info = await query(qmp, "query-migrate")
        status = info.get("status")
        if status == "failed":
            raise MigrationError(f"QEMU could not load the machine: "
                                 f"{info.get('error-desc', 'no reason given')}.",
                                 hint="Look at the guest's qemu.log for QEMU's own words.")
        if status == "completed":
            state = await query(qmp, "query-status")
            if state.get("status") != "inmigrate":
                return
        await asyncio.sleep(POLL_S)


async def query(qmp: QMPClient, command: str) -> dict[str, Any]:
    """A QMP query whose answer is an object (query-migrate, query-status)."""
    reply = await qmp.execute(command)
    return reply if isinstance(reply, dict) else {}


async def resume_source(qmp: QMPClient) -> None:
    """Set a source the migration left paused going again (a save, or a failed move)."""
    state = (await query(qmp, "query-status")).get("status")
    if state in ("postmigrate", "paused", "finish-migrate"):
        await qmp.execute("cont")


# -- a pause, and a save to a file (kit.hypervisor.snapshot) ----------------------------------


@dataclass
class Pause:
    """How long a :func:`paused` block kept the guest stopped (set when it ends)."""

    seconds: float = 0.0


@contextlib.contextmanager
def paused(guest: Guest) -> Iterator[Pause]:
    """The guest stopped (QMP ``stop``) for the block, and set going again after it, always."""
    pause = Pause()
    guest.qmp("stop")
    began = time.monotonic()
    try:
        yield pause
    finally:
        kitloop.call(resume_source(_qmp_of(guest)), timeout=15)
        pause.seconds = time.monotonic() - began


def save(guest: Guest, path: Path, timeout: float = 60.0, *,
         ignore_shared: bool) -> MigrationStats:
    """Write the paused ``guest``'s machine to a new file ``path`` (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        guest.pass_fd(fd, MIGRATION_FD)
    finally:
        os.close(fd)  # QEMU has its own copy now
    return kitloop.call(send(_qmp_of(guest), MIGRATION_FD, timeout,
                             ignore_shared=ignore_shared), timeout=timeout + 10)


# -- a live migration ------------------------------------------------------------------------


@dataclass
class _Move:
    """The destination of one live migration, until the guest has moved into it."""

    process: QemuProcess
    qmp: QMPClient
    stream: socket.socket  # the source's end of the migration socket pair
    ram_file: qemu.RamFile | None  # the guest's memory, if the destination maps it
    began: float = field(default_factory=time.monotonic)
    closed: list[int] = field(default_factory=list)  # host ports the source no longer forwards


def check_migratable(guest: Guest) -> None:
    """Refuse, with what to do, a move that could not work."""
    guest.require_state("migrate", GuestState.RUNNING)
    if guest.doors.link.links:
        raise MigrationError(
            f"guest {guest.name} has a link to another guest: its cable is a port this QEMU "
            "holds, which a second QEMU cannot take over while both run.",
            hint="Migrate a guest without a link (kit.Link is made before the start).")
    if guest.share_open:
        raise MigrationError(
            f"guest {guest.name} has its shared folder mounted: QEMU refuses to move a "
            "machine whose 9p file server has files open.",
            hint="Unmount it first with g.close_share(), migrate, then g.open_share() again.")
    image = guest.image
    if image is not None and image.root_disk is not None and guest.disk_overlay is None:
        raise SetupError(
            f"guest {guest.name} keeps its disk writes in a file QEMU deleted (qemu-img was "
            "missing when it started): a new QEMU could not open them.",
            hint=disks.QEMU_IMG_HINT + " Then start the guest again.")


def migrate(guest: Guest, timeout: float = 60.0) -> MigrationReport:
    """Move ``guest`` into a new QEMU on this host while it runs (``g.migrate()``)."""
    check_migratable(guest)
    old_pid = guest.pid or 0
    move = kitloop.call(_start_destination(guest), timeout=30)
    kitloop.call(_announce_move(guest, move.process.pid), timeout=5)
    stopped = time.monotonic()
    try:
        guest.qmp("stop")
        stats = kitloop.call(_send_to(guest, move, timeout), timeout=timeout + 15)
    except BaseException as error:
        kitloop.call(_abandon(guest, move), timeout=20)
        kitloop.call(_announce_move(guest, None), timeout=5)
        raise _failure(guest, error, old_pid) from None
    retired = kitloop.call(guest._switch_to(move.process, move.qmp, move.ram_file), timeout=20)
    guest.doors.after_launch()  # the cables of the new QEMU's cards, as the doors want them
    guest.qmp("cont")
    resumed = time.monotonic()
    lost = kitloop.call(_open_forwards(guest, move), timeout=20)
    kitloop.call(guest._leave(retired), timeout=20)
    report = MigrationReport(
        old_pid, move.process.pid, time.monotonic() - move.began, (resumed - stopped) * 1000,
        stats.transferred_mb, move.ram_file is not None,
        tuple(port for port in sorted(guest.forwards) if port not in lost))
    log.info("guest %s: %s", guest.name, report)
    guest.last_migration = report
    kitloop.call(_announce_move(guest, None), timeout=5)
    if lost:
        _report_lost_forwards(guest, lost)
    return report


async def _announce_move(guest: Guest, moving_to: int | None) -> None:
    """Tell the views (the live diagram) that a move began or ended (on the kit loop)."""
    guest.moving_to = moving_to
    registry.announce(guest, guest.state)


def _failure(guest: Guest, error: BaseException, old_pid: int) -> BaseException:
    if isinstance(error, MigrationError) or not isinstance(error, GuestError):
        return error
    return MigrationError(f"guest {guest.name} could not be moved: {error.message}",
                          hint=f"It goes on in its old QEMU (pid {old_pid}). "
                          f"{error.hint or ''}".strip(), log=error.log)


async def _start_destination(guest: Guest) -> _Move:
    """A paused QEMU of the same machine, without the forwards, reading a socket."""
    rundir = guest._rundir
    assert rundir is not None and guest.pid is not None
    ram = guest_ram.open_ram(guest.pid)  # the same memory, mapped by both QEMUs in turn
    ram_file = qemu.RamFile(f"/proc/self/fd/{ram}", shared=True) if ram is not None else None
    ours, theirs = socket.socketpair()
    incoming = theirs.fileno()  # the number QEMU inherits it as
    changes: dict[str, Any] = {"ram_file": ram_file} if ram_file else {}
    spec = guest._machine_spec(forwards={}, pidfile=rundir / "qemu-incoming.pid",
                               incoming_fd=incoming, **changes)
    inherited = [theirs.fileno(), *guest._inherited_fds(), *([ram] if ram is not None else [])]
    try:
        process = spawn(spec, rundir / "qemu.log", append=True, extra_fds=inherited)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
        if ram is not None:
            os.close(ram)  # QEMU holds it now
    qmp = QMPClient(f"{guest.name}-incoming")
    move = _Move(process, qmp, ours, ram_file)
    try:
        connecting = qmp.connect(process.channels.hand_over("qmp", qmp.disconnect))
        await _unless_exited(process, connecting, 20, "starting")
        await start_incoming(qmp, incoming, ignore_shared=ram_file is not None)
    except BaseException:
        await _discard(move)
        raise
    log.info("guest %s: destination QEMU started (pid %d)", guest.name, process.pid)
    return move


async def _send_to(guest: Guest, move: _Move, timeout: float) -> MigrationStats:
    """With the guest stopped: close its forwards, send the machine, wait until it is loaded."""
    source = _qmp_of(guest)
    await _close_source_forwards(guest, move)
    source.send_fd_scm(move.stream.fileno())
    await source.execute("getfd", {"fdname": MIGRATION_FD})
    move.stream.close()  # both QEMUs hold their ends now
    sending = send(source, MIGRATION_FD, timeout, ignore_shared=move.ram_file is not None)
    stats: MigrationStats = await _unless_exited(move.process, sending, timeout + 5,
                                                 "receiving the machine")
    await _unless_exited(move.process, incoming_done(move.qmp), 30, "loading the machine")
    return stats


async def _close_source_forwards(guest: Guest, move: _Move) -> None:
    """The guest has stopped: its forwards close, so no new connection waits there.

    A connection the source accepted now would wait for a guest that will
    never answer it there, and break when the source ends; with the port
    closed, a client is refused at once and can try again in a moment, when
    the destination listens.
    """
    source = _qmp_of(guest)
    for host in sorted(guest.forwards):
        await _monitor(source, f"hostfwd_remove net0 tcp:127.0.0.1:{host}")
        move.closed.append(host)


async def _open_forwards(guest: Guest, move: _Move) -> list[int]:
    """The forwards, in the destination once its guest runs; the host ports it could not take.

    Not before: a connection accepted while the guest is still paused sends
    its first packet to a card that cannot take it, and QEMU's user network
    tries again only seconds later (measured: a request then hung for 5 s).
    """
    lost = []
    for host, port in sorted(guest.forwards.items()):
        if await _monitor(move.qmp, f"hostfwd_add net0 tcp:127.0.0.1:{host}-:{port}"):
            lost.append(host)
    return lost


async def _abandon(guest: Guest, move: _Move) -> None:
    """A failed move: the destination goes, the source goes on."""
    log.warning("guest %s: migration abandoned; it goes on in QEMU pid %s", guest.name, guest.pid)
    await _discard(move)
    with contextlib.suppress(_LibraryQMPError, GuestError, OSError):
        source = _qmp_of(guest)
        info = await query(source, "query-migrate")
        if info.get("status") not in (None, *FINAL_STATES):
            await source.execute("migrate_cancel")
        for host in move.closed:  # closed when the guest stopped: open again
            port = guest.forwards[host]
            await _monitor(source, f"hostfwd_add net0 tcp:127.0.0.1:{host}-:{port}")
        await resume_source(source)


async def _discard(move: _Move) -> None:
    move.stream.close()
    move.process.kill()
    await move.process.exited_within(5)
    await move.process.channels.close()


async def _unless_exited(process: QemuProcess, awaitable: Any, timeout: float,
                         doing: str) -> Any:
    """Await ``awaitable`` unless the destination QEMU exits first."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task, process.exited}, timeout=timeout,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        error = task.exception()
        if error is None:
            return task.result()
        # A channel that broke because the destination ended is its exit, not a network error.
        if await process.exited_within(1.0):
            raise _destination_exited(process, doing) from None
        raise error
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    if process.exited in done:
        raise _destination_exited(process, doing)
    raise MigrationError(f"the destination QEMU took over {timeout:g} s {doing}.",
                         hint="The host may be overloaded: try again.")


def _destination_exited(process: QemuProcess, doing: str) -> MigrationError:
    return MigrationError(f"the destination QEMU exited while {doing} "
                          f"(code {process.exited.result()}).",
                          hint="Its own words are in the guest's qemu.log.")


async def _monitor(qmp: QMPClient, line: str) -> str:
    """One human-monitor command; its answer if it failed (hostfwd_add is silent if not)."""
    reply = await qmp.execute("human-monitor-command", {"command-line": line})
    text = str(reply or "").strip()
    if text and not text.endswith("removed"):
        log.warning("QEMU answered %r with %r", line, text)
        return text
    return ""


def _report_lost_forwards(guest: Guest, lost: list[int]) -> None:
    for host in lost:
        guest.forwards.pop(host, None)
    raise MigrationError(
        f"guest {guest.name} moved and runs, but its forward from 127.0.0.1:"
        f"{', '.join(map(str, lost))} could not be opened in the new QEMU (another program "
        "took the port in the moment it was free).",
        hint="Open it again with g.open_forward(HOST_PORT, GUEST_PORT), on another port if "
        "need be.")


def _qmp_of(guest: Guest) -> QMPClient:
    client = guest._qmp
    if client is None:
        raise QMPError(f"guest {guest.name} has no hypervisor connection: it is {guest.state}.",
                       hint="Start it first with g.start().")
    return client
