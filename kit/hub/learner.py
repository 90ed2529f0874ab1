"""The start of a member's server, run as that member: their lessons, their images, Jupyter.

JupyterHub's spawner runs ``python -m kit.hub.learner`` as the learner, in
place of ``jupyterhub-singleuser``.  Before it becomes that server (``exec``:
the same process, so the spawner's control group and signals still apply),
it makes, as the learner, what must be in their home:

* their own copies of the lessons (``~/kit-lessons``; copies they have are
  never overwritten), where the server opens;
* a link in their image cache to each of the hub's built guest images, so
  that their first guest boots at once instead of building an image.

Done as the learner, not by the hub as root: root never writes in a home
that someone else controls (:mod:`kit.hub.spawning` says why).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from kit.core import paths
from kit.core.errors import KitError
from kit.hub import places
from kit.lesson import workspace

log = logging.getLogger(__name__)

PRE_SAVE_HOOK = "kit.lesson.workspace.drop_widget_views"


def server_command(argv: list[str]) -> list[str]:
    """The single-user server this process becomes, with the kit's save hook."""
    return [sys.executable, "-m", "jupyterhub.singleuser",
            f"--ContentsManager.pre_save_hook={PRE_SAVE_HOOK}", *argv]


def link_images(hub_images: Path, cache: Path) -> list[Path]:
    """A link in ``cache/images`` to each hub image not there yet; returns the new links.

    A link to a hub image that is gone (the hub rebuilt it) is removed, so
    the kit finds the new one instead of a half image.
    """
    target = cache / "images"
    target.mkdir(parents=True, exist_ok=True)
    for link in target.iterdir():
        if link.is_symlink() and not link.exists():
            link.unlink()
    made: list[Path] = []
    if not hub_images.is_dir():
        return made
    for image in sorted(hub_images.iterdir()):
        link = target / image.name
        if image.name.startswith(".") or link.exists() or link.is_symlink():
            continue
        link.symlink_to(image, target_is_directory=True)
        made.append(link)
    return made


def prepare_home() -> None:
    """The learner's lesson copies and image links; a failure is logged, not fatal."""
    try:
        made = workspace.copy_missing()
        log.info("%d new lesson copies in %s", len(made), workspace.learner_folder())
    except (KitError, OSError) as error:
        log.warning("lesson copies not made: %s", error)
    try:
        link_images(places.places().images, paths.cache_dir())
    except OSError as error:
        log.warning("links to the hub's images not made: %s", error)


def main(argv: list[str] | None = None) -> NoReturn:
    logging.basicConfig(level=logging.INFO, format="[kit %(levelname)s] %(message)s")
    prepare_home()
    command = server_command(sys.argv[1:] if argv is None else argv)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
