"""A guest: one QEMU process, its three channels, and its state.

The learner's side is synchronous and small (start, run, qmp, pause, resume,
reboot, stop).  Behind it, everything that touches a socket runs on the kit
loop (:mod:`kit.core.kitloop`): the QMP client (the hypervisor), the guest-agent
client (the guest OS), the console reader, and a watcher that notices the
moment QEMU exits, whoever ended it.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from qemu.qmp import ExecuteError, QMPClient
from qemu.qmp.error import QMPError as _LibraryQMPError

import kit.hypervisor.snapshot as snapshots
from kit.core import kitloop, logs, paths, validate
from kit.core.errors import (
    AgentError,
    BootTimeout,
    GuestError,
    GuestNotRunning,
    ImageError,
    InvalidInput,
    LaunchError,
    NameInUse,
    QMPError,
    SetupError,
    SnapshotError,
)
from kit.core.state import GUEST_RUNNING, HYPERVISOR_ANSWERS, GuestState
from kit.guestos import images
from kit.guestos.images import READY_LINE
from kit.hypervisor import accelerator, disks, doors, migration, qemu, registry
from kit.hypervisor.channels import GuestChannels
from kit.hypervisor.console import Console
from kit.hypervisor.process import QemuProcess, spawn
from kit.infrastructure import hostinfo, limits

log = logging.getLogger(__name__)

AGENT_REPLY_TIMEOUT_S = 1.5  # a healthy agent answers in ~0.1 s on a host with CPUs to spare
AGENT_REPLY_TIMEOUT_MAX_S = 6.0
DEFAULT_BOOT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunResult:
    """What a command run in the guest through the agent gave back."""

    command: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def __str__(self) -> str:
        return self.stdout + self.stderr


class Guest:
    """One virtual machine: ``kit.Guest("web1", memory_mb=128, forwards={8080: 80})``.

    Nothing runs until :meth:`start`.  Used with ``with``, the guest is
    started on entry and stopped on exit, whatever happens inside.
    """

    def __init__(
        self,
        name: str,
        memory_mb: int = 128,
        cpus: int = 1,
        forwards: Mapping[int, int] | None = None,
        *,
        arch: str = "x86_64",
        replace: bool = False,
        boot_timeout: float | None = None,  # None: the architecture's default
        kernel_args: Sequence[str] = (),
        shared_folder: str | os.PathLike[str] | None = None,
        shared_writable: bool = False,
        internet: bool = False,  # the internet door open from the start
        kernel: str | None = None,  # "auto" (the kit's own if built) or "debian"
    ) -> None:
        self.name = validate.check_name(name)
        self.kernel = images.kernel_choice(kernel)
        self.cpus = validate.check_cpus(cpus)
        self.forwards = validate.check_forwards(forwards)
        self.arch = validate.check_choice("arch", arch, images.supported_arches())
        image = images.find_image(arch, self.kernel)
        minimum = image.min_memory_mb if image else 0
        self.memory_mb = validate.check_memory(memory_mb, minimum)
        self.replace = replace
        self.boot_timeout = validate.check_timeout(
            boot_timeout if boot_timeout is not None else default_boot_timeout(self.arch))
        self.kernel_args = validate.check_kernel_args(kernel_args)
        self.doors = doors.GuestDoors(
            self, {"shared_folder": shared_folder, "shared_writable": shared_writable,
                   "internet": internet})
        self.console = Console()
        self.accelerator: hostinfo.Accelerator | None = None
        self.command: list[str] = []
        self.pid: int | None = None
        self.exit_reason: str | None = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.qmp_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._traffic = logs.traffic_logger(self.name)
        self._state = GuestState.CREATED
        self._state_before_pause = GuestState.RUNNING
        self._image: images.GuestImage | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._launched: QemuProcess | None = None
        self._overlay: Path | None = None  # the guest's own disk writes (kit.hypervisor.disks)
        self._ram_file: qemu.RamFile | None = None  # RAM in a file (kit.hypervisor.guest_ram)
        self._ram_fd: int | None = None  # a snapshot's memory this guest maps, held for it
        self.restored_from: snapshots.Snapshot | None = None  # the snapshot it started from
        # Live migrations (g.migrate()): the new QEMU's pid while one is under
        # way, and the last one done since the guest started.
        self.moving_to: int | None = None
        self.last_migration: migration.MigrationReport | None = None
        self._rundir: Path | None = None
        self._qmp: QMPClient | None = None
        self._agent: QMPClient | None = None
        self._channels: GuestChannels | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exited: asyncio.Future[int] | None = None
        self._stop_requested = False
        self._not_running = asyncio.Event()
        self._agent_gone = asyncio.Event()
        self.agent_connected = False  # the guest has the agent's port open

    # -- what a lesson reads -------------------------------------------------

    @property
    def state(self) -> GuestState:
        """Where the guest is in its life (:class:`kit.core.state.GuestState`)."""
        return self._state

    @property
    def image(self) -> images.GuestImage | None:
        return self._image

    @property
    def boot_seconds(self) -> float | None:
        """From QEMU's launch to the guest agent's first answer, for the last boot."""
        if self.started_at is None or self.ready_at is None:
            return None
        return self.ready_at - self.started_at

    @property
    def command_line(self) -> str:
        """The real QEMU command, shell-quoted, as it was run."""
        return qemu.show(self.command)

    def __repr__(self) -> str:
        accel = f", {self.accelerator.name}" if self.accelerator else ""
        return f"<Guest {self.name} {self.state}, {self.memory_mb} MiB, {self.cpus} CPU{accel}>"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Guest:
        """Boot the guest; returns once its agent answers (bounded by ``boot_timeout``)."""
        self._prepare_start()
        self.restored_from = self._ram_file = None  # a boot, whatever it started from before
        self.last_migration = None
        try:
            kitloop.call(self._launch(), timeout=30)
            self.doors.after_launch()
            self.qmp("cont")  # QEMU starts paused (-S) until its doors are set
            kitloop.call(self._wait_ready(1), timeout=self.boot_timeout + 10)
        except BaseException:
            self.kill()
            raise
        return self

    def _prepare_start(self) -> None:
        """Every check before a QEMU starts; then the name and the runtime folder are taken."""
        if self._state.has_process:
            raise GuestError(
                f"guest {self.name} is already {self._state}.",
                hint="Stop it first (g.stop()), or make a new kit.Guest.",
            )
        self._check_name_free()
        _remove_abandoned_folders()
        self.last_migration = None  # a new machine: nothing has moved yet
        self._image = _require_image(self.arch, self.kernel)
        validate.check_memory(self.memory_mb, self._image.min_memory_mb)
        validate.check_host_ports_free(list(self.forwards))
        self.doors.check_before_start()
        limits.check_room_for(self.name, self.memory_mb, self.cpus)
        self.accelerator = accelerator.accelerator_for(self.arch)
        self._take_name()
        self._reset_for_start()
        registry.add(self)

    # -- snapshots and live migration (kit.hypervisor.snapshot, kit.hypervisor.migration) ----

    def snapshot(self, name: str, *, replace: bool = False) -> snapshots.Snapshot:
        """Save the whole running machine (devices, CPUs, memory and disk) as ``name``.

        The guest is paused while it is written (tens of milliseconds on the
        kit's kernel; ``snap.info.paused_s`` says how long), then runs on.
        Start guests from it with ``kit.Guest.from_snapshot(snap, "new-name")``.
        """
        return snapshots.take(self, name, replace=replace)

    @classmethod
    def from_snapshot(
        cls,
        snap: snapshots.Snapshot | str,
        name: str,
        forwards: Mapping[int, int] | None = None,
        *,
        internet: bool = False,
        replace: bool = False,
        boot_timeout: float | None = None,
        arch: str | None = None,
        memory_mb: int | None = None,
        cpus: int | None = None,
    ) -> Guest:
        """A started guest whose machine is the snapshot's, as it was: no boot at all.

        Its processes, files and uptime carry on from the moment of the
        snapshot.  What must differ between guests started from one
        snapshot is then refreshed through the guest agent: its host name,
        MAC address and clock (:func:`kit.hypervisor.snapshot.refresh_identity`).
        ``arch``, ``memory_mb`` and ``cpus`` may be given only to check them:
        a saved machine cannot change its architecture, memory or CPUs.
        """
        snap = snapshots.Snapshot.of(snap)
        info = snapshots.check_restorable(snap, arch=arch, memory_mb=memory_mb, cpus=cpus)
        guest = cls(name, memory_mb=info.memory_mb, cpus=info.cpus, forwards=forwards,
                    arch=info.arch, replace=replace, boot_timeout=boot_timeout,
                    kernel_args=info.kernel_args, internet=internet, kernel=info.kernel)
        guest._restore(snap)
        return guest

    def migrate(self, timeout: float = 60.0) -> migration.MigrationReport:
        """Move the running guest into a new QEMU process on this host, live.

        The same ``Guest`` object goes on with a new QEMU (``g.pid`` changes);
        inside, nothing notices but a short pause (the report says how long).
        If the move fails, the guest goes on running in its old QEMU.
        """
        return migration.migrate(self, timeout)

    def pass_fd(self, fd: int, name: str) -> None:
        """Hand QEMU an open file as ``name`` (QMP ``getfd``), for commands such as ``migrate``.

        The descriptor travels over the QMP socket itself (SCM_RIGHTS): QEMU's
        sandbox lets it start no program, and a file it is given is the only
        one the kit needs it to use.  The caller keeps (and closes) its own copy.
        """
        self.require_state("hand a file to the hypervisor of", *HYPERVISOR_ANSWERS)
        kitloop.call(self._pass_fd(fd, name), timeout=15)

    @property
    def disk_overlay(self) -> Path | None:
        """The file holding this guest's disk writes (over the image's disk), if it has one."""
        return self._overlay

    def _restore(self, snap: snapshots.Snapshot) -> None:
        """Start a QEMU that loads the snapshot's machine instead of booting; wait for the agent."""
        self._prepare_start()
        self.restored_from = snap
        try:
            self._ram_fd = snap.acquire_memory()
            self._ram_file = (None if self._ram_fd is None else  # shared, copy-on-write
                              qemu.RamFile(f"/proc/self/fd/{self._ram_fd}", shared=False))
            with snap.open_state() as state_fd:
                kitloop.call(self._launch(snap, state_fd), timeout=30)
            kitloop.call(self._until_loaded(snap), timeout=self.boot_timeout + 10)
            self.doors.after_launch()  # the cables as this guest's doors want them
            self.qmp("cont")
            kitloop.call(self._wait_agent(time.monotonic() + self.boot_timeout),
                         timeout=self.boot_timeout + 10)
            snapshots.refresh_identity(self, snap)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 8.0) -> None:
        """Shut the guest down: politely through its agent, then QMP ``quit``, then SIGKILL."""
        if not self._state.has_process:
            return
        kitloop.call(self._stop(timeout), timeout=timeout + 10)

    def kill(self) -> None:
        """Kill QEMU at once (no shutdown inside the guest) and clean up."""
        if self._process is not None and self._process.poll() is None:
            _kill_process_group(self._process)
        if self._state.has_process:
            try:
                kitloop.call(self._wait_exit_and_cleanup(), timeout=10)
            except Exception as error:
                log.warning("guest %s: cleaning up after the kill failed (%s); removing its "
                            "files only", self.name, error)
                self._cleanup_files()
        elif registry.get(self.name) is self:  # a start that failed before QEMU ran
            self._release_memory()
            self._cleanup_files()
            registry.remove(self)

    def pause(self) -> None:
        """Freeze the whole machine: every virtual CPU stops; memory stays as it is."""
        self.require_state("pause", GuestState.RUNNING, GuestState.BOOTING)
        self.qmp("stop")

    def resume(self) -> None:
        self.require_state("resume", GuestState.PAUSED)
        self.qmp("cont")

    def reboot(self) -> None:
        """Press the machine's reset button and wait until it is ready again."""
        self.require_state("reboot", *HYPERVISOR_ANSWERS)
        target = self.console.count(READY_LINE) + 1
        was_paused = self._state in (GuestState.PAUSED, GuestState.CRASHED)
        self.qmp("system_reset")
        if was_paused:
            self.qmp("cont")
        kitloop.call(self._wait_ready(target), timeout=self.boot_timeout + 10)

    def crash(self, timeout: float = 10.0) -> None:
        """Make the guest's kernel panic on purpose (``echo c > /proc/sysrq-trigger``).

        The guest's pvpanic device tells the hypervisor, which pauses the
        machine and reports GUEST_PANICKED: the state becomes "crashed".
        """
        self.require_state("crash", GuestState.RUNNING)
        with contextlib.suppress(GuestNotRunning):  # the agent dies with the kernel
            self.run("echo c > /proc/sysrq-trigger")
        kitloop.call(self._until_state(GuestState.CRASHED, timeout), timeout=timeout + 5)

    async def _until_state(self, state: GuestState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._state != state:
            if time.monotonic() > deadline:
                raise GuestError(f"guest {self.name} did not become {state} within "
                                 f"{timeout:g} s; it is {self._state}.",
                                 hint="Look at g.console.tail() for what the guest printed.")
            await asyncio.sleep(0.02)

    def __enter__(self) -> Guest:
        if not self._state.has_process:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        except Exception as error:
            log.warning("guest %s did not stop cleanly (%s); killing it", self.name, error)
            self.kill()

    # -- doors (kit.hypervisor.doors): where data crosses between guest and host -------------

    def open_forward(self, host_port: int, guest_port: int) -> None:
        """Open host ``127.0.0.1:host_port`` to ``guest_port`` in the guest, live."""
        self.doors.forward.open(host_port, guest_port)

    def close_forward(self, host_port: int) -> None:
        """Close the forward from ``host_port``, live."""
        self.doors.forward.close(host_port)

    def open_share(self) -> None:
        """Mount the shared folder in the guest at /mnt/share (read-only unless writable)."""
        self.doors.share.open()

    def close_share(self) -> None:
        """Unmount the shared folder in the guest."""
        self.doors.share.close()

    def open_internet(self) -> None:
        """Let the guest reach out (outbound NAT through the host), live."""
        self.doors.internet.open()

    def close_internet(self) -> None:
        """Seal the guest again: it reaches nothing outside itself."""
        self.doors.internet.close()

    @property
    def internet_open(self) -> bool:
        return self.doors.internet.is_open

    @property
    def share_open(self) -> bool:
        return self.doors.share.is_open

    @property
    def shared_folder(self) -> Path | None:
        """The host folder declared for sharing (symlinks resolved), open or not."""
        return self.doors.share.folder

    @property
    def shared_writable(self) -> bool:
        return self.doors.share.writable

    # -- talking to the two layers ---------------------------------------------

    def qmp(self, command: str, arguments: Mapping[str, Any] | None = None,
            *, timeout: float = 10.0, **kwargs: Any) -> Any:
        """Send one QMP command to the hypervisor; returns its ``return`` value."""
        if self._qmp is None or not self._state.has_process:
            raise GuestNotRunning(
                f"guest {self.name} is {self._state}: its hypervisor is not running.",
                hint="Start it first with g.start().",
            )
        args = {**(arguments or {}), **kwargs}
        return kitloop.call(self._qmp_execute(command, args, timeout), timeout=timeout + 5)

    def agent(self, command: str, arguments: Mapping[str, Any] | None = None,
              *, timeout: float = 10.0, **kwargs: Any) -> Any:
        """Send one command to the guest agent (the guest OS's side)."""
        self.require_state(f"send {command} to the guest agent of", GuestState.RUNNING)
        args = {**(arguments or {}), **kwargs}
        return kitloop.call(self._agent_execute(command, args, timeout), timeout=timeout + 5)

    def run(self, command: str | Sequence[str], timeout: float = 30.0) -> RunResult:
        """Run a command inside the guest through its agent.

        A string runs under the guest's ``/bin/sh -c``; a list runs as it is.
        """
        argv = _argv(command)
        timeout = validate.check_timeout(timeout)
        self.require_state("run a command in", GuestState.RUNNING)
        return kitloop.call(self._agent_run(argv, timeout), timeout=timeout + 10)

    # -- inside the kit loop ---------------------------------------------------

    async def _launch(self, source: snapshots.Snapshot | None = None,
                      incoming_fd: int | None = None) -> None:
        """Start QEMU: booting, or loading a snapshot's machine from ``incoming_fd``."""
        assert self._rundir is not None
        self._overlay = self._new_overlay(source)
        spec = self._machine_spec(incoming_fd=incoming_fd)
        self.started_at = time.monotonic()
        incoming = () if incoming_fd is None else (incoming_fd,)
        self._adopt(spawn(spec, self._rundir / "qemu.log",
                          extra_fds=(*incoming, *self._inherited_fds())))
        self._set_state(GuestState.BOOTING)  # after _adopt: views told of it see its command
        log.info("guest %s: QEMU started (pid %d, %s)", self.name, self.pid, spec.accel)
        await self._connect_channels()
        if incoming_fd is not None:  # a snapshot's memory in a file is left out of its stream
            assert self._qmp is not None
            await migration.start_incoming(self._qmp, incoming_fd,
                                           ignore_shared=self._ram_file is not None)

    def _machine_spec(self, **changes: Any) -> qemu.MachineSpec:
        """This guest's machine as QEMU's command line says it (``changes`` replace fields)."""
        assert self._image is not None and self._rundir is not None and self.accelerator
        spec = self.doors.configure(qemu.MachineSpec(
            name=self.name, image=self._image, memory_mb=self.memory_mb, cpus=self.cpus,
            accel=self.accelerator.name, kernel_args=self.kernel_args,
            pidfile=self._rundir / "qemu.pid", root_overlay=self._overlay,
            ram_file=self._ram_file,
        ))
        return dataclasses.replace(spec, **changes)

    def _inherited_fds(self) -> tuple[int, ...]:
        """Descriptors every QEMU of this guest inherits: the snapshot memory it maps, if any."""
        return () if self._ram_fd is None else (self._ram_fd,)

    def _new_overlay(self, source: snapshots.Snapshot | None) -> Path | None:
        """The guest's own disk file over the image's disk, or over the snapshot's."""
        assert self._image is not None and self._rundir is not None
        target = self._rundir / disks.OVERLAY_NAME
        if source is not None:
            return source.new_overlay(target)
        if self._image.root_disk is None:
            return None  # the files are in the initramfs: no disk at all
        try:
            return disks.new_overlay(target, self._image.root_disk, "raw")
        except SetupError as error:  # still bootable, with QEMU's nameless overlay
            log.warning("guest %s: no disk overlay of its own (%s); it cannot be saved or "
                        "moved", self.name, error.message)
            return None

    def _adopt(self, launched: QemuProcess) -> None:
        """Make ``launched`` this guest's QEMU: its process, channels, exit and record."""
        assert self._rundir is not None
        self._launched = launched
        self._process, self._channels = launched.popen, launched.channels
        self.command, self.pid, self._exited = launched.command, launched.pid, launched.exited
        limits.write_record(self._rundir, limits.LiveGuestRecord(
            self.name, launched.pid, self.memory_mb, os.getpid()))
        launched.exited.add_done_callback(lambda _: self._on_exit(launched))

    # -- a live migration's two steps (kit.hypervisor.migration calls them) --

    async def _switch_to(self, launched: QemuProcess, qmp: QMPClient,
                         ram_file: qemu.RamFile | None) -> tuple[QemuProcess, QMPClient]:
        """Go on in ``launched``, a migration's destination that holds the machine, paused.

        Returns the old QEMU and its QMP client, for :meth:`_leave`.  The old
        QEMU's events are no longer heard (its coming exit is not the guest's),
        and the agent is reached through the new QEMU at once.  ``ram_file``
        is the memory the new QEMU maps, if it was handed the old one's.
        """
        self._ram_file = ram_file or self._ram_file
        old = self._launched
        assert old is not None and self._qmp is not None
        old_qmp, old_tasks, self._tasks = self._qmp, self._tasks, []
        for task in old_tasks:
            task.cancel()  # the old QEMU's event watcher
        self._adopt(launched)
        self._qmp = qmp
        self._tasks.append(asyncio.create_task(self._watch_events(qmp)))
        agent = QMPClient(f"{self.name}-agent")
        agent.await_greeting = False
        agent.negotiate = False
        await agent.connect(launched.channels.hand_over("agent", agent.disconnect))
        self._agent = agent
        return old, old_qmp

    async def _leave(self, retired: tuple[QemuProcess, QMPClient]) -> None:
        """End the QEMU the guest has left; read the console from the new one."""
        old, old_qmp = retired
        await self._try(old_qmp.execute("quit"), 1.0)
        if not await old.exited_within(3.0):
            old.kill()
            await old.exited_within(3.0)
        await old.channels.close()  # its console's owner is g.console: that stream ends here
        assert self._channels is not None and self._rundir is not None
        console = self.console
        await console.attach(self._channels.hand_over("console", console.close))
        with contextlib.suppress(OSError):  # the old QEMU removed its own pid file on exit
            os.replace(self._rundir / "qemu-incoming.pid", self._rundir / "qemu.pid")
        log.info("guest %s: its old QEMU (pid %d) has ended", self.name, old.pid)

    def _on_exit(self, launched: QemuProcess) -> None:
        """QEMU exited, whoever ended it: clean up, unless the guest has left that QEMU."""
        if launched is not self._launched:
            return  # a live migration's source, retired by kit.hypervisor.migration
        code = launched.exited.result()
        self.exit_reason = self.exit_reason or _explain_exit(code, self._stop_requested)
        log.info("guest %s: QEMU exited (%s)", self.name, self.exit_reason)
        self._tasks.append(asyncio.ensure_future(self._cleanup()))

    async def _connect_channels(self) -> None:
        """Hand each of the kit's ends to its owner, which alone closes it."""
        channels = self._channels
        assert channels is not None
        console = self.console
        await console.attach(channels.hand_over("console", console.close))
        console.subscribe(self._on_console_text)
        qmp = QMPClient(self.name)
        qmp_socket = channels.hand_over("qmp", qmp.disconnect)
        try:
            await self._until_exit(qmp.connect(qmp_socket), 20, "connecting to QMP")
        except _LibraryQMPError as error:
            raise self._launch_error(f"QEMU did not answer on QMP ({error}).") from None
        self._qmp = qmp
        self._tasks.append(asyncio.create_task(self._watch_events(qmp)))
        agent = QMPClient(f"{self.name}-agent")
        agent.await_greeting = False
        agent.negotiate = False
        await agent.connect(channels.hand_over("agent", agent.disconnect))
        self._agent = agent

    async def _wait_ready(self, ready_count: int) -> None:
        """Wait for the init's ready line, then for the agent to answer a ping."""
        deadline = time.monotonic() + self.boot_timeout
        seen = self.console.wait_for_line(READY_LINE, ready_count, self.boot_timeout)
        try:
            ready = await self._until_exit(seen, self.boot_timeout + 1, "booting")
        except TimeoutError:
            ready = False
        if not ready:
            raise self._boot_timeout("its init never said it was ready")
        await self._wait_agent(deadline)

    async def _wait_agent(self, deadline: float) -> None:
        """Ping the agent until it answers; then the guest is running.

        A restored guest never prints the ready line again (its init said it
        long ago, before the snapshot): the agent is all there is to wait for.
        """
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._boot_timeout("its guest agent never answered")
            try:
                assert self._agent is not None
                ping = self._agent.execute("guest-ping")
                await self._until_exit(asyncio.wait_for(ping, min(2.0, remaining)), remaining,
                                       "waiting for the guest agent")
                break
            except TimeoutError:
                continue
        # The agent answered, so its port is open, whatever QMP says: QEMU sends
        # at most one VSERPORT_CHANGE a second per port, and a guest that boots
        # in under a second (the kit's kernel) is ready before the "open" that
        # follows a reboot's "closed" arrives.
        self._on_agent_port(True)
        self.ready_at = time.monotonic()
        if self._state == GuestState.BOOTING:
            self._set_state(GuestState.RUNNING)

    async def _until_loaded(self, snap: snapshots.Snapshot) -> None:
        """Wait until QEMU has loaded the snapshot's machine (it then stays paused: -S)."""
        assert self._qmp is not None
        try:
            await self._until_exit(migration.incoming_done(self._qmp), self.boot_timeout,
                                   "loading the snapshot")
        except (GuestError, TimeoutError) as error:
            reason = error.message if isinstance(error, GuestError) else "it took too long"
            raise SnapshotError(
                f"guest {self.name} could not load snapshot {snap.name}: {reason}",
                log=self._log_text(), command=self.command,
                hint="The snapshot's files may be damaged (snap.verify() checks them all), or "
                "it was taken by another QEMU version: delete it and take a new one.",
            ) from None

    async def _pass_fd(self, fd: int, name: str) -> None:
        assert self._qmp is not None
        self._qmp.send_fd_scm(fd)
        await self._qmp_execute("getfd", {"fdname": name}, 10)

    async def _until_exit(self, awaitable: Any, timeout: float, doing: str) -> Any:
        """Await ``awaitable`` unless QEMU exits first: then raise with its log."""
        assert self._exited is not None
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task, self._exited}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):  # let it unwind (and close) before we go on
            await task
        if self._exited in done:
            raise self._launch_error(f"QEMU exited while {doing}.")
        raise TimeoutError(doing)

    async def _watch_events(self, client: QMPClient) -> None:
        async for event in client.events:
            name = str(event["event"])
            self._note_qmp({"time": time.time(), "from": "qemu", "event": name,
                                 "data": event.get("data", {})})
            if name == "GUEST_PANICKED":
                self._set_state(GuestState.CRASHED)
            elif name == "STOP" and self._state in (GuestState.RUNNING, GuestState.BOOTING):
                self._state_before_pause = self._state
                self._set_state(GuestState.PAUSED)
            elif name == "RESUME" and self._state == GuestState.PAUSED:
                self._set_state(self._state_before_pause)
            elif _starts_a_boot(name, self._state):
                self._set_state(GuestState.BOOTING)
            elif name == "SHUTDOWN":
                self._set_state(GuestState.STOPPING)
            elif name == "VSERPORT_CHANGE":
                data = event.get("data")
                self._on_agent_port(isinstance(data, dict) and bool(data.get("open")))

    def _note_qmp(self, entry: dict[str, Any]) -> None:
        """Keep a QMP message for the explorer widgets, and trace it when asked (kit.trace)."""
        self.qmp_log.append(entry)
        message = {k: v for k, v in entry.items() if k not in ("time", "to", "from")}
        logs.log_message(self._traffic, "->" if "to" in entry else "<-", "qemu", message)

    def _on_agent_port(self, is_open: bool) -> None:
        """The guest opened or closed the agent's port: the agent started or died."""
        self.agent_connected = is_open
        if is_open:
            self._agent_gone.clear()
        else:
            self._agent_gone.set()

    def _on_console_text(self, text: str) -> None:
        # A reboot the guest did by itself: it is running again once init says so.
        if READY_LINE in text and self._state == GuestState.BOOTING and self.ready_at is not None:
            self._set_state(GuestState.RUNNING)

    async def _qmp_execute(self, command: str, args: Mapping[str, Any], timeout: float) -> Any:
        assert self._qmp is not None
        self._note_qmp({"time": time.time(), "to": "qemu", "execute": command,
                             "arguments": dict(args)})
        try:
            reply = await asyncio.wait_for(
                self._qmp.execute(command, dict(args) or None), timeout)
        except ExecuteError as error:
            self._note_qmp({"time": time.time(), "from": "qemu", "error": error.error_class})
            raise QMPError(
                f"QEMU refused {command}: {error.error_class}: {error}",
                hint="Check the command name and arguments: g.qmp('query-commands') lists "
                "what this QEMU understands.",
            ) from None
        except TimeoutError:
            raise QMPError(f"QEMU did not answer {command} within {timeout:g} s.",
                           hint="The guest may be stopping; look at g.state.") from None
        except _LibraryQMPError as error:
            raise QMPError(f"the QMP connection failed during {command}: {error}",
                           hint="QEMU has probably exited; look at g.state and "
                           "g.exit_reason.") from None
        self._note_qmp({"time": time.time(), "from": "qemu", "return": reply})
        return reply

    async def _agent_execute(self, command: str, args: Mapping[str, Any], timeout: float) -> Any:
        """One agent request, abandoned at once if the guest stops running meanwhile."""
        assert self._agent is not None
        logs.log_message(self._traffic, "->", "agent", {"execute": command, "arguments": args})
        request = asyncio.ensure_future(self._agent.execute(command, dict(args) or None))
        stopped = asyncio.ensure_future(self._not_running.wait())
        agent_gone = asyncio.ensure_future(self._agent_gone.wait())
        done, _ = await asyncio.wait({request, stopped, agent_gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        agent_gone.cancel()
        if request in done:
            reply = self._agent_reply(command, request)
            logs.log_message(self._traffic, "<-", "agent", {"return": reply})
            return reply
        request.cancel()
        if stopped in done:
            raise GuestNotRunning(
                f"guest {self.name} became {self._state} while its agent was running {command}.",
                hint=_STATE_HINTS.get(self._state, "Look at g.state."),
            )
        if agent_gone in done:
            raise AgentError(
                f"the guest agent of {self.name} stopped inside the guest (it closed its port) "
                f"while running {command}.",
                hint="The guest OS is still up: g.reboot() brings the agent back, or type "
                "on the console: qemu-ga -m virtio-serial -p /dev/vport0p1 &",
            )
        raise AgentError(
            f"the guest agent did not answer {command} within {timeout:g} s: it is hung or "
            "stopped inside the guest, or the guest is overloaded.",
            hint="g.reboot() restarts the guest and its agent; g.console shows what the "
            "guest is doing.",
        )

    @staticmethod
    def _agent_reply(command: str, request: asyncio.Future[object]) -> Any:
        try:
            return request.result()
        except ExecuteError as error:
            raise AgentError(f"the guest agent refused {command}: {error}",
                             hint="g.agent('guest-info') lists the commands it supports.") from None
        except _LibraryQMPError as error:
            raise AgentError(f"the guest agent connection failed: {error}",
                             hint="Look at g.state; g.reboot() restarts the guest.") from None

    async def _agent_run(self, argv: list[str], timeout: float) -> RunResult:
        started = await self._agent_execute(
            "guest-exec", {"path": argv[0], "arg": argv[1:], "capture-output": True},
            agent_reply_timeout())
        guest_pid = started["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            status = await self._agent_execute("guest-exec-status", {"pid": guest_pid},
                                               agent_reply_timeout())
            if status["exited"]:
                return _run_result(argv, status)
            if time.monotonic() > deadline:
                await self._agent_execute(
                    "guest-exec", {"path": "/bin/kill", "arg": ["-9", str(guest_pid)]}, 5)
                raise GuestError(
                    f"{qemu.show(argv)} did not finish within {timeout:g} s, so it was killed.",
                    hint="Pass a larger timeout=..., or run it in the background in the "
                    "guest (add ' &').",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _stop(self, timeout: float) -> None:
        self._stop_requested = True
        assert self._exited is not None
        polite = self._state in (GuestState.RUNNING, GuestState.BOOTING)
        self._set_state(GuestState.STOPPING)
        if polite and self._agent is not None:
            await self._try(self._agent.execute("guest-shutdown"), 0.5)
            if await self._exited_within(timeout / 2):
                return await self._cleanup()
        if self._qmp is not None:
            await self._try(self._qmp.execute("quit"), 1.0)
            if await self._exited_within(2.0):
                return await self._cleanup()
        if self._process is not None:
            _kill_process_group(self._process)
        await self._wait_exit_and_cleanup()

    async def _wait_exit_and_cleanup(self) -> None:
        await self._exited_within(5.0)
        await self._cleanup()

    async def _exited_within(self, seconds: float) -> bool:
        assert self._exited is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), seconds)
        except TimeoutError:
            return False
        return True

    async def _try(self, awaitable: Any, timeout: float) -> None:
        """One step of a shutdown; a dying guest may not answer, or may hang up.

        The caller checks the process next, so a failure here is only noted.
        """
        try:
            await asyncio.wait_for(awaitable, timeout)
        except Exception as error:
            log.debug("guest %s: a shutdown step gave %s: %s", self.name,
                      type(error).__name__, error)

    async def _cleanup(self) -> None:
        """Close every channel; the process has exited.  Safe to call twice."""
        if self._state == GuestState.STOPPED:
            return
        current = asyncio.current_task()
        if self._channels is not None:
            await self._channels.close()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._qmp = self._agent = None
        self._tasks, self._channels, self._launched = [], None, None
        self._release_memory()
        self._cleanup_files()
        registry.remove(self)
        self._set_state(GuestState.STOPPED)

    # -- helpers -------------------------------------------------------------

    def _release_memory(self) -> None:
        """Let go of the snapshot memory this guest mapped (the last guest frees it)."""
        if self._ram_fd is not None and self.restored_from is not None:
            self.restored_from.release_memory()
        self._ram_fd = None

    def _set_state(self, state: GuestState) -> None:
        """Change state (on the kit loop only) and tell every listener."""
        if state != self._state:
            self._state = state
            if state in GUEST_RUNNING:
                self._not_running.clear()
            else:
                self._not_running.set()
            self.doors.on_state(state)
            registry.announce(self, state)

    def require_state(self, action: str, *allowed: GuestState) -> None:
        """Refuse ``action`` unless the guest is in one of the ``allowed`` states.

        The error names the state it is in, the states the action needs, and
        how to get there.
        """
        if self._state not in allowed:
            needed = " or ".join(str(state) for state in allowed)
            raise GuestNotRunning(
                f"cannot {action} guest {self.name}: it is {self._state}, and this needs "
                f"it {needed}.",
                hint=_STATE_HINTS.get(self._state, "Look at g.state."),
            )

    def _check_name_free(self) -> None:
        """Fail at once if the name is taken, here or in another process of this user."""
        other = registry.get(self.name)
        if other is not None and other is not self and not self.replace:
            raise NameInUse(
                f"a guest named {self.name!r} is already {other.state} in this notebook.",
                hint=f"Stop it first (kit.guests() lists them), choose another name, "
                f"or pass replace=True to kit.Guest({self.name!r}, ...).",
            )
        pid = _live_qemu_pid(self.name)
        if pid is not None and not self.replace and (other is None or other.pid != pid):
            raise NameInUse(
                f"a guest named {self.name!r} is running in another notebook or program "
                f"(QEMU pid {pid}).",
                hint="Stop it there, choose another name, or pass replace=True to stop it.",
            )

    def _take_name(self) -> None:
        """Stop whatever holds the name (only reached with replace=True) and make our folder."""
        other = registry.get(self.name)
        if other is not None and other is not self:
            other.stop()
        self._rundir = _claim_rundir(self.name)

    def _reset_for_start(self) -> None:
        self.console = Console()
        self.exit_reason = None
        self.ready_at = None
        self._stop_requested = False
        self._not_running = asyncio.Event()
        self._agent_gone = asyncio.Event()
        self.agent_connected = False
        self.qmp_log.clear()

    def _cleanup_files(self) -> None:
        if self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)

    def _log_text(self) -> str:
        if self._rundir is None:
            return ""
        try:
            return (self._rundir / "qemu.log").read_text(errors="replace")
        except OSError:
            return ""

    def _launch_error(self, message: str) -> LaunchError:
        code = self._process.poll() if self._process else None
        return LaunchError(
            f"guest {self.name} could not start: {message}",
            command=self.command, log=self._log_text() or self.console.tail(),
            exit_code=code, hint=_launch_hint(self._log_text()),
        )

    def _boot_timeout(self, what: str) -> BootTimeout:
        return BootTimeout(
            f"guest {self.name} did not finish booting within {self.boot_timeout:g} s: {what}.",
            log=self.console.tail(25), command=self.command,
            hint="Under software emulation a busy host boots slowly: close other guests or "
            "pass a larger boot_timeout=...; the console lines above show where it stopped.",
        )


