"""Lesson 8's exercises, each checked both ways on real containers beside a real VM.

Each passes when the learner's task is done (done here the way the learner
would: the line of code, the signal, the ``unshare`` typed in a terminal) and
fails, with its hint, when it is not.  Where this host refuses the kit's
containers, the lesson still runs and says why.
"""

from __future__ import annotations

import contextlib
import html
import os
import platform
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

import kit
from kit.core.blank import ___
from kit.hypervisor import registry
from kit.labs import containers
from kit.lesson import lesson08_containers as lesson8
from kit.lesson import progress
from kit.lesson.checks import eventually
from tests.lesson.test_notebooks import CELL_TIMEOUT_S, KERNEL_START_S, NOTEBOOK_TIMEOUT_S
from tests.lesson.verdicts import assert_lesson_shape, fails_with_hint


def test_the_lesson_has_three_exercises_two_predictions_and_a_quiz() -> None:
    assert_lesson_shape(lesson8.lesson, 8)
    assert len(lesson8.lesson.predictions) >= 2
    assert all(c.solve is not None for c in lesson8.lesson.checkpoints)


def test_the_personal_values_are_this_learners() -> None:
    assert re.fullmatch(r"box-\d{3}", lesson8.box_name())
    assert lesson8.hostname_secret().count("-") == 2
    assert lesson8.hostname_secret() in lesson8.unshare_command()
    assert "--uts" in lesson8.unshare_command() and "--pid" in lesson8.unshare_command()


def test_the_memory_controller_is_found_in_mountinfo() -> None:
    v1 = ["36 25 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory"]
    v2 = ["30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate"]
    assert lesson8._mount_of(v1, 1) == Path("/sys/fs/cgroup/memory")
    assert lesson8._mount_of(v1, 2) is None
    assert lesson8._mount_of(v2, 2) == Path("/sys/fs/cgroup")
    assert lesson8.memtotal_mb("MemTotal:       65536 kB\nMemFree: 1 kB") == 64.0


def our_leftovers() -> list[int]:
    """Live processes of kit containers that this test session started.

    :func:`containers.leftover_processes` sees every user's; other test runs on
    the machine may have containers of their own.  Ours carry our runtime folder
    in their environment.
    """
    ours = os.environ["KIT_RUNTIME_DIR"]
    found = []
    for process in containers.leftover_processes():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("KIT_RUNTIME_DIR") == ours:
                found.append(process.pid)
    return found


