"""Lesson 0, Welcome and setup check: the checkpoints, the prediction, the quiz and the guest.

The notebook ``lessons/00-welcome.ipynb`` shows these; the tests import them
and check each checkpoint both ways.  The learner's guest is called
``first``; checks find it by that name, however it was started.

Lesson 0 teaches how the course works, so its tasks are small, and each is
done by the learner (no cell of the notebook does one for them):

1. check that this machine is ready (the Check button after the setup table;
   the image is built with a button if it is missing);
2. boot the first guest with a button;
3. leave a note inside the guest by typing on its serial console;
4. freeze the whole machine with the panel's Pause button (QMP);
5. resume it, and ask QMP its state with a first line of code, in a cell
   with a blank ``___`` (how every later exercise cell looks).

One prediction comes before the first boot: how long it will take.
"""

from __future__ import annotations

import re

from kit.core.state import HYPERVISOR_ANSWERS
from kit.guestos import images
from kit.hypervisor import accelerator, doctor, registry
from kit.hypervisor.guest import Guest
from kit.lesson import setup
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest, time_boot
from kit.lesson.lesson import Lesson, ensure_running
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.lesson.setup import SetupCheck
from kit.view import markup
from kit.view.markup import escape
from kit.widgets import host_view

GUEST = "first"
TIMER = "stopwatch"  # a throwaway guest the boot-time prediction times, when first is not up
NOTE_PATH = "/tmp/note.txt"
NOTE_WORD = "hello"
MEMORY_MB = 128

_guest: Guest | None = None


def guest() -> Guest:
    """The lesson's guest: the live one called ``first``, else one made for it."""
    global _guest
    live = registry.get(GUEST)
    if live is not None:
        return live
    if _guest is None:
        _guest = Guest(GUEST, memory_mb=MEMORY_MB, replace=True)
    return _guest


def setup_check() -> SetupCheck:
    """The setup widget, wired to the lesson's guest."""
    return WelcomeSetupCheck(guest())


class WelcomeSetupCheck(SetupCheck):
    """The setup check, with the accelerator's row in plain words.

    A KVM that is present but fails here is no "✔ ok": the row says that
    guests use TCG, slower but correct, and keeps QEMU's raw message (an
    assertion deep in its KVM code, say) one click away.
    """

    def refresh(self) -> list[doctor.Check]:
        found = super().refresh()
        self.table.value = setup_table(found)
        return found


def setup_table(checks: list[doctor.Check]) -> str:
    """The setup table: mark, what, what it is for, what was found here."""
    return markup.table(["", "what", "what it is for", "found here"],
                        [_setup_row(check) for check in checks])


def _setup_row(check: doctor.Check) -> list[str]:
    if check.name == "accelerator" and check.ok:
        accel = accelerator.accelerator()
        return [f'<span style="white-space:nowrap">'
                f"{escape(host_view.accelerator_mark(accel))}</span>",
                '<b style="white-space:nowrap">accelerator</b>',
                escape(setup.WHAT_FOR["accelerator"]),
                f"<b>{escape(accel.label)}</b>. {host_view.accelerator_html(accel)}"]
    return [f'<span style="white-space:nowrap">{escape(setup.mark(check))}</span>',
            f'<b style="white-space:nowrap">{escape(check.name)}</b>',
            escape(setup.explain(check)),
            escape(check.detail) + (f"<br><b>fix:</b> <code>{escape(check.fix)}</code>"
                                    if check.fix and not check.ok else "")]


def hypervisor_says() -> str:
    """What QMP says of ``first`` now, in a sentence (also when it does not run)."""
    found = registry.get(GUEST)
    if found is None or not found.state.hypervisor_answers:
        return f"guest {GUEST} is not running, so there is no QEMU to ask."
    status = found.qmp("query-status")["status"]
    return f"QMP query-status: guest {GUEST} is {status}."


# -- the checks -------------------------------------------------------------------------


def check_ready() -> Verdict:
    found = doctor.checks()
    broken = [c for c in found if c.required and not c.ok]
    evidence = [f"{'✔' if c.ok else '✖'} {c.name}: {c.detail}" for c in found]
    if broken:
        fixes = "; ".join(f"{c.name}: {c.fix}" for c in broken if c.fix)
        return Verdict.fail("not ready yet: " + ", ".join(c.name for c in broken) + ".",
                            *evidence, hint=f"Fix these, then check again. {fixes}")
    return Verdict.ok("this machine can run the kit's guests.", *evidence)


def solve_ready() -> None:
    images.ensure_image()


def check_boot() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    status = found.qmp("query-status")["status"]
    if status != "running":
        return Verdict.fail(f"QEMU says guest {GUEST} is {status}.",
                            hint="Wait until the panel says running, then check again.")
    found.agent("guest-ping")
    took = found.boot_seconds
    return Verdict.ok(f"guest {GUEST} is up: its hypervisor and its operating system both "
                      "answer.",
                      f"the hypervisor (QMP `query-status`): {status}",
                      "the guest OS (its agent answered `guest-ping`)",
                      f"on the host it is process {found.pid}" +
                      (f"; it booted in {took:.1f} s" if took is not None else ""))


