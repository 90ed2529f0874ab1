"""Every lesson, as a learner meets it: JupyterLab in a real browser, run, clicked, read.

For each notebook in ``lessons/`` (a scratch copy of it): open it, Run All
from the Run menu in the instructor's **demo mode**, wait until every cell
has run, check what the page shows and that every exercise passed as a demo
(never as the learner's); then switch demo mode off, as for a learner, and do
the lesson's own steps (``plans.py``), among them at least one exercise
solved by typing its solution into its cell; then shut the kernel down from
the Kernel menu and check that its guests went with it; save with Ctrl+S,
close the lesson and open it again: it shows no broken widget, and the saved
copy keeps no widget output.  The browser console must stay free of errors
throughout, and the repository's lessons/ is never written.

What the learner sees is measured too (issue 17, ``page_checks.py``): after
Run All, the contrast of every text in the outputs, in JupyterLab Light and
Dark; in every lesson, no button label cut off and no diagram word below
11 px; in the consoles, the answer to a typed command in view.
``test_the_kits_icons_render`` checks that every symbol the kit prints has a
glyph on this machine.

A failing step leaves a screenshot, the page's text, the browser console
and JupyterLab's log in a folder that the failure message names.
``KIT_SCREENSHOTS=1`` also saves each lesson's picture to docs/screenshots/.
"""

from __future__ import annotations

import io
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect

from kit.lesson import classroom, progress
from tests.browser import page_checks, processes
from tests.browser.conftest import VIEWPORT, Chromium, assert_no_qemu_left
from tests.browser.lab import LESSONS, ROOT, JupyterLab, lessons_fingerprint
from tests.browser.notebook import UI_TIMEOUT_MS, WIDGET_MIME, LessonPage, save_small_png
from tests.browser.plans import Plan, plan_for
from tests.lesson.test_notebooks import EXERCISE_LESSONS

# One lesson: open it, Run All (bounded by RUN_ALL_TIMEOUT_S), its plan's steps (each
# wait bounded by UI_TIMEOUT_MS or GUEST_TIMEOUT_MS), shut its kernel down.  A slow
# step must fail with its own message, not be cut short by pytest-timeout's stack
# dump: tests/test_suite_honesty.py checks that the waits fit inside this.
LESSON_TIMEOUT_S = 900

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.guest,
              pytest.mark.timeout(LESSON_TIMEOUT_S)]

LESSON_FILES = sorted(path.name for path in LESSONS.glob("*.ipynb"))
KERNEL_GONE_S = 10.0
ERRORS_CHECK = "import kit; kit.raise_recorded_errors(); print('no recorded errors')"

# Browser-console lines that say nothing about the kit: each with the reason.
HARMLESS_CONSOLE: tuple[str, ...] = (
    # (none yet: add a fragment of the message and say why it is harmless)
)