_STATE_HINTS: dict[GuestState, str] = {
    GuestState.CREATED: "Start it first with g.start().",
    GuestState.STOPPED: "It has stopped; start it again with g.start().",
    GuestState.PAUSED: "It is paused: g.resume() first.",
    GuestState.CRASHED: "Its kernel crashed: g.reboot() starts it afresh.",
    GuestState.BOOTING: "It is still booting; wait a moment.",
    GuestState.STOPPING: "It is shutting down.",
}


def agent_reply_timeout() -> float:
    """How long a healthy agent may take to answer, on this host, now.

    A hung agent is told from a slow one only by waiting, and under software
    emulation a guest gets only its share of the host's CPUs: when more
    threads want to run than there are CPUs (load average above the CPU
    count), every guest slows down alike.  So the wait grows with that
    ratio, from AGENT_REPLY_TIMEOUT_S on a host with CPUs to spare (a hang
    is then reported within 2 s) up to AGENT_REPLY_TIMEOUT_MAX_S.
    """
    crowding = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(AGENT_REPLY_TIMEOUT_MAX_S, AGENT_REPLY_TIMEOUT_S * max(1.0, crowding))


def default_boot_timeout(arch: str) -> float:
    """The recipe's boot timeout for ``arch`` (longer for an emulated architecture)."""
    return images.load_recipe(arch).boot_timeout_s or DEFAULT_BOOT_TIMEOUT_S


