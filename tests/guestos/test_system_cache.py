"""Images built once per server: root publishes them read-only, every user's kit finds them.

Real files, a real second user (``kit-learner``, made by ``./setup.sh test``)
and the real image of this run; the system-wide cache is a folder of the
test's own (``KIT_SYSTEM_CACHE_DIR``), so /var/cache/kit is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.guestos import images, system_cache
from kit.guestos.build import common
from tests.infrastructure.test_limits import Learner, learner_or_none

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root publishes, and acts "
                                "as a second user")

FIND = """
import json
from kit.guestos import images
image = images.find_image()
print(json.dumps({"found": str(image.kernel.parent) if image else None}))
"""


@pytest.fixture
def system_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A system-wide cache every user can enter (pytest's own tmp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="kit-system-cache-", dir="/var/tmp"))
    folder.chmod(0o755)
    monkeypatch.setenv("KIT_SYSTEM_CACHE_DIR", str(folder))
    monkeypatch.delenv("KIT_CACHE_DIR", raising=False)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def learner() -> Learner:
    found = learner_or_none()
    if found is None:
        pytest.fail("there is no user kit-learner: ./setup.sh test, run as root, creates it")
    return found


def own_image(image: images.GuestImage) -> Path:
    return image.kernel.parent


def test_published_images_are_readable_by_all_and_writable_by_root_alone(
        image: images.GuestImage, system_dir: Path) -> None:
    published = system_cache.publish(own_image(image))
    assert published.parent == system_dir / "images"
    for path in (published, *published.rglob("*")):
        mode = path.stat().st_mode
        assert path.stat().st_uid == 0 and not mode & (stat.S_IWGRP | stat.S_IWOTH), path
        assert mode & stat.S_IROTH, path
    assert images.find_image().kernel.parent == published  # type: ignore[union-attr]


def test_another_user_uses_the_published_image_and_cannot_change_it(
        image: images.GuestImage, system_dir: Path, learner: Learner) -> None:
    published = system_cache.publish(own_image(image))
    env = {"KIT_SYSTEM_CACHE_DIR": str(system_dir)}
    found = json.loads(learner.run(sys.executable, "-c", FIND, **env).stdout)
    assert found == {"found": str(published)}
    written = learner.run("touch", str(published / "kernel-by-learner"), **env)
    assert written.returncode != 0 and "Permission denied" in written.stderr


def test_an_out_of_date_system_image_is_not_used(image: images.GuestImage,
                                                 system_dir: Path) -> None:
    published = system_cache.publish(own_image(image))
    stale = published.with_name(published.name.split("-")[0] + "-0123456789abcdef0123")
    published.rename(stale)  # another key: built from other recipes
    users_own = common.images_dir() / published.name
    assert users_own.is_dir()  # this run's own cache has it
    assert images.find_image().kernel.parent == users_own  # type: ignore[union-attr]


def test_only_root_with_the_default_cache_publishes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_CACHE_DIR", raising=False)
    assert system_cache.may_publish()
    monkeypatch.setenv("KIT_CACHE_DIR", "/tmp/a-private-cache")
    assert not system_cache.may_publish()  # a private cache stays private
    assert system_cache.candidates("x86_64-abc") == []  # and is used alone


def test_a_newer_image_replaces_the_older_one_of_its_kind(image: images.GuestImage,
                                                          system_dir: Path) -> None:
    first = system_cache.publish(own_image(image))
    older = first.with_name(first.name.split("-")[0] + "-00000000000000000000")
    first.rename(older)
    again = system_cache.publish(own_image(image))
    assert again.exists() and not older.exists()
