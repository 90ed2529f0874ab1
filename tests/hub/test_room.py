"""The instructor's class view, on synthetic drop folders: what it shows, refreshes and exports."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core.errors import SetupError
from kit.hub import places, room
from kit.hub.report import MARKS, WORDS
from kit.hub.room import ClassRoom
from kit.lesson import progress
from tests.waiting import wait_until

from .synthetic_class import make_class


@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_HUB_DIR", raising=False)
    monkeypatch.setattr(places, "DEFAULT_ROOT", tmp_path / "no-hub-here")


@pytest.fixture
def a_room(tmp_path: Path) -> Iterator[ClassRoom]:
    learners = make_class(tmp_path)
    view = ClassRoom(learners=learners, drop=tmp_path, refresh_every=None,
                     uid_of=lambda _name: None)
    yield view
    view.close()


def marks_of(table: str, learner: str) -> list[str]:
    """The words of each checkpoint's mark in ``learner``'s row, in order."""
    row = table.split(f">{learner}<", 1)[1].split("</tr>", 1)[0]
    return re.findall(r'aria-label="([^"]+)"', row)


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup)).replace("\xa0", " ")


def test_off_a_hub_it_says_there_is_no_class_and_what_to_do(no_hub: None) -> None:
    view = ClassRoom(refresh_every=None)
    try:
        assert "No class here" in view.note.value
        assert "./setup.sh hub CLASSFILE" in view.note.value
        assert view.body.layout.display == "none"
        assert view.report is None and view.csv_text() == ""
        with pytest.raises(SetupError):
            view.save_csv()
    finally:
        view.close()


def test_a_learners_server_is_told_only_the_instructor_sees_the_class(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise SetupError(f"{tmp_path} may not be listed by this user.",
                         hint="The instructors' group lists it.")

    monkeypatch.setattr(room, "class_report", refused)
    view = ClassRoom(drop=tmp_path, refresh_every=None)
    try:
        assert "cannot be read here" in view.note.value
        assert "instructors' group" in text_of(view.note.value)
        assert view.body.layout.display == "none" and not view.banner.text
    finally:
        view.close()


def test_the_table_shows_each_learner_by_checkpoint_with_marks_and_words(
        a_room: ClassRoom) -> None:
    assert a_room.lesson.value == 1, "the lesson the class worked in last"
    table = a_room.checkpoints.value
    assert marks_of(table, "alice") == [WORDS["alone"], WORDS["hint"], WORDS["solution"]]
    assert marks_of(table, "bob") == [WORDS["alone"], "tried, not passed yet (4 tries)",
                                      WORDS["not tried"]]
    assert marks_of(table, "carol")[0] == WORDS["demo"]
    alice = table.split(">alice<", 1)[1].split("</tr>", 1)[0]
    assert all(MARKS[status] in alice for status in ("alone", "hint", "solution"))
    assert "2/5" in alice, "alice's quiz score"
    assert "no progress yet" in table and "cannot be read" in table  # erin and frank
    assert "Ex 1" in text_of(table) and "A machine of your own size" in table
    legend = text_of(a_room.legend.value)
    assert all(WORDS[status] in legend for status in WORDS)


def test_the_longest_stuck_learner_comes_first_with_how_long(a_room: ClassRoom) -> None:
    stuck = text_of(a_room.stuck.value)
    assert stuck.index("bob") < stuck.index("carol")
    assert "A machine of your own size" in stuck
    assert "4 tries" in stuck and "dave" not in stuck and "alice" not in stuck


def test_the_common_wrong_answers_are_shown_with_who(a_room: ClassRoom) -> None:
    wrong = text_of(a_room.wrong.value)
    assert wrong.index("l1-q3") < wrong.index("l1-q1")
    assert "3 learners (alice, bob, carol)" in wrong
    assert "QEMU translates the host's kernel version for the guest" in wrong


def test_every_lesson_begun_is_summed_up(a_room: ClassRoom) -> None:
    overview = text_of(a_room.overview.value)
    assert "Lesson 0" in overview and "Lesson 1" in overview and "Lesson 2" not in overview
    assert "✔ 3/3 · quiz 2/5" in overview


def test_the_export_link_downloads_the_csv_itself(a_room: ClassRoom, tmp_path: Path) -> None:
    link = a_room.export.value
    name = re.search(r'download="([^"]+)"', link)
    data = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', link)
    assert name and data
    assert base64.b64decode(data.group(1)).decode() == a_room.csv_text()
    assert a_room.report is not None and name.group(1) == a_room.report.csv_name
    saved = a_room.save_csv(tmp_path / "out.csv")
    assert saved.read_bytes() == a_room.csv_text().encode()
    assert a_room.csv_text().splitlines()[1].startswith("alice,")


def test_another_lesson_can_be_chosen_and_a_refresh_keeps_it(a_room: ClassRoom) -> None:
    a_room.show_lesson(0)
    assert "Lesson 0:" in a_room.checkpoints_title.value
    assert "This machine is ready" in a_room.checkpoints.value
    a_room.refresh()
    assert a_room.lesson.value == 0
    assert "No wrong answer yet" in a_room.wrong.value


def test_the_timer_shows_a_new_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_class(tmp_path)
    view = ClassRoom(drop=tmp_path, refresh_every=0.2, uid_of=lambda _name: None)
    try:
        assert "bob" in text_of(view.stuck.value)
        monkeypatch.setenv("KIT_PROGRESS_FILE", str(tmp_path / "bob" / "progress.json"))
        progress.record_checkpoint(1, "l1-machine", True)  # bob's kernel passes it
        assert wait_until(lambda: "bob" not in text_of(view.stuck.value), 10)
        assert marks_of(view.checkpoints.value, "bob")[1] == WORDS["alone"]
    finally:
        view.close()
    assert not view.banner.text


def test_durations_read_at_a_glance() -> None:
    assert [room.ago(s) for s in (5, 61, 3600, 3720, 2 * 86400 + 5)] == [
        "5 s", "1 min", "1 h", "1 h 2 min", "2 days"]
