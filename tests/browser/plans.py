"""What to do in each lesson once Run All has finished: the table later lessons add a row to.

Every lesson gets the default checks (``test_lessons_in_browser.py``): Run
All from the menu, every cell executed, no error output, every widget
output rendered, nothing broken on the page, no browser-console errors,
and the kernel shut down from the Kernel menu taking its guests with it.

The steps below are what a learner then does with the widgets.  Run All has
already reached the lesson's last cell, which stops every guest
(``kit.stop_all()``, ``lessonN.lesson.finish()``), so the steps start guests
again from the page's own buttons: widgets stay live after their cells ran,
so this works whatever the cells did, without running cells one at a time.
Checkpoints and quiz answers are pressed after that, against the live guest.

A row is a :class:`Plan`, a tuple of steps; a step is a small object with a
``name`` that is called with the :class:`~tests.browser.notebook.LessonPage`.
:class:`Screenshot` marks the lesson's most telling moment (saved only with
``KIT_SCREENSHOTS=1``).
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from playwright.sync_api import Locator, expect

from tests.browser import page_checks
from tests.browser.notebook import GUEST_TIMEOUT_MS, UI_TIMEOUT_MS, LessonPage

DIAGRAM = ".kit-live-diagram"
BOOT_TEXT = re.compile(r"Linux version|kit-init")
CONSOLE_PLACEHOLDER = "type a command"
CONSOLE_INPUT = f"input[placeholder^='{CONSOLE_PLACEHOLDER}']"
LAYOUT_SETTLE_S = 5.0  # a redraw of the console, then a layout: far less than this
Answer = str | Callable[[LessonPage], str]


class Step(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, lesson: LessonPage) -> None: ...


# -- where things are on the page ---------------------------------------------------------


def controls(lesson: LessonPage, index: int = 0) -> Locator:
    """The ``index``-th widget output with a live diagram and a Start button.

    A :class:`~kit.widgets.Dashboard`, or a guest panel beside a diagram.
    """
    return lesson.widget_outputs().filter(has=lesson.page.locator(DIAGRAM)).filter(
        has=lesson.page.locator("button.widget-button", has_text="Start")).nth(index)


def os_node(scope: Locator, guest: str) -> Locator:
    """The guest-OS box of ``guest`` in the first diagram in ``scope`` (its id ends _os_NAME)."""
    return scope.locator(f"{DIAGRAM} svg g.node[id$='_os_{guest}']").first


def badge(scope: Locator) -> Locator:
    return scope.locator("span[role='status']").first


def guest_panel(scope: Locator, guest: str) -> Locator:
    """The guest panel of ``guest`` in ``scope``: the innermost box with its heading and buttons.

    A lesson may show several panels beside one diagram (lesson 4: alpha and
    beta); the heading ``Guest NAME`` tells them apart.
    """
    heading = scope.page.locator("b", has_text=re.compile(rf"^Guest {re.escape(guest)}$"))
    return scope.locator(".widget-vbox").filter(has=heading).filter(
        has=scope.page.locator("button.widget-button", has_text="Stop")).last


def widget_saying(lesson: LessonPage, text: str) -> Locator:
    """The first widget output whose text contains ``text``."""
    return lesson.widget_outputs().filter(has_text=text).first


def innermost(scope: Locator, text: str) -> Locator:
    """The innermost box in ``scope`` holding ``text`` (ancestors come first in the page)."""
    return scope.locator(".widget-vbox").filter(has_text=text).last


# -- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Press:
    """Press a button of ``guest``'s panel; its badge and the diagram beside it follow.

    The diagram's box of ``guest`` must change and then say ``word``: the SVG
    the page shows is redrawn, not only the badge.
    """

    label: str  # as the panel shows it, e.g. "❚❚ Pause"
    guest: str
    word: str  # the state the badge and the diagram then show, e.g. "paused"
    timeout_ms: float = UI_TIMEOUT_MS

    @property
    def name(self) -> str:
        return f"press {self.label} for {self.guest}"

    def __call__(self, lesson: LessonPage) -> None:
        board = controls(lesson)
        before = os_node(board, self.guest).text_content() or ""
        assert self.word not in before, f"the diagram already says {self.word}: {before!r}"
        lesson.click(guest_panel(board, self.guest), self.label)
        Shows(self.guest, self.word, self.timeout_ms)(lesson)


@dataclass(frozen=True)
class Shows:
    """``guest``'s panel badge and the diagram beside it say ``word`` (first such board)."""

    guest: str
    word: str
    timeout_ms: float = GUEST_TIMEOUT_MS

    @property
    def name(self) -> str:
        return f"the diagram shows {self.guest} {self.word}"

    def __call__(self, lesson: LessonPage) -> None:
        board = controls(lesson)
        expect(os_node(board, self.guest)).to_contain_text(self.word, timeout=self.timeout_ms)
        expect(badge(guest_panel(board, self.guest))).to_contain_text(self.word,
                                                                     timeout=self.timeout_ms)


