"""Lesson 2's exercises, each checked both ways on real guests, its predictions and its quiz.

Each exercise passes when the learner's task is done (done here the way the
learner would: the line of the solution) and fails, with its hint, when it
is not.  Two linked guests serve the doors; the guest for another processor
is made as the learner makes it.
"""

from __future__ import annotations

import pytest

import kit
from kit.applications import apps
from kit.core.blank import ___
from kit.hypervisor import registry
from kit.infrastructure import net
from kit.lesson import lesson02_host_and_guest as lesson2
from kit.lesson import progress
from tests.lesson.verdicts import assert_every_solution_passes, assert_lesson_shape, fails_with_hint


def test_the_lesson_has_five_exercises_three_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson2.lesson, 2)
    assert all(c.solve is not None for c in lesson2.lesson.checkpoints)
    assert [p.id for p in lesson2.lesson.predictions] == [
        "l2-p-reach", "l2-p-write", "l2-p-foreign-boot"]


def test_the_personal_values_are_this_learners() -> None:
    low, high = lesson2.PORTS
    assert low <= lesson2.task_port() <= high + 50
    assert lesson2.arm_memory_mb() in lesson2.ARM_SIZES
    assert lesson2.share_secret() != lesson2.beta_word()
    assert lesson2.task_arch() == "aarch64"  # on this x86_64 host
    folder = lesson2.share_folder()
    assert (folder / lesson2.SHARED_FILE).read_text().startswith("This file lives on the host")
    assert (folder / lesson2.SECRET_FILE).read_text().strip() == lesson2.share_secret()


def test_an_unedited_cell_waits_kindly() -> None:
    for checkpoint in lesson2.lesson.checkpoints:
        verdict = checkpoint.verify(___)
        assert verdict.waiting and not verdict.passed, verdict
    assert all(c.tries == 0 for c in lesson2.lesson.checkpoints)


