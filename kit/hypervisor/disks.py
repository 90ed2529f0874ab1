"""A guest's own copy-on-write file over the root disk it boots from.

The image's root disk is shared by every guest, so no guest writes to it:
each one's writes go to a qcow2 *overlay*, a file whose "backing file" is
the image (or a snapshot's disk) and which holds only the blocks the guest
changed.  QEMU's ``snapshot=on`` makes such a file too, but deletes it as
soon as it has opened it; then nothing can copy it (a snapshot of the guest)
or reopen it (the new QEMU of a live migration).  So the kit names the file:
``disk.qcow2`` in the guest's runtime folder, removed with that folder.

An empty overlay is the same bytes for the same backing file, and
``qemu-img create`` costs a process (about 10 ms here), so it runs once per
backing file: the empty overlay is kept as a template and copied (about
0.1 ms) for every guest.  A snapshot keeps its own template beside its disk,
so a hundred clones cost one ``qemu-img``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import struct
import subprocess
import threading
from pathlib import Path

from kit.core import paths
from kit.core.errors import SetupError

log = logging.getLogger(__name__)

OVERLAY_NAME = "disk.qcow2"
QEMU_IMG_HINT = "Install QEMU's disk tools: sudo apt-get install qemu-utils (or run ./setup.sh)."

_making = threading.Lock()


def available() -> bool:
    """Whether overlays can be made here (``qemu-img`` is installed)."""
    return shutil.which("qemu-img") is not None


def new_overlay(target: Path, backing: Path, backing_format: str,
                templates: Path | None = None) -> Path:
    """An empty overlay at ``target`` (mode 0600) over ``backing``; returns ``target``.

    ``templates`` is where the empty overlay for this backing file is kept
    (by default ``overlays/`` in the cache).
    """
    template = _template(backing, backing_format, templates or _templates_dir())
    copy(template, target)
    return target


def copy(source: Path, target: Path) -> None:
    """Copy a disk file, readable and writable by its owner alone."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
        shutil.copyfileobj(data, out, 1 << 20)


def _templates_dir() -> Path:
    return paths.owner_only_dir(paths.cache_dir() / "overlays")


def _template(backing: Path, backing_format: str, folder: Path) -> Path:
    """The empty overlay over ``backing``, made once; a changed backing file gets a new one."""
    template = folder / _key_name(backing, backing_format)
    with _making:  # clones start side by side: one of them makes it
        if not template.exists():
            partial = folder / f".{template.name}.{os.getpid()}-{secrets.token_hex(4)}"
            create(partial, backing, backing_format)
            os.replace(partial, template)  # whole or not at all, even for another process
            log.info("made the empty overlay template %s over %s", template, backing)
            _prune(folder, keep=template)
    return template


def _prune(folder: Path, keep: Path) -> None:
    """Remove the templates over backing files that are gone or changed (an image rebuilt).

    A guest's overlay is a copy of its template, so removing one harms no guest.
    """
    for old in folder.glob("overlay-*.qcow2"):
        backing = backing_file(old)
        current = set() if backing is None or not backing.exists() else {
            _key_name(backing, fmt) for fmt in ("raw", "qcow2")}
        if old != keep and old.name not in current:
            old.unlink(missing_ok=True)


def _key_name(backing: Path, backing_format: str) -> str:
    """The template's name: it changes when the backing file does (path, size, time)."""
    info = backing.stat()
    key = hashlib.sha256(
        f"{backing}\0{info.st_size}\0{info.st_mtime_ns}\0{backing_format}".encode())
    return f"overlay-{key.hexdigest()[:20]}.qcow2"


def backing_file(overlay: Path) -> Path | None:
    """The backing file a qcow2 file names in its header (None: none, or unreadable)."""
    try:
        with open(overlay, "rb") as data:
            header = data.read(20)
            offset, size = struct.unpack(">QI", header[8:20])
            if header[:4] != b"QFI\xfb" or not offset:
                return None
            data.seek(offset)
            return Path(data.read(size).decode())
    except (OSError, struct.error, UnicodeDecodeError):
        return None


def create(target: Path, backing: Path, backing_format: str) -> None:
    """``qemu-img create``: an empty qcow2 file at ``target`` over ``backing``."""
    if not available():
        raise SetupError("qemu-img is not installed: a guest's disk cannot be saved or moved "
                         "without it.", hint=QEMU_IMG_HINT)
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format,
               "-b", str(backing), str(target)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise SetupError(f"qemu-img could not make a disk overlay over {backing}.",
                         command=command, log=done.stderr, exit_code=done.returncode,
                         hint="Check that the file exists and that the disk has room "
                         "(df -h); rebuild the image with python -m kit image if it is "
                         "damaged.")
    target.chmod(0o600)