def start(guest: str) -> Press:
    return Press("▶ Start", guest, "running", GUEST_TIMEOUT_MS)


def pause(guest: str) -> Press:
    return Press("❚❚ Pause", guest, "paused")


def resume(guest: str) -> Press:
    return Press("▶ Resume", guest, "running")


def stop(guest: str) -> Press:
    return Press("■ Stop", guest, "stopped", GUEST_TIMEOUT_MS)


@dataclass(frozen=True)
class ConsoleShows:
    """The first console view shows ``pattern`` (by default, the guest's boot text)."""

    pattern: re.Pattern[str] = BOOT_TEXT
    name: str = "the console shows the boot"

    def __call__(self, lesson: LessonPage) -> None:
        console = lesson.widget_with(CONSOLE_INPUT)
        screen = console.locator("pre").last
        expect(screen).to_contain_text(self.pattern, timeout=GUEST_TIMEOUT_MS)


def type_on_console(lesson: LessonPage, line: str, answer: str) -> None:
    """Type ``line`` into the first console view, press Enter; wait until ``answer`` is in it."""
    console = lesson.widget_with(CONSOLE_INPUT)
    field = console.locator(CONSOLE_INPUT).first
    field.fill(line)
    field.press("Enter")
    expect(console.locator("pre").last).to_contain_text(answer, timeout=UI_TIMEOUT_MS)


def show_console(lesson: LessonPage) -> None:
    """Scroll the page so that the first console's box is in the middle of the window."""
    box = lesson.widget_with(CONSOLE_INPUT).locator(".kit-log").first
    box.evaluate("box => box.scrollIntoView({block: 'center'})")


def answer_in_view(lesson: LessonPage, answer: str) -> dict[str, Any]:
    """Where the console's last ``answer`` is drawn; fails unless the learner sees it now.

    Seen means: inside the console's scrolling box and inside the window, and
    the box at its newest line (a reversed flex column: scrollTop 0 is the
    bottom).  Layout follows the text by a frame or two, so this looks again
    for a moment before it fails.
    """
    deadline = time.monotonic() + LAYOUT_SETTLE_S
    while True:
        seen = page_checks.console_answer(lesson.page, CONSOLE_PLACEHOLDER, answer)
        problems = console_problems(seen)
        if not problems:
            assert seen is not None
            print(f"{lesson.name}: console answer {answer!r} at {seen['line']}, "
                  f"box {seen['box']}, scrollTop {seen['scrollTop']}")
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"the answer {answer!r} is not in view: {problems}; {seen}")
        time.sleep(0.2)


def console_problems(seen: dict[str, Any] | None) -> list[str]:
    if seen is None:
        return ["no console box (.kit-log) beside the input line"]
    problems = []
    line, box, window = seen["line"], seen["box"], seen["window"]
    if seen["preOverflowY"] != "visible":
        problems.append(f"the console's pre scrolls by itself (overflow-y: {seen['preOverflowY']})")
    if abs(seen["scrollTop"]) > 1:
        problems.append(f"the box is not at its newest line (scrollTop {seen['scrollTop']})")
    if line is None:
        problems.append("the answer is not in the box")
    else:
        if not (box["top"] - 1 <= line["top"] and line["bottom"] <= box["bottom"] + 1):
            problems.append("the answer is outside the box's visible part")
        if line["top"] < 0 or line["bottom"] > window["height"]:
            problems.append("the answer is outside the window")
    return problems


