"""Can this host give a process namespaces of its own, the stuff containers are made of?

Making namespaces needs a privilege (``CAP_SYS_ADMIN``).  Root has it, so the
kit run as root asks only for the namespaces it wants::

    unshare --pid --fork --mount --uts --ipc --net ...

Anyone else first makes a *user namespace*, in which they are root, and the
others inside it (``unshare --user --map-root-user ...``).  Some hosts refuse
user namespaces: the kernel refuses them to a process in a chroot, Docker's
default seccomp profile (Binder runs notebooks under it) blocks them, and
Ubuntu 24.04's AppArmor default allows them to listed programs only.  As root
the kit's containers still run there; as anyone else they cannot.

:func:`refusal` says why this host refuses the kit's containers, or None: it
reads the kernel's switches each time and tries one real ``unshare`` once per
process, because the kernel can refuse with every switch on (chroot, seccomp).
The doctor and lesson 8 both ask it, so they always agree.

``KIT_NO_USER_NAMESPACES=1`` makes the kit behave as on a host that refuses
its containers, whoever runs it, so the refusal can be seen and tested anywhere.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kit.core.errors import SetupError

log = logging.getLogger(__name__)

PROC_SYS = Path("/proc/sys")
NO_USERNS_ENV = "KIT_NO_USER_NAMESPACES"
USER_FLAGS = ("--user", "--map-root-user")  # a user namespace, in which we are root
PLAIN_FLAGS = ("--pid", "--fork", "--mount", "--uts", "--ipc", "--net")
CAP_SYS_ADMIN = 21  # its bit in /proc/self/status's CapEff
PROBE_TIMEOUT_S = 10.0
OWN_HOST = "a host or virtual machine of its own"


@dataclass(frozen=True)
class Refusal:
    """Why this host refuses the kit's containers, and what would change that."""

    why: str  # plain words, no final full stop
    what_to_do: str  # whole sentences

    def error(self) -> SetupError:
        return SetupError(f"containers cannot start here: {self.why}.",
                          hint=f"{self.what_to_do} The rest of the kit (virtual machines) works "
                          "without them.")


def needs_user_namespace(uid: int | None = None) -> bool:
    """True unless the kit runs as root: only root may make namespaces without one."""
    return (os.geteuid() if uid is None else uid) != 0


def user_flags(uid: int | None = None) -> list[str]:
    """The ``unshare`` options of the user namespace: none as root, who needs none."""
    return list(USER_FLAGS) if needs_user_namespace(uid) else []


def refusal(proc_sys: Path = PROC_SYS, uid: int | None = None) -> Refusal | None:
    """Why the kit's containers cannot run here for ``uid`` (default: this process), or None.

    The real ``unshare`` is tried only for this process's own user: another
    uid's answer comes from the switches alone.
    """
    if os.environ.get(NO_USERNS_ENV) == "1":
        return Refusal(f"{NO_USERNS_ENV}=1 is set (the kit behaves as on a host that refuses "
                       "its containers)", f"Unset {NO_USERNS_ENV} to use this host's real "
                       "settings.")
    user = needs_user_namespace(uid)
    if user:
        switched_off = switch_refusal(proc_sys)
        if switched_off is not None:
            return switched_off
    if uid is not None and uid != os.geteuid():
        return None
    return _probe(user)


def check(proc_sys: Path = PROC_SYS, uid: int | None = None) -> None:
    """Raise :class:`SetupError` saying why and what to do, if containers cannot run here."""
    found = refusal(proc_sys, uid)
    if found is not None:
        raise found.error()


