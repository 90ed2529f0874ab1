"""The spawner of a class hub where systemd does not run: LocalProcessSpawner, in a group.

JupyterHub's LocalProcessSpawner starts each server as its user and sets no
limit; :class:`KitLocalSpawner` moves the server into the control group the
hub made for that user (:mod:`kit.hub.controlgroups`), right after the
process starts and before it has children.  Imported only by the hub
process: JupyterHub loads it by name from the configuration.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner

from kit.hub.controlgroups import LearnerGroup

log = logging.getLogger(__name__)


class KitLocalSpawner(LocalProcessSpawner):  # type: ignore[misc]  # JupyterHub is untyped
    """LocalProcessSpawner whose server starts in the member's own control group."""

    kit_group: LearnerGroup | None = None  # set by the pre-spawn hook (kit.hub.config)

    async def start(self) -> Any:
        address = await super().start()
        if self.kit_group is not None:
            try:
                self.kit_group.place(self.pid)
            except OSError as error:
                log.warning("%s's server is not in its control group (%s): the kit's own "
                            "caps still hold", self.user.name, error)
        return address
