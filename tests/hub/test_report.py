"""The class at a glance, from synthetic drop folders: statuses, quiz, wrong answers, stuck, CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.hub import report, spawning
from kit.hub.accounts import Account
from kit.hub.classfile import parse
from kit.hub.places import HubPlaces
from kit.hub.report import ClassReport, class_report
from kit.lesson import progress
from tests.waiting import wait_until

from .conftest import needs_root
from .synthetic_class import NOW, make_class, write


def read(drop: Path, learners: list[str] | None = None) -> ClassReport:
    return class_report(learners, drop, uid_of=lambda _name: None, now=NOW)


@pytest.fixture
def the_class(tmp_path: Path) -> ClassReport:
    return read(tmp_path, make_class(tmp_path))


def rows(text: str) -> dict[str, dict[str, str]]:
    return {row["learner"]: row for row in csv.DictReader(io.StringIO(text))}


def test_each_checkpoint_says_how_it_was_passed(the_class: ClassReport) -> None:
    table = {r.learner: [the_class.status(r, 1, cid) for cid in
                         ("l1-secret", "l1-machine", "l1-renice")]
             for r in the_class.records if r.problem is None}
    assert table == {"alice": ["alone", "hint", "solution"],
                     "bob": ["alone", "tried", "not tried"],
                     "carol": ["demo", "tried", "not tried"],
                     "dave": ["tried", "alone", "not tried"]}


def test_a_learner_without_a_file_or_with_a_broken_one_is_listed_with_why(
        the_class: ClassReport) -> None:
    problems = {r.learner: r.problem for r in the_class.records if r.problem}
    assert set(problems) == {"erin", "frank"}
    assert "no progress yet" in problems["erin"]


def test_the_quiz_score_counts_the_latest_answers(the_class: ClassReport) -> None:
    alice = next(r for r in the_class.records if r.learner == "alice")
    score = the_class.quiz(alice, the_class.lesson(1))
    assert (score.right, score.first_try, score.answered, score.questions) == (2, 1, 3, 5)
    assert score.text == "2/5" and "1 at the first try" in score.words


def test_the_commonest_wrong_answers_come_first(the_class: ClassReport) -> None:
    found = the_class.wrong_answers(the_class.lesson(1))
    assert [q.id for q, _ in found] == ["l1-q3", "l1-q1"]
    q3, q1 = found[0][1], found[1][1]
    assert [(w.choice, w.learners) for w in q3] == [(0, ("alice", "bob", "carol"))]
    assert [(w.choice, w.learners, w.times) for w in q1] == [
        (0, ("alice", "bob"), 2), (2, ("bob", "carol"), 2)]
    assert q1[0].text == "QEMU translates the host's kernel version for the guest"


def test_the_longest_stuck_come_first_and_a_learner_who_moved_on_is_not_stuck(
        the_class: ClassReport) -> None:
    stuck = the_class.stuck()
    assert [(s.learner, s.checkpoint, s.tries) for s in stuck] == [
        ("bob", "l1-machine", 4), ("carol", "l1-machine", 1)]
    assert stuck[0].seconds(NOW) == 1800 and stuck[0].last == NOW - 60
    assert stuck[0].title == "A machine of your own size"


def test_the_busiest_lesson_is_where_the_latest_try_was(the_class: ClassReport) -> None:
    assert the_class.busiest_lesson() == 1


def test_the_csv_has_a_row_per_learner_and_a_column_per_checkpoint(
        the_class: ClassReport) -> None:
    text = the_class.csv()
    table = rows(text)
    assert list(table) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    header = next(csv.reader(io.StringIO(text)))
    every_checkpoint = [cid for lesson in report.course() for cid, _ in lesson.checkpoints]
    assert set(every_checkpoint) <= set(header)
    assert all(len(row) == len(header) for row in csv.reader(io.StringIO(text)))
    alice, bob = table["alice"], table["bob"]
    assert [alice[c] for c in ("l1-secret", "l1-machine", "l1-renice")] == [
        "alone", "hint", "solution"]
    assert (alice["lesson 1 quiz right"], alice["lesson 1 quiz right at first try"],
            alice["lesson 1 quiz answered"], alice["lesson 1 quiz questions"]) == (
        "2", "1", "3", "5")
    assert (bob["stuck on"], bob["stuck for (minutes)"], bob["tries there"]) == (
        "l1-machine", "30", "4")
    assert table["dave"]["l0-ready"] == "alone" and table["dave"]["stuck on"] == ""
    assert table["erin"]["problem"].startswith("no progress yet")
    assert table["erin"]["l1-secret"] == ""
    assert table["alice"]["live guests"] == "0"  # no account here: no process either
    assert the_class.csv_name.startswith("class-progress-") and the_class.csv_name.endswith(
        ".csv")


def test_a_learners_file_adds_no_column_and_no_text_of_its_own(tmp_path: Path) -> None:
    """Columns and words come from the lessons: a hand-edited file cannot inject any."""
    write(tmp_path, "mallory", {1: {
        "checkpoint_ids": ["=HYPERLINK(1)", "l1-secret"],
        "checkpoints": {"=HYPERLINK(1)": {"tries": 1, "passed_at": "x", "how": "<b>"},
                        "l1-secret": {"tries": 1, "passed_at": "x", "how": "<script>"}},
        "answers": {"l1-q1": {"choice": 7, "correct": False, "tries": 1, "wrong": [7, -1]}}}})
    found = read(tmp_path)
    text = found.csv()
    assert "HYPERLINK" not in text and "<" not in text
    assert rows(text)["mallory"]["l1-secret"] == "alone"
    assert found.wrong_answers(found.lesson(1)) == []


def test_the_roster_lists_learners_who_never_started(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    make_class(tmp_path)
    monkeypatch.setenv(report.ROSTER_ENV, "erin alice")
    assert [r.learner for r in read(tmp_path).records] == ["alice", "erin"]
    monkeypatch.delenv(report.ROSTER_ENV)
    assert "erin" not in [r.learner for r in read(tmp_path).records]


def test_the_hub_gives_the_instructor_the_roster(hub_places: HubPlaces) -> None:
    klass = parse({"instructor": {"name": "teacher"}, "learners": {"names": ["ann", "ben"]},
                   "hub": {}})
    teacher = Account("teacher", 1, 1, Path("/home/teacher"))
    learner = Account("ann", 2, 2, Path("/home/ann"))
    assert spawning.environment(teacher, klass, hub_places)[report.ROSTER_ENV] == "ann ben"
    assert report.ROSTER_ENV not in spawning.environment(learner, klass, hub_places)


def test_what_the_kits_own_recorders_write_is_read(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "alice").mkdir()
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(tmp_path / "alice" / "progress.json"))
    progress.record_opened(1, ["l1-secret", "l1-machine"], ["l1-q1"])
    progress.record_checkpoint(1, "l1-secret", False)
    progress.record_checkpoint(1, "l1-secret", True, how="hint")
    progress.record_checkpoint(1, "l1-machine", False)
    progress.record_answer(1, "l1-q1", 2, correct=False)
    found = class_report(None, tmp_path, uid_of=lambda _name: None)
    alice = found.records[0]
    assert [found.status(alice, 1, c) for c in ("l1-secret", "l1-machine")] == [
        "hint", "tried"]
    assert [s.checkpoint for s in found.stuck()] == ["l1-machine"]
    assert found.wrong_answers(found.lesson(1))[0][1][0].learners == ("alice",)


# -- live guests --------------------------------------------------------------------------------


@pytest.fixture
def a_fake_qemu() -> Iterator[subprocess.Popen[bytes]]:
    """A process of this user whose command line is a QEMU's (it only sleeps)."""
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-c", "import time; time.sleep(60)", "-name",
         "fake-vm,process=qemu-fake-vm,debug-threads=on"], executable=sys.executable)
    try:
        assert wait_until(lambda: "-name" in _cmdline(process.pid), 10)
        yield process
    finally:
        process.kill()
        process.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def test_a_learners_qemu_processes_are_their_live_guests(
        a_fake_qemu: subprocess.Popen[bytes]) -> None:
    found = report.live_guests({"alice": os.getuid(), "nobody-here": 2_000_000_000})
    assert "fake-vm" in found["alice"]
    assert found["nobody-here"] == ()
    a_fake_qemu.kill()
    a_fake_qemu.wait()
    assert "fake-vm" not in report.live_guests({"alice": os.getuid()})["alice"]