@pytest.mark.guest
@pytest.mark.slow
def test_every_exercise_both_ways(image: object) -> None:
    alpha, beta, cable = lesson2.guests()
    assert not alpha.forwards and not cable.is_up
    fails_with_hint(lesson2.forward.verify(), "no guest called alpha")
    fails_with_hint(lesson2.share.verify("x"), "no guest called alpha")
    fails_with_hint(lesson2.link.verify("x"), "no guest called alpha")
    fails_with_hint(lesson2.foreign.verify(), "no guest called arm")
    try:
        alpha.start()
        beta.start()
        planted = lesson2.plant_host_file()
        assert planted.exists() and planted.name not in lesson2.search_guest(alpha, planted)
        planted.unlink()
        assert "door is shut" in lesson2.web_from_host(alpha)
        assert "inside the guest" in lesson2.web_from_inside(alpha)

        # exercise 1: a forward from the learner's own port
        fails_with_hint(lesson2.forward.verify(), "no host port leads into alpha")
        other = net.free_port()
        alpha.open_forward(other, 80)
        fails_with_hint(lesson2.forward.verify(), "not from your port")
        alpha.close_forward(other)
        port = lesson2.task_port()
        alpha.open_forward(port, 22)
        fails_with_hint(lesson2.forward.verify(), "guest port 22")
        alpha.close_forward(port)
        alpha.open_forward(lesson2.task_port(), 80)  # the learner's line
        verdict = lesson2.forward.verify(None)
        assert verdict, verdict
        assert any(f"127.0.0.1:{port} → guest port 80" in line for line in verdict.evidence)
        assert lesson2.usernet_forwards(alpha) == {port: ("127.0.0.1", 80)}  # QEMU's own list
        assert apps.web_page(alpha).ok

        # exercise 2: the share, read inside the guest
        fails_with_hint(lesson2.share.verify(lesson2.share_secret()), "not mounted")
        alpha.open_share()
        fails_with_hint(lesson2.share.verify("cedar-onyx-123"), "not what the host put")
        words = alpha.run(f"cat /mnt/share/{lesson2.SECRET_FILE}").stdout  # the learner's line
        assert lesson2.share.verify(words)

        # exercise 3: across the cable
        fails_with_hint(lesson2.link.verify("x"), "pulled out")
        cable.up()
        fails_with_hint(lesson2.link.verify("cedar-onyx-123"), "not the word beta serves")
        word = alpha.run("wget -qO- http://10.0.3.2/word.txt").stdout  # the learner's line
        assert lesson2.link.verify(word)
        cable.down()
        fails_with_hint(lesson2.link.verify(word), "pulled out")

        # exercise 4: the way out, opened and shut
        port = lesson2.way_out_port()
        fails_with_hint(lesson2.way_out.verify("x"), "not the word")
        assert lesson2.way_out_word() not in lesson2.fetch_through_the_door(alpha, port, 2)
        alpha.open_internet()  # the learner's lines
        page = alpha.run(["wget", "-qO-", f"http://10.0.4.2:{port}/"]).stdout
        fails_with_hint(lesson2.way_out.verify(page), "shut the door")
        alpha.close_internet()
        verdict = lesson2.way_out.verify(page)
        assert verdict and any("sealed" in line for line in verdict.evidence), verdict

        # the predictions (guessed wrong on purpose: the words still explain)
        reach = lesson2.reach.commit(lesson2.REACH_CHOICES[1])
        assert reach.measured == 0.0 and "restrict=on" in reach.words, reach
        write = lesson2.write_share.commit(1)
        assert write.measured == 0.0 and "Read-only" in write.words, write
        assert not (alpha.shared_folder / lesson2.NOTE).exists()

        beta.stop()
        fails_with_hint(lesson2.link.verify(word), "beta")
    finally:
        kit.stop_all()
    done = progress.lesson_progress(2)
    assert {"l2-forward", "l2-share", "l2-link", "l2-way-out"} <= set(done.passed)
    assert set(done.predictions) == {"l2-p-reach", "l2-p-write"}


@pytest.mark.guest
def test_another_processor_both_ways(image: object) -> None:
    ok, reason = lesson2.foreign_status()
    if not ok:
        pytest.skip(reason)
    size = lesson2.arm_memory_mb()
    wrong_size = next(s for s in lesson2.ARM_SIZES if s != size)
    try:
        seconds = lesson2.foreign_boot.commit(5)  # no arm yet: a guest of its own is timed
        assert seconds.measured > 0 and "TCG" in seconds.words, seconds
        assert registry.guests() == []

        kit.Guest("arm", memory_mb=size, replace=True).start()  # the host's own processor
        fails_with_hint(lesson2.foreign.verify(), "the task asks for aarch64")
        kit.Guest("arm", arch="aarch64", memory_mb=wrong_size, replace=True,
                  boot_timeout=180).start()
        fails_with_hint(lesson2.foreign.verify(), f"your task asks for {size} MiB")
        arm = kit.Guest("arm", arch=lesson2.task_arch(), memory_mb=lesson2.arm_memory_mb(),
                        replace=True, boot_timeout=180).start()  # the learner's line
        verdict = lesson2.foreign.verify(arm)
        assert verdict and "another" in verdict.message, verdict
        assert "aarch64" in lesson2.architectures().value
    finally:
        kit.stop_all()


@pytest.mark.guest
def test_each_solution_does_its_exercise(image: object) -> None:
    if not lesson2.foreign_status()[0]:
        pytest.skip(lesson2.foreign_status()[1])
    try:
        assert_every_solution_passes(lesson2.lesson)
    finally:
        kit.stop_all()


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    for question in lesson2.quiz.questions:
        assert sum(c.correct for c in question.choices) == 1
        for index, choice in enumerate(question.choices):
            feedback = question.answer(index)
            assert feedback.correct == choice.correct and feedback.why
