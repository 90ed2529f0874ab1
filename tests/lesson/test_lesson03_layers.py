"""Lesson 3's exercises, each checked both ways on a real guest, and its quiz.

Each passes when the learner's task is done (done here the way the learner
would: the code of the solution, QMP sent from the test, a QEMU started by
hand as in a terminal) and fails, with its hint, when it is not.
"""

from __future__ import annotations

import os
import subprocess
import time

import psutil
import pytest

import kit
from kit.applications import apps
from kit.core.blank import ___
from kit.hypervisor import registry
from kit.lesson import lesson03_layers as lesson3
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint
from tests.waiting import wait_until


def test_the_lesson_has_five_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson3.lesson, 3)
    assert len(lesson3.lesson.checkpoints) >= 5
    assert all(c.solve is not None for c in lesson3.lesson.checkpoints)
    assert {p.id for p in lesson3.lesson.predictions} == {"l3-p-lag", "l3-p-agent"}


def test_the_quiz_gives_feedback_on_every_choice_and_hides_the_answer() -> None:
    assert lesson3.quiz is not None
    longest = 0
    for question in lesson3.quiz.questions:
        assert sum(c.correct for c in question.choices) == 1
        for index, choice in enumerate(question.choices):
            feedback = question.answer(index)
            assert feedback.correct == choice.correct and feedback.why
        right = len(question.choices[question.right_choice].text)
        longest += right > max(len(c.text) for c in question.choices if not c.correct)
    assert longest <= len(lesson3.quiz.questions) / 3


def test_the_personal_values_are_this_learners() -> None:
    assert 144 <= lesson3.by_hand_memory_mb() <= 240 and lesson3.by_hand_memory_mb() != 128
    assert lesson3.my_item().startswith("Lamp ") and lesson3.my_item() == lesson3.my_item()
    assert 13 <= lesson3.my_item_stock() <= 89


def test_the_memory_size_is_read_from_a_command_line() -> None:
    assert lesson3.memory_from_argv(["qemu", "-m", "176"]) == 176
    assert lesson3.memory_from_argv(["qemu", "-m", "200M"]) == 200
    assert lesson3.memory_from_argv(["qemu", "-m", "size=1G,slots=2,maxmem=4G"]) == 1024
    assert lesson3.memory_from_argv(["qemu", "-kernel", "k"]) == 128  # QEMU's default
    assert lesson3.memory_from_argv(["qemu", "-m", "lots"]) is None


def test_the_command_to_type_boots_the_kit_image_with_the_learners_memory(image: object) -> None:
    argv = lesson3.by_hand_argv()
    assert argv[0].startswith("qemu-system") and "-kernel" in argv
    assert argv[argv.index("-m") + 1] == str(lesson3.by_hand_memory_mb())
    assert argv[argv.index("-serial") + 1] == "mon:stdio"  # the console in the terminal
    assert not any("fd=" in word for word in argv)  # nothing a person cannot type
    assert lesson3.by_hand_command().count("-m ") == 1


def test_the_kernel_is_found_in_a_boot_log() -> None:
    log = "[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@...) #1 SMP\n"
    assert lesson3.kernel_from_boot_log(log) == "6.1.0-28-cloud-amd64"
    assert lesson3.kernel_from_boot_log("no kernel here") is None


