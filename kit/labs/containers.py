"""Containers without a daemon: the guest's own userland in Linux namespaces.

A container is not a machine: it is a group of ordinary host processes that
the host's kernel shows a private view of the system (namespaces).  Here the
userland is the very busybox tree the guests boot (the guest image's
initramfs, unpacked once into a cached folder), started with::

    unshare [--user --map-root-user] --pid --fork --kill-child=SIGKILL --mount
            --uts --ipc --net --mount-proc --root=ROOTFS /bin/sh -c ...

so a lesson compares like with like: the same programs, once under their own
kernel in QEMU, once on the host's kernel.  No daemon (Docker, Podman) is
involved.  Root makes the namespaces directly, so as root containers run even
where user namespaces are refused (a chroot, Docker's seccomp profile, Ubuntu
24.04's AppArmor); anyone else needs a user namespace (``--user``), in which
they are root.  :func:`kit.infrastructure.namespaces.refusal` says when a host
refuses, and why.

    c = kit.labs.containers.Container("c1")
    c.start(); c.run("uname -r"); c.pid; c.stop()      # or: with Container("c1") as c:

Nothing outlives its notebook: ``setpriv --pdeathsig KILL`` kills ``unshare``
when the Python process dies, ``--kill-child`` then kills the container's PID 1,
and the kernel kills every process of a PID namespace whose PID 1 dies.
:func:`stop_all` runs at interpreter exit for the orderly case.

``KIT_NO_USER_NAMESPACES=1`` makes the kit behave as on a host that refuses its
containers (it refuses to start them), so the refusal can be seen and tested
on any host.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from kit.core import paths, validate
from kit.core.errors import KitError, SetupError
from kit.guestos import images
from kit.hypervisor import qemu
from kit.infrastructure import namespaces

log = logging.getLogger(__name__)

NO_USERNS_ENV = namespaces.NO_USERNS_ENV
READY_WORD = "KIT-CONTAINER-READY"
FOREVER_S = 2**31 - 1

_lock = threading.Lock()
_live: dict[str, Container] = {}


class ContainerError(KitError):
    """A container could not start, run a command or stop."""


@dataclass(frozen=True)
class ContainerResult:
    """What one command in a container printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# --- the userland ---------------------------------------------------------------------------


def rootfs(image: images.GuestImage | None = None) -> Path:
    """The guest image's initramfs unpacked into a cached folder (made once per image)."""
    image = image or images.find_image()
    if image is None:
        raise SetupError("there is no guest image to take the container's userland from.",
                         hint="Build it first: python -m kit build (or run lesson 0).")
    folder = paths.cache_dir() / "rootfs" / image.key
    if (folder / "bin" / "busybox").exists():
        return folder
    if shutil.which("cpio") is None:
        raise SetupError("the cpio program is missing: it unpacks the container's userland.",
                         hint="Install it: sudo apt-get install cpio")
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with open(image.initramfs, "rb") as archive:
        subprocess.run(["cpio", "-idm", "--no-absolute-filenames", "--quiet"], stdin=archive,
                       cwd=partial, stderr=subprocess.DEVNULL, check=False)
    if not (partial / "bin" / "busybox").exists():
        raise SetupError(f"unpacking {image.initramfs} gave no bin/busybox.",
                         hint="Rebuild the guest image: python -m kit build --force")
    (partial / "proc").mkdir(exist_ok=True)
    try:
        partial.rename(folder)
    except OSError:  # another process unpacked it first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


# --- one container -------------------------------------------------------------------------


