"""Lesson 5's exercises, each checked both ways on a real cloud of small instances.

Each passes when the learner's task is done (done here the way the learner
would: the line of code of the solution, or the console's button) and
fails, with its hint, when it is not.
"""

from __future__ import annotations

import pytest

from kit.core.blank import ___
from kit.hypervisor import registry
from kit.labs import cloud as kcloud
from kit.lesson import lesson05_cloud as lesson5
from kit.lesson import progress
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_four_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson5.lesson, 5)
    assert len(lesson5.lesson.checkpoints) >= 4 and len(lesson5.lesson.predictions) >= 2
    assert all(c.solve is not None for c in lesson5.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert lesson5.order_type() in lesson5.ORDER_TYPES
    assert lesson5.order_count() in lesson5.ORDER_COUNTS
    assert lesson5.refusal_type() in lesson5.REFUSAL_TYPES
    assert lesson5.user_data() == lesson5.user_data() and lesson5.user_data().count("-") == 2
    assert str(lesson5.order_count()) in lesson5.your_order()


@pytest.mark.guest
def test_every_exercise_both_ways(image: object) -> None:
    lesson5.reset()
    want_type, want_count = lesson5.order_type(), lesson5.order_count()
    fails_with_hint(lesson5.launch.verify(), f"0 instance(s) of type {want_type}")
    fails_with_hint(lesson5.metadata.verify("x"), "no instance")
    fails_with_hint(lesson5.refused.verify(), "has not refused")
    fails_with_hint(lesson5.terminate.verify(), "none of your instances")
    assert lesson5.launch.verify(___).waiting  # an unedited cell waits, kindly
    assert lesson5.metadata.verify(___).waiting
    try:
        cloud = lesson5.cloud()
        web = cloud.run_instances(type=want_type, count=want_count - 1)
        fails_with_hint(lesson5.launch.verify(web), f"your order is {want_count}")
        console = lesson5.CloudConsole()
        console.type.value, console.count.value = "m.large", 999
        console.launch_button.click()  # refused at once, with its numbers; nothing starts
        assert "InsufficientInstanceCapacity" in console.status.value and not console.banner.text
        console.type.value, console.count.value = want_type, 1
        console.launch_button.click()  # the button's own path: a background launch
        assert console.wait() and not console.banner.text
        assert "running" in console.table.value
        assert lesson5.launch.verify(cloud.running())

        first = lesson5.first_instance()
        assert not first.name.startswith(lesson5.SPARE)
        wrong_path = first.guest.run("wget -qO- http://169.254.169.254/latest/meta-data/user-data")
        fails_with_hint(lesson5.metadata.verify(wrong_path), "not there")
        fails_with_hint(lesson5.metadata.verify("cedar-onyx-123"), "not your instances")
        assert lesson5.metadata.verify(first.guest.run(f"wget -qO- {lesson5.USER_DATA_URL}"))
        assert lesson5.MetadataView(first).ask()["instance-id"] == first.id

        assert lesson5.addresses.commit(3).measured == 1  # every guest is 10.0.2.15

        too_many = lesson5.try_launch("t.nano", 999)  # refused, but not the learner's type
        assert isinstance(too_many, kcloud.InsufficientInstanceCapacity)
        fails_with_hint(lesson5.refused.verify(too_many), "asked for t.nano")
        space = lesson5.room.commit(5).measured
        refusal = lesson5.try_launch(type=lesson5.refusal_type(), count=int(space) + 1)
        assert isinstance(refusal, kcloud.InsufficientInstanceCapacity)
        assert lesson5.refused.verify(refusal)
        assert len(cloud.instances()) == want_count  # the refusals started nothing

        demo = lesson5.BalancerDemo()
        demo.requests.value = 12
        demo.send.click()
        assert not demo.banner.text and "errors seen by the client: <b>0</b>" in demo.output.value

        fails_with_hint(lesson5.terminate.verify(), "none of your instances")
        ended = cloud.terminate_instances([cloud.running()[-1].id])
        assert lesson5.terminate.verify(ended)
        cloud.terminate_all()
        fails_with_hint(lesson5.terminate.verify(), "left running")
    finally:
        lesson5.reset()
        lesson5.lesson.finish()
    assert registry.guests() == []
    done = progress.lesson_progress(5)
    assert set(done.passed) == {c.id for c in lesson5.lesson.checkpoints}
    assert set(done.predictions) == {"l5-p-addresses", "l5-p-room"}


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson5.quiz is not None
    for question in lesson5.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)