def switch_refusal(proc_sys: Path = PROC_SYS) -> Refusal | None:
    """The kernel's switches that stop a user other than root making user namespaces.

    ``user/max_user_namespaces`` (0 turns them off), Debian's
    ``kernel/unprivileged_userns_clone`` and Ubuntu's
    ``kernel/apparmor_restrict_unprivileged_userns``.  Root needs no user
    namespace, so none of them concerns root.
    """
    as_root = "Run the kit as root (root needs no user namespace), or an administrator can run:"
    if _read_int(proc_sys / "user/max_user_namespaces", 1) == 0:
        return Refusal("user namespaces are off on this host (user.max_user_namespaces is 0)",
                       f"{as_root} sysctl -w user.max_user_namespaces=15000")
    if _read_int(proc_sys / "kernel/unprivileged_userns_clone", 1) == 0:
        return Refusal("this host allows user namespaces to root only "
                       "(kernel.unprivileged_userns_clone is 0)",
                       f"{as_root} sysctl -w kernel.unprivileged_userns_clone=1")
    if _read_int(proc_sys / "kernel/apparmor_restrict_unprivileged_userns", 0) == 1:
        return Refusal("AppArmor allows user namespaces to listed programs only, as Ubuntu "
                       "24.04 does (kernel.apparmor_restrict_unprivileged_userns is 1)",
                       f"{as_root} sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
    return None


@cache
def _probe(user: bool) -> Refusal | None:
    """Try the namespaces once (a few milliseconds): the kernel's word is the last one."""
    command = ["unshare", *(USER_FLAGS if user else ()), *PLAIN_FLAGS, "true"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return Refusal("the unshare program is missing",
                       "Install it: sudo apt-get install util-linux")
    except (OSError, subprocess.TimeoutExpired) as error:
        return Refusal(f"unshare could not run ({error})", "Try it in a terminal: "
                       f"{' '.join(command)}")
    if done.returncode == 0:
        return None
    said = done.stderr.strip() or f"exit code {done.returncode}"
    found = _diagnose(user, said)
    log.info("containers cannot run here: %s (%s)", found.why, " ".join(command))
    return found


def _diagnose(user: bool, said: str) -> Refusal:
    """Name the likely cause of a refusal the switches did not explain."""
    elsewhere = f"or run the kit on {OWN_HOST}."
    if user and in_chroot():
        return Refusal("this process runs in a chroot, and the kernel refuses user namespaces "
                       "to a process in a chroot", "Run the kit as root (root needs no user "
                       f"namespace), {elsewhere}")
    if not user and not root_is_mount_point():
        return Refusal("this process runs in a chroot whose folder is not a mount point, so "
                       "unshare cannot keep the container's mounts (its /proc) from leaking "
                       "out to the host", "Make the folder a mount point before entering it "
                       "(as root, outside the chroot: mount --bind DIR DIR, then chroot DIR), "
                       f"{elsewhere}")
    if not user and not _has_capability(CAP_SYS_ADMIN):
        return Refusal("the kit runs as root but without the right to make namespaces "
                       "(CAP_SYS_ADMIN), as in a Docker container", "Start that container "
                       f"with --cap-add SYS_ADMIN --security-opt seccomp=unconfined, {elsewhere}")
    if _status_field("Seccomp") == "2":
        return Refusal("a seccomp filter stops this process making namespaces, as Docker's "
                       f"default profile does (Binder runs notebooks under it); unshare said: "
                       f"{said}", "Start the container the kit runs in with --security-opt "
                       f"seccomp=unconfined, {elsewhere}")
    causes = "a chroot, a seccomp filter or a security policy (AppArmor, SELinux)"
    return Refusal(f"the kernel refused to make namespaces although its switches allow them "
                   f"(unshare said: {said}); {causes} can do that",
                   f"Run the kit as root, {elsewhere}" if user
                   else f"Run the kit on {OWN_HOST}.")


def in_chroot() -> bool:
    """True if this process's root folder is not PID 1's, as far as this user can tell.

    A root folder that is no mount point is a chroot's; otherwise only a
    user allowed to look at PID 1's root (root) can compare the two.
    """
    if not root_is_mount_point():
        return True
    try:
        ours, first = os.stat("/"), os.stat("/proc/1/root")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) != (first.st_dev, first.st_ino)


def root_is_mount_point(mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Whether ``/`` is a mount point (always, outside a chroot; True if unreadable).

    ``unshare --mount`` makes the mounts under ``/`` private, so that the
    container's own ``/proc`` stays its own; the kernel refuses that where
    ``/`` is a plain folder, as in a chroot made with a bare ``chroot DIR``.
    """
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return True
    return any(len(fields) > 4 and fields[4] == "/" for fields in map(str.split, lines))


def _has_capability(bit: int) -> bool:
    try:
        return bool(int(_status_field("CapEff"), 16) >> bit & 1)
    except ValueError:
        return True  # unknown: let the generic words speak


def _status_field(name: str) -> str:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith(f"{name}:")), "")


def _read_int(path: Path, default: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default