def _require_image(arch: str, kernel: str) -> images.GuestImage:
    image = images.find_image(arch, kernel)
    if image is None:
        option = "" if kernel == "auto" else f" --kernel {kernel}"
        raise ImageError(
            f"the {arch} guest image ({kernel} kernel) is not built yet.",
            hint=f"Build it once with: python -m kit image --arch {arch}{option}"
                 "   (or run ./setup.sh)",
        )
    return image


def _live_qemu_pid(name: str) -> int | None:
    """The pid of a live QEMU of ours under this name, from its runtime folder."""
    pid = _read_pid(paths.runtime_dir() / name / "qemu.pid")
    return pid if pid is not None and _is_our_qemu(pid, name) else None


def _remove_abandoned_folders() -> None:
    """Remove what guests of a killed kernel left (their disk overlays above all)."""
    for folder in limits.abandoned_folders():
        log.info("removing %s: its guest and the kernel that started it have ended", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _claim_rundir(name: str) -> Path:
    """This guest's own folder, emptied of whatever an earlier guest left there."""
    pid = _live_qemu_pid(name)
    if pid is not None:  # another process's guest, and the caller asked to replace it
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    rundir = paths.runtime_dir() / name
    shutil.rmtree(rundir, ignore_errors=True)  # stale files of a killed kernel
    return paths.owner_only_dir(rundir)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_qemu(pid: int, name: str) -> bool:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(word.startswith(f"{name},process=".encode()) for word in words)


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)


