"""What the hub does, as root, for one member's server: before it starts, after it stops.

Before (JupyterHub's ``pre_spawn_hook``):

* the member's runtime folder, made by root under the hub's folder and
  given to them: no other user can make it first and squat their sockets;
* a learner's progress folder and file in the drop folder
  (:mod:`kit.hub.progress`);
* their server's environment: the kit's caps from the class file
  (``KIT_MAX_GUESTS``, ``KIT_MAX_GUEST_MEMORY_MB``), where their runtime
  folder, progress file, lessons and the hub's images are, and a PATH
  without root's folders; the instructor's also lists the class's learners
  (for the class view, :mod:`kit.hub.room`);
* their limits for the spawner: SystemdSpawner's unit, or a control group
  the hub makes (:mod:`kit.hub.controlgroups`) for LocalProcessSpawner.

Root never writes in a member's home: a learner controls what is there (a
symbolic link where root expects a folder would make root change a system
file).  What must be in the home (lesson copies, links to the images) the
member's own server makes, as them (:mod:`kit.hub.learner`).  In the folders
root made for them, the one file root touches is opened without following
links.

After (``post_stop_hook``): every process left in their control group is
killed, and so is any guest their records still name: stopping a member's
server stops their guests, even a guest of a kernel that outlived it.

The hub's built guest images are published once per start into the hub's
``images/`` folder (:func:`publish_images`): hard links to root's cached
files, read-only to everyone else.  The images take minutes to build; no
learner builds their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import stat
import sys
from pathlib import Path

import psutil

from kit.core.errors import SetupError
from kit.guestos import images
from kit.hub import accounts, controlgroups
from kit.hub.accounts import Account
from kit.hub.classfile import ClassFile
from kit.hub.places import HubPlaces
from kit.infrastructure.limits import RECORD
from kit.lesson import progress as lesson_progress
from kit.lesson.workspace import DEFAULT_FOLDER

log = logging.getLogger(__name__)

LEARNER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
#: The images the lessons boot: x86-64 with the kit's kernel and with Debian's
#: (lesson 6), and the aarch64 guest (lesson 2); each if the hub has it built.
IMAGES: tuple[tuple[str, str | None], ...] = (("x86_64", None), ("x86_64", "debian"),
                                              ("aarch64", None))
PROGRESS_MODE = 0o640


def environment(member: Account, klass: ClassFile, where: HubPlaces) -> dict[str, str]:
    """The environment of a member's server (and so of their kernels)."""
    limits = klass.limits_for(member.name)
    env = {
        "PATH": f"{Path(sys.executable).parent}:{LEARNER_PATH}",
        "KIT_MAX_GUESTS": str(limits.guests),
        "KIT_MAX_GUEST_MEMORY_MB": str(limits.guest_memory_mb),
        "KIT_RUNTIME_DIR": str(where.runtime(member.name)),
        "KIT_LESSONS_DIR": str(lessons_folder(member)),
        "KIT_HUB_DIR": str(where.root),
    }
    if member.name != klass.instructor:
        env["KIT_PROGRESS_FILE"] = str(where.progress_file(member.name))
    else:  # the class view lists every learner, even one who never logged in
        env["KIT_CLASS_LEARNERS"] = " ".join(klass.learners)
    return env


def lessons_folder(member: Account) -> Path:
    return member.home / DEFAULT_FOLDER


def prepare(member: Account, klass: ClassFile, where: HubPlaces) -> None:
    """Everything a member's server needs outside their home before it starts (idempotent)."""
    ensure_dir(where.run, 0, 0, 0o755)
    ensure_dir(where.runtime(member.name), member.uid, member.gid, 0o700)
    if member.name != klass.instructor:
        prepare_progress(member, accounts.group_id(klass.group), where)


def prepare_progress(member: Account, group: int, where: HubPlaces) -> Path:
    """The learner's folder in the drop folder, and their progress file, readable by ``group``.

    The drop folder lets learners pass (to reach their own folder) but not
    list it; their folder is theirs, group-readable by the instructors
    (setgid: files made in it belong to that group too).  The file starts as
    an empty record, mode 0640; the kit keeps that mode when it rewrites it.
    A learner who takes the group's right away has it given back here.
    """
    ensure_dir(where.progress, 0, group, 0o751)
    ensure_dir(where.progress_folder(member.name), member.uid, group, 0o2750)
    path = where.progress_file(member.name)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             PROGRESS_MODE)
        record = {"format": lesson_progress.FORMAT, "learner": member.name, "lessons": {}}
        os.write(descriptor, json.dumps(record, indent=1).encode())
    except FileExistsError:
        existing = _open_own_file(path, member)
        if existing is None:
            return path
        descriptor = existing
    try:
        os.fchown(descriptor, member.uid, group)
        os.fchmod(descriptor, PROGRESS_MODE)
    finally:
        os.close(descriptor)
    return path


def _open_own_file(path: Path, member: Account) -> int | None:
    """The learner's existing file, opened without following a link; None if it is not theirs."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:  # ELOOP: a symbolic link put there
        log.warning("%s is left alone: %s", path, error)
        return None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != member.uid:
        os.close(descriptor)
        log.warning("%s is not %s's own file; left alone", path, member.name)
        return None
    return descriptor


def publish_images(where: HubPlaces) -> list[Path]:
    """The hub's built images in its ``images/`` folder, for every member to link to."""
    ensure_dir(where.images, 0, 0, 0o755)
    published = []
    for arch, kernel in IMAGES:
        try:
            image = images.find_image(arch, kernel)
        except Exception as error:  # an arch without a recipe here: nothing to publish
            log.debug("no %s image (%s kernel): %s", arch, kernel or "auto", error)
            continue
        if image is not None:
            published.append(_publish(image.kernel.parent, where.images))
    for old in where.images.iterdir():
        if old not in published and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return published


def _publish(source: Path, folder: Path) -> Path:
    copy = folder / source.name
    if copy.is_dir():
        return copy
    scratch = folder / f".{source.name}.publishing"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o755)
    for item in sorted(source.iterdir()):
        if item.is_file():
            try:
                os.link(item, scratch / item.name)  # same file system: no copy at all
            except OSError:
                shutil.copyfile(item, scratch / item.name)
            (scratch / item.name).chmod(0o644)
    scratch.rename(copy)
    return copy


def stop_leftovers(member: Account, where: HubPlaces,
                   group: controlgroups.LearnerGroup | None) -> int:
    """Kill what a stopped server left: its group's processes, its recorded guests."""
    killed = group.kill_all() if group is not None else 0
    for record in sorted(where.runtime(member.name).glob(f"*/{RECORD}")):
        pid = _recorded_pid(record)
        if pid is not None and _is_members_qemu(pid, member.uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    if group is not None:
        group.remove()
    return killed


def _recorded_pid(record: Path) -> int | None:
    try:
        pid = json.loads(record.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def _is_members_qemu(pid: int, uid: int) -> bool:
    """A record names a pid; kill it only if it is still that member's QEMU."""
    try:
        process = psutil.Process(pid)
        return bool(process.uids().real == uid and "qemu-system" in " ".join(process.cmdline()))
    except psutil.Error:
        return False


def ensure_dir(folder: Path, uid: int, gid: int, mode: int) -> None:
    """A folder with this owner and mode, in a parent only root may change."""
    if folder.is_symlink():
        raise SetupError(f"{folder} is a symbolic link; the hub will not follow it.",
                         hint=f"Remove it (rm {folder}) and start the server again.")
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, uid, gid)
    folder.chmod(mode)
