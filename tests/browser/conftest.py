"""Fixtures for the browser tests: one JupyterLab, one headless Chromium, a page per lesson.

Both are started once per test module and torn down at its end (not at the
end of the whole session: the rest of the suite runs without them), and the
teardown checks what the tests promise: no JupyterLab, kernel, browser or
QEMU process that these fixtures started is left.  (The last test of
``test_lessons_in_browser.py`` runs the same check as a test of its own.)

Chromium is Debian's (``/usr/bin/chromium``, installed by ``setup.sh``);
Playwright only drives it: it never downloads a browser of its own.  Without
Chromium, the browser tests are skipped and say why; in the test command
(``./setup.sh test``, ``KIT_TESTING_ALL=1``), which installs it, they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, ViewportSize, sync_playwright

from tests.browser import processes
from tests.browser.lab import JupyterLab
from tests.browser.notebook import LessonPage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    # This machine's network is closed: without these, Chromium keeps trying
    # Google's hosts (updates, sync, field trials) and logs refused connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def chromium_path() -> str | None:
    return shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)


class Chromium:
    """Playwright's driver and the browser it launched, and the processes they are."""

    def __init__(self, executable: str) -> None:
        before = processes.descendants_of_self()
        self.playwright: Playwright | None = sync_playwright().start()
        self.browser: Browser = self.playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        self.started = processes.descendants_of_self() - before

    def all_pids(self) -> set[int]:
        """What it started, and what those started since (a renderer per page)."""
        pids = set(self.started)
        for pid in self.started:
            pids |= processes.family(pid)
        return pids

    def stop(self) -> set[int]:
        """Close the browser and the driver; kill and return what did not end."""
        if self.playwright is None:
            return set()
        ours = self.all_pids()
        try:
            self.browser.close()
        finally:
            self.playwright.stop()
            self.playwright = None
        left = processes.wait_gone(ours, 10)
        processes.kill(left)
        return left


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = chromium_path()
    if path is None:
        why = ("Debian's chromium is not installed (./setup.sh installs it; or "
               "apt-get install chromium): the browser tests need a real browser")
        if os.environ.get("KIT_TESTING_ALL") == "1":  # the test command installs it: a failure
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, private_runtime_dir: Path,
        built_image: object, chromium_executable: str) -> Iterator[JupyterLab]:
    """A JupyterLab of the tests' own, serving a scratch copy of lessons/.

    It inherits ``KIT_RUNTIME_DIR`` from the test session, so every QEMU a
    lesson starts keeps its pidfile where ``processes.qemu_pids()`` looks.
    """
    server = JupyterLab(tmp_path_factory.mktemp("jupyterlab")).start()
    yield server
    left = server.stop()
    assert not left, f"JupyterLab or a kernel had to be killed: {processes.describe(left)}"
    assert_no_qemu_left()


@pytest.fixture(scope="module")
def chromium(chromium_executable: str) -> Iterator[Chromium]:
    browser = Chromium(chromium_executable)
    yield browser
    left = browser.stop()
    assert not left, f"browser processes had to be killed: {processes.describe(left)}"


@pytest.fixture(scope="session")
def evidence_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a failing test leaves its screenshot and page text (named in its message)."""
    chosen = os.environ.get("KIT_BROWSER_EVIDENCE")
    return Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "browser-evidence"


@pytest.fixture
def open_lesson(lab: JupyterLab, chromium: Chromium,
                evidence_root: Path) -> Iterator[Callable[[str], LessonPage]]:
    """``open_lesson("00-welcome.ipynb")``: a new browser context and page for that lesson.

    Afterwards the context is closed and every notebook session of the
    server is ended, so one lesson's kernel cannot outlive its test.
    """
    contexts = []

    def make(file: str) -> LessonPage:
        context = chromium.browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        return LessonPage(context.new_page(), lab, file, evidence_root)

    yield make
    for context in contexts:
        context.close()
    lab.shut_down_sessions()


def assert_no_qemu_left() -> None:
    left = processes.wait_gone(processes.qemu_pids(), 10)
    processes.kill(left)
    assert not left, f"QEMU left running: {processes.describe(left)}"