@dataclass(frozen=True)
class TypeOnConsole:
    """Type a line into the first console view, press Enter, and see the guest's answer.

    The answer must be in view at once, without scrolling (issue 17).
    """

    line: str
    expect_text: str
    name: str = "type a command on the serial console"

    def __call__(self, lesson: LessonPage) -> None:
        show_console(lesson)
        type_on_console(lesson, self.line, self.expect_text)
        answer_in_view(lesson, self.expect_text)


@dataclass(frozen=True)
class ConsoleKeepsView:
    """Scroll the first console up to read, while the guest prints: the view stays put.

    Then back at the bottom, the new answer is in view.
    """

    line: str
    expect_text: str
    scrolled_to: float = -200.0
    name: str = "a console scrolled up stays where the learner put it"

    def __call__(self, lesson: LessonPage) -> None:
        show_console(lesson)
        top = page_checks.scroll_console(lesson.page, CONSOLE_PLACEHOLDER, self.scrolled_to)
        assert top <= self.scrolled_to + 1, f"the console cannot scroll up (scrollTop {top})"
        type_on_console(lesson, self.line, self.expect_text)
        time.sleep(1.0)  # a few more redraws of the console (ten a second at most)
        seen = page_checks.console_answer(lesson.page, CONSOLE_PLACEHOLDER, self.expect_text)
        assert seen is not None
        assert seen["scrollTop"] <= self.scrolled_to + 1, (
            f"new text threw the learner back to the bottom (scrollTop {seen['scrollTop']}, "
            f"was {top})")
        print(f"{lesson.name}: console scrolled to {top}, after new text {seen['scrollTop']}")
        page_checks.scroll_console(lesson.page, CONSOLE_PLACEHOLDER, 0)
        answer_in_view(lesson, self.expect_text)


@dataclass(frozen=True)
class DiagramWordsReadable:
    """Every word of the live diagrams now shown is at least 11 CSS px tall (and there are some)."""

    name: str = "every diagram word is at least 11 px"

    def __call__(self, lesson: LessonPage) -> None:
        sizes = page_checks.diagram_text_sizes(lesson.page)
        assert sizes, "no diagram word is shown"
        small = [size for size in sizes if size["px"] < page_checks.MIN_DIAGRAM_TEXT_PX - 0.05]
        print(f"{lesson.name}: {len(sizes)} diagram words, the smallest "
              f"{min(size['px'] for size in sizes)} px")
        assert not small, f"{len(small)} of {len(sizes)} words are too small: {small[:10]}"


@dataclass(frozen=True)
class Click:
    """Click ``label`` in the widget that says ``where``; the widget then says ``expect_text``."""

    where: str
    label: str
    expect_text: str | re.Pattern[str]
    changes: bool = False  # and the widget's text must change (when it is not already new)
    timeout_ms: float = GUEST_TIMEOUT_MS

    @property
    def name(self) -> str:
        return f"click {self.label}"

    def __call__(self, lesson: LessonPage) -> None:
        widget = widget_saying(lesson, self.where)
        before = widget.inner_text()
        lesson.click(widget, self.label)
        if self.changes:
            expect(widget).not_to_have_text(before, timeout=self.timeout_ms)
        expect(widget).to_contain_text(self.expect_text, timeout=self.timeout_ms)


@dataclass(frozen=True)
class SendCommand:
    """Choose a command in an explorer (QMP or guest agent), send it, read the reply."""

    heading: str  # text that tells the explorer apart, e.g. "QMP explorer"
    command: str
    button: str
    expect_reply: str

    @property
    def name(self) -> str:
        return f"send {self.command} from the {self.heading}"

    def __call__(self, lesson: LessonPage) -> None:
        explorer = widget_saying(lesson, self.heading)
        explorer.locator("input[placeholder='choose or type a command']").first.fill(
            self.command)
        lesson.click(explorer, self.button)
        reply = innermost(explorer, "reply").locator("pre").last
        expect(reply).to_contain_text(self.expect_reply, timeout=UI_TIMEOUT_MS)