def solve_boot() -> None:
    ensure_running(guest())


def check_note() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    result = eventually(lambda: found.run(["cat", NOTE_PATH]),
                        lambda r: r.ok and NOTE_WORD in r.stdout)
    if not result.ok:
        return Verdict.fail(f"there is no file {NOTE_PATH} inside guest {GUEST} yet.",
                            f"the guest answered: {result.stderr.strip()}")
    if NOTE_WORD not in result.stdout:
        return Verdict.fail(f"{NOTE_PATH} is there but says {result.stdout.strip()!r}.",
                            hint=f"It should contain the word {NOTE_WORD}: type the line again.")
    return Verdict.ok(f"the guest has {NOTE_PATH}, saying {result.stdout.strip()!r}.",
                      f"read back from inside the guest, through its agent: cat {NOTE_PATH}",
                      f"on this host, {NOTE_PATH} is another file: the guest's is its own")


def solve_note() -> None:
    found = ensure_running(guest())
    found.console.write(f"echo {NOTE_WORD} > {NOTE_PATH}\n")  # as if typed, then Enter


def check_paused() -> Verdict:
    found = find_guest(GUEST, HYPERVISOR_ANSWERS)
    if isinstance(found, Verdict):
        return found
    status = found.qmp("query-status")["status"]
    if status != "paused":
        return Verdict.fail(f"QEMU says guest {GUEST} is {status}, not paused.")
    return Verdict.ok("the hypervisor has frozen the whole machine.",
                      f"QMP `query-status`: {status}",
                      f"yet QEMU is still host process {found.pid}: nothing was shut down")


def solve_paused() -> None:
    found = ensure_running(guest())
    found.pause()


STATUS_IN_ANSWER = re.compile(r"""['"]status['"]\s*:\s*['"]([a-z-]+)['"]""")


def check_ask(answer: str) -> Verdict:
    found = find_guest(GUEST, HYPERVISOR_ANSWERS)
    if isinstance(found, Verdict):
        return found
    live = found.qmp("query-status")["status"]
    said = STATUS_IN_ANSWER.search(answer)
    evidence = (f"your cell gave: {answer[:80] or 'nothing'}",
                f"QMP `query-status`, asked by the kit just now: {live}")
    if said is None:
        return Verdict.fail("that is not QMP's answer: it has no 'status' in it.", *evidence,
                            hint=f"Ask QEMU itself: {GUEST}.qmp(\"query-status\") gives back "
                            "a small dictionary with the machine's status.")
    if live != "running":
        return Verdict.fail(f"guest {GUEST} is {live}: resume it first.", *evidence,
                            hint="Press ▶ Resume in the guest's panel, then run your cell "
                            "again.")
    if said.group(1) != live:
        return Verdict.fail(f"your answer says {said.group(1)}, but QMP says {live} now.",
                            *evidence, hint="Run your cell again: it asks QMP afresh.")
    return Verdict.ok("you asked the hypervisor yourself, with one line of code: the machine "
                      "runs again.", *evidence)


def solve_ask() -> object:
    found = ensure_running(guest())
    return found.qmp("query-status")


# -- the prediction -----------------------------------------------------------------------


def measure_boot() -> float:
    """Seconds from QEMU's launch to a usable guest: ``first``'s boot, else a fresh one's."""
    return time_boot(registry.get(GUEST), lambda: Guest(TIMER, memory_mb=MEMORY_MB,
                                                        replace=True))


def explain_boot(guess: float, measured: float) -> str:
    del guess
    speed = ("About a second" if measured < 3 else "A few seconds")
    return (f"{speed}, from QEMU's start to the guest's agent answering. A PC takes far longer: "
            "its firmware tests the hardware, a general-purpose kernel probes for every device "
            "it might have, and a distribution starts dozens of services. The kit's guest boots "
            "a small kernel of its own on QEMU's minimal microvm machine and starts four "
            "programs. Lesson 7 splits a boot into its phases.")


boot_time = Prediction(
    "l0-p-boot",
    "Before you boot: how many **seconds** will it take from pressing Boot until the guest's "
    "operating system answers the kit? (A laptop takes 10 to 30 seconds to start.)",
    measure_boot, unit="s", explain=explain_boot,
)


# -- the lesson ---------------------------------------------------------------------------