@pytest.mark.parametrize("file", LESSON_FILES, ids=[Path(f).stem for f in LESSON_FILES])
def test_lesson_in_the_browser(file: str, open_lesson: Callable[[str], LessonPage],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    lesson = open_lesson(file)
    # Read and switch what this server's kernels read: their progress and class settings.
    monkeypatch.setenv("KIT_PROGRESS_FILE", str(lesson.lab.progress_file))
    plan = plan_for(lesson.name)
    with lesson.evidence_on_failure("open the lesson"):
        lesson.open()
    with lesson.evidence_on_failure("Run All in demo mode"):
        classroom.set_demo_mode(True)
        try:
            lesson.run_all()
        finally:
            classroom.set_demo_mode(False)  # from here on, a learner at work
        notebook = lesson.save_and_read()
        check_every_cell_ran(notebook)
        check_saved_without_widget_views(notebook)
        check_every_exercise_passed_as_demo(lesson)
    with lesson.evidence_on_failure("widgets rendered"):
        check_widgets_rendered(lesson, plan)
    with lesson.noted_on_failure("contrast in JupyterLab Light and Dark"):
        check_contrast(lesson)
    with lesson.noted_on_failure("labels and diagram words fit"):
        check_labels_fit(lesson)
        check_diagram_words_readable(lesson)
    for step in plan.steps:
        with lesson.evidence_on_failure(step.name):
            step(lesson)
    with lesson.noted_on_failure("labels fit after the steps"):
        check_labels_fit(lesson)  # the steps changed labels (Pause/Resume, open/closed)
    with lesson.noted_on_failure("contrast after the steps"):
        check_contrast(lesson)  # and states: a door open, a guest paused or crashed
    with lesson.evidence_on_failure("no failure shown or recorded"):
        assert not lesson.problems_shown(), lesson.problems_shown()
        assert lesson.add_cell_and_run(ERRORS_CHECK).strip() == "no recorded errors"
    with lesson.evidence_on_failure("Kernel → Shut Down Kernel"):
        check_kernel_shutdown_takes_guests(lesson, plan)
    with lesson.evidence_on_failure("Ctrl+S, close, open again"):
        check_reopens_without_widget_errors(lesson)
    with lesson.evidence_on_failure("browser console"):
        assert not real_errors(lesson.console_errors), real_errors(lesson.console_errors)
    with lesson.evidence_on_failure("the repository's lessons/ untouched"):
        assert lessons_fingerprint() == lesson.lab.shipped_lessons, (
            "lessons/ in the repository changed while the lesson ran: "
            f"{lessons_fingerprint()[0] or '(git sees no change, but a file differs)'}")
    if lesson.noted:  # what the learner sees: noted on the way, so every step still ran
        raise AssertionError("\n\n".join(lesson.noted))


def test_the_kits_icons_render(lab: JupyterLab, chromium: Chromium, evidence_root: Path) -> None:
    """Every symbol the kit prints (✔ ▶ ■ 💥 🔓 …) has a glyph here: no empty box, emoji in colour.

    Each one is a button's label in JupyterLab's page (its fonts, ipywidgets'
    button style), beside two code points that no font has (U+E000,
    U+10FFFF): those draw the missing-glyph box ("tofu"), and no symbol of
    the kit may look like it.  The row is saved as a small picture, named in
    the failure message.
    """
    icons = kit_icons()
    assert len(icons) >= 20, icons  # the scan found the kit's symbols
    context = chromium.browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(lab.url("lab/workspaces/icons/tree?reset"))
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=UI_TIMEOUT_MS)
        boxes = page.evaluate(ICON_ROW_JS, [*TOFU, *icons])
        row = boxes.pop()
        png = page.screenshot(clip=row)
    finally:
        context.close()
    picture = evidence_root / "icons.png"
    picture.parent.mkdir(parents=True, exist_ok=True)
    save_small_png(png, picture)
    glyphs = icon_glyphs(png, row, dict(zip([*TOFU, *icons], boxes, strict=True)))
    tofu = [glyphs[char] for char in TOFU]
    assert tofu[0] is not None and tofu[0] == tofu[1], (
        f"the missing-glyph box is not what this check expects; see {picture}")
    problems = []
    for char in icons:
        ink = glyphs[char]
        name = f"U+{ord(char):04X} {char} {unicodedata.name(char, '')}"
        if ink is None:
            problems.append(f"{name}: nothing drawn")
        elif ink == tofu[0]:
            problems.append(f"{name}: the missing-glyph box")
        elif ord(char) >= EMOJI_FROM and ink.coloured < MIN_COLOURED_PIXELS:
            problems.append(f"{name}: not in colour ({ink.coloured} coloured pixels)")
    assert not problems, f"{len(problems)} of {len(icons)} symbols do not render: " \
        f"{problems}; see {picture}"


def test_nothing_is_left_behind(lab: JupyterLab, chromium: Chromium) -> None:
    """After the lessons: stopping JupyterLab and the browser leaves no process of theirs.

    Polite shutdowns only (the server's API, the browser's close): whatever
    had to be killed afterwards is a failure.  QEMU is checked by its pidfile
    in this session's runtime folder, since an orphan is no longer anyone's child.
    """
    kernels = lab.kernel_pids()
    killed = lab.stop() | chromium.stop()
    assert not killed, f"had to be killed: {processes.describe(killed)}"
    assert not processes.alive(kernels)
    assert_no_qemu_left()


# -- the default checks, for every lesson ---------------------------------------------


