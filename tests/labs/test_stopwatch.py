"""The boot stopwatch: phases from host timestamps, on synthetic lines and on real boots."""

from __future__ import annotations

import math

import pytest

from kit.labs import stopwatch
from kit.labs.stopwatch import ConsoleTimes, phases_from
from tests.conftest import our_qemu_pids


def console(*lines: tuple[float, str]) -> ConsoleTimes:
    times = ConsoleTimes()
    for when, line in lines:
        times.feed(line + "\n", now=when)
    return times


def test_lines_split_across_chunks_are_timed_when_complete() -> None:
    times = ConsoleTimes()
    times.feed("[    0.000000] Linux ver", now=1.0)
    times.feed("sion 6.1\nRun /init as", now=1.5)
    times.feed(" init process\n", now=2.0)
    assert times.first_byte == 1.0
    assert times.lines == [(1.5, "[    0.000000] Linux version 6.1"),
                           (2.0, "Run /init as init process")]
    assert times.first("Run /init") == (2.0, "Run /init as init process")
    assert times.first("KIT-READY") is None


def test_phases_follow_the_timestamps_and_sum_to_the_total() -> None:
    lines = console((10.2, "[    0.000000] Linux version"),
                    (10.9, "[    0.612345] Run /init as init process"),
                    (11.4, "kit-init: ready after 1.05 s of guest uptime; ..."),
                    (11.41, "KIT-READY"))
    phases = phases_from(10.0, 10.05, lines, 11.45, 11.6)
    assert phases.durations() == pytest.approx({
        "kit": 0.05, "qemu_loader": 0.15, "kernel": 0.7, "init": 0.51, "agent": 0.04,
        "application": 0.15})
    assert math.isclose(phases.total_s, 1.6)
    assert phases.guest_run_init_s == pytest.approx(0.612345)
    assert phases.guest_ready_uptime_s == pytest.approx(1.05)
    assert [words for words, _ in phases.rows()] == [w for _, w in stopwatch.PHASES]


def test_a_missing_line_gives_an_empty_phase_never_a_negative_one() -> None:
    phases = phases_from(0.0, 0.1, ConsoleTimes(), agent_ready=1.0, http_ready=0.9)
    values = phases.durations()
    assert all(value >= 0 for value in values.values())
    assert values["kernel"] == 0 and values["application"] == 0
    assert math.isclose(phases.total_s, 1.0)


@pytest.mark.guest
def test_real_boots_split_into_ordered_positive_phases(image: object) -> None:
    before = our_qemu_pids()
    boots = stopwatch.measure_boots(2, name="stopwatch-test")
    assert len(boots) == 2
    for boot in boots:
        values = boot.durations()
        assert all(value >= 0 for value in values.values()), values
        for phase in ("qemu_loader", "kernel", "init"):
            assert values[phase] > 0, values
        assert math.isclose(boot.total_s, sum(values.values()))
        assert boot.earlycon and boot.guest_run_init_s and boot.guest_ready_uptime_s
        # the kernel ran /init before the init said it was ready, on the guest's clock too
        assert boot.guest_run_init_s < boot.guest_ready_uptime_s
    assert our_qemu_pids() <= before


@pytest.mark.guest
def test_without_earlycon_the_kernel_still_gets_a_phase(image: object) -> None:
    boot = stopwatch.measure_boot("stopwatch-quiet", earlycon=False)
    assert not boot.earlycon and boot.kernel_s > 0 and boot.init_s > 0
