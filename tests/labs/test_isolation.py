"""Isolation on real guests: files, processes, a crash, a memory hog, a noisy neighbour.

Two guests boot per test (one forwards its web server, so the host can keep
asking it); speed is never asserted, only that the numbers are sane.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

import kit
from kit.labs import isolation
from tests.conftest import free_port

_pairs = itertools.count(1)


@pytest.fixture
def pair(image: object) -> Iterator[tuple[kit.Guest, kit.Guest]]:
    """Guest a (2 vCPUs) and guest b (serving on a host port), both running."""
    n = next(_pairs)
    with kit.Guest(f"iso{n}-a", memory_mb=128, cpus=2, forwards={free_port(): 80}) as a, \
            kit.Guest(f"iso{n}-b", memory_mb=128, forwards={free_port(): 80}) as b:
        yield a, b


# -- without QEMU --------------------------------------------------------------------------


def test_a_process_table_is_parsed() -> None:
    text = "boot_id=abc-1\nuptime=3.25\n--processes--\n    1 init\n   29 qemu-ga\n  41 httpd\n"
    table = isolation.parse_process_table("a", 1234, text)
    assert (table.boot_id, table.uptime_s, table.pid1) == ("abc-1", 3.25, "init")
    assert table.pids_named("httpd") == [41] and table.name_of(7) is None


def test_a_service_log_counts_answers() -> None:
    ok = isolation.Request(0.0, True, 200, 3.0)
    bad = isolation.Request(0.1, False, None, 9.0, "refused")
    log = isolation.ServiceLog(1, (ok, bad, ok))
    assert (log.total, log.answered, log.all_ok, log.slowest_ms) == (3, 2, False, 9.0)
    assert not isolation.ServiceLog(1, ()).all_ok


def test_a_neighbour_report_says_how_much_slower() -> None:
    report = isolation.NeighbourReport("b", "a", 10, 2, 2, (1.0, 2.0, 1.0), (3.0, 3.0, 2.0))
    assert report.slowdown == 3.0


def test_a_guest_without_a_web_forward_is_refused_in_words(image: object) -> None:
    with pytest.raises(kit.InvalidInput, match="no port forward"):
        isolation.web_port(kit.Guest("noweb"))


def test_nothing_is_served_on_a_closed_port() -> None:
    request = isolation.request_once(free_port(), timeout=1.0)
    assert not request.ok and request.status is None and request.error


# -- on real guests ---------------------------------------------------------------------------


@pytest.mark.guest
def test_a_file_written_in_one_guest_is_absent_from_the_other(
        pair: tuple[kit.Guest, kit.Guest]) -> None:
    a, b = pair
    isolation.write_file(a, "/www/hello.txt", "written in a\n")
    seen = isolation.look_for_file([a, b], "/www/hello.txt")
    assert seen.contents == {a.name: "written in a\n", b.name: None}
    assert seen.holders == [a.name]
    assert isolation.request_once(isolation.web_port(b), "/hello.txt").status == 404


@pytest.mark.guest
def test_each_guest_has_its_own_processes_and_kernel(pair: tuple[kit.Guest, kit.Guest]) -> None:
    a, b = pair
    sleeper = isolation.start_sleeper(a)
    ta, tb = isolation.process_table(a), isolation.process_table(b)
    assert ta.pid1 == tb.pid1 == "init"
    assert ta.boot_id != tb.boot_id and ta.qemu_pid != tb.qemu_pid
    assert ta.name_of(sleeper) == "sleep" and tb.pids_named("sleep") == []


@pytest.mark.guest
def test_one_guest_crashes_while_the_other_keeps_serving(
        pair: tuple[kit.Guest, kit.Guest]) -> None:
    a, b = pair
    report = isolation.crash_while_serving(a, b)
    assert a.state == "crashed" and report.victim_status == "guest-panicked"
    assert b.state == "running" and report.neighbour_status == "running"
    assert report.neighbour_service.total >= 5 and report.neighbour_service.all_ok, \
        report.neighbour_service
    assert any(r.at_s > report.crash_at_s for r in report.neighbour_service.requests)
    assert any("panic" in line.lower() for line in report.panic_lines), report.panic_lines


@pytest.mark.guest
def test_a_memory_hog_is_stopped_inside_its_own_guest(
        pair: tuple[kit.Guest, kit.Guest]) -> None:
    a, b = pair
    report = isolation.memory_hog(a, b)
    assert report.killed_by_oom and "awk" in report.oom_lines[0], report
    assert report.exit_code == 137  # killed by signal 9
    assert report.guest_still_running and a.state == "running"
    assert report.neighbour_service.all_ok, report.neighbour_service
    # The QEMU process grew by at most the memory the guest was given.
    assert 0 <= report.rss_growth_mb <= report.memory_mb + 16, report.samples
    assert report.host_available_lowest_mb > 0


@pytest.mark.guest
def test_the_noisy_neighbour_is_measured(pair: tuple[kit.Guest, kit.Guest]) -> None:
    a, b = pair
    shells_before = len(isolation.process_table(a).pids_named("sh"))
    report = isolation.noisy_neighbour(b, a, loops=5_000, repeats=2)
    assert report.burners == a.cpus == 2
    assert len(report.alone_s) == len(report.crowded_s) == 2
    assert all(0 < t < 120 for t in report.alone_s + report.crowded_s)
    assert report.slowdown > 0
    # The busy loops (subshells) are gone again; +1 for the shell running ps.
    assert len(isolation.process_table(a).pids_named("sh")) <= shells_before + 1
