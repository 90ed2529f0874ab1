"""Where a class hub keeps its files: ``$KIT_HUB_DIR``, else ``/var/lib/kit-hub``.

Why there, and not in the checkout (``.hub/``): the hub's folder holds its
database of users and tokens and its cookie secret, which must be root's
alone, while a checkout is readable by everyone (the learners' servers run
its ``.venv``) and is wiped by ``git clean``; ``/var/lib`` is where a service
keeps state that outlives a reinstall.  One hub per server (one class at a
time); ``KIT_HUB_DIR`` moves it (the tests use a folder of their own).

Inside, each part has the permissions its readers need::

    /var/lib/kit-hub/            0755 root
        hub/                     0700 root: jupyterhub_config.py, the database,
                                 secrets, hub.log, jupyterhub.pid, first passwords
        images/                  0755 root: the hub's built guest images, read-only
                                 (each learner's ~/.cache/kit/images links to them)
        run/                     0755 root: one runtime folder per learner, made
            alice/               0700 alice   by root so no one can squat it
        progress/                0751 root:instructors (learners may only pass)
            alice/               2750 alice:instructors
                progress.json    0640 alice:instructors

The proxy, configurable-http-proxy, is a Node.js program installed with npm
into the kit's Python environment (``.venv/kit-hub-proxy``): it belongs with
the other packages the kit installs, not in the system's global npm folder.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/kit-hub")
PROGRESS_NAME = "progress.json"


@dataclass(frozen=True)
class HubPlaces:
    """The folders and files of one hub."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "hub"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def progress(self) -> Path:
        return self.root / "progress"

    @property
    def config_file(self) -> Path:
        return self.state / "jupyterhub_config.py"

    @property
    def log_file(self) -> Path:
        return self.state / "hub.log"

    @property
    def pid_file(self) -> Path:
        """The running JupyterHub's pid, written by JupyterHub itself; ``hub stop`` reads it."""
        return self.state / "jupyterhub.pid"

    @property
    def passwords_file(self) -> Path:
        """The first passwords of the accounts the kit made, for the instructor to hand out."""
        return self.state / "initial-passwords.txt"

    def runtime(self, user: str) -> Path:
        """A user's runtime folder (``KIT_RUNTIME_DIR`` of their server): sockets, guest records."""
        return self.run / user

    def progress_folder(self, user: str) -> Path:
        return self.progress / user

    def progress_file(self, user: str) -> Path:
        """A learner's progress file (``KIT_PROGRESS_FILE`` of their server)."""
        return self.progress_folder(user) / PROGRESS_NAME


def places(root: Path | None = None) -> HubPlaces:
    """The hub's places under ``root``, else ``$KIT_HUB_DIR``, else ``/var/lib/kit-hub``."""
    if root is None:
        env = os.environ.get("KIT_HUB_DIR")
        root = Path(env) if env else DEFAULT_ROOT
    return HubPlaces(root.expanduser().absolute())


def proxy_dir() -> Path:
    """Where npm installs configurable-http-proxy: a folder of the kit's Python environment."""
    return Path(sys.prefix) / "kit-hub-proxy"


def kit_python() -> Path:
    """The Python the learners' servers run: this one, the kit's environment's (not resolved)."""
    return Path(sys.executable)
