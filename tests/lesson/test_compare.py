"""Inside vs outside: parsing (no QEMU), then both sides asked of a real guest."""

from __future__ import annotations

import platform

import psutil
import pytest

import kit
from kit.core.errors import GuestNotRunning
from kit.lesson import compare

GUEST_OUTPUT = """kernel=6.1.0-test
hostname=box
os=Kit guest
memtotal_kb=158096
cpus=2
memory_line=Memory: 138280K/196088K available (14343K kernel code, 57548K reserved, 0K cma)
--processes--
    1 init
    2 kthreadd
  115 qemu-ga
"""


def test_the_guests_answers_are_parsed() -> None:
    seen = compare.parse_guest_answers("guest box", GUEST_OUTPUT)
    assert (seen.kernel, seen.hostname, seen.cpus) == ("6.1.0-test", "box", 2)
    assert seen.memory_total_mb == pytest.approx(154.4, abs=0.1)
    assert seen.processes == ((1, "init"), (2, "kthreadd"), (115, "qemu-ga"))
    assert seen.pid1 == "init" and seen.has_process_named("qemu") and not seen.has_process_named(
        "python")


def test_the_kernels_memory_line_is_split() -> None:
    available, total, reserved = compare.kernel_memory_split(
        compare.parse_guest_answers("g", GUEST_OUTPUT).memory_line) or (0, 0, 0)
    assert (round(available), round(total), round(reserved)) == (135, 191, 56)
    assert compare.kernel_memory_split("nothing here") is None


def test_the_host_answers_for_itself() -> None:
    host = compare.host_view()
    assert host.kernel == platform.release() and host.cpus >= 1
    me = psutil.Process().name()  # "python" in a notebook, "pytest" here
    assert host.has_process_named(me) and host.memory_total_mb > 100


def test_a_stopped_guest_cannot_answer(image: object) -> None:
    with pytest.raises(GuestNotRunning, match="cannot answer"):
        compare.guest_view(kit.Guest("t-never-started"))


@pytest.mark.guest
def test_inside_and_outside_differ_on_a_real_guest(image: object, guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=160) as g:
        view = compare.InsideOutside(g)
        rows = {row.question.split(" (")[0].split("?")[0]: row for row in view.rows}
        assert rows["kernel release"].guest == g.run("uname -r").stdout.strip()
        assert rows["kernel release"].host == platform.release()
        assert rows["machine name"].guest == guest_name
        assert "the hypervisor gave it 160 MiB" in rows["memory"].guest
        assert 80 < view.guest_answers.memory_total_mb < 160  # type: ignore[union-attr]
        assert rows["CPUs"].guest == "1"
        assert rows["process 1"].guest == "init"
        assert rows[next(k for k in rows if k.startswith("sees"))].guest.startswith("no")
        assert "Memory:" in view.lists.value and "inside the guest" in view.lists.value
        assert compare.hypervisor_memory_mb(g) == 160
