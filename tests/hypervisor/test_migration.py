"""Live migration on real guests: the same Guest goes on in a new QEMU process, serving HTTP.

No mocks: two real QEMUs, the machine streamed between them through a
socket pair, and a web client on the host that keeps asking throughout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request
from pathlib import Path

import psutil
import pytest

import kit
from kit.guestos import images
from kit.hypervisor import guest as guest_module
from kit.hypervisor import migration, qemu, registry
from kit.labs import latency
from kit.view import diagram, picture
from tests.conftest import free_port, our_qemu_pids
from tests.waiting import gone, wait_until

MEMORY_MB = 64


def boot_id(guest: kit.Guest) -> str:
    return guest.run("cat /proc/sys/kernel/random/boot_id").stdout.strip()


def listening_ports(pid: int) -> list[int]:
    return [c.laddr.port for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN]


@pytest.mark.guest
def test_http_is_answered_across_a_migration(image: images.GuestImage, guest_name: str) -> None:
    port = free_port()
    with kit.Guest(guest_name, memory_mb=MEMORY_MB, forwards={port: 80}) as g:
        g.run("echo before > /tmp/note; sleep 4242 > /dev/null 2>&1 &")
        before_boot, old_pid = boot_id(g), g.pid
        assert old_pid is not None
        sampler = latency.LatencySampler(port).start()  # a request every 10 ms

        def answered(since: int = 0) -> int:
            return sum(sample.ok for sample in sampler.samples()[since:])

        assert wait_until(lambda: answered() >= 5, 20)
        report = g.migrate()
        answered_then = len(sampler.samples())
        assert wait_until(lambda: answered(answered_then) >= 5, 20)
        samples = sampler.stop()

        assert g.pid != old_pid and g.pid == report.new_pid
        assert report.old_pid == old_pid
        assert gone(old_pid)
        assert g.state == "running"
        assert boot_id(g) == before_boot  # the same boot of the same kernel, in a new QEMU
        assert g.run("cat /tmp/note").stdout == "before\n"
        assert "sleep 4242" in g.run("ps").stdout
        assert listening_ports(g.pid) == [port]  # the forward moved with it
        assert report.forwards_moved == (port,)
        # The new QEMU mapped the guest's memory (a memfd) itself: only the devices travelled.
        assert report.memory_shared and report.transferred_mb < 1
        assert "/memfd:memory-backend-memfd" in Path(f"/proc/{g.pid}/maps").read_text()
        assert 0 < report.paused_ms < report.seconds * 1000
        longest = latency.longest_gap(samples)
        print(f"\n{report}; the web client's longest silence: "
              f"{longest.ms if longest else 0.0:.0f} ms")
        # Every channel follows: QMP, the agent (above), and the console.
        assert g.qmp("query-status")["status"] == "running"
        g.console.write("echo typed-$((6*7))\n")
        assert wait_until(lambda: "typed-42" in g.console.text(), 10), g.console.tail()
        # The new QEMU's own command: it waited for the machine (-incoming defer), mapped the
        # old one's memory, and got the forward through the monitor once the port was free.
        assert " -incoming defer" in g.command_line and "hostfwd" not in g.command_line
        assert "memory-backend-file,id=guest-ram,mem-path=/proc/self/fd/" in g.command_line
        second = g.migrate()  # and again, from the new QEMU
        assert second.old_pid == report.new_pid
        assert g.run("cat /tmp/note").stdout == "before\n"
        last_pid = g.pid
    assert g.state == "stopped"
    assert gone(last_pid)
    assert not our_qemu_pids()


@pytest.mark.guest
def test_the_live_diagram_sees_the_guest_move(image: images.GuestImage, guest_name: str) -> None:
    seen: list[picture.Move | None] = []

    def note(guest: kit.Guest, state: str) -> None:
        if guest.name == guest_name:
            seen.append(picture.guest_snapshot(guest).move)

    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as g:
        old_pid = g.pid
        unsubscribe = registry.subscribe(note)
        try:
            report = g.migrate()
        finally:
            unsubscribe()
        assert g.last_migration is report and g.moving_to is None
        # While it moved, the picture had both processes; afterwards, the trace of the old one.
        assert picture.Move(old_pid, report.new_pid, done=False) in seen
        after = picture.guest_snapshot(g).move
        assert after == picture.Move(old_pid, report.new_pid, True, report.paused_ms)
        assert f"moved from QEMU process {old_pid}" in diagram.describe(picture.take([g]))
        g.stop()
        g.start()  # a new boot: nothing has moved in this machine
        assert g.last_migration is None and picture.guest_snapshot(g).move is None


@pytest.mark.guest
def test_a_mounted_shared_folder_is_refused_an_unmounted_one_moves(
        image: images.GuestImage, guest_name: str, tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "hello.txt").write_text("from the host\n")
    with kit.Guest(guest_name, memory_mb=MEMORY_MB, shared_folder=folder) as g:
        g.open_share()
        pid = g.pid
        with pytest.raises(kit.MigrationError, match="shared folder mounted") as error:
            g.migrate()
        assert "g.close_share()" in str(error.value)
        assert g.pid == pid and g.state == "running" and g.share_open
        g.close_share()
        g.migrate()
        assert g.pid != pid
        g.open_share()  # the new QEMU has the same 9p file server
        assert g.run("cat /mnt/share/hello.txt").stdout == "from the host\n"
        g.close_share()


@pytest.mark.guest
def test_a_guest_with_a_link_is_refused(image: images.GuestImage, guest_name: str) -> None:
    a = kit.Guest(f"{guest_name}-a", memory_mb=MEMORY_MB)
    b = kit.Guest(f"{guest_name}-b", memory_mb=MEMORY_MB)
    kit.Link(a, b)
    with a:
        pid = a.pid
        with pytest.raises(kit.MigrationError, match="link"):
            a.migrate()
        assert a.pid == pid and a.run("true").ok


@pytest.mark.guest
def test_a_failed_migration_leaves_the_source_running(
        image: images.GuestImage, guest_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    with kit.Guest(guest_name, memory_mb=MEMORY_MB, forwards={port: 80}) as g:
        g.run("echo still-here > /tmp/note")
        pid = g.pid
        real = guest_module.Guest._machine_spec

        def other_memory(self: kit.Guest, **changes: object) -> qemu.MachineSpec:
            spec = real(self, **changes)  # type: ignore[arg-type]
            if spec.incoming_fd is None:
                return spec
            return dataclasses.replace(spec, memory_mb=spec.memory_mb * 2)

        # A destination that does not match the machine: QEMU itself refuses to load it.
        monkeypatch.setattr(guest_module.Guest, "_machine_spec", other_memory)
        with pytest.raises(kit.MigrationError) as error:
            g.migrate()
        assert "what to do" in str(error.value)
        monkeypatch.undo()
        assert g.pid == pid
        assert wait_until(lambda: g.state == "running", 10)
        assert g.qmp("query-status")["status"] == "running"
        assert g.run("cat /tmp/note").stdout == "still-here\n"
        assert listening_ports(pid) == [port]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.status == 200
        assert our_qemu_pids() == {pid}  # the failed destination is gone
        g.migrate()  # and a good destination still works
        assert g.pid != pid


class EndedProcess:
    """Just what ``_unless_exited`` reads of a destination QEMU: one that has exited."""

    def __init__(self, code: int) -> None:
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exited.set_result(code)

    async def exited_within(self, seconds: float) -> bool:
        return True


def test_a_channel_broken_by_the_destinations_exit_is_reported_as_its_exit() -> None:
    """Under load the QMP connection can fail (EOF) before the kit has seen QEMU exit."""
    async def broken_channel() -> None:
        raise EOFError

    async def scenario() -> None:
        process = EndedProcess(1)
        with pytest.raises(kit.MigrationError, match="exited while starting") as error:
            await migration._unless_exited(process, broken_channel(), 5,  # type: ignore[arg-type]
                                           "starting")
        assert error.value.hint and "qemu.log" in error.value.hint

    asyncio.run(scenario())