def _kill_process_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _argv(command: str | Sequence[str]) -> list[str]:
    # A login shell (-l) reads the guest's /etc/profile, as the console's shell
    # does: a line behaves the same typed there or given here (wget, say).
    argv = ["/bin/sh", "-lc", command] if isinstance(command, str) else list(command)
    if not argv or not all(isinstance(word, str) for word in argv) or not argv[-1]:
        raise InvalidInput(
            f"{command!r} is not a command.",
            hint="Give a shell line such as 'uname -r', or a list such as ['uname', '-r'].",
        )
    if any("\0" in word for word in argv):
        raise InvalidInput("a command cannot contain a NUL character.",
                                    hint="Remove the \\0 from the command.")
    return argv


def _run_result(argv: list[str], status: Mapping[str, Any]) -> RunResult:
    def decode(key: str) -> str:
        return base64.b64decode(status.get(key, "")).decode("utf-8", "replace")

    code = status.get("exitcode")
    if code is None:  # killed by a signal
        code = 128 + int(status.get("signal", 0))
    return RunResult(argv, int(code), decode("out-data"), decode("err-data"))


def _starts_a_boot(event: str, state: str) -> bool:
    """A reset, or a crashed guest set going again, means booting from the start."""
    return (event == "RESUME" and state == GuestState.CRASHED) or (
        event == "RESET" and state not in (GuestState.STOPPING, GuestState.PAUSED)
    )


def _explain_exit(code: int, requested: bool) -> str:
    if requested:
        return "stopped by the kit"
    if code == 0:
        return "the guest powered itself off (QEMU exited normally)"
    if code < 0:
        return f"QEMU was killed from outside the kit ({signal.Signals(-code).name})"
    return f"QEMU exited with code {code}"


def _launch_hint(log: str) -> str:
    if "Could not set up host forwarding" in log:
        return "A forwarded host port is taken: choose another one."
    if "KVM" in log:
        return "KVM failed: run with KIT_ACCEL=tcg set, or check python -m kit doctor."
    if "Cannot lock pid file" in log:
        return "An old guest of this name is still running: kit.stop_all(), or replace=True."
    return "Read QEMU's own message above; python -m kit doctor checks this machine."
