"""A small writer of "newc" cpio archives, the format Linux unpacks as its initramfs.

The kit builds its guest's root file system in memory and writes it with this
module instead of calling the ``cpio`` program, for two reasons: the archive
must not depend on the host's file owners, times or directory order (the same
inputs must give the same bytes, so a cached image can be trusted), and the
files it packs come from several places (host programs, a kernel package, the
kit's own recipe) without being laid out on disk first.

Only what an initramfs needs is supported: directories, regular files,
symbolic links and device nodes, all owned by root, with the modification time
fixed at 0.  Hard links are never written; each file is its own inode.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_FIELD_COUNT = 13  # after the magic: ino .. check, 8 hex digits each


@dataclass(frozen=True)
class Entry:
    """One member of the archive.

    ``path`` is relative to the archive's root ("bin/busybox", never
    "/bin/busybox"), as the kernel expects; ``data`` is a file's contents or
    a symbolic link's target.
    """

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


class Archive:
    """The entries of an archive, written in sorted order with parents first.

    Adding a path creates its missing parent directories (mode 0755), since
    the kernel does not: a file whose directory is absent is silently dropped
    at boot, a failure that is hard to trace back from inside the guest.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        self._add(Entry(_clean(path), stat.S_IFDIR | stat.S_IMODE(mode)))

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(Entry(_clean(path), stat.S_IFREG | stat.S_IMODE(mode), data))

    def add_host_file(self, path: str, source: Path, mode: int | None = None) -> None:
        """Copy a host file's contents; its mode too unless ``mode`` is given.

        Symbolic links on the host are followed: a guest needs the library,
        not a link into the host's own tree.
        """
        if mode is None:
            mode = stat.S_IMODE(source.stat().st_mode)
        self.add_file(path, source.read_bytes(), mode)

    def add_symlink(self, path: str, target: str) -> None:
        self._add(Entry(_clean(path), stat.S_IFLNK | 0o777, target.encode()))

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._add(Entry(_clean(path), stat.S_IFCHR | stat.S_IMODE(mode), rdev=(major, minor)))

    def __contains__(self, path: str) -> bool:
        return _clean(path) in self._entries

    def paths(self) -> list[str]:
        return sorted(self._entries, key=_sort_key)

    def entries(self) -> list[Entry]:
        """Every entry, parents before their children.

        (How :mod:`kit.guestos.build.rootdisk` lays them out.)
        """
        return [self._entries[path] for path in self.paths()]

    def write(self, out: BinaryIO) -> int:
        """Write the whole archive; return the number of bytes written."""
        written = 0
        for ino, path in enumerate(self.paths(), start=1):
            written += out.write(encode_entry(self._entries[path], ino))
        written += out.write(encode_entry(Entry(TRAILER, 0), 0))
        return written

    def _add(self, entry: Entry) -> None:
        existing = self._entries.get(entry.path)
        if existing is not None and not (stat.S_ISDIR(existing.mode) and stat.S_ISDIR(entry.mode)):
            raise ValueError(f"{entry.path} is already in the archive")
        self._add_parents(entry.path)
        self._entries[entry.path] = entry

    def _add_parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            existing = self._entries.get(parent)
            if existing is None:
                self._entries[parent] = Entry(parent, stat.S_IFDIR | 0o755)
            elif not stat.S_ISDIR(existing.mode):
                raise ValueError(f"{parent} is not a directory, cannot hold {path}")


def encode_entry(entry: Entry, ino: int) -> bytes:
    """One header, name and data, each padded to a multiple of four bytes."""
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (
        ino, entry.mode, 0, 0, nlink, 0, len(entry.data),
        0, 0, entry.rdev[0], entry.rdev[1], len(name), 0,
    )  # fmt: skip
    assert len(fields) == _FIELD_COUNT
    header = MAGIC + b"".join(b"%08X" % value for value in fields)
    return _pad(header + name) + _pad(entry.data)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _clean(path: str) -> str:
    """Normalise "/usr//bin/" to "usr/bin", refusing paths that escape the root."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a path inside the archive: {path!r}")
    return "/".join(parts)


def _sort_key(path: str) -> list[str]:
    # By component, so that "a/b" follows "a" and not "a-b".
    return path.split("/")
