"""Real chroots and real other users, for tests of hosts that refuse user namespaces.

:func:`run_in_chroot` builds a chroot as people do (a folder, the host's
``/usr`` and friends bound into it) and runs a command in it.  Every mount is
made in a private mount namespace of its own (``unshare --mount``), so the
kernel drops them when the command ends: nothing is ever mounted on the host,
and the folder is removed with ``rmdir`` only, never recursively.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from kit.core import paths

BOUND = ("usr", "etc", "proc", "dev", "sys", "tmp")
USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
AS_NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a chroot needs root")

# $1: the folder; $2: 1 to make it a mount point first; $3: folders to bind; $4: links to copy.
SCRIPT = r"""
set -e
root=$1 selfbind=$2 bound=$3 links=$4; shift 4
[ "$selfbind" = 1 ] && mount --bind "$root" "$root"
for top in $bound; do mkdir -p "$root/$top"; mount --rbind "/$top" "$root/$top"; done
for link in $links; do ln -sfn "$(readlink "/$link")" "$root/$link"; done
exec chroot "$root" "$@"
"""


def run_in_chroot(command: Sequence[str], *, mount_point: bool = True,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` chrooted in a new folder that holds the host's programs and the kit.

    ``mount_point``: bind the folder onto itself first (schroot does); a bare
    ``chroot DIR`` leaves the chroot's ``/`` a plain folder.
    """
    folder = Path(tempfile.mkdtemp(prefix="kit-chroot-", dir="/tmp"))
    folder.chmod(0o755)  # other users (nobody) must reach the programs in it
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               SCRIPT, "sh", str(folder), "1" if mount_point else "0",
                               " ".join(_bound()), " ".join(_links()), *command],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              cwd="/", stdin=subprocess.DEVNULL)
    finally:
        _remove(folder)


def _bound() -> list[str]:
    """The host's top folders the chroot needs: programs, the kit, its cache, this Python."""
    extra = [_top(Path(__file__)), _top(paths.cache_dir()), _top(Path(sys.prefix))]
    return sorted({*BOUND, *extra, *(name for name in USR_LINKS
                                     if Path("/", name).is_dir() and not _is_link(name))})


def _links() -> list[str]:
    return [name for name in USR_LINKS if _is_link(name)]  # merged /usr: bin -> usr/bin


def _is_link(name: str) -> bool:
    return Path("/", name).is_symlink()


def _top(path: Path) -> str:
    return path.resolve().parts[1]


def _remove(folder: Path) -> None:
    """Remove the chroot's folder: links and empty folders only (the mounts died with it)."""
    for entry in folder.iterdir():
        if entry.is_symlink():
            entry.unlink()
        else:
            entry.rmdir()  # refuses, loudly, if anything were still mounted or written
    folder.rmdir()


def python(code: str) -> list[str]:
    """This interpreter running ``code`` (with the kit importable from the checkout)."""
    return ["env", f"PYTHONPATH={Path(__file__).resolve().parents[2]}", sys.executable, "-c",
            code]
