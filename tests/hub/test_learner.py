"""The start of a learner's server, as the learner: lesson copies, image links, then Jupyter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kit.hub import learner


def test_the_server_saves_through_the_kits_hook() -> None:
    command = learner.server_command(["--debug"])
    assert command[:3] == [sys.executable, "-m", "jupyterhub.singleuser"]
    assert "--ContentsManager.pre_save_hook=kit.lesson.workspace.drop_widget_views" in command
    assert command[-1] == "--debug"


def test_each_hub_image_gets_a_link_once(tmp_path: Path) -> None:
    hub = tmp_path / "hub-images"
    (hub / "x86_64-aaa").mkdir(parents=True)
    (hub / ".x86_64-bbb.publishing").mkdir()  # half published: not linked
    cache = tmp_path / "cache"
    made = learner.link_images(hub, cache)
    assert made == [cache / "images" / "x86_64-aaa"]
    assert made[0].resolve() == hub / "x86_64-aaa"
    assert learner.link_images(hub, cache) == []


def test_a_link_to_an_image_the_hub_removed_goes(tmp_path: Path) -> None:
    hub = tmp_path / "hub-images"
    (hub / "x86_64-old").mkdir(parents=True)
    cache = tmp_path / "cache"
    learner.link_images(hub, cache)
    (hub / "x86_64-old").rmdir()
    (hub / "x86_64-new").mkdir()
    learner.link_images(hub, cache)
    assert sorted(p.name for p in (cache / "images").iterdir()) == ["x86_64-new"]


def test_a_learners_own_image_is_never_replaced(tmp_path: Path) -> None:
    hub = tmp_path / "hub-images"
    (hub / "x86_64-aaa").mkdir(parents=True)
    own = tmp_path / "cache" / "images" / "x86_64-aaa"
    own.mkdir(parents=True)
    assert learner.link_images(hub, tmp_path / "cache") == []
    assert not own.is_symlink()


def test_preparing_the_home_makes_the_lesson_copies(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_LESSONS_DIR", str(tmp_path / "lessons"))
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KIT_HUB_DIR", str(tmp_path / "no-hub"))
    learner.prepare_home()
    assert sorted((tmp_path / "lessons").glob("00-*.ipynb"))
