"""A guest's memory as a file: taken from a running QEMU, saved sparse, shared by clones.

On ``microvm`` the kit gives QEMU its guest RAM in a memfd (see
:mod:`kit.hypervisor.qemu`), and a memfd is a file: the kit can open it
through ``/proc/PID/fd/N`` (same user, as for any file descriptor of one's
own process) and

* copy it into a snapshot's ``ram.bin`` while the guest is paused: the holes
  (pages never touched, or handed back by the balloon) stay holes, so a
  64 MiB guest that uses 18 MiB writes 18 MiB;
* hand the very same memory to a live migration's destination QEMU, which
  maps it shared: nothing is copied, and QEMU's migration stream carries only
  the devices (its ``x-ignore-shared`` capability);
* load a snapshot's ``ram.bin`` once into a *sealed* memfd that every guest
  started from the snapshot maps privately (copy-on-write): clones share the
  pages none of them has changed.

Why sealed: QEMU 7.2 hands freed guest pages back (free page reporting) by
punching a hole in the RAM's file, even a file it maps privately; in a file
that clones share, that would zero the page under all the others.  With
``F_SEAL_WRITE`` the kernel refuses the hole (QEMU notes the refusal in its
log and carries on), and no program can change the snapshot's memory.

The cost: a sealed memfd is memory of its own (the snapshot's pages, plus
one zero page for each page a clone wrote where the snapshot had none), held
while any guest of this process started from that snapshot runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MEMFD_NAME = "memory-backend-memfd"  # QEMU's name for the memfd of -object memory-backend-memfd
CHUNK = 64 * 1024  # the unit of copies and of the digest
_ZERO = bytes(CHUNK)
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def open_ram(pid: int) -> int | None:
    """A descriptor of QEMU ``pid``'s guest RAM memfd, or None where it cannot be reached.

    None for a machine without one (q35, aarch64's virt), for a guest whose
    RAM is a snapshot's copy-on-write memory, and where /proc hides other
    processes' descriptors: the caller then lets QEMU copy the memory itself.
    """
    folder = Path(f"/proc/{pid}/fd")
    try:
        numbers = os.listdir(folder)
    except OSError as error:
        log.info("QEMU %d's descriptors cannot be listed (%s): its memory is copied", pid, error)
        return None
    for number in numbers:
        with contextlib.suppress(OSError):
            if os.readlink(folder / number).startswith(f"/memfd:{MEMFD_NAME} "):
                return os.open(folder / number, os.O_RDWR | os.O_CLOEXEC)
    return None


def save_sparse(source: int, size: int, target: Path) -> None:
    """Copy memory ``source`` (a memfd) to a new file ``target`` (0600), holes kept."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(out, size)
        for offset, data in _nonzero_chunks(source, size):
            os.pwrite(out, data, offset)
    finally:
        os.close(out)


def digest(path: Path) -> str:
    """SHA-256 of a memory image, the same however its zeros are stored (holes or bytes).

    Only the chunks that are not all zero count, each with its offset: a
    copy that filled the holes in (``cp --sparse=never``) has the same digest.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _digest_of(_nonzero_chunks(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def sealed_copy(path: Path, name: str) -> tuple[int, str]:
    """The memory image at ``path`` in a new sealed memfd, and the image's digest."""
    source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    memfd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        size = os.fstat(source).st_size
        os.ftruncate(memfd, size)
        hasher = hashlib.sha256()
        for offset, data in _nonzero_chunks(source, size):
            os.pwrite(memfd, data, offset)
            _add(hasher, offset, data)
        fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(memfd)
        raise
    finally:
        os.close(source)
    return memfd, hasher.hexdigest()


def _digest_of(chunks: Iterator[tuple[int, bytes]]) -> str:
    hasher = hashlib.sha256()
    for offset, data in chunks:
        _add(hasher, offset, data)
    return hasher.hexdigest()


def _add(hasher: hashlib._Hash, offset: int, data: bytes) -> None:
    hasher.update(offset.to_bytes(8, "little"))
    hasher.update(data)


def _nonzero_chunks(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of every chunk of ``fd`` that holds something; holes are not read."""
    for index in _data_chunk_indexes(fd, size):
        data = os.pread(fd, CHUNK, index * CHUNK)
        if data != _ZERO[:len(data)]:
            yield index * CHUNK, data


def _data_chunk_indexes(fd: int, size: int) -> Iterator[int]:
    """The chunks that overlap the file's data (SEEK_DATA/SEEK_HOLE), each once, in order."""
    offset, last = 0, -1
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # no data after offset
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        for index in range(max(start // CHUNK, last + 1), (end - 1) // CHUNK + 1):
            yield index
            last = index
        offset = end


class SharedMemory:
    """Sealed memfds, one per snapshot in use, counted: the last release closes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Path, tuple[int, int]] = {}  # key -> (fd, users)

    def acquire(self, key: Path, load: Callable[[], int]) -> int:
        """The memfd for ``key``, made with ``load()`` by the first user."""
        with self._lock:
            fd, users = self._held.get(key, (-1, 0))
            if users == 0:
                fd = load()
            self._held[key] = (fd, users + 1)
            return fd

    def release(self, key: Path) -> None:
        with self._lock:
            fd, users = self._held.get(key, (-1, 0))
            if users <= 1:
                self._held.pop(key, None)
                if fd >= 0:
                    os.close(fd)
            else:
                self._held[key] = (fd, users - 1)

    def users(self, key: Path) -> int:
        with self._lock:
            return self._held.get(key, (-1, 0))[1]


shared = SharedMemory()
