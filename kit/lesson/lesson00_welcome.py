"""Lesson 0, Welcome and setup check: the checkpoints, the quiz and the first guest.

The notebook ``lessons/00-welcome.ipynb`` shows these; the tests import them
and check each checkpoint both ways.  The learner's guest is called
``first``; checks find it by that name, however it was started.
"""

from __future__ import annotations

from kit.core.state import HYPERVISOR_ANSWERS
from kit.hypervisor import doctor, registry
from kit.hypervisor.guest import Guest
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest
from kit.lesson.lesson import Lesson
from kit.lesson.quiz import Choice, Question, Quiz
from kit.lesson.setup import SetupCheck

GUEST = "first"
NOTE_PATH = "/tmp/note.txt"
NOTE_WORD = "hello"

_guest: Guest | None = None


def guest() -> Guest:
    """The lesson's guest: the live one called ``first``, else one made for it."""
    global _guest
    live = registry.get(GUEST)
    if live is not None:
        return live
    if _guest is None:
        _guest = Guest(GUEST, memory_mb=128, replace=True)
    return _guest


def setup_check() -> SetupCheck:
    """The setup widget, wired to the lesson's guest."""
    return SetupCheck(guest())


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


def check_boot() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    status = found.qmp("query-status")["status"]
    if status != "running":
        return Verdict.fail(f"QEMU says guest {GUEST} is {status}.",
                            hint="Wait until the panel says running, then check again.")
    found.agent("guest-ping")
    return Verdict.ok(f"guest {GUEST} is up: its hypervisor and its operating system both "
                      "answer.",
                      f"the hypervisor (QMP `query-status`): {status}",
                      "the guest OS (its agent answered `guest-ping`)",
                      f"on the host it is process {found.pid}")


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
                      f"read back from inside the guest, through its agent: cat {NOTE_PATH}")


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


# -- the lesson ---------------------------------------------------------------------------

ready = Checkpoint(
    "l0-ready", "This machine is ready",
    "Every required check above shows ✔. If the guest image is missing, press **Build the "
    "guest image** and wait for the bar to fill.",
    check_ready,
    hint="The table above says what is missing and the command that fixes it.",
    solution="Press **Build the guest image** if it is offered; for a missing program, run "
    "the fix shown in its row (or ./setup.sh) in a terminal, then press Check again.",
    code="setup.build_image()",
)
boot = Checkpoint(
    "l0-boot", "Your first guest is running",
    "Press **Boot my first guest** and wait until it says the guest is running.",
    check_boot,
    hint="Press Boot my first guest above; a boot takes a few seconds here.",
    solution="Press **Boot my first guest**, or run the line below.",
    code="kit.lesson.ensure_running(first)",
)
note = Checkpoint(
    "l0-note", "Leave a note inside the guest",
    f"In the guest's console, type `echo {NOTE_WORD} > {NOTE_PATH}` and press Enter. "
    "The kit then reads the file back from inside the guest.",
    check_note,
    hint=f"Click in the console's input line, type echo {NOTE_WORD} > {NOTE_PATH} exactly, "
    "and press Enter (or send).",
    solution=f"Type `echo {NOTE_WORD} > {NOTE_PATH}` in the console's input line and press "
    "Enter.",
    code=f'console.input.value = "echo {NOTE_WORD} > {NOTE_PATH}"; console.submit()',
)
paused = Checkpoint(
    "l0-pause", "Freeze the whole machine",
    "Press **❚❚ Pause** in the guest's panel. The kit asks the hypervisor (QMP) what state "
    "the machine is in.",
    check_paused,
    hint="The Pause button is in the panel beside the diagram; the badge turns to paused.",
    solution="Press **❚❚ Pause**, or run the line below.",
    code="first.pause()",
)

quiz = Quiz([
    Question("l0-q1", "Where does the guest you booted actually run?", [
        Choice("On a separate physical machine in a data centre", False,
               "No second machine was involved: the panel showed the QEMU process id on "
               "this host."),
        Choice("Inside a QEMU process on this very computer", True,
               "The guest is a computer made of software: QEMU builds it, and QEMU is a "
               "program running on this host, with a process id you saw."),
        Choice("Inside the web browser", False,
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
        Choice("It replaces the guest's kernel with the host's", False,
               "A VM always runs its own kernel, whatever the accelerator."),
    ]),
    Question("l0-q4", "When you paused the guest, what happened to it?", [
        Choice("The guest shut down and must boot again", False,
               "Nothing was shut down: the QEMU process id stayed the same, and Resume "
               "continued where it stopped."),
        Choice("Every virtual CPU stopped; its memory and its QEMU process stayed", True,
               "Pausing is the hypervisor's doing: it simply stops running the guest's CPUs. "
               "The guest does not notice until it resumes."),
        Choice("The whole host paused too", False,
               "Only the guest froze; this notebook kept answering."),
    ]),
])

lesson = Lesson(0, [ready, boot, note, paused], quiz)
