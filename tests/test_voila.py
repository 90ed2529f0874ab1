"""The control room served alone by Voila: the page renders, and stopping Voila leaves nothing."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kit.infrastructure.net import free_port, http_get
from kit.widgets.control_room import TITLE
from tests.conftest import our_qemu_pids

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "lessons" / "control-room.ipynb"
VOILA = Path(sys.executable).parent / "voila"


def fetch_when_up(port: int, process: subprocess.Popen[bytes], seconds: float) -> str:
    """The page's HTML once Voila answers 200 (it executes the notebook first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "voila exited early"
        try:
            return http_get(port, "/", timeout=60)
        except urllib.error.HTTPError as error:
            pytest.fail(f"voila answered HTTP {error.code}")
        except OSError:
            time.sleep(0.2)
    pytest.fail("voila did not answer in time")


@pytest.fixture
def voila(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    if not VOILA.exists() and not shutil.which("voila"):
        pytest.skip("voila is not installed (pip install -e '.[test]')")
    port = free_port()
    log = (tmp_path / "voila.log").open("wb")
    process = subprocess.Popen(
        [str(VOILA), str(NOTEBOOK), "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Voila shuts its kernels down on Ctrl-C
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


def test_control_room_page_renders_and_leaves_nothing(
        voila: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, process = voila
    before = our_qemu_pids()
    body = fetch_when_up(port, process, 120)
    assert TITLE in body
    kernels = psutil.Process(process.pid).children(recursive=True)
    assert kernels, "voila started no kernel for the page"
    process.send_signal(signal.SIGINT)
    process.wait(30)
    _, alive = psutil.wait_procs(kernels, timeout=15)
    assert not alive, f"voila left processes behind: {alive}"
    assert our_qemu_pids() <= before, "the page left a QEMU running"
