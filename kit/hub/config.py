"""JupyterHub's configuration for a class, made from the class file.

The file JupyterHub reads (``hub/jupyterhub_config.py`` in the hub's folder,
written at each start by :func:`write`) is three lines that call
:func:`apply`: the configuration itself is typed, tested Python here, and
the class file stays the one place an instructor edits.

What :func:`apply` sets, and why:

* the public address from the class file (127.0.0.1:8000 by default); the
  hub's own API and the proxy's API on free ports of 127.0.0.1, chosen at
  start, so a second hub (a test) never collides with the first;
* the database, cookie secret and pid files in the hub's root-only folder;
* PAM logins for exactly the class's members, the instructor an admin;
* the spawner: SystemdSpawner (a unit with ``MemoryMax`` and ``CPUQuota``
  per learner) where systemd runs, else :class:`kit.hub.spawners.KitLocalSpawner`
  (a control group the hub makes); the kit's caps in the environment of both;
* each server started as ``python -m kit.hub.learner`` (lesson copies, image
  links, then ``jupyterhub-singleuser`` with the kit's save hook), opening in
  the member's ``~/kit-lessons``;
* hooks around each server (:mod:`kit.hub.spawning`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kit.hub import accounts, classfile, controlgroups, places, spawning
from kit.hub.classfile import ClassFile
from kit.hub.places import HubPlaces
from kit.lesson import workspace

log = logging.getLogger(__name__)

SYSTEMD_SIGN = Path("/run/systemd/system")  # sd_booted(): the host runs systemd
START_TIMEOUT = 180  # seconds: a busy TCG host starts a Jupyter server slowly
LOCAL_SPAWNER = "kit.hub.spawners.KitLocalSpawner"
SYSTEMD_SPAWNER = "systemdspawner.SystemdSpawner"


def systemd_runs() -> bool:
    return SYSTEMD_SIGN.is_dir()


def write(klass: ClassFile, where: HubPlaces, hub_port: int, proxy_api_port: int) -> Path:
    """The config file JupyterHub reads; made anew at each start."""
    text = (
        "# Written by `python -m kit hub serve` at each start: edit the class file instead.\n"
        "from kit.hub import config\n\n"
        f"config.apply(c, class_file={str(klass.path)!r}, hub_dir={str(where.root)!r},\n"
        f"             hub_port={hub_port}, proxy_api_port={proxy_api_port})  # noqa: F821\n"
    )
    where.config_file.write_text(text)
    where.config_file.chmod(0o600)
    return where.config_file


def apply(c: Any, *, class_file: str, hub_dir: str, hub_port: int, proxy_api_port: int,
          systemd: bool | None = None) -> ClassFile:
    """Configure JupyterHub (its ``c``) for the class in ``class_file``; returns the class."""
    klass = classfile.read(Path(class_file))
    where = places.places(Path(hub_dir))
    _network(c, klass, hub_port, proxy_api_port)
    _state(c, where)
    _logins(c, klass)
    _servers(c, klass, where, systemd_runs() if systemd is None else systemd)
    return klass


def _network(c: Any, klass: ClassFile, hub_port: int, proxy_api_port: int) -> None:
    from kit.hub import proxy

    c.JupyterHub.ip = klass.ip
    c.JupyterHub.port = klass.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    program = proxy.installed()
    if program is not None:
        c.ConfigurableHTTPProxy.command = [str(program)]


def _state(c: Any, where: HubPlaces) -> None:
    c.JupyterHub.db_url = f"sqlite:///{where.state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(where.state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(where.pid_file)
    c.ConfigurableHTTPProxy.pid_file = str(where.state / "proxy.pid")
    c.JupyterHub.cleanup_servers = True  # the hub's stop stops every server (and guest)


def _logins(c: Any, klass: ClassFile) -> None:
    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.allowed_users = set(klass.members)
    c.Authenticator.admin_users = {klass.instructor}


def _servers(c: Any, klass: ClassFile, where: HubPlaces, systemd: bool) -> None:
    c.Spawner.cmd = [str(places.kit_python()), "-m", "kit.hub.learner"]
    c.Spawner.default_url = _first_page()
    c.Spawner.start_timeout = START_TIMEOUT
    c.Spawner.http_timeout = START_TIMEOUT
    c.Spawner.pre_spawn_hook = _before_start(klass, where, systemd)
    c.Spawner.post_stop_hook = _after_stop(klass, where, systemd)
    if systemd:
        c.JupyterHub.spawner_class = SYSTEMD_SPAWNER
        c.SystemdSpawner.unit_name_template = f"kit-hub-{klass.port}-{{USERNAME}}"
        c.SystemdSpawner.isolate_tmp = True
        c.SystemdSpawner.disable_user_sudo = True
        c.SystemdSpawner.default_shell = "/bin/bash"
    else:
        c.JupyterHub.spawner_class = LOCAL_SPAWNER
        c.LocalProcessSpawner.env_keep = ["LANG", "LC_ALL"]  # not root's PATH


def _first_page() -> str:
    """The welcome lesson, open in JupyterLab: where a learner starts."""
    shipped = workspace.shipped_notebooks()
    return f"/lab/tree/{shipped[0].name}" if shipped else "/lab"


def group_name(klass: ClassFile) -> str:
    """The hub's folder in each control-group hierarchy: one per hub, named by its port."""
    return f"kit-hub-{klass.port}"


def _before_start(klass: ClassFile, where: HubPlaces, systemd: bool) -> Any:
    def before_start(spawner: Any) -> None:
        member = accounts.account(str(spawner.user.name))
        limits = klass.limits_for(member.name)
        spawning.prepare(member, klass, where)
        spawner.environment = {**spawner.environment,
                               **spawning.environment(member, klass, where)}
        spawner.notebook_dir = str(spawning.lessons_folder(member))
        spawner.mem_limit = limits.server_memory_mb * 2**20
        spawner.cpu_limit = limits.cpus
        if not systemd:
            spawner.kit_group = controlgroups.make(group_name(klass), member.name, limits)

    return before_start


def _after_stop(klass: ClassFile, where: HubPlaces, systemd: bool) -> Any:
    def after_stop(spawner: Any) -> None:
        member = accounts.account(str(spawner.user.name))
        group = getattr(spawner, "kit_group", None)
        if group is None and not systemd:  # a server from before the hub restarted
            group = controlgroups.existing(group_name(klass), member.name)
        killed = spawning.stop_leftovers(member, where, group)
        if killed:
            log.info("stopped %d processes left by %s's server", killed, member.name)

    return after_stop