@pytest.mark.guest
def test_a_qemu_started_by_hand_is_found_both_ways(image: object) -> None:
    fails_with_hint(lesson3.by_hand.verify(), "no QEMU started by hand")
    assert lesson3.by_hand.verify(___).waiting
    wrong = subprocess.Popen(lesson3.by_hand_argv(memory_mb=128), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        _wait_for_process(wrong.pid)
        fails_with_hint(lesson3.by_hand.verify(), "another memory size",
                        f"yours is {lesson3.by_hand_memory_mb()} MiB")
    finally:
        wrong.kill()
        wrong.wait(10)
    try:
        lesson3.solve_by_hand()  # what the learner types in the terminal
        assert lesson3.by_hand.verify()
        pid = next(m.pid for m in lesson3.hand_machines()
                   if m.memory_mb == lesson3.by_hand_memory_mb())
        assert any(name.startswith("CPU 0/") for name in
                   (lesson3.thread_name(pid, t.id) for t in psutil.Process(pid).threads()))
    finally:
        lesson3.stop_by_hand()
    fails_with_hint(lesson3.by_hand.verify(), "no QEMU started by hand")


def _wait_for_process(pid: int) -> None:
    """Until the process has become QEMU (after exec) and started its threads."""
    process = psutil.Process(pid)
    assert wait_until(lambda: "qemu-system" in " ".join(process.cmdline())
                      and process.num_threads() > 1, 10), process.cmdline()


@pytest.mark.guest
@pytest.mark.slow
def test_every_guest_exercise_both_ways(image: object) -> None:
    layers = lesson3.guest()
    assert layers.name == "layers" and list(layers.forwards.values()) == [80]
    for checkpoint in (lesson3.paused, lesson3.vcpu_threads, lesson3.clock, lesson3.api):
        fails_with_hint(checkpoint.verify("1"), "no guest called layers")
        assert checkpoint.verify(___).waiting  # an unedited cell waits, kindly
    try:
        kit.lesson.ensure_running(layers)
        assert layers.cpus == 2
        _pause(layers)
        _threads(layers)
        layers.resume()
        _clock(layers)
        _api(layers)
        lag = lesson3.pause_lag.commit(3)
        assert 2.5 < lag.measured < 4.0 and "does not jump" in lag.words
        agent = lesson3.agent_ms.commit(50)
        assert agent.measured > 0 and "QMP" in agent.words
    finally:
        lesson3.lesson.finish()
    assert registry.guests() == []
    done = progress.lesson_progress(3)
    assert set(done.passed) >= {"l3-pause", "l3-threads", "l3-clock", "l3-api"}
    assert set(done.predictions) == {"l3-p-lag", "l3-p-agent"}


def _pause(layers: kit.Guest) -> None:
    fails_with_hint(lesson3.paused.verify(), "is running")
    layers.qmp("stop")  # what the learner's cell sends
    # Not a wait for anything: the time paused is what the clock exercise below measures
    # (the guest's clock stops with it), so it must be well over what that check asks.
    time.sleep(2 * lesson3.LAG_AT_LEAST_S)
    verdict = lesson3.paused.verify({})
    assert verdict and any("0.00 s" in e for e in verdict.evidence), verdict


def _threads(layers: kit.Guest) -> None:
    cpus = layers.qmp("query-cpus-fast")
    tids = [cpu["thread-id"] for cpu in cpus]
    fails_with_hint(lesson3.vcpu_threads.verify("many"), "whole numbers")
    fails_with_hint(lesson3.vcpu_threads.verify(cpus), "whole reply")
    fails_with_hint(lesson3.vcpu_threads.verify([layers.pid]), "QEMU process itself")
    fails_with_hint(lesson3.vcpu_threads.verify(tids[:1]), "1 of the 2")
    fails_with_hint(lesson3.vcpu_threads.verify([*tids, os.getpid()]), "do not run a virtual CPU")
    assert lesson3.vcpu_threads.verify(tids)  # a paused machine keeps its threads


def _clock(layers: kit.Guest) -> None:
    lag = time.time() - layers.agent("guest-get-time") / 1e9  # the learner's line
    assert lag > lesson3.LAG_AT_LEAST_S, "the pause made the guest's clock lag"
    fails_with_hint(lesson3.clock.verify("soon"), "number of seconds")
    fails_with_hint(lesson3.clock.verify(lag * 1e9), "nanoseconds")
    fails_with_hint(lesson3.clock.verify(-lag), "wrong way round")
    fails_with_hint(lesson3.clock.verify(lag + 30), "not how far")
    assert lesson3.clock.verify(lag)


def _api(layers: kit.Guest) -> None:
    # The kit puts the learner's item in at each boot (and again after a resume).
    assert wait_until(lambda: lesson3.item_stock(layers) is not None, 10)
    stock = lesson3.api_stock(layers)  # over HTTP, through the port forward
    assert stock == lesson3.my_item_stock()
    fails_with_hint(lesson3.api.verify("lots"), "one whole number")
    fails_with_hint(lesson3.api.verify(12), "stock of Keyboard")
    fails_with_hint(lesson3.api.verify(stock + 100), "is not the stock of")
    assert lesson3.api.verify(stock)

    explorer = lesson3.ApiExplorer(layers)
    explorer.table.value = "users"
    assert explorer.fetch().status == 400 and "error" in explorer.reply.value
    explorer.table.value, explorer.row.value = "orders", "1"
    reply = explorer.fetch()
    assert reply.ok and reply.json()["id"] == 1 and apps.API_PATH in explorer.reply.value
    explorer.close()

    layers.pause()
    fails_with_hint(lesson3.api.verify(stock), "is paused")
    layers.resume()
    facts = lesson3.firmware_facts(layers).value
    assert "qboot" in facts or "SeaBIOS" in facts
    assert "BIOS-provided" in facts or "BIOS-e820" in facts


@pytest.mark.guest
@pytest.mark.slow
def test_in_demo_mode_every_exercise_solves_itself(image: object,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_DEMO", "1")
    try:
        for checkpoint in lesson3.lesson.checkpoints:
            verdict = checkpoint.verify(___)
            assert verdict.passed and verdict.demo, verdict
            if checkpoint is lesson3.paused:
                lesson3.guest().resume()
    finally:
        lesson3.lesson.finish()
    assert lesson3.hand_machines() == [] or all(
        m.memory_mb != lesson3.by_hand_memory_mb() for m in lesson3.hand_machines())
    done = progress.lesson_progress(3)
    assert set(done.demo) == {c.id for c in lesson3.lesson.checkpoints} and done.passed == ()