def check_every_cell_ran(notebook: nbformat.NotebookNode) -> None:
    """Every code cell has an execution count, and none shows an error."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        assert cell.execution_count is not None, f"cell {index} did not run:\n{cell.source}"
        for output in cell.outputs:
            assert output.output_type != "error", (
                f"cell {index} failed: {output.ename}: {output.evalue}\n{cell.source}")


def check_every_exercise_passed_as_demo(lesson: LessonPage) -> None:
    """The progress file: every exercise of the lesson shown in demo mode, none as the learner's."""
    if not lesson.name[:2].isdigit() or int(lesson.name[:2]) not in EXERCISE_LESSONS:
        return
    done = progress.lesson_progress(int(lesson.name[:2]))
    assert done.checkpoint_ids and set(done.demo) == set(done.checkpoint_ids), done
    assert done.passed == (), f"demo passes recorded as the learner's: {done.passed}"
    expect(lesson.notebook.get_by_text("▶ Demo").first).to_be_visible()


def check_saved_without_widget_views(notebook: nbformat.NotebookNode) -> None:
    """The saved copy keeps no widget output: opened without its kernel, it shows no error."""
    kept = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            for output in cell.outputs if WIDGET_MIME in output.get("data", {})]
    assert not kept, f"the saved lesson keeps widget outputs, in cells {kept}"


def check_widgets_rendered(lesson: LessonPage, plan: Plan) -> None:
    """Each widget the kernel displayed is drawn in the page (not an error, not 'Loading').

    What was displayed is read from the notebook's model in the page: the
    saved file keeps none of it.
    """
    displayed = page_checks.widget_outputs_in_model(lesson.page, lesson.file, WIDGET_MIME)
    assert displayed is not None, "the page has no notebook model for the lesson"
    if plan.expect_widgets:
        assert displayed, "the lesson displayed no widget"
    expect(lesson.widget_outputs()).to_have_count(displayed)
    if displayed:
        expect(lesson.notebook.locator(".widget-button:visible").first).to_be_visible()


def check_contrast(lesson: LessonPage) -> None:
    """Every visible text of every output reaches 4.5:1 (large text 3:1), in Light and Dark."""
    started = time.monotonic()
    report = page_checks.contrast_problems(lesson.page)
    print(f"{lesson.name}: contrast measured on {report.measured} texts, "
          f"{len(report.problems)} too low, in {time.monotonic() - started:.1f} s")
    assert all(report.measured.values()), f"no text measured: {report.measured}"
    if report.problems:
        raise AssertionError(f"{len(report.problems)} texts lack contrast; the worst:\n"
                             + "\n".join(report.worst()))


def check_labels_fit(lesson: LessonPage) -> None:
    """No button shows a label cut off (wider than the button)."""
    cut = page_checks.cut_off_labels(lesson.page)
    if cut:
        raise AssertionError(f"buttons with a cut-off label: {cut}")


def check_diagram_words_readable(lesson: LessonPage) -> None:
    """Every word of a live diagram is drawn at least 11 CSS px tall."""
    small = page_checks.small_diagram_text(lesson.page)
    if small:
        raise AssertionError(f"{len(small)} diagram words below "
                             f"{page_checks.MIN_DIAGRAM_TEXT_PX} px: {small[:10]}")


def check_reopens_without_widget_errors(lesson: LessonPage) -> None:
    """Ctrl+S, close the lesson, open it again: no widget error, and no widget output saved."""
    check_saved_without_widget_views(lesson.save_with_keys())
    lesson.close_and_reopen()
    for words in ("Error displaying widget", "model not found"):
        shown = lesson.page.get_by_text(words)
        assert not shown.count(), f"the reopened lesson shows {words!r}: {shown.all_inner_texts()}"
    assert not lesson.widget_outputs().count(), "the reopened lesson still shows widget outputs"


def check_kernel_shutdown_takes_guests(lesson: LessonPage, plan: Plan) -> None:
    guests = processes.qemu_pids()
    if plan.guests_at_end:
        assert guests, "no guest runs before the kernel shutdown: the check would prove nothing"
    tracebacks = lesson.tracebacks()
    lesson.shut_down_kernel()
    left = processes.wait_gone(guests, KERNEL_GONE_S)
    assert not left, f"the kernel is down but its guests live on: {processes.describe(left)}"
    assert not processes.qemu_pids()
    assert lesson.tracebacks() == tracebacks, "the kernel printed a traceback as it shut down"