def test_a_guests_name_comes_from_its_command_line() -> None:
    assert report.guest_name(["qemu-system-aarch64", "-name", "web1,process=qemu-web1"],
                             5) == "web1"
    assert report.guest_name(["qemu-system-x86_64", "-name", "guest=db,debug-threads=on"],
                             5) == "db"
    assert report.guest_name(["qemu-system-x86_64", "-m", "64"], 42) == "pid 42"


PROC = "22 27 0:21 / /proc rw,relatime - proc proc {}\n"


@pytest.mark.parametrize(("options", "groups", "visible"), [
    ("rw", [], True),
    ("rw,hidepid=0", [], True),
    ("rw,hidepid=2", [], False),
    ("rw,hidepid=invisible", [], False),
    ("rw,hidepid=noaccess", [], False),
    ("rw,hidepid=2,gid=1234", [1234], True),
    ("rw,hidepid=2,gid=1234", [99], False),
])
def test_hidepid_hides_other_users_guests_unless_exempt(options: str, groups: list[int],
                                                        visible: bool) -> None:
    assert report.processes_visible(PROC.format(options), euid=1000, groups=groups) is visible
    assert report.processes_visible(PROC.format(options), euid=0, groups=groups)


@needs_root
def test_another_user_sees_a_learners_guests(a_fake_qemu: subprocess.Popen[bytes]) -> None:
    """What the instructor's server does: read the process table as a user of its own."""
    if not report.processes_visible(euid=65534, groups=[]):
        pytest.skip("this host's /proc hides other users' processes (hidepid)")
    seen = subprocess.run(
        [sys.executable, "-c", "import json; from kit.hub import report; "
         f"print(json.dumps(report.live_guests({{'alice': {os.getuid()}}})))"],
        user=65534, group=65534, extra_groups=[], capture_output=True, text=True,
        cwd=Path(report.__file__).parents[2], timeout=60, check=True)
    assert "fake-vm" in json.loads(seen.stdout)["alice"]
