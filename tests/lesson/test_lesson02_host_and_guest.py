"""Lesson 2's checkpoints, each checked both ways on real guests, and its quiz.

Each passes when its door is open (or its answer right) and fails, with its
hint, when it is not.  Two linked guests serve the doors; the architecture
question is asked of alpha (the aarch64 guest is too slow to boot here).
"""

from __future__ import annotations

import platform

import pytest

import kit
from kit.applications import apps
from kit.infrastructure import net
from kit.lesson import lesson02_host_and_guest as lesson2
from tests.lesson.verdicts import fails_with_hint


def test_the_lesson_has_checkpoints_and_a_quiz_with_feedback_everywhere() -> None:
    assert len(lesson2.lesson.checkpoints) >= 3 and lesson2.lesson.quiz is not None
    for checkpoint in lesson2.lesson.checkpoints:
        assert checkpoint.lesson == 2 and checkpoint.code and checkpoint.hint
    for question in lesson2.quiz.questions:
        assert sum(c.correct for c in question.choices) == 1
        for index, choice in enumerate(question.choices):
            feedback = question.answer(index)
            assert feedback.correct == choice.correct and feedback.why


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    alpha, beta, cable = lesson2.guests()
    assert not alpha.forwards and not cable.is_up
    for checkpoint in (lesson2.forward, lesson2.share, lesson2.link):
        fails_with_hint(checkpoint.verify(), "no guest called alpha")
    try:
        alpha.start()
        beta.start()
        planted = lesson2.plant_host_file()
        assert planted.exists() and planted.name not in lesson2.search_guest(alpha, planted)
        planted.unlink()

        fails_with_hint(lesson2.forward.verify(), "no host port")
        assert "door is shut" in lesson2.web_from_host(alpha)
        assert "inside the guest" in lesson2.web_from_inside(alpha)
        port = net.free_port()
        alpha.open_forward(port, 80)
        verdict = lesson2.forward.verify()
        assert verdict and any(f"127.0.0.1 {port}" in " ".join(line.split())
                               for line in verdict.evidence), verdict
        assert apps.web_page(alpha).ok
        alpha.close_forward(port)
        fails_with_hint(lesson2.forward.verify(), "no host port")

        fails_with_hint(lesson2.share.verify(), "not open")
        alpha.open_share()
        verdict = lesson2.share.verify()
        assert verdict, verdict
        assert any("Read-only" in line for line in verdict.evidence), verdict
        alpha.close_share()
        fails_with_hint(lesson2.share.verify(), "not open")

        fails_with_hint(lesson2.link.verify(), "unplugged")
        cable.up()
        assert lesson2.link.verify()
        cable.down()
        fails_with_hint(lesson2.link.verify(), "unplugged")

        fails_with_hint(lesson2.arch.verify(""), "type")
        fails_with_hint(lesson2.arch.verify("sparc"), "does not run on")
        assert lesson2.arch.verify(alpha.run("uname -m").stdout)
        assert lesson2.arch.verify("amd64" if platform.machine() == "x86_64" else "arm64")

        beta.stop()
        cable_check = lesson2.link.verify()
        fails_with_hint(cable_check, "beta")
    finally:
        kit.stop_all()
    assert set(lesson2.lesson.progress().passed) >= {c.id for c in lesson2.lesson.checkpoints}


def test_the_share_folder_holds_the_hosts_file() -> None:
    folder = lesson2.share_folder()
    assert (folder / lesson2.SHARED_FILE).read_text().startswith("This file lives on the host")


@pytest.mark.guest
def test_the_architecture_of_a_foreign_guest(image: object) -> None:
    ok, reason = lesson2.foreign_status()
    if not ok:
        pytest.skip(reason)
    arm = lesson2.foreign_guest()
    try:
        assert arm is not None and arm.arch == "aarch64"
        fails_with_hint(lesson2.arch.verify("x86_64"), "does not run on")
        verdict = lesson2.arch.verify("arm64")
        assert verdict and "another" in verdict.message, verdict
    finally:
        kit.stop_all()