@dataclass(frozen=True)
class Checkpoint:
    """Type an answer (if the checkpoint asks one), press Check, read the new verdict.

    ``answer`` is text, or a function reading it off the page as a learner
    would.  The verdict must be a new one (each shows its try number).
    """

    title: str
    expect_verdict: str = "✔ Passed"
    answer: Answer | None = None

    @property
    def name(self) -> str:
        return f"checkpoint '{self.title}': expect {self.expect_verdict}"

    def __call__(self, lesson: LessonPage) -> None:
        box = widget_saying(lesson, f"Checkpoint: {self.title}")
        if self.answer is not None:
            text = self.answer if isinstance(self.answer, str) else self.answer(lesson)
            box.locator("input[placeholder='type your answer here']").fill(text)
        before = box.inner_text()
        lesson.click(box, "Check")
        expect(box).not_to_have_text(before, timeout=GUEST_TIMEOUT_MS)
        verdict = box.locator("div[role='status']").first
        expect(verdict).to_contain_text(self.expect_verdict, timeout=GUEST_TIMEOUT_MS)


@dataclass(frozen=True)
class Quiz:
    """Pick a choice of the question that says ``prompt``, press Answer, read the feedback."""

    prompt: str
    choice: str
    expect_feedback: str = "✔ Right"

    @property
    def name(self) -> str:
        return f"quiz '{self.prompt}': expect {self.expect_feedback}"

    def __call__(self, lesson: LessonPage) -> None:
        question = innermost(widget_saying(lesson, self.prompt), self.prompt)
        question.locator("label", has_text=self.choice).first.click()
        lesson.click(question, "Answer")
        feedback = question.locator("div[role='status']").first
        expect(feedback).to_contain_text(self.expect_feedback, timeout=UI_TIMEOUT_MS)
        expect(feedback).to_contain_text(self.choice)


@dataclass(frozen=True)
class ClickAndCount:
    """Click ``label`` in the widget saying ``where``; its diagram is redrawn and then shows
    at least ``count`` guests ``word`` (for guests with names the page chooses, e.g. a cloud's).
    """

    where: str
    label: str
    word: str
    count: int
    timeout_ms: float = 2 * GUEST_TIMEOUT_MS  # several boots, one after the other

    @property
    def name(self) -> str:
        return f"click {self.label}: {self.count} guests {self.word}"

    def __call__(self, lesson: LessonPage) -> None:
        widget = widget_saying(lesson, self.where)
        picture = widget.locator(f"{DIAGRAM} svg").first
        before = picture.inner_html()
        lesson.click(widget, self.label)
        guests = widget.locator(f"{DIAGRAM} svg g.node[id*='_os_']").filter(has_text=self.word)
        expect(guests.nth(self.count - 1)).to_be_attached(timeout=self.timeout_ms)
        assert picture.inner_html() != before, "the diagram was not redrawn"


@dataclass(frozen=True)
class Toggle:
    """Click the toggle of ``door`` in the doors panel saying ``where``; it then says ``word``.

    The diagram beside the panel must be redrawn: a door is drawn as a box of its own.
    """

    where: str
    door: str  # the toggle's label before the colon, e.g. "port forward"
    word: str  # "open" or "closed", as the toggle then says
    timeout_ms: float = UI_TIMEOUT_MS

    @property
    def name(self) -> str:
        return f"toggle the {self.door} door: {self.word}"

    def __call__(self, lesson: LessonPage) -> None:
        widget = widget_saying(lesson, self.where)
        picture = widget.locator(f"{DIAGRAM} svg").first
        before = picture.inner_html()
        toggle = widget.locator("button", has_text=f"{self.door}:").first
        expect(toggle).to_be_enabled(timeout=GUEST_TIMEOUT_MS)
        assert self.word not in toggle.inner_text(), f"the door is already {self.word}"
        toggle.click()
        expect(toggle).to_contain_text(self.word, timeout=self.timeout_ms)
        expect(picture).not_to_have_js_property("innerHTML", before, timeout=self.timeout_ms)


