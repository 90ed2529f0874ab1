"""Guest memory as a file: sparse copies, digests that ignore how zeros are stored, seals."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from pathlib import Path

import pytest

from kit.hypervisor import guest_ram

SIZE = 4 << 20  # a small "guest RAM"


def memory_with_data() -> int:
    """A memfd like QEMU's guest RAM: mostly never touched, a few pages written."""
    fd = os.memfd_create("memory-backend-memfd", os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    os.pwrite(fd, b"kernel" * 1000, 0)
    os.pwrite(fd, b"\x01", SIZE - 1)
    os.pwrite(fd, bytes(guest_ram.CHUNK), guest_ram.CHUNK * 10)  # written, but zeros
    return fd


def test_a_sparse_copy_keeps_the_holes_and_the_data(tmp_path: Path) -> None:
    memory = memory_with_data()
    target = tmp_path / "ram.bin"
    guest_ram.save_sparse(memory, SIZE, target)
    info = target.stat()
    assert info.st_size == SIZE
    assert info.st_blocks * 512 <= 4 * guest_ram.CHUNK  # two chunks of data, not 4 MiB
    assert info.st_mode & 0o777 == 0o600
    assert target.read_bytes() == os.pread(memory, SIZE, 0)
    with pytest.raises(FileExistsError):  # never written over
        guest_ram.save_sparse(memory, SIZE, target)
    os.close(memory)


def test_the_digest_does_not_depend_on_how_zeros_are_stored(tmp_path: Path) -> None:
    memory = memory_with_data()
    sparse, dense = tmp_path / "sparse.bin", tmp_path / "dense.bin"
    guest_ram.save_sparse(memory, SIZE, sparse)
    dense.write_bytes(os.pread(memory, SIZE, 0))  # every zero written out
    assert guest_ram.digest(sparse) == guest_ram.digest(dense)
    with open(dense, "r+b") as file:
        file.seek(SIZE // 2)
        file.write(b"x")
    assert guest_ram.digest(dense) != guest_ram.digest(sparse)
    os.close(memory)


def test_a_sealed_copy_can_be_mapped_privately_but_not_changed(tmp_path: Path) -> None:
    memory = memory_with_data()
    image = tmp_path / "ram.bin"
    guest_ram.save_sparse(memory, SIZE, image)
    sealed, found = guest_ram.sealed_copy(image, "kit-snapshot-test")
    try:
        assert found == guest_ram.digest(image)
        assert fcntl.fcntl(sealed, fcntl.F_GET_SEALS) == guest_ram.SEALS
        with pytest.raises(PermissionError):
            os.pwrite(sealed, b"x", 0)
        with pytest.raises(PermissionError):  # a shared writable mapping is refused too
            mmap.mmap(sealed, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # What QEMU does for a clone: map it privately, copy-on-write.
        private = mmap.mmap(sealed, SIZE, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        private[0:6] = b"CHANGE"
        assert os.pread(sealed, 6, 0) == b"kernel"  # the others' memory is untouched
        private.close()
        # What QEMU 7.2 does when a clone hands back a free page: punch a hole. Refused.
        with pytest.raises(OSError) as error:
            fallocate_punch(sealed, 0, 4096)
        assert error.value.errno == errno.EPERM
    finally:
        os.close(sealed)
        os.close(memory)


def fallocate_punch(fd: int, offset: int, length: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    punch_hole_keep_size = 0x02 | 0x01
    if libc.fallocate(fd, punch_hole_keep_size, ctypes.c_long(offset),
                      ctypes.c_long(length)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_shared_memory_is_loaded_once_and_closed_by_the_last_user() -> None:
    shared = guest_ram.SharedMemory()
    loads: list[int] = []

    def load() -> int:
        fd = os.memfd_create("x", os.MFD_CLOEXEC)
        loads.append(fd)
        return fd

    key = Path("/snapshots/web")
    first = shared.acquire(key, load)
    assert shared.acquire(key, load) == first and loads == [first]
    assert shared.users(key) == 2
    shared.release(key)
    os.fstat(first)  # still open for the other user
    shared.release(key)
    assert shared.users(key) == 0
    with pytest.raises(OSError):
        os.fstat(first)


def test_the_memory_of_a_process_without_a_memfd_is_not_found() -> None:
    assert guest_ram.open_ram(os.getpid()) is None
    assert guest_ram.open_ram(2**22 + 12345) is None  # no such process: None, not an error
