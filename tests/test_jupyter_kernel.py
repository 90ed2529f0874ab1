"""Guests and the notebook kernel that started them.

Interrupting a kernel (the stop button) must not kill its guests; restarting
it, shutting it down, or killing it must.  These run a real IPython kernel.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from kit.guestos import images
from tests.waiting import alive, gone

pytestmark = [pytest.mark.guest, pytest.mark.slow]


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield manager, client
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


def run_cell(client: BlockingKernelClient, code: str, timeout: float = 120) -> str:
    output: list[str] = []

    def keep(message: dict) -> None:  # type: ignore[type-arg]
        if message["msg_type"] == "stream":
            output.append(message["content"]["text"])
        if message["msg_type"] == "error":
            output.append("\n".join(message["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=keep)
    text = "".join(output)
    assert reply["content"]["status"] == "ok", text
    return text


def start_guests(client: BlockingKernelClient, *names: str) -> list[int]:
    code = "import kit\n" + "".join(
        f"g_{n.replace('-', '_')} = kit.Guest({n!r}).start()\n" for n in names
    ) + "print(*[g.pid for g in kit.guests()])"
    return [int(pid) for pid in run_cell(client, code).split()]


def wait_for_output(client: BlockingKernelClient, text: str, timeout: float = 30) -> None:
    """Until the running cell has printed ``text`` (read from the kernel's iopub channel)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = client.get_iopub_msg(timeout=left)
        except queue.Empty:
            break
        if message["msg_type"] == "stream" and text in message["content"]["text"]:
            return
    raise AssertionError(f"the cell did not print {text!r} within {timeout:g} s")


def test_interrupt_keeps_guests_and_restart_stops_them(
    image: images.GuestImage, kernel: tuple[KernelManager, BlockingKernelClient]
) -> None:
    manager, client = kernel
    answers: list[dict] = []  # type: ignore[type-arg]
    pids = start_guests(client, "kern-a", "kern-b")
    client.execute("import time; print('sleeping', flush=True); time.sleep(60)")
    wait_for_output(client, "sleeping")  # the cell runs: the interrupt lands in it
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "error"  # KeyboardInterrupt, as a learner sees it
    assert all(alive(pid) for pid in pids)
    # ipykernel aborts requests that reach it while it is still unwinding the error
    # ('aborted'); the learner's next cell, sent once it is done, runs.
    for _ in range(20):
        reply = client.execute_interactive("print(g_kern_a.run('echo still here').stdout)",
                                           timeout=60, output_hook=lambda m: answers.append(m))
        if reply["content"]["status"] != "aborted":
            break
    assert reply["content"]["status"] == "ok", reply["content"]
    answer = "".join(m["content"]["text"] for m in answers if m["msg_type"] == "stream")
    assert answer == "still here\n\n"
    manager.restart_kernel(now=False)
    assert gone(pids, 10)


def test_shutdown_stops_guests(
    image: images.GuestImage, kernel: tuple[KernelManager, BlockingKernelClient]
) -> None:
    manager, client = kernel
    pids = start_guests(client, "kern-c")
    manager.shutdown_kernel(now=False)
    assert gone(pids, 10)


def test_killed_kernel_takes_its_guests(
    image: images.GuestImage, kernel: tuple[KernelManager, BlockingKernelClient]
) -> None:
    manager, client = kernel
    pids = start_guests(client, "kern-d", "kern-e")
    manager.shutdown_kernel(now=True)  # SIGKILL: no Python cleanup runs
    assert gone(pids, 2)


def test_twenty_kernel_ends_in_a_row(image: images.GuestImage) -> None:
    """Restart, shut down or SIGKILL a kernel with guests, 20 times: nothing piles up.

    The same guest names every time: stale files of a killed kernel must not
    stop the next one from starting its guests.
    """
    from kit.core import paths

    endings = ["restart", "shutdown", "kill"]
    for round_number in range(20):
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel()
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        code = (
            "import kit, threading\n"
            "gs = [kit.Guest(n) for n in ('loop-a', 'loop-b')]\n"
            "ts = [threading.Thread(target=g.start) for g in gs]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print(*[g.pid for g in gs if g.state == 'running'])"
        )
        pids = [int(p) for p in run_cell(client, code).split()]
        assert len(pids) == 2, f"round {round_number}: guests did not start"
        ending = endings[round_number % 3]
        if ending == "restart":
            manager.restart_kernel(now=False)
            manager.shutdown_kernel(now=True)
        else:
            manager.shutdown_kernel(now=ending == "kill")
        client.stop_channels()
        assert gone(pids, 5), f"round {round_number} ({ending}): QEMU left behind"
    leftovers = [p for p in paths.runtime_dir().iterdir() if p.name.startswith("loop-")]
    # A killed kernel cannot tidy up; the next start of the same name does.
    assert len(leftovers) <= 2
