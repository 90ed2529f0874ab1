"""Bad input stops a class hub with a clear error, before anything is made or started.

Each test checks the error and that nothing was left: no account, no hub
folder, no firewall table.  The hub that does start is test_class_on_hub.py's.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core.errors import InvalidInput, KitError, SetupError
from kit.hub import classfile, firewall, server
from kit.hub.places import HubPlaces
from kit.infrastructure.net import free_port

from .conftest import needs_root

ROOT = Path(__file__).resolve().parents[2]
NEVER_MADE = ("kit-hub-bad-t", "kit-hub-bad-1", "kit-hub-bad-2")


def write_class(folder: Path, port: int, extra: str = "") -> Path:
    path = folder / "class.toml"
    path.write_text(f'[hub]\nport = {port}\n[instructor]\nname = "{NEVER_MADE[0]}"\n'
                    f'[learners]\nnames = ["{NEVER_MADE[1]}", "{NEVER_MADE[2]}"]\n{extra}')
    return path


@pytest.fixture
def nothing_left(hub_places: HubPlaces) -> Iterator[HubPlaces]:
    yield hub_places
    for name in NEVER_MADE:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    assert not hub_places.root.exists()


def refused(path: Path, where: HubPlaces) -> KitError:
    with pytest.raises(KitError) as info:
        server.Hub.start(classfile.read(path), where)
    assert info.value.hint, "an error says what to do"
    return info.value


@needs_root
def test_a_hub_port_in_use(tmp_path: Path, nothing_left: HubPlaces) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = refused(write_class(tmp_path, port), nothing_left)
    assert isinstance(error, SetupError)
    assert f"port {port} on 127.0.0.1 is in use" in error.message
    assert "[hub] port" in (error.hint or "")
    assert not firewall.active(port)


@needs_root
def test_missing_nodejs(tmp_path: Path, nothing_left: HubPlaces,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    error = refused(write_class(tmp_path, free_port()), nothing_left)
    assert "Node.js is missing" in error.message
    assert "apt-get install -y nodejs npm" in (error.hint or "")


@needs_root
def test_an_unknown_user(tmp_path: Path, nothing_left: HubPlaces) -> None:
    path = write_class(tmp_path, free_port(), "create = false\n")
    error = refused(path, nothing_left)
    assert isinstance(error, InvalidInput)
    assert f"'{NEVER_MADE[0]}' is an unknown user" in error.message


def test_a_limit_that_is_not_a_number(tmp_path: Path) -> None:
    """Through the command an instructor types: one clear line, exit status 1."""
    path = write_class(tmp_path, free_port(), '[limits]\nguest_memory_mb = "lots"\n')
    env = {**os.environ, "KIT_HUB_DIR": str(tmp_path / "hub")}
    done = subprocess.run([sys.executable, "-m", "kit", "hub", "serve", str(path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "limits.guest_memory_mb = 'lots' is not a number" in done.stderr
    assert "what to do: Write a whole number without quotes" in done.stderr
    assert not (tmp_path / "hub").exists()


@needs_root
def test_only_root_serves_a_class(hub_places: HubPlaces) -> None:
    path = write_class(hub_places.root.parent, free_port())  # a folder nobody may enter
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
         "kit", "hub", "check", str(path)], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "HOME": "/tmp"})
    assert done.returncode == 1, done.stdout
    assert "must run as root" in done.stderr


@needs_root
def test_check_says_what_serve_would_do_and_makes_nothing(tmp_path: Path,
                                                          nothing_left: HubPlaces) -> None:
    path = write_class(tmp_path, free_port(), "[limits]\nguests = 2\n")
    env = {**os.environ, "KIT_HUB_DIR": str(nothing_left.root)}
    done = subprocess.run([sys.executable, "-m", "kit", "hub", "check", str(path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{NEVER_MADE[1]}: 2 guests" in done.stdout
    assert "guests boot" in done.stdout


def test_the_example_class_file_is_printed() -> None:
    done = subprocess.run([sys.executable, "-m", "kit", "hub", "example"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == classfile.EXAMPLE
