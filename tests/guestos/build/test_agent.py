"""The static guest agent: its recipe, its build's commands, and the image it goes into."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

import kit
from kit.core.errors import ImageError
from kit.guestos import images
from kit.guestos.build import agent

HOST_AGENT = Path("/usr/sbin/qemu-ga")
STATIC_BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: a program with no loader


def test_the_recipe_replaces_a_program_of_the_guest_recipe() -> None:
    """The agent the recipe builds is one the guest recipe takes from the host."""
    recipe = agent.load_recipe()
    assert recipe.replaces in {program.guest for program in images.load_recipe("x86_64").programs}
    assert "--static" in recipe.configure and "--enable-guest-agent" in recipe.configure
    assert recipe.target.endswith("/qemu-ga")


def test_only_guests_of_the_hosts_architecture_get_it() -> None:
    """The host's compiler builds it: an aarch64 guest on an x86 host keeps Debian's arm64 agent."""
    assert agent.applies_to(platform.machine())
    assert not agent.applies_to("no-such-arch")


def test_configure_finds_everything_in_the_unpacked_packages(tmp_path: Path) -> None:
    """pkg-config, meson and Python look in the unpacked packages, not in the host's /usr."""
    (tmp_path / "usr" / "lib" / "x86_64-linux-gnu" / "pkgconfig").mkdir(parents=True)
    command = agent.configure_command(agent.load_recipe(), tmp_path)
    assert command[0] == "../configure"
    assert command[-1] == f"--meson={tmp_path}/usr/bin/meson"
    env = agent.build_environment(tmp_path)
    assert env["PKG_CONFIG_SYSROOT_DIR"] == str(tmp_path)
    assert env["PKG_CONFIG_LIBDIR"].split(":") == [
        f"{tmp_path}/usr/lib/x86_64-linux-gnu/pkgconfig", f"{tmp_path}/usr/share/pkgconfig"]
    assert env["PYTHONPATH"] == f"{tmp_path}/usr/lib/python3/dist-packages"


def test_a_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(agent.shutil, "which",
                        lambda name: None if name == "ninja" else real(name))
    reason = agent.obstacle()
    assert reason is not None and "ninja" in reason


@pytest.mark.skipif(not (HOST_AGENT.is_file() and STATIC_BUSYBOX.is_file()),
                    reason="needs qemu-guest-agent and busybox-static (setup.sh installs them)")
def test_a_dynamic_program_is_told_from_a_static_one(tmp_path: Path) -> None:
    assert agent.has_interpreter(HOST_AGENT)
    assert not agent.has_interpreter(STATIC_BUSYBOX)
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(ImageError, match="not a 64-bit"):
        agent.has_interpreter(script)


@pytest.mark.skipif(not STATIC_BUSYBOX.is_file(), reason="needs busybox-static")
def test_a_static_program_goes_in_without_the_hosts_libraries() -> None:
    """The host's agent brings glib and friends; a static one in its place brings none."""
    recipe = images.load_recipe("x86_64")
    replaces = agent.load_recipe().replaces
    before = {file.guest for file in images.host_files(recipe)}
    after = {file.guest: file.host for file in
             images.host_files(recipe, static={replaces: STATIC_BUSYBOX})}
    assert after[replaces] == STATIC_BUSYBOX
    assert any("libglib" in path for path in before)
    assert not any("libglib" in path for path in after)


def test_the_image_key_follows_the_agent_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.image_key("x86_64")
    monkeypatch.setattr(agent, "recipe_digest", lambda recipe: "another recipe")
    assert images.image_key("x86_64") != before


@pytest.mark.guest  # builds the image (and the agent, about a minute), boots a guest
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_guest_runs_the_static_agent_of_debians_version(guest_name: str) -> None:
    """Where it can be built, the guest's agent is the static one, of the host's agent's version."""
    if agent.obstacle() is not None:
        pytest.skip(f"the static agent cannot be built here: {agent.obstacle()}")
    image = images.ensure_image("x86_64")
    manifest = images.read_manifest(image)
    assert manifest["guest_agent"] == "static", manifest.get("guest_agent_reason")
    built = agent.ensure_agent()
    assert not agent.has_interpreter(built.path)
    with kit.Guest(guest_name) as guest:
        info = guest.agent("guest-info")
        libraries = guest.run("ls /lib/x86_64-linux-gnu")
    host = subprocess.run([str(HOST_AGENT), "--version"], capture_output=True, text=True,
                          check=False).stdout
    assert info["version"] in host  # "QEMU Guest Agent 7.2.22"
    assert libraries.ok and "libc.so.6" in libraries.stdout  # sqlite3's
    assert "libglib" not in libraries.stdout
