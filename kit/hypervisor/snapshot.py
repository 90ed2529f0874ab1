"""Snapshots: a running guest's whole machine saved to files, and guests started from them.

``snap = g.snapshot("ready")`` saves everything the machine is: every
device, the CPUs' registers, the whole memory (so the processes running in
it and the files in its RAM-backed ``/tmp``), and its disk.  The guest is
paused for the save, and set going again after it: QEMU's own migration
writes the devices into a file (:mod:`kit.hypervisor.migration`), the kit
copies the memory, holes kept (:mod:`kit.hypervisor.guest_ram`), and the
disk overlay (:mod:`kit.hypervisor.disks`).

``kit.Guest.from_snapshot(snap, "web2")`` starts a QEMU that *loads* that
machine instead of booting a kernel: the guest carries on from the instant of
the snapshot, uptime included.  Many guests may start from one snapshot (the
cloud's clones); each gets its own disk overlay over the snapshot's disk, its
own forwards, and, through its agent, its own identity
(:func:`refresh_identity`).

A snapshot is a folder under :func:`kit.core.paths.snapshots_dir` (in the
cache: it outlives the notebook; owner-only, since it holds the guest's
memory), with files written 0600:

* ``state.bin``: the machine, as QEMU's migration stream;
* ``ram.bin``: the memory, a sparse file as large as the guest's RAM, which
  guests started from the snapshot map copy-on-write (where QEMU keeps the
  guest's RAM in a memfd; elsewhere the memory is in ``state.bin``);
* ``disk.qcow2``: the guest's disk writes, over the image's root disk;
* ``manifest.json``: what the machine is (architecture, image, memory, CPUs)
  and each file's size and SHA-256, written last: a folder without it is an
  interrupted save, never a snapshot.

Before a start the files are checked against the manifest (once per process
while they stay unchanged): a damaged snapshot is refused with a clear error
instead of a guest that crashes later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.core import paths, validate
from kit.core.errors import InvalidInput, SetupError, SnapshotError
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import disks, guest_ram, migration, registry

if TYPE_CHECKING:
    from kit.hypervisor.guest import Guest

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
STATE_FILE = "state.bin"
RAM_FILE = "ram.bin"
DISK_FILE = "disk.qcow2"
PARTIAL_PREFIX = ".partial-"


@dataclass(frozen=True)
class FileRecord:
    """One file of a snapshot as it was written."""

    size: int
    sha256: str


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot's manifest says: the machine it holds, and its files."""

    name: str
    source: str  # the guest it was taken of
    created: float  # seconds since the epoch
    arch: str
    kernel: str  # the kernel choice ("auto" or "debian"), as kit.Guest(kernel=...) takes it
    image_key: str  # which build of the guest image: its disk and kernel must be the same
    machine: str
    memory_mb: int
    cpus: int
    kernel_args: tuple[str, ...]
    qemu_version: str
    uptime_s: float | None  # the guest's uptime at the snapshot
    paused_s: float  # how long the guest was paused for it
    files: dict[str, FileRecord]
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SnapshotInfo:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format') if isinstance(data, dict) else '?'}, "
                             f"not {FORMAT}")
        data["files"] = {name: FileRecord(**record) for name, record in data["files"].items()}
        data["kernel_args"] = tuple(data["kernel_args"])
        return cls(**data)