@dataclass(frozen=True)
class SetSlider:
    """Type ``value`` into the readout of the first slider in the widget saying ``where``."""

    where: str
    value: int

    @property
    def name(self) -> str:
        return f"set the slider to {self.value}"

    def __call__(self, lesson: LessonPage) -> None:
        readout = widget_saying(lesson, self.where).locator(".widget-readout").first
        readout.fill(str(self.value))
        readout.press("Enter")
        expect(readout).to_have_text(str(self.value), timeout=UI_TIMEOUT_MS)


@dataclass(frozen=True)
class RunCell:
    """Add a cell at the end, type ``code`` and run it, as a learner trying something."""

    code: str
    expect_text: str
    name: str = "run a cell of my own"

    def __call__(self, lesson: LessonPage) -> None:
        output = lesson.add_cell_and_run(self.code, timeout_s=GUEST_TIMEOUT_MS / 1000)
        assert self.expect_text in output, f"the cell printed {output!r}"


@dataclass(frozen=True)
class SolveInCell:
    """Type the learner's solution into an exercise cell (in place of ``___``) and run it.

    ``marker`` is text only that cell has (its check call); ``source`` is the
    whole cell as the learner leaves it.  The exercise's widget in the cell's
    output must then say ``expect_verdict``.
    """

    marker: str
    source: str
    expect_verdict: str = "✔ Passed"

    @property
    def name(self) -> str:
        return f"solve the exercise of `{self.marker}` by typing its solution"

    def __call__(self, lesson: LessonPage) -> None:
        output = lesson.fill_blank_and_run(self.marker, self.source,
                                           timeout_s=GUEST_TIMEOUT_MS / 1000)
        verdict = output.locator("div[role='status']").first
        expect(verdict).to_contain_text(self.expect_verdict, timeout=GUEST_TIMEOUT_MS)


@dataclass(frozen=True)
class Screenshot:
    """The lesson's most telling moment, for docs/screenshots/ (only with KIT_SCREENSHOTS=1).

    ``focus`` picks the widget to scroll to the top of the view.
    """

    focus: Callable[[LessonPage], Locator] = controls
    name: str = "screenshot"

    def __call__(self, lesson: LessonPage) -> None:
        lesson.document(self.focus(lesson))


def telling_widget(lesson: LessonPage) -> Locator:
    """For a lesson without a row: its first live diagram, else its first widget, else its top."""
    for candidate in (lesson.widget_outputs().filter(has=lesson.page.locator(DIAGRAM)),
                      lesson.widget_outputs()):
        if candidate.count():
            return candidate.first
    return lesson.notebook.locator(".jp-Cell").first


# -- answers read off the page, as a learner would ------------------------------------------


def guest_kernel_release(lesson: LessonPage) -> str:
    """The release in the guest's boot log, as the page prints it ("Linux version X ...")."""
    found = re.search(r"Linux version (\S+)", lesson.notebook.inner_text())
    assert found, "the page shows no 'Linux version' line to read the kernel release from"
    return found.group(1)


def console_kernel_release(lesson: LessonPage) -> str:
    """The release in the first console view's boot log (the page's prose may quote one too)."""
    screen = lesson.widget_with(CONSOLE_INPUT).locator("pre").last.inner_text()
    found = re.search(r"Linux version (\d\S+)", screen)
    assert found, "the console shows no 'Linux version' line to read the kernel release from"
    return found.group(1)


def qemu_pid_shown(lesson: LessonPage) -> str:
    """The QEMU process id a guest panel shows in its details line."""
    found = re.search(r"QEMU process id (\d+)", controls(lesson).inner_text())
    assert found, "the guest panel shows no QEMU process id"
    return found.group(1)


