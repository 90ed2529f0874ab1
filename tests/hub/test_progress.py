"""The class's progress as the instructor reads it: one record per learner, never an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kit.hub import progress as class_view
from kit.hub import spawning
from kit.hub.accounts import Account
from kit.hub.places import HubPlaces
from kit.lesson import progress

from .conftest import needs_root


def record_as(learner: str, drop: Path, monkeypatch: pytest.MonkeyPatch,
              passed: tuple[str, ...]) -> None:
    """What the learner's kernel does, with its KIT_PROGRESS_FILE in the drop folder."""
    (drop / learner).mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(drop / learner / "progress.json"))
    progress.record_opened(1, ["l1-a", "l1-b"], ["l1-q1"])
    for checkpoint in passed:
        progress.record_checkpoint(1, checkpoint, True)
    progress.record_answer(1, "l1-q1", 2, True)


def test_every_learner_with_a_folder_is_read(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    record_as("alice", tmp_path, monkeypatch, ("l1-a", "l1-b"))
    record_as("bob", tmp_path, monkeypatch, ("l1-a",))
    records = class_view.class_progress(drop=tmp_path)
    assert [r.learner for r in records] == ["alice", "bob"]
    alice, bob = records
    assert alice.problem is None and alice.lessons[1].status == "done"
    assert (bob.lessons[1].status, bob.passed, bob.started) == ("in progress", 1, True)
    assert bob.lessons[1].correct_answers == 1
    assert bob.updated_at is not None


def test_a_learner_without_a_file_or_with_a_broken_one_is_a_record_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record_as("alice", tmp_path, monkeypatch, ("l1-a",))
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "progress.json").write_text("{not json")
    (tmp_path / "dave").mkdir()
    (tmp_path / "dave" / "progress.json").write_text('{"lessons": {"1": "oops"}}')
    records = {r.learner: r for r in class_view.class_progress(["alice", "bob", "carol", "dave"],
                                                               drop=tmp_path)}
    assert records["alice"].problem is None
    assert "no progress yet" in (records["bob"].problem or "")
    assert "cannot be read" in (records["carol"].problem or "")
    assert "not a progress record" in (records["dave"].problem or "")
    assert not records["bob"].started and records["bob"].lessons == {}


def test_the_default_drop_folder_is_the_hubs(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_HUB_DIR", str(tmp_path))
    record_as("alice", tmp_path / "progress", monkeypatch, ())
    assert [r.learner for r in class_view.class_progress()] == ["alice"]


def test_no_drop_folder_yet_is_an_empty_class(tmp_path: Path) -> None:
    assert class_view.class_progress(drop=tmp_path / "none") == []


@needs_root
def test_the_drop_folder_lets_a_learner_write_only_their_own(
        hub_places: HubPlaces, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the hub makes it: the learner's file is theirs, the group reads it, others nothing."""
    learner = Account("nobody", 65534, 65534, Path("/nonexistent"))
    path = spawning.prepare_progress(learner, 0, hub_places)
    drop, folder = hub_places.progress, hub_places.progress_folder("nobody")
    modes = [(p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o7777)
             for p in (drop, folder, path)]
    assert modes == [(0, 0, 0o751), (65534, 0, 0o2750), (65534, 0, 0o640)]
    assert class_view.read_learner(drop, "nobody").problem is None
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(path))
    progress.record_opened(2, ["x"], [])  # root writes here as the learner's kit would
    assert path.stat().st_mode & 0o777 == 0o640


@needs_root
def test_the_hub_never_follows_a_link_a_learner_put_in_their_folder(
        hub_places: HubPlaces, tmp_path: Path) -> None:
    learner = Account("nobody", 65534, 65534, Path("/nonexistent"))
    spawning.prepare_progress(learner, 0, hub_places)
    victim = tmp_path / "a-system-file"
    victim.write_text("root's")
    victim.chmod(0o600)
    path = hub_places.progress_file("nobody")
    path.unlink()
    path.symlink_to(victim)
    spawning.prepare_progress(learner, 0, hub_places)  # the next start of their server
    info = victim.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.geteuid(), 0o600)
