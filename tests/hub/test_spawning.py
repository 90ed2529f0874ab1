"""What the hub does, as root, around one member's server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kit.core.errors import SetupError
from kit.guestos import images
from kit.hub import spawning
from kit.hub.accounts import Account
from kit.hub.classfile import ClassFile
from kit.hub.places import HubPlaces

from .conftest import needs_root

NOBODY = Account("nobody", 65534, 65534, Path("/nonexistent"))
CLASS = ClassFile(Path("class.toml"), "teacher", ("nobody",))


def test_a_learners_environment_holds_their_caps_and_places(hub_places: HubPlaces) -> None:
    env = spawning.environment(NOBODY, CLASS, hub_places)
    assert env["KIT_MAX_GUESTS"] == str(CLASS.limits.guests)
    assert env["KIT_MAX_GUEST_MEMORY_MB"] == str(CLASS.limits.guest_memory_mb)
    assert env["KIT_PROGRESS_FILE"] == str(hub_places.progress_file("nobody"))
    assert env["KIT_LESSONS_DIR"] == "/nonexistent/kit-lessons"
    teacher = Account("teacher", 1, 1, Path("/home/teacher"))
    assert "KIT_PROGRESS_FILE" not in spawning.environment(teacher, CLASS, hub_places)


@needs_root
def test_the_hubs_images_are_links_to_roots_read_only_files(hub_places: HubPlaces,
                                                            image: images.GuestImage) -> None:
    published = spawning.publish_images(hub_places)
    mine = hub_places.images / image.kernel.parent.name
    assert mine in published
    kernel = mine / image.kernel.name
    found = image.kernel  # root's image, wherever the kit found it
    if kernel.stat().st_dev == found.stat().st_dev:
        assert kernel.stat().st_ino == found.stat().st_ino  # the same file: no copy
    else:  # another file system (the hub's folder on a tmpfs): a copy, byte for byte
        assert kernel.read_bytes() == found.read_bytes()
    assert kernel.stat().st_mode & 0o777 == 0o644 and kernel.stat().st_uid == 0
    assert spawning.publish_images(hub_places) == published  # the second start: nothing new


@needs_root
def test_leftovers_are_only_that_members_qemu(hub_places: HubPlaces) -> None:
    """A record may be stale: a pid reused by another program is never killed."""
    innocent = subprocess.Popen(["sleep", "30"])
    try:
        folder = hub_places.runtime("nobody") / "vm1"
        folder.mkdir(parents=True)
        (folder / "guest.json").write_text(json.dumps({"pid": innocent.pid}))
        assert spawning.stop_leftovers(NOBODY, hub_places, None) == 0
        assert innocent.poll() is None
    finally:
        innocent.kill()
        innocent.wait()


@needs_root
def test_a_link_in_place_of_a_folder_is_refused(hub_places: HubPlaces, tmp_path: Path) -> None:
    hub_places.run.mkdir(parents=True)
    hub_places.runtime("nobody").symlink_to(tmp_path)
    with pytest.raises(SetupError, match="symbolic link"):
        spawning.prepare(NOBODY, CLASS, hub_places)