class Snapshot:
    """A saved guest: ``g.snapshot("name")`` makes one, ``kit.snapshots()`` lists them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name

    @classmethod
    def of(cls, snap: Snapshot | str) -> Snapshot:
        """A snapshot given as itself or by name; refused if there is none of that name."""
        if isinstance(snap, Snapshot):
            found = snap
        elif isinstance(snap, str):
            found = cls(paths.snapshots_dir() / _check_name(snap))
        else:
            raise InvalidInput(f"{snap!r} is not a snapshot.",
                               hint="Pass what g.snapshot('name') returned, or its name.")
        if not found.folder.is_dir():
            listed = ", ".join(s.name for s in snapshots()) or "none"
            raise SnapshotError(f"there is no snapshot named {found.name!r}.",
                                hint=f"kit.snapshots() lists them (now: {listed}); "
                                "g.snapshot('name') takes one.")
        return found

    def __repr__(self) -> str:
        try:
            info = self.info
        except SnapshotError:
            return f"<Snapshot {self.name} (damaged)>"
        return (f"<Snapshot {self.name} of {info.source}: {info.arch}, {info.memory_mb} MiB, "
                f"{self.size_bytes / 2**20:.1f} MiB on disk>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and other.folder == self.folder

    def __hash__(self) -> int:
        return hash(self.folder)

    @cached_property
    def info(self) -> SnapshotInfo:
        """The manifest; a missing or unreadable one is a damaged snapshot."""
        try:
            return SnapshotInfo.from_json((self.folder / MANIFEST).read_text())
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise SnapshotError(
                f"snapshot {self.name} is damaged: its manifest cannot be read ({error}).",
                hint=f"Delete it (kit.Snapshot.of({self.name!r}).delete()) and take a new one.",
            ) from None

    @property
    def size_bytes(self) -> int:
        """What the snapshot takes on disk, all its files together."""
        return sum(path.stat().st_blocks * 512 for path in self.folder.iterdir()
                   if path.is_file())

    @property
    def disk(self) -> Path | None:
        """The guest's disk writes at the snapshot (None for a guest without a disk)."""
        return self.folder / DISK_FILE if DISK_FILE in self.info.files else None

    def users(self) -> list[Guest]:
        """The guests of this notebook started from this snapshot and not stopped."""
        return [guest for guest in registry.guests()
                if guest.restored_from == self and guest.state.has_process]

    @property
    def memory_in_file(self) -> bool:
        """The memory is in ``ram.bin``, which guests started from it share, copy-on-write."""
        return RAM_FILE in self.info.files

    def verify(self) -> None:
        """Check every file against the manifest (sizes and SHA-256), now."""
        _forget_checked(self.folder)
        self.check_files(memory=True)

    def check_files(self, memory: bool = False) -> None:
        """Check the files against the manifest, or trust a check of the same files.

        ``ram.bin`` is checked only if ``memory``: a start checks it as it
        reads it into memory (:meth:`acquire_memory`), once.
        """
        for name, record in self.info.files.items():
            if memory or name != RAM_FILE:
                _check_file(self, self.folder / name, record)

    def acquire_memory(self) -> int | None:
        """The snapshot's memory in a sealed memfd for a new guest to map (None: in state.bin).

        Loaded (and checked) by the first guest of this process that starts
        from the snapshot; each guest releases it when it stops.
        """
        if not self.memory_in_file:
            return None
        return guest_ram.shared.acquire(self.folder, self._load_memory)

    def release_memory(self) -> None:
        guest_ram.shared.release(self.folder)

    def _load_memory(self) -> int:
        record = self.info.files[RAM_FILE]
        path = self.folder / RAM_FILE
        try:
            if path.stat().st_size != record.size:
                raise _damaged(self, f"{RAM_FILE} has {path.stat().st_size} bytes, not "
                               f"{record.size}")
            fd, found = guest_ram.sealed_copy(path, f"kit-snapshot-{self.name}")
        except OSError as error:
            raise _damaged(self, f"{RAM_FILE} cannot be read ({error})") from None
        if found != record.sha256:
            os.close(fd)
            raise _damaged(self, f"{RAM_FILE} has changed since it was written")
        return fd

    def delete(self) -> None:
        """Remove the snapshot and all its files; refused while guests started from it run.

        Only this notebook's guests are known here: a guest another notebook
        started from the snapshot keeps running (its QEMU holds the files
        open), but could no longer be moved to a new QEMU.
        """
        users = self.users()
        if users or guest_ram.shared.users(self.folder):
            raise SnapshotError(
                f"snapshot {self.name} is in use by "
                f"{', '.join(g.name for g in users) or 'a guest starting from it'}: their "
                "disks are built over its disk, their memory over its memory.",
                hint="Stop them first (g.stop(), or kit.stop_all()), then delete it.")
        _forget_checked(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.folder.exists():
            raise SnapshotError(f"snapshot {self.name} could not be removed completely.",
                                hint=f"Remove the folder {self.folder} by hand.")
        log.info("snapshot %s deleted", self.name)

    @contextlib.contextmanager
    def open_state(self) -> Iterator[int]:
        """The machine's file, open for reading, for a QEMU to inherit (``migrate-incoming``)."""
        fd = os.open(self.folder / STATE_FILE, os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    def new_overlay(self, target: Path) -> Path | None:
        """A new guest's own disk file over the snapshot's disk (none if it has no disk)."""
        disk = self.disk
        if disk is None:
            return None
        return disks.new_overlay(target, disk, "qcow2", templates=self.folder)


def snapshots() -> list[Snapshot]:
    """Every snapshot, oldest first (``kit.snapshots()``)."""
    folder = paths.snapshots_dir()
    _remove_abandoned(folder)
    found = [Snapshot(path) for path in folder.iterdir()
             if path.is_dir() and not path.name.startswith(".")]
    return sorted(found, key=_created)


def _created(snap: Snapshot) -> float:
    try:
        return snap.info.created
    except SnapshotError:
        return snap.folder.stat().st_mtime


# -- taking a snapshot ------------------------------------------------------------------------


def check_can_save(guest: Guest) -> None:
    """Refuse, with what to do, a snapshot that could not be restored."""
    guest.require_state("take a snapshot of", GuestState.RUNNING)
    if guest.doors.link.links:
        raise SnapshotError(
            f"guest {guest.name} has a link to another guest: a guest started from the "
            "snapshot would have a cable whose other end is not there.",
            hint="Snapshot a guest without a link (kit.Link is made before the start).")
    if guest.shared_folder is not None:
        raise SnapshotError(
            f"guest {guest.name} has a shared folder: its files are the host's, not the "
            "guest's, and a snapshot cannot hold them.",
            hint="Snapshot a guest started without shared_folder=..., and copy files in "
            "with g.agent('guest-file-write') instead.")
    image = guest.image
    if image is not None and image.root_disk is not None and guest.disk_overlay is None:
        raise SetupError(
            f"guest {guest.name} keeps its disk writes in a file QEMU deleted (qemu-img was "
            "missing when it started): a snapshot could not hold its disk.",
            hint=disks.QEMU_IMG_HINT + " Then start the guest again.")


def take(guest: Guest, name: str, *, replace: bool = False, timeout: float = 60.0) -> Snapshot:
    """Save ``guest``'s whole machine as snapshot ``name`` (``g.snapshot(name)``)."""
    name = _check_name(name)
    check_can_save(guest)
    folder = paths.snapshots_dir()
    final = Snapshot(folder / name)
    _check_replaceable(final, replace)
    partial = paths.owner_only_dir(folder / f"{PARTIAL_PREFIX}{name}-{os.getpid()}-"
                                            f"{secrets.token_hex(4)}")
    try:
        info = _save(guest, name, partial, timeout)
        (partial / MANIFEST).write_text(info.to_json())  # last: now it is a snapshot
        (partial / MANIFEST).chmod(0o600)
        if final.folder.exists():
            final.delete()
        os.replace(partial, final.folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("guest %s saved as snapshot %s (%.1f MiB, paused %.0f ms)", guest.name, name,
             final.size_bytes / 2**20, info.paused_s * 1000)
    return Snapshot(final.folder)


def _save(guest: Guest, name: str, partial: Path, timeout: float) -> SnapshotInfo:
    """The machine, its memory and its disk into ``partial``, the guest paused meanwhile."""
    image = guest.image
    assert image is not None and guest.pid is not None
    uptime = _uptime(guest)
    version = guest.qmp("query-version")
    ram = guest_ram.open_ram(guest.pid)  # None: QEMU puts the memory in the stream
    try:
        with migration.paused(guest) as pause:
            migration.save(guest, partial / STATE_FILE, timeout, ignore_shared=ram is not None)
            if ram is not None:
                guest_ram.save_sparse(ram, guest.memory_mb * 2**20, partial / RAM_FILE)
            if guest.disk_overlay is not None:
                disks.copy(guest.disk_overlay, partial / DISK_FILE)
    finally:
        if ram is not None:
            os.close(ram)
    if guest.disk_overlay is not None and guest.restored_from is not None:
        _stand_alone(partial / DISK_FILE, image)
    return SnapshotInfo(
        name=name, source=guest.name, created=time.time(), arch=guest.arch,
        kernel=guest.kernel, image_key=image.key, machine=getattr(image, "machine", "q35"),
        memory_mb=guest.memory_mb, cpus=guest.cpus, kernel_args=guest.kernel_args,
        qemu_version=_version_words(version), uptime_s=uptime, paused_s=pause.seconds,
        files={path.name: _record(path) for path in sorted(partial.iterdir())})


def _stand_alone(disk: Path, image: images.GuestImage) -> None:
    """Make a copied disk depend on the image alone, not on the snapshot its guest came from.

    A clone's disk file is over its snapshot's disk; a snapshot of the clone
    would otherwise break when that first snapshot is deleted.
    """
    assert image.root_disk is not None
    command = ["qemu-img", "rebase", "-q", "-f", "qcow2", "-F", "raw",
               "-b", str(image.root_disk), str(disk)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SnapshotError("the snapshot's disk could not be made to stand alone.",
                            command=command, log=done.stderr, exit_code=done.returncode,
                            hint="Check that the disk has room (df -h), then try again.")


def _uptime(guest: Guest) -> float | None:
    try:
        return float(guest.run(["cat", "/proc/uptime"], timeout=10).stdout.split()[0])
    except (IndexError, ValueError):
        return None


def _version_words(version: Any) -> str:
    if not isinstance(version, dict):
        return "?"
    numbers = version.get("qemu", {})
    return f"{numbers.get('major')}.{numbers.get('minor')}.{numbers.get('micro')}" + (
        f" {version['package'].strip()}" if version.get("package") else "")


def _check_replaceable(snap: Snapshot, replace: bool) -> None:
    if not snap.folder.exists():
        return
    if not replace:
        raise SnapshotError(f"a snapshot named {snap.name!r} exists already.",
                            hint="Choose another name, delete it first (snap.delete()), or "
                            "pass replace=True.")
    if snap.users():
        raise SnapshotError(f"snapshot {snap.name} cannot be replaced: guests started from it "
                            f"run ({', '.join(g.name for g in snap.users())}).",
                            hint="Stop them first, or choose another name.")


def _check_name(name: object) -> str:
    try:
        return validate.check_name(name)
    except InvalidInput:
        raise InvalidInput(f"{name!r} cannot be a snapshot name.",
                           hint="Use 1 to 32 characters: lower-case letters, digits and '-', "
                           "starting and ending with a letter or digit, e.g. 'web1-ready'.",
                           ) from None


def _record(path: Path) -> FileRecord:
    path.chmod(0o600)
    return FileRecord(path.stat().st_size, _digest(path))


def _digest(path: Path) -> str:
    """SHA-256 of a file; of a memory image, the same whether its zeros are holes or bytes."""
    return guest_ram.digest(path) if path.name == RAM_FILE else _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_abandoned(folder: Path) -> None:
    """Remove the partial folders of saves whose process has died."""
    for path in folder.glob(f"{PARTIAL_PREFIX}*"):
        pid = path.name[len(PARTIAL_PREFIX):].rsplit("-", 2)[-2]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


# -- checking a snapshot before a start -------------------------------------------------------

_checked_lock = threading.Lock()
_checked: dict[Path, tuple[int, int, int]] = {}  # file -> (size, mtime_ns, inode) when it was good


def check_restorable(snap: Snapshot, *, arch: str | None = None, memory_mb: int | None = None,
                     cpus: int | None = None) -> SnapshotInfo:
    """The snapshot's machine, once it is known that a guest can start from it here."""
    info = snap.info
    for what, wanted, saved in (("architecture", arch, info.arch),
                                ("memory (MiB)", memory_mb, info.memory_mb),
                                ("number of CPUs", cpus, info.cpus)):
        if wanted is not None and wanted != saved:
            raise SnapshotError(
                f"snapshot {snap.name} holds a machine with {what} {saved}, not {wanted}: a "
                "saved machine keeps the hardware it was saved with.",
                hint="Leave that argument out to take the snapshot's own, or boot a new guest "
                f"with kit.Guest(...) for a machine with {what} {wanted}.")
    image = images.find_image(info.arch, info.kernel)
    if image is None or image.key != info.image_key:
        now = f"this kit now boots image {image.key}" if image else "that image is not built"
        raise SnapshotError(
            f"snapshot {snap.name} was taken of a guest of another image ({info.arch}, image "
            f"{info.image_key}); {now}.  Its memory holds that image's kernel, and its disk "
            "that image's files: they would not fit.",
            hint="Delete it and take a new snapshot of a guest started now.")
    snap.check_files()
    return info


def _check_file(snap: Snapshot, path: Path, record: FileRecord) -> None:
    try:
        stat = path.stat()
    except OSError:
        raise _damaged(snap, f"{path.name} is missing") from None
    seen = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _checked_lock:
        if _checked.get(path) == seen:
            return
        if stat.st_size != record.size:
            raise _damaged(snap, f"{path.name} has {stat.st_size} bytes, not {record.size}")
        if _digest(path) != record.sha256:
            raise _damaged(snap, f"{path.name} has changed since it was written")
        _checked[path] = seen


def _forget_checked(folder: Path) -> None:
    with _checked_lock:
        for path in [p for p in _checked if p.parent == folder]:
            del _checked[path]


def _damaged(snap: Snapshot, what: str) -> SnapshotError:
    return SnapshotError(f"snapshot {snap.name} is damaged: {what}.",
                         hint="A guest started from it could crash or lose data: delete it "
                         "(snap.delete()) and take a new one.")


# -- after a start: what must differ between guests started from one snapshot ----------------


# A guest whose memory is a snapshot's, shared copy-on-write, cannot hand freed
# pages back (the seal refuses QEMU's hole: guest_ram), so it reports free memory
# only in 4 MiB blocks, seldom, instead of the 128 KiB pieces /init asks for.
REPORTING_ORDER = "/sys/module/page_reporting/parameters/page_reporting_order"
REPORTING_ORDER_SHARED = 10


def mac_for(name: str) -> str:
    """A MAC address in QEMU's range (52:54:00) from the guest's name: one name, one MAC."""
    tail = hashlib.sha256(name.encode()).digest()[:3]
    return "52:54:00:" + ":".join(f"{byte:02x}" for byte in tail)


def refresh_identity(guest: Guest, snap: Snapshot) -> None:
    """Give a guest started from a snapshot its own name, MAC, clock and randomness.

    Everything in the machine is the snapshot's, so every guest started from
    it would have the same host name, the same MAC address on eth0, a clock
    stopped at the moment of the snapshot, and the same state in its random
    number generator.  One command through the agent changes what can be
    changed from inside: the name, the MAC (the driver tells the virtual card,
    which QEMU then reports), the clock (from the host's), and fresh host
    randomness mixed into the guest's pool (mixed in, not a full reseed:
    Linux 6.1 reseeds its generator from the pool on its own schedule).
    A guest that shares the snapshot's memory also hands back free memory
    less often (:data:`REPORTING_ORDER_SHARED`).
    """
    name = guest.name
    # Shell builtins where they will do: under TCG each program started in a
    # guest that has just been restored costs tens of ms (its code is not
    # translated yet in the new QEMU).
    steps = [
        f"echo {name} > /proc/sys/kernel/hostname",
        f"echo {name} > /etc/hostname",
        "hosts=$(while IFS= read -r line; do case $line in 127.0.1.1*) ;; "
        "*) echo \"$line\" ;; esac; done < /etc/hosts)",
        f"printf '%s\\n127.0.1.1\\t%s\\n' \"$hosts\" {name} > /etc/hosts",
        f"echo {secrets.token_hex(32)} > /dev/urandom",
        f"ip link set dev eth0 address {mac_for(name)}",
        f"date -s @{int(time.time())} > /dev/null",
    ]
    if snap.memory_in_file:
        steps.append(f"{{ echo {REPORTING_ORDER_SHARED} > {REPORTING_ORDER} || true; }}")
    result = guest.run(["/bin/sh", "-c", " && ".join(steps)], timeout=20)
    if not result.ok:
        raise SnapshotError(
            f"guest {name} started from snapshot {snap.name} but could not take its own "
            f"identity: {str(result).strip()}",
            command=result.command,
            hint="Look at g.run('ip link; hostname') in the guest; stop it and try again.")