class Container:
    """A busybox userland in its own namespaces, on the host's kernel."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        """``root``: the userland folder; None for the guest image's (:func:`rootfs`)."""
        self.name = validate.check_name(name)
        self.root = root
        self.command: list[str] = []
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self._process: subprocess.Popen[str] | None = None
        self._init_pid: int | None = None

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.state}>"

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state(self) -> str:
        """created, running or stopped."""
        if self._process is None:
            return "created" if self.started_at is None else "stopped"
        return "running" if self._process.poll() is None else "stopped"

    @property
    def pid(self) -> int | None:
        """The host's PID of the container's first process (its PID 1 inside)."""
        return self._init_pid if self.state == "running" else None

    @property
    def last_pid(self) -> int | None:
        """The first process's host PID, kept after it ended (to check that it is gone)."""
        return self._init_pid

    @property
    def start_seconds(self) -> float | None:
        """From the ``unshare`` process start to the container's PID 1 ready."""
        if self.started_at is None or self.ready_at is None:
            return None
        return self.ready_at - self.started_at

    def start(self, timeout: float = 10.0) -> Container:
        """Start PID 1 (a busybox sleeping forever, with the container's hostname)."""
        if self.state == "running":
            raise ContainerError(f"container {self.name} is already running.",
                                 hint="Stop it first (c.stop()), or make a new Container.")
        namespaces.check()
        with _lock:
            if self.name in _live:
                raise ContainerError(f"a container named {self.name} is already running.",
                                     hint="Choose another name, or stop that one first.")
            _live[self.name] = self
        try:
            self._launch(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("container %s started", self.name)
        return self

    def run(self, command: str, timeout: float = 10.0) -> ContainerResult:
        """Run a shell command inside (all of the container's namespaces, its root)."""
        if self.pid is None:
            raise ContainerError(f"container {self.name} is not running.",
                                 hint="Start it first: c.start()")
        argv = ["nsenter", f"--target={self.pid}", *enter_user_namespace(self.pid), "--mount",
                "--uts", "--ipc", "--net", "--pid", "--root", "--wd", "/bin/sh", "-c", command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ContainerError(f"{command!r} did not finish in {timeout:g} s in container "
                                 f"{self.name}.", hint="Give it a larger timeout, or stop the "
                                 "container.", command=argv) from None
        return ContainerResult(done.returncode, done.stdout, done.stderr)

    def processes(self) -> list[psutil.Process]:
        """Every host process of the container: ``unshare`` and all it started."""
        if self._process is None or self._process.poll() is not None:
            return []
        try:
            top = psutil.Process(self._process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory_mb(self) -> tuple[float, float]:
        """(RSS, USS) of all the container's processes together, in MiB."""
        rss = uss = 0.0
        for process in self.processes():
            try:
                info = process.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss / 2**20
            uss += info.uss / 2**20
        return rss, uss

    def stop(self) -> None:
        """Kill every process of the container and wait until they are gone."""
        process, self._process = self._process, None
        with _lock:
            if _live.get(self.name) is self:
                del _live[self.name]
        if process is None:
            return
        victims = [self._init_pid] if self._init_pid else []
        for pid in [*victims, process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        self._process = process  # keeps "stopped" (not "created") as its state
        if self._init_pid:
            _wait_gone(self._init_pid, 5)

    # -- starting ------------------------------------------------------------------

    def _launch(self, timeout: float) -> None:
        self.root = self.root or rootfs()
        script = (f"hostname {self.name}; echo {READY_WORD}; "
                  f"exec /bin/busybox sleep {FOREVER_S}")
        self.command = [*qemu.parent_death_wrapper(), "unshare", *namespaces.user_flags(),
                        "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--uts", "--ipc",
                        "--net", "--mount-proc", f"--root={self.root}", "/bin/sh", "-c", script]
        self.ready_at = None
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None and self._process.stdout is not None
        waiting, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if waiting else ""  # PID 1 prints it
        self.ready_at = time.monotonic()
        if READY_WORD not in line:
            error = self._process.stderr.read() if self._process.stderr else ""
            raise ContainerError(f"container {self.name} did not start: "
                                 f"{error.strip() or 'no output'}.", command=self.command,
                                 hint="Check that unshare (util-linux) works here: " + " ".join(
                                     ["unshare", *namespaces.user_flags(), "--pid", "--fork",
                                      "true"]) + " (python -m kit doctor says more)")
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._init_pid = self._find_init(timeout)

    def _find_init(self, timeout: float) -> int:
        """The host PID of the forked child of ``unshare``: PID 1 inside."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = psutil.Process(self._process.pid).children()
            if children:
                return int(children[0].pid)
            time.sleep(0.002)
        raise ContainerError(f"container {self.name}'s first process was not found.",
                             hint="Stop it and start again.")


def enter_user_namespace(pid: int) -> list[str]:
    """``nsenter``'s options to enter process ``pid``'s user namespace, if it has its own.

    A container started as root has none (it shares the host's), and ``nsenter``
    refuses to enter the user namespace it is already in.  In one of its own,
    ``--preserve-credentials`` keeps our uid, which ``--map-root-user`` mapped to
    root: nsenter would otherwise call setgroups, which that mapping forbids.
    """
    enter = ["--user", "--preserve-credentials"]
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return enter  # unreadable: another user's, so its own
    return [] if theirs == os.readlink("/proc/self/ns/user") else enter


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


# --- all of them ----------------------------------------------------------------------------


def containers() -> list[Container]:
    """The containers this process started and has not stopped."""
    with _lock:
        return list(_live.values())


def stop_all() -> None:
    """Stop every container this process started."""
    for container in reversed(containers()):
        container.stop()


def leftover_processes() -> list[psutil.Process]:
    """Live host processes of kit containers, whoever started them: should be none.

    Two kinds: an ``unshare`` started by the kit (its command line names the
    ready word) and any process whose root folder is a kit container's userland.
    """
    userlands = str(paths.cache_dir() / "rootfs") + "/"
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        words = process.info["cmdline"] or []
        if any(READY_WORD in word for word in words) or _root_of(process.pid).startswith(
                userlands):
            found.append(process)
    return found


def _root_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/root") + "/"
    except OSError:
        return ""


atexit.register(stop_all)
