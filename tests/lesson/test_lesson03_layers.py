"""Lesson 3's checkpoints, each checked both ways on one real guest, and its quiz.

Each passes when its task is done and fails, with its hint, when it is not.
"""

from __future__ import annotations

import os

import pytest

import kit
from kit.applications import apps
from kit.lesson import lesson03_layers as lesson3
from tests.lesson.verdicts import fails_with_hint


def test_the_lesson_has_checkpoints_and_a_quiz_with_feedback_everywhere() -> None:
    assert len(lesson3.lesson.checkpoints) >= 3 and lesson3.lesson.quiz is not None
    for checkpoint in lesson3.lesson.checkpoints:
        assert checkpoint.lesson == 3 and checkpoint.code and checkpoint.hint
    for question in lesson3.quiz.questions:
        assert sum(c.correct for c in question.choices) == 1
        for index, choice in enumerate(question.choices):
            feedback = question.answer(index)
            assert feedback.correct == choice.correct and feedback.why


def test_the_kernel_is_found_in_a_boot_log() -> None:
    log = "[    0.000000] Linux version 6.1.0-28-cloud-amd64 (debian-kernel@...) #1 SMP\n"
    assert lesson3.kernel_from_boot_log(log) == "6.1.0-28-cloud-amd64"
    assert lesson3.kernel_from_boot_log("no kernel here") is None


@pytest.mark.guest
def test_every_checkpoint_both_ways(image: object) -> None:
    layers = lesson3.guest()
    assert layers.name == "layers" and list(layers.forwards.values()) == [80]
    for checkpoint in lesson3.lesson.checkpoints:
        fails_with_hint(checkpoint.verify("1"), "no guest called layers")
    try:
        kit.lesson.ensure_running(layers)
        accel = "kvm" if layers.qmp("query-kvm")["enabled"] else "tcg"
        fails_with_hint(lesson3.accelerator.verify("xen"), "kvm or tcg")
        fails_with_hint(lesson3.accelerator.verify("tcg" if accel == "kvm" else "kvm"),
                        "does not run under")
        assert lesson3.accelerator.verify(accel.upper())

        fails_with_hint(lesson3.paused.verify(), "is running")
        fails_with_hint(lesson3.vcpu_thread.verify("many"), "whole number")
        fails_with_hint(lesson3.vcpu_thread.verify(layers.pid), "process itself")
        fails_with_hint(lesson3.vcpu_thread.verify(os.getpid()), "does not run vCPU 0")
        tid = layers.qmp("query-cpus-fast")[0]["thread-id"]
        assert lesson3.vcpu_thread.verify(tid)

        fails_with_hint(lesson3.kernel.verify(""), "type")
        fails_with_hint(lesson3.kernel.verify("2.6.32"), "does not name")
        assert lesson3.kernel.verify(lesson3.kernel_from_boot_log(layers.console.text()))

        stock = lesson3.api_stock(layers)
        fails_with_hint(lesson3.api.verify("lots"), "whole number")
        fails_with_hint(lesson3.api.verify(stock + 1), "another stock")
        assert lesson3.api.verify(stock)

        explorer = lesson3.ApiExplorer(layers)
        explorer.table.value = "users"
        assert explorer.fetch().status == 400 and "error" in explorer.reply.value
        explorer.table.value, explorer.row.value = "orders", "1"
        reply = explorer.fetch()
        assert reply.ok and reply.json()["id"] == 1 and apps.API_PATH in explorer.reply.value
        explorer.close()

        layers.pause()
        assert lesson3.paused.verify()
        assert lesson3.vcpu_thread.verify(tid)  # a paused machine keeps its threads
        fails_with_hint(lesson3.api.verify(stock), "is paused")
        layers.resume()
        fails_with_hint(lesson3.paused.verify(), "is running")
    finally:
        layers.stop()
    assert set(lesson3.lesson.progress().passed) >= {c.id for c in lesson3.lesson.checkpoints}
