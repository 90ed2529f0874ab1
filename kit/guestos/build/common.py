"""What every image builder shares: progress reports, the cache folder, locks, scratch
folders and file digests.

Builders (the kit's kernel, the foreign architecture's programs, the image
itself) import this module, never each other's, so the builders form no cycle.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from kit.core import paths
from kit.core.errors import ImageError

# The Debian packages an image is built from, for a hint when a tool is missing.
HOST_PACKAGES_HINT = "apt-get install busybox-static qemu-guest-agent sqlite3"

Progress = Callable[[str, float], None]


# find_image() runs on every guest start, twice.  Hashing the ~25 host and
# recipe files and running ldd three times took 33 ms of each call (measured:
# benchmarks/fast_boot.py), so a file whose inode, size and modification time
# are unchanged is not read again in this process.
StatKey = tuple[int, int, int]


_digests: dict[Path, tuple[StatKey, str]] = {}


def stat_key(path: Path) -> StatKey:
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


def sha256_of(path: Path) -> str:
    key = stat_key(path)
    cached = _digests.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    _digests[path] = (key, digest)
    return digest


def images_dir() -> Path:
    path = paths.cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def no_progress(step: str, fraction: float) -> None:
    """The progress callback of a build nobody watches."""
    del step, fraction


@contextlib.contextmanager
def build_lock(arch: str, folder: Path | None = None) -> Iterator[None]:
    """One build per architecture and cache folder at a time, across processes."""
    with ((folder or images_dir()) / f".{arch}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A folder in ``parent`` (default: the images' folder), removed unless renamed into place.

    Builds happen in such a folder beside their destination, so that a
    finished build is published by one rename and a failed one leaves nothing.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or images_dir()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def print_progress(step: str, fraction: float) -> None:
    """A one-line progress bar on stderr, redrawn in place on a terminal."""
    width = 24
    filled = round(max(0.0, min(1.0, fraction)) * width)
    line = f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}  {step}"
    if sys.stderr.isatty():
        end = "\n" if fraction >= 1.0 else ""
        sys.stderr.write(f"\r\033[K{line}{end}")
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def build_obstacle(what: str, missing: list[str], folder: Path, needed_bytes: int) -> str | None:
    """Why ``what`` (a kernel or agent build) cannot run here, or None.

    ``missing`` are the tools or files it lacks; ``folder`` must have
    ``needed_bytes`` free for the source, the objects and the result.
    """
    if missing:
        return f"{what} needs {', '.join(missing)}, which this machine lacks"
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        return (f"{what} needs {needed_bytes / 2**30:.0f} GB of free disk in {folder}, "
                f"and {free / 2**30:.1f} GB are free")
    return None


def require_tool(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise ImageError(
            f"The kit builds its guest from Debian packages, and this machine has no {command[0]}.",
            hint=(
                "Run the kit on Debian 12 (or a derivative) with apt-get, apt-cache, "
                "dpkg-deb, ldd and the packages "
                f"{HOST_PACKAGES_HINT.removeprefix('apt-get install ')}; or copy a built "
                f"image from such a machine into {images_dir()}."
            ),
            command=command,
        )


def manifest_kernel_choice(folder: Path) -> str:
    """The kernel choice an image folder was built for ("auto" for older images)."""
    try:
        return str(json.loads((folder / "manifest.json").read_text())
                   .get("kernel_choice", "auto"))
    except (OSError, ValueError, AttributeError):
        return "auto"
