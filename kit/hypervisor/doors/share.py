"""The shared folder: one host folder, mounted in the guest at ``/mnt/share`` over 9p.

It is declared before the start (a ``microvm`` has no hotplug) and mounted
when the door opens; read-only unless asked otherwise, on both sides (QEMU's
``-virtfs ...,readonly=on`` and the guest's ``mount -o ro``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kit.core.errors import GuestError, InvalidInput
from kit.core.state import UNMOUNTS, GuestState
from kit.hypervisor import qemu
from kit.hypervisor.doors.base import Door, Opening

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

SHARE_TAG = "share"
SHARE_MOUNT = "/mnt/share"
# Folders whose content belongs to the system, never to a lesson: they (and
# anything inside them) cannot be shared.  /var/tmp is a scratch folder like /tmp.
SYSTEM_FOLDERS = tuple(Path(p) for p in (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root/.ssh", "/run", "/sbin", "/srv", "/sys", "/usr", "/var"))
SCRATCH_FOLDERS = (Path("/var/tmp"),)


def check_shared_folder(folder: object) -> Path:
    """The folder to share, symlinks resolved; refused if sharing it would expose too much.

    The guest gets the folder and everything below it, so the folder must be
    a real directory that holds no system files and not the whole home.
    """
    if not isinstance(folder, str | os.PathLike) or not str(folder):
        raise InvalidInput(f"shared_folder={folder!r} is not a folder path.",
                           hint="Give a folder as text, e.g. shared_folder='lesson-files'.")
    given = Path(folder).expanduser()
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput(f"the folder {str(given)!r} does not exist.",
                           hint="Create it first (os.makedirs), or check the spelling.") from None
    if not resolved.is_dir():
        raise InvalidInput(f"{str(resolved)!r} is a file, not a folder.",
                           hint="Share the folder that holds it instead.")
    _refuse_too_wide(resolved)
    if "\n" in str(resolved):
        raise InvalidInput("a shared folder's path cannot contain a line break.",
                           hint="Rename the folder.")
    return resolved


def _refuse_too_wide(folder: Path) -> None:
    home = Path.home().resolve()
    if folder == Path("/") or home.is_relative_to(folder):
        raise InvalidInput(
            f"sharing {str(folder)!r} would give the guest your whole home folder "
            "(or the whole disk).",
            hint="Make a folder just for the guest, e.g. os.makedirs('share'), and share that.")
    hidden = _hidden_folder_of_home(folder, home)
    if hidden is not None:
        raise InvalidInput(
            f"{str(folder)!r} is in {str(hidden)!r}, a hidden settings folder of your home: "
            "it may hold keys, tokens and passwords.",
            hint="Make a folder just for the guest and copy into it what it should see.")
    system = next((s for s in SYSTEM_FOLDERS if folder.is_relative_to(s)), None)
    if system is not None and not any(folder.is_relative_to(s) for s in SCRATCH_FOLDERS):
        raise InvalidInput(
            f"{str(folder)!r} is a system folder (inside {system}): a guest may not see it.",
            hint="Share a folder of your own, e.g. one in your home or in /tmp.")


def _hidden_folder_of_home(folder: Path, home: Path) -> Path | None:
    """The hidden folder of the home (``~/.ssh``, ``~/.config``) that holds ``folder``, if any.

    Not only the folder itself: ``~/.ssh/keys`` or ``~/.config/gh`` hold the
    same secrets one level down.
    """
    if not folder.is_relative_to(home):
        return None
    first = folder.relative_to(home).parts[:1]
    return home / first[0] if first and first[0].startswith(".") else None


def check_flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be True or False, not {value!r}.",
                           hint=f"For example {what}=True.")
    return value


class ShareDoor(Door):
    """The guest's shared folder (at most one), declared with ``kit.Guest(shared_folder=...)``."""

    kind = "share"

    def __init__(self, guest: Guest, folder: object = None, writable: object = False) -> None:
        super().__init__(guest)
        self.folder = None if folder is None else check_shared_folder(folder)
        self.writable = check_flag("shared_writable", writable)
        self.is_open = False

    @classmethod
    def for_guest(cls, guest: Guest, options: Mapping[str, object]) -> ShareDoor:
        return cls(guest, options.get("shared_folder"), options.get("shared_writable", False))

    def check_before_start(self) -> None:
        """Check the folder again: since it was declared it may have gone, or become a symlink."""
        if self.folder is not None:
            self.folder = check_shared_folder(self.folder)

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        if self.folder is None:
            return spec
        return dataclasses.replace(spec, share=qemu.ShareSpec(self.folder, self.writable,
                                                              SHARE_TAG))

    def on_state(self, state: GuestState) -> None:
        """A reboot or a stop unmounts everything: the share is closed again."""
        if state in UNMOUNTS:
            self.is_open = False

    def openings(self) -> tuple[Opening, ...]:
        if self.folder is None:
            return ()
        mode = "writable" if self.writable else "read-only"
        where = f"host {self.folder} → guest {SHARE_MOUNT} ({mode})"
        return (Opening(self.kind, SHARE_TAG, self.is_open, str(self.folder), SHARE_MOUNT,
                        f"mounted: {where}" if self.is_open else f"not mounted: {where}",
                        guest_can_write=self.writable),)

    def open(self) -> None:
        if self.folder is None:
            raise GuestError(
                f"guest {self.guest.name} has no shared folder.",
                hint=f"Declare it before the start: kit.Guest({self.guest.name!r}, "
                "shared_folder='some-folder'), then start the guest again.")
        self.guest.require_state("open the shared folder of", GuestState.RUNNING)
        if self.is_open:
            return
        options = "trans=virtio,version=9p2000.L" + ("" if self.writable else ",ro")
        try:
            self._in_guest(f"mkdir -p {SHARE_MOUNT} && "
                           f"mount -t 9p -o {options} {SHARE_TAG} {SHARE_MOUNT}",
                           "mount the shared folder", "Look at g.run('dmesg | tail') for why.")
        except GuestError as error:
            if "No such device" not in error.message:
                raise
            raise GuestError(
                f"the kernel of guest {self.guest.name} cannot read shared folders: it has "
                "no 9p file system (Debian's cloud kernel, used when the kit's own kernel "
                "could not be built, leaves it out).",
                hint="Build the kit's own kernel (python -m kit image, with KIT_KERNEL unset), "
                "which has 9p built in; or copy files in with g.agent('guest-file-write').",
            ) from None
        self.is_open = True
        log.info("guest %s: shared folder %s mounted", self.guest.name, self.folder)
        self.announce()

    def close(self) -> None:
        if not self.is_open:
            return
        self.guest.require_state("close the shared folder of", GuestState.RUNNING)
        self._in_guest(f"umount {SHARE_MOUNT}", "unmount the shared folder",
                       f"A program in the guest may be using it (its working folder or an "
                       f"open file in {SHARE_MOUNT}): end it, then try again.")
        self.is_open = False
        log.info("guest %s: shared folder unmounted", self.guest.name)
        self.announce()

    def _in_guest(self, line: str, doing: str, hint: str) -> None:
        result = self.guest.run(line, timeout=10)
        if not result.ok:
            raise GuestError(f"the guest could not {doing}: {str(result).strip()}",
                             hint=hint, command=result.command)