def host_kernel_release(_: LessonPage) -> str:
    return platform.release()


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to click in one lesson after Run All.

    ``guests_at_end``: a guest still runs after the steps, so shutting the
    kernel down from the browser must end at least one QEMU.
    ``expect_widgets``: the lesson displays at least one widget.
    """

    steps: tuple[Step, ...] = ()
    guests_at_end: bool = False
    expect_widgets: bool = True


PLANS: dict[str, Plan] = {
    "00-welcome": Plan(
        steps=(
            Click("Is this machine ready?", "Boot my first guest", "is running"),
            Shows("first", "running"),
            ConsoleShows(),
            Checkpoint("Your first guest is running"),
            TypeOnConsole("echo hello > /tmp/note.txt; echo note-$((6*7))", "note-42"),
            TypeOnConsole("echo kit-$((6*7))", "kit-42"),
            ConsoleKeepsView("echo view-$((6*8))", "view-48"),
            Checkpoint("Leave a note inside the guest"),
            Checkpoint("Freeze the whole machine", expect_verdict="✖ Not yet"),
            pause("first"),
            Checkpoint("Freeze the whole machine"),
            Screenshot(lambda lesson: controls(lesson, 1)),
            Quiz("Where does the guest you booted actually run?",
                 "On a separate physical machine", expect_feedback="✖ Not quite"),
            Quiz("Where does the guest you booted actually run?", "Inside a QEMU process"),
            resume("first"),
            SolveInCell("lesson0.ask.check(state)",
                        "state = first.qmp('query-status')\nlesson0.ask.check(state)"),
        ),
        guests_at_end=True,
    ),
    "01-what-is-a-vm": Plan(
        steps=(
            start("mine"),
            SolveInCell("lesson1.secret_exercise.check(secret)",
                        "secret = ___  # ✎ nothing typed yet\n"
                        "lesson1.secret_exercise.check(secret)", "✎ Your turn"),
            SolveInCell("lesson1.secret_exercise.check(secret)",
                        "secret = mine.run('cat /etc/kit-secret').stdout\n"
                        "lesson1.secret_exercise.check(secret)"),
            Click("Inside guest mine vs outside", "Ask both again", "outside: the host",
                  changes=True),
            Screenshot(lambda lesson: widget_saying(lesson, "Inside guest mine vs outside")),
            Quiz("Seen from the host, what is the whole virtual machine?", "One process, QEMU"),
        ),
        guests_at_end=True,
    ),
    "02-host-and-guest": Plan(
        steps=(
            start("alpha"),  # the forward the demo opened comes back with it: its description
            Checkpoint("A door of your own: a port forward"),
            Toggle("Doors of guest alpha", "shared folder", "open"),
            TypeOnConsole("echo hi > /mnt/share/note.txt", "Read-only file system"),
            SolveInCell("lesson2.share.check(words)",
                        "words = alpha.run('cat /mnt/share/secret.txt').stdout\n"
                        "lesson2.share.check(words)"),
            Screenshot(lambda lesson: widget_saying(lesson, "Doors of guest alpha")),
            Quiz("The shared folder was read-only", "The write failed: read-only file system"),
        ),
        guests_at_end=True,
    ),
    "03-layers": Plan(
        steps=(
            start("layers"),
            ConsoleShows(),
            pause("layers"),
            Screenshot(),
            resume("layers"),
            SolveInCell("lesson3.paused.check(paused)",
                        "paused = layers.qmp('stop')\nlesson3.paused.check(paused)"),
            Quiz("You paused a guest for a minute, then resumed it",
                 "A minute behind, until someone resets it"),
        ),
        guests_at_end=True,
    ),
    "04-isolation": Plan(
        steps=(
            start("alpha"),
            start("beta"),
            DiagramWordsReadable(),  # two guests, the diagram beside their panels
            SolveInCell("lesson4.crash.check(crashed)",
                        "watch = lesson4.watch_serving(beta)\n"
                        "crashed = alpha.crash()\n"
                        "lesson4.crash.check(crashed)"),
            Shows("alpha", "crashed"),
            Shows("beta", "running"),
            ConsoleShows(re.compile(r"Kernel panic"), "alpha's console shows its panic"),
            Screenshot(),
            Quiz("kernel panicked, what did beta notice?",
                 "Nothing: it kept answering every request"),
        ),
        guests_at_end=True,
    ),
    "05-cloud": Plan(
        steps=(
            ClickAndCount("Launch instances", "Launch instances", "running", 1),
            SolveInCell("lesson5.metadata.check(user_data)",
                        "user_data = cloud.running()[0].guest.run("
                        "'wget -qO- http://169.254.169.254/latest/user-data')\n"
                        "lesson5.metadata.check(user_data)"),
            Screenshot(lambda lesson: widget_saying(lesson, "Launch instances")),
            Click("Send requests", "Send requests", "errors seen by the client: 0",
                  changes=True),
            Quiz("You terminated an instance the load balancer still listed",
                 "The balancer retried that request on another instance"),
        ),
        guests_at_end=True,
    ),
    "06-advantages": Plan(
        steps=(
            SolveInCell("lesson6.kernel.check(other_kernel)",
                        "other_kernel = kit.Guest('other-kernel', kernel='debian').start()\n"
                        "lesson6.kernel.check(other_kernel)"),
            Screenshot(telling_widget),
            Quiz("How long did adding one instance take here", "Seconds, so capacity can"),
        ),
        guests_at_end=True,
    ),
    "07-limitations": Plan(
        steps=(
            SolveInCell("lesson7.footprint_exercise.check(touched)",
                        "new_mine = kit.Guest('l7-mine', memory_mb=lesson7.task_memory_mb(), "
                        "replace=True).start()\n"
                        "touched = footprint.of_guest(new_mine).parts[footprint.GUEST_RAM]\n"
                        "lesson7.footprint_exercise.check(touched)"),
            Click("Boot against restore", "Boot against restore", "restore(s) timed in",
                  changes=True, timeout_ms=120_000),  # a few boots and restores under TCG
            Screenshot(telling_widget),
            Quiz("Three guests of the same image ran here", "Four: one per guest, plus the host's"),
        ),
        guests_at_end=True,
    ),
    "08-containers": Plan(
        steps=(
            Click("ready after (s)", "Start both and measure", "virtual machine", changes=True),
            SolveInCell("lesson8.own_box.check(my_box)",
                        "my_box = kit.containers.Container(lesson8.box_name()).start()\n"
                        "lesson8.own_box.check(my_box)"),
            Screenshot(lambda lesson: widget_saying(lesson, "ready after")),
            Quiz("The container reported the host's kernel release",
                 "It runs on the host's kernel"),
        ),
        guests_at_end=True,
    ),
    "09-moving": Plan(
        steps=(
            SolveInCell("lesson9.mark_written.check(written)",
                        "my_web = kit.lesson.ensure_running(lesson9.guest())\n"
                        "written = my_web.run(f'echo {lesson9.mark()} > /www/mark.txt')\n"
                        "lesson9.mark_written.check(written)"),
            Click("served by", "Watch", "watching:", changes=True),
            SolveInCell("lesson9.moved.check(report)",
                        "report = my_web.migrate()\nlesson9.moved.check(report)"),
            Screenshot(lambda lesson: widget_saying(lesson, "served by")),
            Quiz("While your guest moved, what did the programs inside it notice?",
                 "Only a short pause"),
        ),
        guests_at_end=True,
    ),
    "control-room": Plan(
        steps=(
            RunCell("room_guest = kit.Guest('room'); room_guest.start(); "
                    "print(room_guest.state)", "running"),
            Shows("room", "running"),
            ConsoleShows(),
            pause("room"),
            Screenshot(lambda lesson: widget_saying(lesson, "Instructor control room")),
            Click("Instructor control room", "■ Stop everything", "Stop all 1 guest"),
            Click("Instructor control room", "Yes, stop them all", "Stopped 1: room"),
            Shows("room", "stopped"),
        ),
    ),
    "widgets-tour": Plan(
        steps=(
            start("tour"),
            ConsoleShows(),
            pause("tour"),
            Screenshot(),
            resume("tour"),
            TypeOnConsole("echo kit-$((6*7))", "kit-42"),
            SendCommand("QMP explorer", "query-status", "send to QEMU", '"running"'),
            SendCommand("Guest agent explorer", "guest-get-osinfo", "send to the guest agent",
                        '"kernel-release"'),
        ),
        guests_at_end=True,
    ),
}
DEFAULT_PLAN = Plan(steps=(Screenshot(telling_widget),))


def plan_for(lesson_stem: str) -> Plan:
    return PLANS.get(lesson_stem, DEFAULT_PLAN)
