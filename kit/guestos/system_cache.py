"""Guest images built once per server, for every user: the system-wide cache.

On a class server every learner would otherwise build their own images (a
kernel build: minutes and about 3 GB of scratch disk each).  So root's
``python -m kit image`` (what ``./setup.sh`` runs) publishes each image it
builds or finds into ``/var/cache/kit/images`` (``KIT_SYSTEM_CACHE_DIR``):
owned by root, readable by everyone, writable by no one else.  Every user's
kit looks there first (:func:`kit.guestos.images.find_image`); a user's own
``~/.cache/kit`` is used only when the system-wide image is missing or out of
date (its key, a hash of the recipes and host programs, differs).

Publishing copies by hard link where the two caches share a file system (no
second copy of the bytes), and swaps the folder in with one rename, so a
guest starting meanwhile sees the old image or the new one, never half.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from kit.core import paths
from kit.guestos.build.common import manifest_kernel_choice

log = logging.getLogger(__name__)

def images_dir() -> Path:
    """The system-wide images folder (it may not exist)."""
    return paths.system_cache_dir() / "images"


def may_publish() -> bool:
    """Only root publishes, and only from the default cache (not a test's private one)."""
    return os.geteuid() == 0 and not os.environ.get("KIT_CACHE_DIR")


def publish(folder: Path) -> Path:
    """A read-only copy of the image ``folder`` for every user; returns where it is.

    Older images of the same architecture and kernel choice are removed:
    only the newest is ever looked for again, and running guests keep the
    files they opened.
    """
    target_dir = images_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target_dir.chmod(0o755)
    for parent in target_dir.parents:
        if parent == paths.system_cache_dir().parent:
            break
        parent.chmod(parent.stat().st_mode | 0o755)
    target = target_dir / folder.name
    scratch = Path(tempfile.mkdtemp(prefix=".publish-", dir=target_dir))
    try:
        copy = scratch / folder.name
        shutil.copytree(folder, copy, copy_function=_link_or_copy)
        _make_readable(copy)
        if target.exists():
            target.rename(scratch / "old")
        copy.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _remove_older(target)
    log.info("guest image %s published for every user in %s", folder.name, target_dir)
    return target


def candidates(name: str) -> list[Path]:
    """Where to look for the image folder ``name`` before the user's own cache.

    A private cache chosen with ``KIT_CACHE_DIR`` is used alone (a test's
    empty cache, say), unless ``KIT_SYSTEM_CACHE_DIR`` names a system-wide
    one as well.
    """
    if os.environ.get("KIT_CACHE_DIR") and not os.environ.get("KIT_SYSTEM_CACHE_DIR"):
        return []
    return [images_dir() / name]


def _link_or_copy(source: str, destination: str) -> str:
    try:
        os.link(source, destination)
    except OSError:  # another file system: a copy
        shutil.copy2(source, destination)
    return destination


def _make_readable(folder: Path) -> None:
    """Folders 0755, files 0644 (0755 for programs): every user reads, only root writes."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_file():
            executable = path.stat().st_mode & 0o100
            path.chmod(0o755 if executable else 0o644)


def _remove_older(keep: Path) -> None:
    arch = keep.name.split("-", 1)[0]
    choice = manifest_kernel_choice(keep)
    for folder in keep.parent.iterdir():
        if (folder != keep and folder.is_dir() and folder.name.startswith(f"{arch}-")
                and manifest_kernel_choice(folder) == choice):
            shutil.rmtree(folder, ignore_errors=True)
