"""Where the kit keeps its files.

Three places, each overridable by an environment variable so that tests and
shared machines can move them:

* the project's ``assets/`` folder (recipes, read-only);
* the cache (built guest images), ``KIT_CACHE_DIR``, else ``~/.cache/kit``;
* the runtime folder (one sub-folder per live guest, with its sockets and
  logs), ``KIT_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/kit``, else
  ``/tmp/kit-<uid>``; always owner-only (0700), since it holds the sockets that
  control the guests.
"""

from __future__ import annotations

import os
from pathlib import Path

from kit.errors import SetupError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def assets_dir() -> Path:
    return PROJECT_ROOT / "assets"


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