ready = Checkpoint(
    "l0-ready", "This machine is ready",
    "Look at the table above: every required check should show ✔. If the guest image is "
    "missing, press **Build the guest image** and wait for the bar to fill. Then press "
    "**Check** here.",
    check_ready, solve=solve_ready,
    hint="The table above says what is missing and the command that fixes it.",
    solution="Press **Build the guest image** if it is offered; for a missing program, run "
    "the fix shown in its row (or ./setup.sh) in a terminal, then press Check again.",
    code="setup.build_image()",
)
boot = Checkpoint(
    "l0-boot", "Your first guest is running",
    "Press **Boot my first guest** (or ▶ Start in the panel) and wait until it says the "
    "guest is running. Then press **Check**.",
    check_boot, solve=solve_boot,
    hint="Press Boot my first guest above; a boot takes a few seconds here.",
    solution="Press **Boot my first guest**, or run the line below in a cell.",
    code="kit.lesson.ensure_running(first)",
)
note = Checkpoint(
    "l0-note", "Leave a note inside the guest",
    f"In the guest's console, type `echo {NOTE_WORD} > {NOTE_PATH}` and press Enter. "
    "Then press **Check**: the kit reads the file back from inside the guest.",
    check_note, solve=solve_note,
    hint=f"Click in the console's input line, type echo {NOTE_WORD} > {NOTE_PATH} exactly, "
    "and press Enter (or send).",
    solution=f"Type `echo {NOTE_WORD} > {NOTE_PATH}` in the console's input line and press "
    "Enter.",
    code=f'console.input.value = "echo {NOTE_WORD} > {NOTE_PATH}"; console.submit()',
)
paused = Checkpoint(
    "l0-pause", "Freeze the whole machine",
    "Press **❚❚ Pause** in the guest's panel, then **Check**. The kit asks the hypervisor "
    "(QMP) what state the machine is in.",
    check_paused, solve=solve_paused,
    hint="The Pause button is in the panel beside the diagram; the badge turns to paused.",
    solution="Press **❚❚ Pause**, or run the line below in a cell.",
    code="first.pause()",
)
ask = Checkpoint(
    "l0-ask", "Your first line of code: ask the hypervisor",
    f"Press **▶ Resume**, then ask QEMU yourself: replace `___` with "
    f"`{GUEST}.qmp(\"query-status\")` and run the cell.",
    check_ask, takes_answer=True, solve=solve_ask,
    hint=f"{GUEST}.qmp(\"query-status\") sends the QMP command query-status to the guest's "
    "QEMU and gives back its answer. The guest must run (▶ Resume) for the task to pass.",
    solution="Resume the guest with its panel's ▶ Resume button, then ask QMP:",
    code=f'state = {GUEST}.qmp("query-status")',
)

quiz = Quiz([
    Question("l0-q1", "Where does the guest you booted actually run?", [
        Choice("On a separate physical machine in a data centre", False,
               "No second machine was involved: the panel showed the QEMU process id on "
               "this host."),
        Choice("Inside a QEMU process on this very computer", True,
               "The guest is a computer made of software: QEMU builds it, and QEMU is a "
               "program running on this host, with a process id you saw."),
        Choice("Inside the web browser that shows this page", False,
               "The browser only shows the notebook; the guest runs on the machine where the "
               "notebook's kernel runs."),
    ]),
    Question("l0-q2", "Which channel talks to the **hypervisor** rather than to the guest "
             "OS?", [
        Choice("The guest agent", False, "The agent is a program inside the guest: it speaks "
               "for the guest OS (files, processes), one layer up."),
        Choice("The serial console", False, "The console is the guest's own screen: what its "
               "kernel and shell print."),
        Choice("QMP", True, "QMP is QEMU's own control socket: it works even while the "
               "guest is paused, because QEMU answers it, not the guest."),
    ]),
    Question("l0-q3", "What does TCG (the fallback accelerator) do?", [
        Choice("QEMU translates the guest's machine code in software", True,
               "That is why it needs no hardware support, and why it is slower than KVM."),
        Choice("The CPU runs the guest's code directly, with hardware help", False,
               "That is KVM, which needs working hardware virtualization (vmx or svm) and "
               "a usable /dev/kvm."),
        Choice("It lets the guest share the host's kernel", False,
               "A VM always boots its own kernel, whatever the accelerator; sharing the "
               "host's kernel is what a container does (lesson 8)."),
    ]),
    Question("l0-q4", "When you paused the guest, what happened to it?", [
        Choice("It shut down and had to boot again", False,
               "Nothing was shut down: the QEMU process id stayed the same, and Resume "
               "continued where it stopped."),
        Choice("Its virtual CPUs stopped; its memory stayed", True,
               "Pausing is the hypervisor's doing: it stops running the guest's CPUs. The "
               "guest cannot notice while it is paused; afterwards its clock is behind, until "
               "it is set right again."),
        Choice("The whole host paused too, notebook included", False,
               "Only the guest froze; this notebook kept answering."),
    ]),
    Question("l0-q5", "Which kernel does your guest boot?", [
        Choice("The host's own kernel, shared with the guest", False,
               "Sharing the host's kernel is what a container does (lesson 8); a virtual "
               "machine boots a kernel of its own."),
        Choice("A small kernel the kit built for it", True,
               "The kit builds a small Linux kernel from Debian's kernel source, with only "
               "what the lessons use; the setup table names it. Only when that build is not "
               "possible does it fall back to Debian's ready-made cloud kernel."),
        Choice("Always Debian's ready-made cloud kernel package", False,
               "That is only the fallback, used when the kit cannot build its own kernel "
               "here; the setup table says which one your guests boot."),
    ]),
])

lesson = Lesson(0, [ready, boot, note, paused, ask], quiz, [boot_time])