@pytest.fixture
def terminal() -> Iterator[list[subprocess.Popen[bytes]]]:
    """What the learner starts in a terminal; killed at the end whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def type_in_terminal(command: str, started: list[subprocess.Popen[bytes]]) -> None:
    started.append(subprocess.Popen(shlex.split(command), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True))


@pytest.mark.guest
def test_every_exercise_both_ways(image: object,
                                  terminal: list[subprocess.Popen[bytes]]) -> None:
    lesson8.stop_all()
    if lesson8.containers_refused():
        pytest.skip(f"this host refuses containers: {lesson8.containers_refused()}")
    fails_with_hint(lesson8.own_box.verify(), "no container named")
    fails_with_hint(lesson8.ended.verify(), "no container named")
    fails_with_hint(lesson8.unshare.verify(), "no process on this host has the hostname")
    assert lesson8.own_box.verify(___).waiting  # an unedited cell waits, kindly
    try:
        # Exercise 1: one line of code starts the learner's own container.
        my_box = kit.containers.Container(lesson8.box_name()).start()
        assert lesson8.own_box.verify()

        # Exercise 2: the kit's stop() is not the task; one signal from the host is.
        fails_with_hint(lesson8.ended.verify(), "still runs")
        my_box.stop()
        fails_with_hint(lesson8.ended.verify(), "no container named")
        my_box = kit.containers.Container(lesson8.box_name()).start()
        assert my_box.pid is not None
        os.kill(my_box.pid, signal.SIGKILL)
        eventually(lambda: my_box.pid, lambda pid: pid is None, seconds=5.0)
        assert lesson8.ended.verify()
        fails_with_hint(lesson8.own_box.verify(), "no container named")

        # Exercise 3: a container made by hand in a terminal, another hostname first.
        type_in_terminal("unshare --fork --pid --mount-proc --uts sh -c "
                         "'hostname not-yours-1; exec sleep 120'", terminal)
        wrong = eventually(lesson8.namespaced_processes, lambda found: any(
            p.hostname == "not-yours-1" and p.own_pid_namespace for p in found), seconds=15)
        assert any(p.hostname == "not-yours-1" and p.own_pid_namespace for p in wrong), wrong
        fails_with_hint(lesson8.unshare.verify(), "no process on this host has the hostname")
        type_in_terminal(lesson8.unshare_command(), terminal)
        assert eventually(lesson8.unshare.verify, bool, seconds=15)

        # The comparison, and the stack that puts the container on the host's kernel.
        view = lesson8.CompareView()
        assert "Nothing measured yet" in view.table.value or lesson8.last()
        view.go.click()
        assert bytes(view.plot.value).startswith(b"<?xml") and "measured in" in view.status.value
        sides = lesson8.last()
        box, vm = sides["container"], sides["virtual machine"]
        assert box.kernel == platform.release() != vm.kernel
        assert box.hostname == lesson8.BOX and vm.hostname == lesson8.VM
        assert box.ready_s < vm.ready_s and box.rss_mb > 0 and vm.rss_mb > 0
        stack = html.unescape(view.stack.value)  # Graphviz writes '-' as &#45;
        assert "HOST KERNEL" in stack and f"CONTAINER {lesson8.BOX} (host PID" in stack
        assert "no kernel of its own" in stack and "cgroup memory limit" in stack
        assert "Inside l8-box" in lesson8.look().value

        started = lesson8.start_time.commit(50)
        assert started.measured > 1 and "ms" in started.words

        # Cgroups: the container's limit against the VM's -m.
        limits = lesson8.CgroupView()
        limits.go.click()
        measured = lesson8._limits[0]
        assert measured.box_memtotal_mb == pytest.approx(measured.host_memtotal_mb, rel=0.01)
        assert measured.vm_memtotal_mb < measured.vm_memory_mb
        if isinstance(lesson8.cage(), lesson8.Cage):
            assert measured.limit_mb == lesson8.LIMIT_MB
            assert measured.small.startswith("ran") and measured.big.startswith("killed")
            running = lesson8.box()
            assert running is not None and running.pid is not None
            assert lesson8.cgroup_of(running.pid).endswith(lesson8.cage().path.name)  # type: ignore[union-attr]
        else:
            assert "not writable" in limits.table.value
        seen = lesson8.memtotal.commit(lesson8.MEMTOTAL_CHOICES[1])
        assert seen.measured == 1.0 and "right" in seen.words
        cage_folder = lesson8.cage()
    finally:
        lesson8.stop_all()
        lesson8.lesson.finish()
    assert registry.guests() == [] and containers.containers() == []
    assert our_leftovers() == []
    if isinstance(cage_folder, lesson8.Cage):
        assert not cage_folder.path.exists()  # the cgroup is removed with the container
    done = progress.lesson_progress(8)
    assert set(done.passed) == {c.id for c in lesson8.lesson.checkpoints}
    assert set(done.predictions) == {"l8-p-start", "l8-p-memtotal"}


def test_where_containers_are_refused_the_lesson_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containers.NO_USERNS_ENV, "1")
    try:
        assert lesson8.containers_refused()
        refused = lesson8.own_box.verify()
        fails_with_hint(refused, "cannot start on this host", containers.NO_USERNS_ENV)
        assert refused.hint and f"Unset {containers.NO_USERNS_ENV}" in refused.hint  # what to do
        assert "virtual-machine parts of the lesson still work" in refused.hint
        assert lesson8.solve_own_box() is None  # demo mode: the check says why, no crash
        by_hand = lesson8.unshare.verify()
        assert by_hand.hint and "this host refuses containers" in by_hand.hint
        ready = lesson8.readiness().value
        assert "refuses the kit's containers" in ready and "What works all the same" in ready
        assert "No container runs yet" in lesson8.look().value
        with pytest.raises(kit.SetupError):  # the learner's commit: the widget's banner says it
            lesson8.start_time.commit(10)
        assert "not measured" in lesson8.memtotal.observe_in_demo().words  # demo: no failure
    finally:
        lesson8.stop_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="shows what root sees")
def test_as_root_the_lessons_container_has_no_user_namespace_and_says_so(
        image: object) -> None:
    """Root makes the namespaces directly: the lesson says so, and shows the ones it has."""
    lesson8.stop_all()
    assert lesson8.containers_refused() is None
    assert "You are root, so they need no user namespace" in lesson8.readiness().value
    assert "-r" not in lesson8.unshare_command().split()
    try:
        started = lesson8.start_box()
        running = lesson8.box()
        assert running is not None and running.pid is not None and started.hostname == lesson8.BOX
        assert lesson8.own_namespaces(running.pid) == ["pid", "mnt", "uts", "ipc", "net"]
        stack = html.unescape(lesson8.stack_graph().source)
        assert "namespaces: pid mnt uts ipc net\n" in stack
    finally:
        lesson8.stop_all()
    assert containers.containers() == [] and our_leftovers() == []


def test_the_quiz_gives_feedback_on_every_choice() -> None:
    assert lesson8.quiz is not None
    for question in lesson8.quiz.questions:
        for index in range(len(question.choices)):
            feedback = question.answer(index)
            assert feedback.why and feedback.correct == (index == question.right_choice)


NOTEBOOK = Path(__file__).parent.parent.parent / "lessons" / "08-containers.ipynb"


@pytest.mark.guest
@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("demo", ["0", "1"])
def test_the_notebook_runs_where_containers_are_refused(image: object, demo: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a host without user namespaces, as shipped and in demo mode: every cell runs."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv(containers.NO_USERNS_ENV, "1")  # the kernel inherits the environment
    monkeypatch.setenv("KIT_DEMO", demo)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, startup_timeout=KERNEL_START_S,
                   kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    shown = "".join(str(output.get("data", {})) for cell in notebook.cells
                    for output in cell.get("outputs", []))
    assert "refuses the kit" in shown
    assert our_leftovers() == []
