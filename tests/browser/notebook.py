"""What a learner's hands do in JupyterLab, for the browser tests.

:class:`LessonPage` opens one lesson in a page, runs it from the menu,
clicks widgets and reads what the page shows.  Every wait has a deadline;
when a check fails, :meth:`LessonPage.evidence` keeps a screenshot, the
page's text and the browser console, and the failure message names the
folder.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from tests.browser.lab import JupyterLab

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RUN_ALL_TIMEOUT_S = 240.0
UI_TIMEOUT_MS = 30_000
GUEST_TIMEOUT_MS = 60_000  # a boot under TCG on a busy 2-core machine
NUMBERED = re.compile(r"^\[\d+\]:$")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PNG_COLOURS = 128  # a JupyterLab page has few colours: a palette PNG is a fifth the size


class LessonPage:
    """One lesson notebook open in one browser page."""

    def __init__(self, page: Page, lab: JupyterLab, file: str, evidence_root: Path) -> None:
        self.page = page
        self.lab = lab
        self.file = file
        self.name = Path(file).stem
        self.evidence_root = evidence_root
        self.console_errors: list[str] = []
        self.noted: list[str] = []  # failures noted by noted_on_failure, for the end
        self.step = "open the lesson"  # the step under way, named beside a browser error
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_page_error(self, error: PlaywrightError) -> None:
        where = "\n    ".join((error.stack or "").splitlines()[1:4])  # its first frames
        self.console_errors.append(f"pageerror (during '{self.step}'): {error}\n    {where}")

    def _on_console(self, message: object) -> None:
        kind = getattr(message, "type", "")
        if kind == "error":
            self.console_errors.append(f"console.error (during '{self.step}'): "
                                       f"{getattr(message, 'text', message)}")

    # -- the notebook ------------------------------------------------------------

    @property
    def notebook(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel .jp-Notebook").first

    def open(self) -> None:
        """Open the lesson in a fresh workspace of its own; wait for every cell and the kernel."""
        self.page.goto(self.lab.url(f"lab/workspaces/{self.name}/tree/{self.file}?reset"))
        code_cells = [c for c in read_notebook(self.lab.lessons / self.file).cells
                      if c.cell_type == "code"]
        prompts = self.notebook.locator(".jp-CodeCell .jp-InputArea-prompt")
        expect(prompts).to_have_count(len(code_cells), timeout=UI_TIMEOUT_MS)
        self.wait_kernel("Idle", UI_TIMEOUT_MS)

    def wait_kernel(self, status: str, timeout_ms: float) -> None:
        """Wait until the status bar says e.g. "Python 3 (ipykernel) | Idle"."""
        item = self.page.locator(".jp-StatusBar-TextItem", has_text=" | ").first
        expect(item).to_have_text(re.compile(rf"\| {status}$"), timeout=timeout_ms)

    def menu(self, title: str, command: str) -> None:
        """Click a main-menu entry, e.g. ``menu("Run", "runmenu:run-all")``."""
        self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(
            f"^{re.escape(title)}$")).click()
        self.page.locator(f".lm-Menu .lm-Menu-item[data-command='{command}']").first.click()

    def prompts(self) -> list[str]:
        """The execution prompt of every code cell: ``[ ]:``, ``[*]:`` or ``[3]:``."""
        texts = self.notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        return [" ".join(text.split()) for text in texts]

    def run_all(self, timeout_s: float = RUN_ALL_TIMEOUT_S) -> float:
        """Run → Run All Cells, then wait until nothing is queued and the kernel is idle."""
        before = self.prompts()
        started = time.monotonic()
        self.menu("Run", "runmenu:run-all")
        first = self.notebook.locator(".jp-CodeCell .jp-InputArea-prompt").first
        expect(first).not_to_have_text(before[0], timeout=UI_TIMEOUT_MS)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self._finished(before):
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"Run All did not finish in {timeout_s:.0f} s; prompts: "
                             f"{self.prompts()}")

    def _finished(self, before: list[str]) -> bool:
        now = self.prompts()
        if now == before or any("*" in prompt for prompt in now):
            return False
        status = self.page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator").first
        if status.get_attribute("data-status") != "idle":
            return False
        time.sleep(0.5)  # idle between two cells is not the end: look again
        return self.prompts() == now and not any("*" in p for p in now)

    def save_and_read(self) -> nbformat.NotebookNode:
        """File → Save Notebook, and read what was written (the scratch copy, not lessons/)."""
        self.menu("File", "docmanager:save")
        tab = self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").first
        expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"), timeout=UI_TIMEOUT_MS)
        return read_notebook(self.lab.lessons / self.file)

    def save_with_keys(self) -> nbformat.NotebookNode:
        """Ctrl+S in the notebook, and read what was written once the file has changed."""
        path = self.lab.lessons / self.file
        before = path.stat().st_mtime_ns
        self.notebook.locator(".jp-Cell .jp-InputPrompt").first.click()  # the notebook has focus
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
        while path.stat().st_mtime_ns == before:
            assert time.monotonic() < deadline, "Ctrl+S did not save the notebook"
            time.sleep(0.2)
        tab = self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current").first
        expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"), timeout=UI_TIMEOUT_MS)
        return read_notebook(path)

    def close_and_reopen(self) -> None:
        """File → Close Tab, then open the file again (as from the file browser); wait for it."""
        self.menu("File", "application:close")
        expect(self.page.locator(".jp-NotebookPanel")).to_have_count(0, timeout=UI_TIMEOUT_MS)
        self.page.evaluate("(path) => window.jupyterapp.commands.execute("
                           "'docmanager:open', {path})", self.file)
        code_cells = [c for c in read_notebook(self.lab.lessons / self.file).cells
                      if c.cell_type == "code"]
        prompts = self.notebook.locator(".jp-CodeCell .jp-InputArea-prompt")
        expect(prompts).to_have_count(len(code_cells), timeout=UI_TIMEOUT_MS)
        self.wait_kernel("Idle", GUEST_TIMEOUT_MS)

    def add_cell_and_run(self, code: str, timeout_s: float = 60.0) -> str:
        """Add a cell at the end (B in command mode), type ``code``, run it; return its output."""
        cells = self.notebook.locator(".jp-Cell")
        count = cells.count()
        cells.last.locator(".jp-InputPrompt").click()  # select the last cell
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")
        cell = cells.nth(count)
        cell.locator(".cm-content").click()
        self.page.keyboard.type(code)
        self.page.keyboard.press("Control+Enter")
        prompt = cell.locator(".jp-InputArea-prompt")
        expect(prompt).to_have_text(NUMBERED, timeout=timeout_s * 1000)
        return cell.locator(".jp-OutputArea").inner_text()

    def fill_blank_and_run(self, marker: str, source: str,
                           timeout_s: float = 60.0) -> Locator:
        """In the code cell that contains ``marker``, type ``source`` in place of its text, run it.

        What a learner does with an exercise cell: replace ``___`` with their
        code and run the cell.  Returns the cell's output area.
        """
        cell = self.notebook.locator(".jp-CodeCell").filter(has_text=marker).first
        editor = cell.locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.press("Delete")
        for number, line in enumerate(source.splitlines()):
            if number:
                self.page.keyboard.press("Enter")
                self.page.keyboard.press("Home")  # undo the editor's auto-indent
            self.page.keyboard.type(line)
        before = cell.locator(".jp-InputArea-prompt").inner_text()
        self.page.keyboard.press("Control+Enter")
        prompt = cell.locator(".jp-InputArea-prompt")
        expect(prompt).not_to_have_text(before, timeout=timeout_s * 1000)
        expect(prompt).to_have_text(NUMBERED, timeout=timeout_s * 1000)
        return cell.locator(".jp-OutputArea")

    def shut_down_kernel(self) -> None:
        """Kernel → Shut Down Kernel (confirming, if this JupyterLab asks), until "No Kernel"."""
        self.menu("Kernel", "kernelmenu:shutdown")
        confirm = self.page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        status = self.page.locator(".jp-StatusBar-TextItem", has_text=" | ").first
        no_kernel = re.compile(r"^No Kernel")
        deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
        while time.monotonic() < deadline and not no_kernel.search(status.inner_text()):
            if confirm.count():
                confirm.first.click()
            time.sleep(0.2)
        expect(status).to_have_text(no_kernel, timeout=1000)

    def tracebacks(self) -> int:
        """How many Python tracebacks the notebook's outputs show."""
        return self.notebook.locator(".jp-OutputArea-output").filter(
            has_text="Traceback (most recent call last)").count()

    # -- widgets -------------------------------------------------------------------

    def widget_outputs(self) -> Locator:
        """Every rendered widget view that is a cell's output."""
        return self.notebook.locator(".jp-OutputArea-output:has(> .jupyter-widgets)")

    def widget_with(self, selector: str) -> Locator:
        """The first cell output whose widget contains ``selector`` (e.g. a dashboard)."""
        return self.widget_outputs().filter(has=self.page.locator(selector)).first

    def button(self, scope: Locator, label: str) -> Locator:
        return scope.locator("button.widget-button", has_text=label).first

    def click(self, scope: Locator, label: str) -> None:
        button = self.button(scope, label)
        expect(button).to_be_enabled(timeout=GUEST_TIMEOUT_MS)
        button.click()

    def problems_shown(self) -> list[str]:
        """The kit's error banners and broken widgets that are visible on the page."""
        found = []
        for text in ("⚠ Problem", "The layer diagram cannot be drawn",
                     "⚠ The check could not run", "Error displaying widget"):
            for item in self.page.get_by_text(text).all():
                if item.is_visible():
                    found.append(" ".join(item.inner_text().split())[:400])
        return found

    # -- pictures for the documentation -----------------------------------------------

    def document(self, focus: Locator) -> Path | None:
        """With KIT_SCREENSHOTS=1: save the view, ``focus`` at its top, to docs/screenshots/."""
        if os.environ.get("KIT_SCREENSHOTS") != "1":
            return None
        self.hide_left_sidebar()
        focus.evaluate("element => element.scrollIntoView({block: 'start'})")
        time.sleep(0.5)  # let a redraw that the scroll started finish
        path = SCREENSHOTS / f"{self.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_small_png(self.page.screenshot(), path)
        return path

    def hide_left_sidebar(self) -> None:
        """Click the open side panel's tab, as a learner does to make room."""
        tab = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if tab.count():
            tab.first.click()

    # -- evidence --------------------------------------------------------------------

    @contextmanager
    def evidence_on_failure(self, step: str) -> Iterator[None]:
        """Turn a failure in ``step`` into an assertion that names a folder of evidence."""
        self.step = step
        try:
            yield
        except (AssertionError, PlaywrightError) as error:
            folder = self.evidence(step, str(error))
            raise AssertionError(f"{self.name}, step '{step}' failed: {shorten(str(error))}\n"
                                 f"Screenshot, page text and the whole error: {folder}"
                                 ) from error

    @contextmanager
    def noted_on_failure(self, step: str) -> Iterator[None]:
        """Like :meth:`evidence_on_failure`, but note the failure and go on with the lesson.

        For what the learner sees (contrast, sizes) rather than what works: the
        steps after it still run, and :attr:`noted` fails the test at its end.
        """
        try:
            with self.evidence_on_failure(step):
                yield
        except AssertionError as failure:
            self.noted.append(str(failure))

    def evidence(self, step: str, error: str = "") -> Path:
        folder = self.evidence_root / f"{self.name}-{re.sub(r'[^A-Za-z0-9]+', '-', step)}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.page.screenshot(path=str(folder / "page.png"))
            (folder / "page.txt").write_text(self.page.locator("body").inner_text())
            (folder / "page.html").write_text(self.page.content())
        except PlaywrightError as broken:  # the page may be the thing that broke
            (folder / "page.txt").write_text(f"(could not read the page: {broken})")
        (folder / "browser-console.txt").write_text("\n".join(self.console_errors))
        (folder / "jupyterlab.log").write_text(self.lab.log_tail(200))
        (folder / "error.txt").write_text(error)
        return folder


def shorten(error: str, lines: int = 12) -> str:
    """The head of an error: Playwright appends the page's whole accessibility tree."""
    head = error.split("\nAria snapshot:")[0].splitlines()
    return "\n".join(head[:lines] + (["[…]"] if len(head) > lines else []))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def save_small_png(png: bytes, path: Path) -> None:
    """Write ``png`` as a palette image (few colours, optimised): small enough to commit."""
    from PIL import Image

    picture = Image.open(io.BytesIO(png)).convert("RGB")
    picture.thumbnail((1280, 800))
    small = picture.quantize(colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT,
                             dither=Image.Dither.NONE)
    small.save(path, format="PNG", optimize=True)
