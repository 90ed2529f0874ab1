"""JupyterHub's configuration, made from the class file: read back from a real Config."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets.config import Config

from kit.hub import classfile, config, places
from kit.hub.places import HubPlaces

from .conftest import needs_root

CLASS = """\
[hub]
port = 18123
[instructor]
name = "teacher"
group = "nogroup"
[learners]
names = ["nobody", "bob"]
[limits]
guests = 2
guest_memory_mb = 256
[limits.bob]
cpus = 0.5
"""


@pytest.fixture
def class_file(tmp_path: Path) -> Path:
    path = tmp_path / "class.toml"
    path.write_text(CLASS)
    return path


def configured(class_file: Path, where: HubPlaces, systemd: bool) -> Any:
    c = Config()
    config.apply(c, class_file=str(class_file), hub_dir=str(where.root), hub_port=18124,
                 proxy_api_port=18125, systemd=systemd)
    return c


def test_the_hub_listens_where_the_class_file_says(class_file: Path,
                                                   hub_places: HubPlaces) -> None:
    c = configured(class_file, hub_places, systemd=False)
    assert (c.JupyterHub.ip, c.JupyterHub.port) == ("127.0.0.1", 18123)
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_port) == ("127.0.0.1", 18124)
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18125"
    assert c.JupyterHub.db_url == f"sqlite:///{hub_places.state}/jupyterhub.sqlite"


def test_only_the_class_logs_in_and_the_instructor_is_admin(class_file: Path,
                                                            hub_places: HubPlaces) -> None:
    c = configured(class_file, hub_places, systemd=False)
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.Authenticator.allowed_users == {"teacher", "nobody", "bob"}
    assert c.Authenticator.admin_users == {"teacher"}


def test_systemd_gets_its_spawner_elsewhere_the_kits(class_file: Path,
                                                     hub_places: HubPlaces) -> None:
    assert configured(class_file, hub_places, False).JupyterHub.spawner_class == \
        "kit.hub.spawners.KitLocalSpawner"
    c = configured(class_file, hub_places, True)
    assert c.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    assert c.SystemdSpawner.unit_name_template == "kit-hub-18123-{USERNAME}"


def test_servers_start_through_the_kit(class_file: Path, hub_places: HubPlaces) -> None:
    c = configured(class_file, hub_places, False)
    assert c.Spawner.cmd[1:] == ["-m", "kit.hub.learner"]
    assert c.LocalProcessSpawner.env_keep == ["LANG", "LC_ALL"]  # root's PATH stays root's


def test_the_written_file_calls_apply(class_file: Path, hub_places: HubPlaces) -> None:
    hub_places.state.mkdir(parents=True)
    written = config.write(classfile.read(class_file), hub_places, 18124, 18125)
    c = Config()
    exec(compile(written.read_text(), str(written), "exec"), {"c": c})
    assert c.JupyterHub.port == 18123
    assert written.stat().st_mode & 0o777 == 0o600


@needs_root
def test_a_servers_environment_and_limits_come_from_the_class_file(
        class_file: Path, hub_places: HubPlaces) -> None:
    c = configured(class_file, hub_places, systemd=True)  # no control group made here
    spawner = SimpleNamespace(user=SimpleNamespace(name="nobody"), environment={"A": "1"})
    c.Spawner.pre_spawn_hook(spawner)
    env = spawner.environment
    assert (env["A"], env["KIT_MAX_GUESTS"], env["KIT_MAX_GUEST_MEMORY_MB"]) == ("1", "2", "256")
    assert env["KIT_PROGRESS_FILE"] == str(hub_places.progress_file("nobody"))
    assert env["KIT_RUNTIME_DIR"] == str(hub_places.runtime("nobody"))
    kit_bin = str(places.kit_python().parent)  # the kit's own, wherever the checkout is
    assert [p for p in env["PATH"].split(":") if p.startswith("/root") and p != kit_bin] == []
    limits = classfile.read(class_file).limits_for("nobody")
    assert spawner.mem_limit == limits.server_memory_mb * 2**20  # SystemdSpawner's MemoryMax
    assert spawner.cpu_limit == limits.cpus == 2.0
    assert hub_places.runtime("nobody").stat().st_uid == 65534
    c.Spawner.post_stop_hook(spawner)
