"""Starting and stopping a class hub: every check first, then accounts, firewall, JupyterHub.

:func:`preflight` refuses, before anything is made or started, what would
make the hub fail later or run unsafely: not root, a bad class file, an
unknown user, the hub's port in use, no Node.js, no guest image, a kit that
the learners cannot read, no firewall.  Then :meth:`Hub.start` installs the
proxy if needed, publishes the images, makes the accounts, sets the
firewall, writes JupyterHub's configuration and starts it as a process of
its own, and returns once the hub answers through its proxy.
:meth:`Hub.stop` stops JupyterHub, which stops every learner's server
(and so their guests), then removes the firewall table.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from kit.core.errors import KitError, SetupError
from kit.guestos import images
from kit.hub import accounts, classfile, config, controlgroups, firewall, proxy, spawning
from kit.hub.classfile import ClassFile
from kit.hub.places import HubPlaces, kit_python, places
from kit.infrastructure.net import free_port

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 120.0  # JupyterHub stops each server: SIGINT, then up to 30 s each


@dataclass
class Hub:
    """One running JupyterHub for a class, started by :meth:`start`."""

    klass: ClassFile
    where: HubPlaces
    pid: int
    notes: list[str] = field(default_factory=list)  # what the instructor should know
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.klass.ip in ("0.0.0.0", "::") else self.klass.ip
        return f"http://{host}:{self.klass.port}/"

    @classmethod
    def start(cls, klass: ClassFile, where: HubPlaces | None = None,
              timeout: float = READY_TIMEOUT) -> Hub:
        """Check everything, then make what the class needs and start JupyterHub."""
        place = where or places()
        notes = preflight(klass, place)
        proxy.ensure()
        _make_folders(place)
        spawning.publish_images(place)
        made = accounts.ensure(klass, place)
        if klass.firewall:
            firewall.apply(klass.port, [member.uid for member in made.values()])
        process: subprocess.Popen[bytes] | None = None
        try:
            process = _launch(klass, place)
            hub = cls(klass, place, process.pid, notes, process)
            hub.wait_ready(timeout)
        except BaseException:
            _undo(klass, place, process)
            raise
        return hub

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _is_hub(self.pid)

    def wait_ready(self, timeout: float) -> None:
        """Return once the hub's API answers through the proxy; a hub that died says why."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise SetupError("JupyterHub stopped while starting.",
                                 log=_tail(self.where.log_file), hint=_log_hint(self.where))
            if _answers(f"{self.url}hub/api/"):
                return
            time.sleep(0.25)
        raise SetupError(f"JupyterHub did not answer on {self.url} within {timeout:.0f} s.",
                         log=_tail(self.where.log_file), hint=_log_hint(self.where))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop JupyterHub (it stops every server, and so every guest), then the firewall."""
        _terminate(self.pid, timeout, self.process)
        _undo(self.klass, self.where, None)


def _answers(url: str) -> bool:
    """JupyterHub's API answers with its version (through the proxy, so both are up)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return "version" in json.loads(reply.read())
    except (OSError, ValueError):
        return False


# -- checks -------------------------------------------------------------------------------


def preflight(klass: ClassFile, where: HubPlaces) -> list[str]:
    """Every check that needs nothing made; returns notes for the instructor."""
    if os.geteuid() != 0:
        raise SetupError("the class hub must run as root: it makes accounts and starts each "
                         "learner's server as that learner.",
                         hint="Run it with sudo (sudo ./setup.sh hub CLASSFILE).")
    accounts.check(klass)
    running = running_pid(where)
    if running is not None:
        raise SetupError(f"a hub already runs from {where.root} (pid {running}).",
                         hint=f"Stop it first: python -m kit hub stop {klass.path}")
    check_port_free(klass.ip, klass.port)
    proxy.node()
    notes = [_image_note(), *_systemd_note()]
    check_kit_readable()
    if klass.firewall:
        reason = firewall.missing_reason()
        if reason is not None:
            raise SetupError(
                f"the hub's firewall cannot be set: {reason}. Without it, every local user "
                "can reach every learner's port forwards.",
                hint="Install nftables (apt-get install -y nftables), or, if every learner may "
                "reach every other's guests, set firewall = false in [hub].")
    return notes


def check_port_free(ip: str, port: int) -> None:
    """Refuse a port something already listens on, naming what, if this host can tell."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise SetupError(f"{ip} is not an address of this host.",
                                 hint="Set [hub] ip to 127.0.0.1 or one of this host's "
                                 "addresses.") from None
            raise SetupError(f"port {port} on {ip} is in use{_user_of(port)}: the hub cannot "
                             "listen there.",
                             hint="Stop what uses it, or choose another port in the class "
                             "file's [hub] port.") from None


def check_kit_readable(user: str = "nobody") -> None:
    """The learners' servers run this Python and import the kit: can another user?

    Tried for real, as ``nobody``: a checkout under ``/root`` (mode 0700) or a
    home closed to others passes every other check and then fails each
    learner's server after a minute of waiting.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return
    python = str(kit_python())
    command = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
               "--clear-groups", "env", "-i", "PATH=/usr/bin:/bin", python, "-c",
               "import kit.hub.learner, jupyterhub.singleuser"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          cwd="/")
    if done.returncode != 0:
        raise SetupError(
            f"other users cannot run the kit's Python ({python}): the learners' servers "
            "would fail.", log=done.stderr, command=command, exit_code=done.returncode,
            hint=f"Put the kit where every user can read it (a checkout under /opt or /srv, "
            f"not /root), or chmod o+rx each folder above {Path(python).parent.parent}; "
            "check with: sudo -u nobody " + python + " -c 'import kit'")


