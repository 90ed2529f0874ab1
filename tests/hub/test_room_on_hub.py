"""The class view on one real JupyterHub: learners work in their kernels, the instructor sees it.

Nothing is mocked: the hub is started as ``python -m kit hub serve`` starts
it, two learners log in and work in real kernels of their own servers (a
third never logs in), one boots a guest, and the instructor's own kernel
builds the control room's class view, whose table, stuck list, wrong
answers, live guests and CSV must say what the learners did.  A learner's
kernel, building the same view, is refused the class.

Its own account names, so that it never collides with the hub test of
:mod:`tests.hub.test_class_on_hub` (same building blocks, another class).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kit.hub import classfile
from kit.hub.accounts import first_passwords
from kit.hub.places import places
from kit.hub.server import Hub
from kit.infrastructure.net import free_port

from . import client
from .client import Kernel, Learner
from .conftest import needs_root

pytest.importorskip("jupyterhub", reason="the hub extra is not installed: pip install -e .[hub]")
pytestmark = [needs_root, pytest.mark.guest, pytest.mark.slow, pytest.mark.timeout(900)]

TEACHER = "kit-room-tt"
LEARNERS = ("kit-room-t1", "kit-room-t2", "kit-room-t3")  # t3 never logs in
GROUP = "kit-room-teachers"

# Learner 1: the real lesson's checkpoint and quiz objects.  Without a guest
# called "mine", lesson 1's first exercise fails (a try; the hint is shown);
# the second is recorded as passed with the solution shown, before it; quiz
# question 1 is answered wrong (choice 0), then right.  And a guest, vm1.
FIRST = """
import json, kit
from kit.lesson import progress
from kit.lesson import lesson01_what_is_a_vm as l1
l1.lesson.begin()
progress.record_checkpoint(1, "l1-machine", True, how="solution")
verdict = l1.secret_exercise.verify("my guess")
l1.quiz.question("l1-q1").answer(0)
l1.quiz.question("l1-q1").answer(1)
g = kit.Guest("vm1", memory_mb=64).start()
print(json.dumps({"passed": verdict.passed, "pid": g.pid}))
"""
# Learner 2: passes lesson 1's first exercise alone; answers question 1 wrong
# (choice 0, as learner 1 did first) and question 2 right at the first try.
SECOND = """
import json
from kit.lesson import progress
from kit.lesson import lesson01_what_is_a_vm as l1
l1.lesson.begin()
progress.record_checkpoint(1, "l1-secret", True)
l1.quiz.question("l1-q1").answer(0)
l1.quiz.question("l1-q2").answer(1)
print(json.dumps({"done": True}))
"""
VIEW = """
import json
from kit.hub.room import ClassRoom
room = ClassRoom(refresh_every=None)
report = room.report
print(json.dumps({
    "note": room.note.value, "csv": room.csv_text(), "table": room.checkpoints.value,
    "stuck": [[s.learner, s.checkpoint, s.tries] for s in report.stuck()] if report else None,
    "wrong": [[q.id, [[w.choice, list(w.learners)] for w in ws]]
              for q, ws in report.wrong_answers(report.lesson(1))] if report else None,
    "guests": ({k: list(v) for k, v in report.guests.items()}
               if report and report.guests is not None else None),
    "link": "data:text/csv" in room.export.value,
}))
room.close()
"""


@dataclass
class Room:
    hub: Hub
    kernels: dict[str, Kernel]
    facts: dict[str, Any]
    seconds: dict[str, float]


def remove_accounts() -> None:
    client.remove_accounts((TEACHER, *LEARNERS), GROUP)


@pytest.fixture(scope="module")
def a_room() -> Iterator[Room]:
    remove_accounts()
    root = Path(tempfile.mkdtemp(prefix="kit-room-class-"))
    root.chmod(0o755)
    path = root / "class.toml"
    path.write_text(
        f'[hub]\nport = {free_port()}\n'
        f'[instructor]\nname = "{TEACHER}"\ngroup = "{GROUP}"\n'
        f'[learners]\nnames = {json.dumps(list(LEARNERS))}\n'
        "[limits]\nguests = 2\nguest_memory_mb = 256\n")
    seconds: dict[str, float] = {}
    began = time.monotonic()
    hub = Hub.start(classfile.read(path), places(root / "hub"))
    seconds["hub start"] = time.monotonic() - began
    kernels: dict[str, Kernel] = {}
    try:
        passwords = first_passwords(hub.where.passwords_file)
        for name in (*LEARNERS[:2], TEACHER):
            began = time.monotonic()
            member = Learner.log_in(hub.url, name, passwords[name])
            member.start_server()
            kernels[name] = member.kernel()
            seconds[f"{name}: log in, server, kernel"] = time.monotonic() - began
        began = time.monotonic()
        facts = {LEARNERS[0]: kernels[LEARNERS[0]].json(FIRST, timeout=300),
                 LEARNERS[1]: kernels[LEARNERS[1]].json(SECOND, timeout=120)}
        seconds["the learners' work (one boot)"] = time.monotonic() - began
        yield Room(hub, kernels, facts, seconds)
    finally:
        for kernel in kernels.values():
            kernel.close()
        if hub.alive():
            hub.stop()
        print("\n" + "\n".join(f"{what}: {s:.1f} s" for what, s in seconds.items()))
        remove_accounts()
        shutil.rmtree(root, ignore_errors=True)


def test_the_instructor_sees_what_each_learner_did(a_room: Room) -> None:
    first, second, absent = LEARNERS
    assert a_room.facts[first]["passed"] is False
    began = time.monotonic()
    view = a_room.kernels[TEACHER].json(VIEW, timeout=120)
    a_room.seconds["the class view in the instructor's kernel"] = time.monotonic() - began
    assert view["note"] == "", "the instructor's server reads the class"
    assert view["stuck"] == [[first, "l1-secret", 1]]
    assert view["wrong"] == [["l1-q1", [[0, [first, second]]]]]
    assert view["guests"] == {first: ["vm1"], second: [], absent: []}
    assert view["link"]
    rows = {row["learner"]: row for row in csv.DictReader(io.StringIO(view["csv"]))}
    assert list(rows) == list(LEARNERS), "the roster the hub gave: even who never logged in"
    one, two, three = rows[first], rows[second], rows[absent]
    assert [one["l1-secret"], one["l1-machine"], one["l1-renice"]] == [
        "tried", "solution", "not tried"]
    assert (one["live guests"], one["live guest names"], one["stuck on"]) == (
        "1", "vm1", "l1-secret")
    assert (one["lesson 1 quiz right"], one["lesson 1 quiz right at first try"]) == ("1", "0")
    assert [two["l1-secret"], two["lesson 1 quiz right"], two["lesson 1 quiz answered"],
            two["live guests"], two["stuck on"]] == ["alone", "1", "2", "0", ""]
    assert three["problem"].startswith("no progress yet") and three["l1-secret"] == ""
    assert 'aria-label="tried, not passed yet (1 try)"' in view["table"]


def test_a_learner_building_the_view_is_refused_the_class(a_room: Room) -> None:
    view = a_room.kernels[LEARNERS[1]].json(VIEW, timeout=120)
    assert "cannot be read here" in view["note"]
    assert view["csv"] == "" and view["stuck"] is None and view["guests"] is None
