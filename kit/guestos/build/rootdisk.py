"""The guest's root disk: the image's files as an ext2 file system, made by ``mke2fs``.

Why a disk and not only an initramfs: the kernel unpacks an initramfs into
RAM at every boot (0.2 s of it under TCG for 11 MB), and QEMU keeps the
archive mapped besides, so every file costs the host twice, all boot long.
From a disk the guest reads only the blocks it needs, the way a real
machine boots.  Measured with the kit's kernel under TCG, 64 MB guest:
QEMU's RSS at agent-ready 120 -> 95 MB.

The same :class:`kit.guestos.build.cpio.Archive` the initramfs is written from is laid out
in a scratch folder and handed to ``mke2fs -d``, so both hold the same
files.  QEMU opens the disk with ``snapshot=on`` (:mod:`kit.hypervisor.qemu`): the guest
may write anywhere, its writes go to a temporary file QEMU deletes at once,
and the cached image never changes.  Each boot starts from the same files.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from kit.core.errors import ImageError
from kit.guestos.build.cpio import Archive, Entry

ROOT_DISK_FILE = "root.ext2"
#: Free space on the disk for what learners write, beyond the image's files.
#: The file is sparse: the cache holds only the blocks in use.
FREE_SPACE_MB = 64
MKE2FS_HINT = "apt-get install e2fsprogs   (or run ./setup.sh)"


class Mke2fsMissing(ImageError):
    """mke2fs is not installed: the one reason a later build may succeed where this failed."""


def make_root_disk(archive: Archive, disk: Path) -> None:
    """Write ``archive``'s files into a new ext2 file system at ``disk``."""
    mke2fs = find_mke2fs()
    if mke2fs is None:
        raise Mke2fsMissing("mke2fs, which makes the guest's root disk, is not installed.",
                            hint=MKE2FS_HINT)
    with tempfile.TemporaryDirectory(prefix=".root-tree-", dir=disk.parent) as folder:
        tree = Path(folder)
        lay_out(archive, tree)
        command = [mke2fs, "-q", "-F", "-t", "ext2", "-b", "4096", "-m", "0",
                   "-L", "kit-root", "-d", str(tree), str(disk), f"{disk_size_mb(archive)}M"]
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                timeout=120, env={**os.environ, "LC_ALL": "C"})
    if result.returncode != 0:
        disk.unlink(missing_ok=True)
        raise ImageError("mke2fs could not make the guest's root disk.", command=command,
                         log=(result.stdout + result.stderr).strip() or None,
                         exit_code=result.returncode, hint=MKE2FS_HINT)


def find_mke2fs() -> str | None:
    """mke2fs on PATH, or in /usr/sbin where Debian puts it (not on a user's PATH)."""
    return shutil.which("mke2fs") or shutil.which("mke2fs", path="/usr/sbin:/sbin")


def disk_size_mb(archive: Archive) -> int:
    """The files, a quarter more for the file system's own tables, and the free space."""
    used = sum(len(entry.data) for entry in archive.entries())
    return (used * 5 // 4) // 2**20 + 1 + FREE_SPACE_MB


def lay_out(archive: Archive, tree: Path) -> None:
    """The archive's entries as files under ``tree``, modes included.

    Device nodes are left out: making them needs root, and the kernel mounts
    devtmpfs on /dev before /init runs (CONFIG_DEVTMPFS_MOUNT).  Folder modes
    are set last, so that a read-only folder can still be filled.
    """
    folders: list[tuple[Path, int]] = []
    for entry in archive.entries():
        path = tree / entry.path
        kind = stat.S_IFMT(entry.mode)
        if kind == stat.S_IFDIR:
            path.mkdir(exist_ok=True)
            folders.append((path, stat.S_IMODE(entry.mode)))
        elif kind == stat.S_IFREG:
            _write_file(path, entry)
        elif kind == stat.S_IFLNK:
            path.symlink_to(entry.data.decode())
    for path, mode in reversed(folders):
        path.chmod(mode)


def _write_file(path: Path, entry: Entry) -> None:
    path.write_bytes(entry.data)
    path.chmod(stat.S_IMODE(entry.mode))