def _image_note() -> str:
    image = images.find_image("x86_64")
    if image is None:
        raise SetupError("no guest image is built yet: every learner's first guest would "
                         "build one, for minutes.",
                         hint="Build it first: python -m kit image (./setup.sh does).")
    return f"guests boot {image.kernel_summary()}"


def _systemd_note() -> list[str]:
    if config.systemd_runs():
        return ["each server runs in a systemd unit with its memory and CPU limits"]
    if controlgroups.available():
        return ["no systemd here: each server runs in a control group the hub makes, with "
                "its memory and CPU limits, and under the kit's own caps"]
    return ["no systemd, and no control group can be made here: the kit's own caps "
            "(guests, their memory) hold, but nothing limits a learner's CPU time"]


def _user_of(port: int) -> str:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections("tcp"):
            if (conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
                    and conn.pid):
                return f" (by {psutil.Process(conn.pid).name()}, pid {conn.pid})"
    return ""


# -- the process ------------------------------------------------------------------------------


def _make_folders(where: HubPlaces) -> None:
    spawning.ensure_dir(where.root, 0, 0, 0o755)
    spawning.ensure_dir(where.state, 0, 0, 0o700)
    spawning.ensure_dir(where.run, 0, 0, 0o755)


def _launch(klass: ClassFile, where: HubPlaces) -> subprocess.Popen[bytes]:
    hub_port, api_port = _two_free_ports()
    config_file = config.write(klass, where, hub_port, api_port)
    command = [str(kit_python()), "-m", "jupyterhub", "-f", str(config_file)]
    with where.log_file.open("ab") as out:
        out.write(f"\n--- kit hub start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        out.flush()
        return subprocess.Popen(command, cwd=where.state, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def running_pid(where: HubPlaces) -> int | None:
    """The pid of a JupyterHub this folder's hub runs, if one is alive."""
    try:
        pid = int(where.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_hub(pid) else None


def _is_hub(pid: int) -> bool:
    try:
        return "jupyterhub" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_is_hub(pid) if process is None
                                           else process.poll() is None):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # the hub and its proxy, if they did not stop
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def _undo(klass: ClassFile, where: HubPlaces, process: subprocess.Popen[bytes] | None) -> None:
    """What a start made that must not outlive the hub: the process, the firewall, groups."""
    if process is not None and process.poll() is None:
        _terminate(process.pid, 30, process)
    if klass.firewall:
        with contextlib.suppress(KitError, OSError):
            firewall.remove(klass.port)
    controlgroups.remove_hub(config.group_name(klass))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _log_hint(where: HubPlaces) -> str:
    return f"Read the hub's log, {where.log_file}, for JupyterHub's own message."


# -- the commands ----------------------------------------------------------------------------


def serve(class_file: Path, detach: bool = False) -> int:
    """``python -m kit hub serve``: start the hub; unless ``detach``, until Ctrl-C."""
    klass = classfile.read(class_file)
    hub = Hub.start(klass)
    _say_started(hub)
    if detach:
        print(f"the hub runs in the background (pid {hub.pid}); stop it with: "
              f"python -m kit hub stop {class_file}")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while hub.alive():
            time.sleep(1)
        print(f"JupyterHub stopped by itself; see {hub.where.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the hub and every learner's server (and guests)...")
        return 0
    finally:
        hub.stop()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a service manager) stops the hub the way Ctrl-C does."""
    raise KeyboardInterrupt


def stop(class_file: Path) -> int:
    """``python -m kit hub stop``: stop a hub started with ``serve --detach``."""
    klass = classfile.read(class_file)
    where = places()
    pid = running_pid(where)
    if pid is None:
        print(f"no hub runs from {where.root}")
        _undo(klass, where, None)
        return 0
    Hub(klass, where, pid).stop()
    print(f"the hub (pid {pid}) and its servers are stopped")
    return 0


def check(class_file: Path) -> int:
    """``python -m kit hub check``: every check of a start, and what it would make."""
    klass = classfile.read(class_file)
    where = places()
    notes = preflight(klass, where)
    print(f"class file {class_file}: instructor {klass.instructor}, "
          f"{len(klass.learners)} learners")
    for name in klass.members:
        limits = klass.limits_for(name)
        print(f"  {name}: {limits.guests} guests, {limits.guest_memory_mb} MiB for guests, "
              f"{limits.cpus:g} CPUs, {limits.server_memory_mb} MiB for the whole server")
    program = proxy.installed()
    print(f"proxy: {program or 'not installed yet (the first start installs it with npm)'}")
    print(f"the hub would listen on http://{klass.ip}:{klass.port}/, its files in {where.root}")
    for note in notes:
        print(note)
    return 0


def _say_started(hub: Hub) -> None:
    print(f"the class hub is ready: {hub.url} (log: {hub.where.log_file})")
    for note in hub.notes:
        print(f"  {note}")
    first = accounts.first_passwords(hub.where.passwords_file)
    if first:
        print(f"  first passwords of the accounts it made: {hub.where.passwords_file} "
              "(root only; hand them out, learners change them with passwd in a terminal)")
