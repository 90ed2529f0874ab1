"""Progress: per learner, in one JSON file, safe against concurrent and broken writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from kit.lesson import progress


def test_no_file_means_nothing_started(progress_file: Path) -> None:
    assert not progress_file.exists()
    assert progress.lesson_progress(3).status == "not started"
    assert progress.all_progress() == {}


def test_the_file_follows_the_environment(progress_file: Path) -> None:
    assert progress.progress_file() == progress_file


def test_default_place_is_under_the_users_data_folder(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.delenv("KIT_PROGRESS_FILE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert progress.progress_file() == tmp_path / "kit" / "progress.json"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert progress.progress_file() == Path.home() / ".local/share/kit/progress.json"


def test_a_lesson_goes_from_opened_to_done(progress_file: Path) -> None:
    progress.record_opened(1, ["a", "b"], ["q1"])
    assert progress.lesson_progress(1).status == "in progress"
    progress.record_checkpoint(1, "a", passed=False)
    progress.record_checkpoint(1, "a", passed=True)
    progress.record_checkpoint(1, "a", passed=False)  # a later failure keeps the pass
    progress.record_checkpoint(1, "b", passed=True)
    progress.record_answer(1, "q1", 0, correct=False)
    progress.record_answer(1, "q1", 2, correct=True)
    progress.record_finished(1)
    done = progress.lesson_progress(1)
    assert done.status == "done" and done.finished
    assert set(done.passed) == {"a", "b"} and done.tries["a"] == 3
    assert done.answers["q1"] == progress.Answer(choice=2, correct=True, tries=2)
    assert done.correct_answers == 1
    data = json.loads(progress_file.read_text())
    assert data["format"] == progress.FORMAT and data["learner"]


def test_reset_forgets_one_lesson_or_all() -> None:
    progress.record_checkpoint(1, "a", passed=True)
    progress.record_checkpoint(2, "b", passed=True)
    progress.reset(1)
    assert set(progress.all_progress()) == {2}
    progress.reset()
    assert progress.all_progress() == {}


def test_writes_leave_no_temporary_files(progress_file: Path) -> None:
    for i in range(5):
        progress.record_checkpoint(0, f"c{i}", passed=True)
    leftovers = {p.name for p in progress_file.parent.iterdir()} - {
        progress_file.name, progress_file.name + ".lock"}
    assert leftovers == set()


def test_a_new_file_is_the_learners_alone(progress_file: Path) -> None:
    progress.record_opened(1, ["a"], [])
    assert progress_file.stat().st_mode & 0o777 == 0o600


def test_a_rewrite_keeps_the_files_permissions(progress_file: Path) -> None:
    """A class hub lets the instructors' group read the file (kit.hub.progress): kept."""
    progress.record_opened(1, ["a"], [])
    progress_file.chmod(0o640)
    progress.record_checkpoint(1, "a", True)
    assert progress_file.stat().st_mode & 0o777 == 0o640
    assert progress.lessons_in(json.loads(progress_file.read_text()))[1].passed == ("a",)


def test_a_broken_file_is_set_aside_not_lost(progress_file: Path) -> None:
    progress_file.write_text('{"lessons": {"1": ')  # a write cut short
    with pytest.warns(UserWarning, match="set aside"):
        assert progress.lesson_progress(1).status == "not started"
    kept = list(progress_file.parent.glob("progress.json.broken-*"))
    assert len(kept) == 1 and kept[0].read_text().startswith('{"lessons"')
    progress.record_checkpoint(1, "a", passed=True)
    assert progress.lesson_progress(1).passed == ("a",)


def test_an_unwritable_place_says_so_in_words(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(blocker / "progress.json"))
    with pytest.raises(progress.ProgressError, match="cannot be saved") as caught:
        progress.record_checkpoint(1, "a", passed=True)
    assert "KIT_PROGRESS_FILE" in (caught.value.hint or "")


def test_threads_recording_at_once_lose_nothing() -> None:
    def record(n: int) -> None:
        for i in range(10):
            progress.record_checkpoint(4, f"t{n}-{i}", passed=True)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(progress.lesson_progress(4).passed) == 40


def _record_in_another_process(path: str, n: int) -> None:
    os.environ["KIT_PROGRESS_FILE"] = path
    for i in range(10):
        progress.record_answer(5, f"p{n}-{i}", 0, correct=True)


def test_two_notebooks_recording_at_once_lose_nothing(progress_file: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_in_another_process,
                               args=(str(progress_file), n)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(progress.lesson_progress(5).answers) == 30


def test_every_wrong_answer_and_the_tries_moments_are_kept(progress_file: Path) -> None:
    """For the instructor's class view: common wrong answers, and how long someone tries."""
    progress.record_answer(1, "q1", 0, correct=False)
    progress.record_answer(1, "q1", 2, correct=False)
    progress.record_answer(1, "q1", 1, correct=True)
    progress.record_checkpoint(1, "a", passed=False)
    progress.record_checkpoint(1, "a", passed=True)
    progress.record_checkpoint(1, "b", passed=True, how="demo")  # not a try of the learner's
    done = progress.lesson_progress(1)
    assert done.answers["q1"] == progress.Answer(1, True, 3)
    assert done.answers["q1"].wrong == (0, 2)
    assert set(done.first_tried) == set(done.last_tried) == {"a"}
    assert time.time() - 60 < done.first_tried["a"] <= done.last_tried["a"] <= time.time() + 1


def test_a_file_from_before_wrong_answers_and_try_times_is_read_and_extended(
        progress_file: Path) -> None:
    old = {"format": 1, "learner": "alice", "lessons": {"1": {
        "checkpoints": {"a": {"tries": 2}},
        "answers": {"q1": {"choice": 0, "correct": False, "tries": 2, "at": "x"},
                    "q2": {"choice": 1, "correct": True, "tries": 1, "at": "x"}}}}}
    progress_file.write_text(json.dumps(old))
    done = progress.lesson_progress(1)
    assert (done.answers["q1"].wrong, done.answers["q2"].wrong) == ((0,), ())
    assert done.first_tried == {} and done.tries == {"a": 2}
    progress.record_answer(1, "q1", 2, correct=False)
    assert progress.lesson_progress(1).answers["q1"].wrong == (0, 2)
