"""The cpio writer, checked against the host's own cpio program."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from kit.guestos.build.cpio import MAGIC, TRAILER, Archive

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs the cpio program")


def sample() -> Archive:
    archive = Archive()
    archive.add_file("/usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    archive.add_dir("/tmp", 0o1777)
    archive.add_file("etc/motd", b"hello\n")
    archive.add_symlink("/bin/sh", "busybox")
    archive.add_file("/empty", b"")
    archive.add_file("/odd", b"abc")  # a length that needs padding
    return archive


def write(archive: Archive, path: Path) -> bytes:
    buffer = io.BytesIO()
    archive.write(buffer)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_parents_come_first_and_are_created() -> None:
    assert sample().paths() == [
        "bin", "bin/sh", "empty", "etc", "etc/motd", "odd", "tmp", "usr", "usr/bin", "usr/bin/tool",
    ]  # fmt: skip


def test_same_entries_in_any_order_give_the_same_bytes() -> None:
    first, second = Archive(), Archive()
    first.add_file("b", b"2")
    first.add_file("a/x", b"1")
    second.add_file("a/x", b"1")
    second.add_file("b", b"2")
    assert _bytes(first) == _bytes(second)


def test_layout_is_aligned_and_ends_with_the_trailer() -> None:
    data = _bytes(sample())
    assert data.startswith(MAGIC)
    assert len(data) % 4 == 0
    assert TRAILER.encode() + b"\0" in data[-128:]


def test_bad_paths_and_clashes_are_refused() -> None:
    archive = Archive()
    archive.add_file("a", b"")
    with pytest.raises(ValueError, match="already"):
        archive.add_file("/a", b"other")
    with pytest.raises(ValueError, match="not a directory"):
        archive.add_file("a/b", b"")
    for bad in ("", "/", "../etc/passwd", "x/../../y"):
        with pytest.raises(ValueError, match="not a path"):
            archive.add_file(bad, b"")
    archive.add_dir("d", 0o700)
    archive.add_dir("d", 0o755)  # adding a folder twice is fine
    assert "d" in archive and "/d/" in archive


@needs_cpio
def test_host_cpio_lists_every_entry(tmp_path: Path) -> None:
    archive = sample()
    archive.add_char_device("/dev/console", 5, 1)
    path = tmp_path / "out.cpio"
    write(archive, path)
    listing = _cpio(["-t"], path, tmp_path).stdout.split()
    assert listing == archive.paths()
    verbose = _cpio(["-tv"], path, tmp_path).stdout
    console = next(line for line in verbose.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console


@needs_cpio
def test_host_cpio_extracts_contents_modes_and_links(tmp_path: Path) -> None:
    path = tmp_path / "out.cpio"
    write(sample(), path)
    root = tmp_path / "root"
    root.mkdir()
    _cpio(["-i", "-d", "--no-absolute-filenames"], path, root)
    assert (root / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "etc/motd").stat().st_mode) == 0o644
    assert (root / "odd").read_bytes() == b"abc"
    assert (root / "empty").stat().st_size == 0
    assert (root / "bin/sh").is_symlink() and str((root / "bin/sh").readlink()) == "busybox"


def test_host_files_keep_their_mode_unless_told(tmp_path: Path) -> None:
    source = tmp_path / "prog"
    source.write_bytes(b"\x7fELF")
    source.chmod(0o750)
    archive = Archive()
    archive.add_host_file("/a", source)
    archive.add_host_file("/b", source, mode=0o644)
    data = _bytes(archive)
    assert b"%08X" % (stat.S_IFREG | 0o750) in data
    assert b"%08X" % (stat.S_IFREG | 0o644) in data


def _bytes(archive: Archive) -> bytes:
    buffer = io.BytesIO()
    archive.write(buffer)
    return buffer.getvalue()


def _cpio(args: list[str], archive: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    with archive.open("rb") as stdin:
        return subprocess.run(
            ["cpio", "--quiet", *args], stdin=stdin, cwd=cwd, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