def real_errors(lines: list[str]) -> list[str]:
    return [line for line in lines if not any(noise in line for noise in HARMLESS_CONSOLE)]


# -- the icons ------------------------------------------------------------------------------

TOFU = ("\ue000", "\U0010ffff")  # no font has these: they draw the missing-glyph box
EMOJI_FROM = 0x1F000  # from here on, the kit's symbols are emoji: drawn in colour
MIN_COLOURED_PIXELS = 20
ICON_PX = 20  # big enough to tell a glyph from the box, small enough for a small picture

# One button (ipywidgets' classes, JupyterLab's fonts) per character, in a row at the
# top of the page; returns each button's box and, last, the row's.
ICON_ROW_JS = f"""async (chars) => {{
const row = document.createElement('div');
row.style.cssText = 'position:fixed;left:0;top:0;z-index:100000;display:flex;flex-wrap:wrap;'
  + 'gap:2px;padding:2px;width:1000px;background:var(--jp-layout-color0)';
for (const char of chars) {{
  const button = document.createElement('button');
  button.className = 'jupyter-widgets jupyter-button widget-button';
  // A whole-pixel width and the glyph at the left: every glyph starts on a whole pixel,
  // so the missing-glyph box is drawn alike wherever it is.
  button.style.cssText = 'width:{2 * ICON_PX + 4}px;height:auto;padding:2px 6px;margin:0;'
    + 'text-align:left;font-size:{ICON_PX}px;line-height:1.2';
  button.textContent = char;
  row.appendChild(button);
}}
document.body.appendChild(row);
await document.fonts.ready;
const box = (e) => {{ const r = e.getBoundingClientRect();
  return {{x: r.x, y: r.y, width: r.width, height: r.height}}; }};
return [...row.children].map(box).concat([box(row)]);
}}"""


class Ink:
    """What a glyph put on its button: the pixels unlike the button's own colour."""

    def __init__(self, pixels: list[tuple[int, int, tuple[int, int, int]]]) -> None:
        xs = [x for x, _, _ in pixels]
        ys = [y for _, y, _ in pixels]
        self.shape = frozenset((x - min(xs), y - min(ys)) for x, y, _ in pixels)
        self.coloured = sum(max(rgb) - min(rgb) > 60 for _, _, rgb in pixels)

    def __eq__(self, other: object) -> bool:
        """The same drawing: the same pixels inked, but for a few at anti-aliased edges."""
        if not isinstance(other, Ink):
            return NotImplemented
        return len(self.shape ^ other.shape) <= 0.1 * max(len(self.shape), len(other.shape))

    __hash__ = None  # type: ignore[assignment]


def icon_glyphs(png: bytes, row: dict[str, float],
                boxes: dict[str, dict[str, float]]) -> dict[str, Ink | None]:
    """What each character's button shows, in the screenshot ``png`` of the ``row``."""
    from PIL import Image

    picture = Image.open(io.BytesIO(png)).convert("RGB")
    found: dict[str, Ink | None] = {}
    for char, box in boxes.items():
        left, top = round(box["x"] - row["x"]) + 3, round(box["y"] - row["y"]) + 3
        right, bottom = left + int(box["width"]) - 6, top + int(box["height"]) - 6
        crop = picture.crop((left, top, right, bottom))
        data = crop.tobytes()
        pixels = []
        for index in range(crop.width * crop.height):
            rgb = (data[3 * index], data[3 * index + 1], data[3 * index + 2])
            if sum(abs(a - b) for a, b in zip(rgb, data[:3], strict=True)) > 60:  # not the button
                pixels.append((index % crop.width, index // crop.width, rgb))
        found[char] = Ink(pixels) if pixels else None
    return found


def kit_icons() -> list[str]:
    """Every symbol (Unicode So and Sm, beyond ASCII) in the kit's code and in the lessons."""
    sources = [*(ROOT / "kit").rglob("*.py"), *LESSONS.glob("*.ipynb")]
    found = {char for path in sources for char in path.read_text(encoding="utf-8")
             if ord(char) > 127 and unicodedata.category(char) in ("So", "Sm")}
    return sorted(found)
