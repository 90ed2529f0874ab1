"""Where the kit keeps its files.

Three places, each overridable by an environment variable so that tests and
shared machines can move them:

* the folders the kit ships, ``assets/`` (recipes) and ``lessons/`` (the
  notebooks), read-only: package data in an installed wheel, the repository's
  own folders in a checkout;
* the cache (built guest images), ``KIT_CACHE_DIR``, else ``~/.cache/kit``;
* the system-wide cache (images root built once for every user of the
  machine, read-only to them), ``KIT_SYSTEM_CACHE_DIR``, else
  ``/var/cache/kit``: see :func:`system_cache_dir`;
* the runtime folder (one sub-folder per live guest, with its sockets and
  logs), ``KIT_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/kit``, else
  ``/tmp/kit-<uid>``; always owner-only (0700), since it holds the sockets that
  control the guests;
* the snapshots (saved guests), ``KIT_SNAPSHOT_DIR``, else ``snapshots/`` in
  the cache, owner-only (0700) too: see :func:`snapshots_dir`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from kit.core.errors import SetupError

PACKAGED_DATA = "_data"  # kit/_data/{assets,lessons}: links to the top-level folders


def shipped_dir(name: str) -> Path:
    """A folder the kit ships beside its code: ``"assets"`` or ``"lessons"``.

    It is package data, ``kit/_data/NAME``, found through
    :mod:`importlib.resources`: in a wheel, a copy; in a checkout, a link to
    the repository's own top-level folder, so there is one copy to edit.
    """
    folder = Path(str(resources.files("kit"))) / PACKAGED_DATA / name
    if folder.is_dir():
        return folder
    raise SetupError(
        f"the kit's {name} folder is missing: {folder} is not there.",
        hint="Reinstall the kit (pip install --force-reinstall vm-layers-kit), or run "
        "./setup.sh in a checkout of the repository.",
    )


def assets_dir() -> Path:
    """The recipes of the guest images and of the kit's kernel."""
    return shipped_dir("assets")


def lessons_dir() -> Path:
    """The lesson notebooks, as shipped (learners work on copies: python -m kit lessons)."""
    return shipped_dir("lessons")


def cache_dir() -> Path:
    env = os.environ.get("KIT_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "kit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_dir() -> Path:
    env = os.environ.get("KIT_RUNTIME_DIR")
    if env:
        path = Path(env)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "kit"
    else:
        path = Path("/tmp") / f"kit-{os.getuid()}"
    return owner_only_dir(path)


def system_cache_dir() -> Path:
    """Where root publishes guest images for every user (``/var/cache/kit``).

    Not created here: it exists only where root has published images, and a
    user's kit merely looks into it (:mod:`kit.guestos.system_cache`).
    """
    return Path(os.environ.get("KIT_SYSTEM_CACHE_DIR") or "/var/cache/kit")


def snapshots_dir() -> Path:
    """Where saved guests are kept: in the cache, not the runtime folder.

    A snapshot is worth keeping across a notebook's restart (and the host's):
    the runtime folder may be a RAM-backed ``/run/user/UID``, small and
    emptied at logout, while a snapshot holds tens of MiB.  It also holds
    the guest's whole memory, so the folder is owner-only, like the
    runtime folder.
    """
    env = os.environ.get("KIT_SNAPSHOT_DIR")
    return owner_only_dir(Path(env) if env else cache_dir() / "snapshots")


def owner_only_dir(path: Path) -> Path:
    """Create ``path`` readable by its owner alone, and refuse one we do not own.

    A folder of that name made by another user could be used to steal or
    replace our sockets, so it is an error, not something to reuse.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise SetupError(
            f"{path} belongs to another user (uid {info.st_uid}).",
            hint="Set KIT_RUNTIME_DIR to a folder of your own.",
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path
