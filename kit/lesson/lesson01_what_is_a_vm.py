"""Lesson 1, What is a virtual machine: the checkpoints, the quiz and the guest.

The notebook ``lessons/01-what-is-a-vm.ipynb`` shows these; the tests import
them and check each checkpoint both ways.  The learner's guest is called
``mine``; checks find it by that name, however it was started.
"""

from __future__ import annotations

import platform

import psutil

from kit.core.state import HYPERVISOR_ANSWERS
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest, parse_number
from kit.lesson.compare import hypervisor_memory_mb
from kit.lesson.lesson import Lesson
from kit.lesson.machine import machine_process
from kit.lesson.quiz import Choice, Question, Quiz

GUEST = "mine"
TASK_MEMORY_MB = 192
TASK_CPUS = 2

_guest: Guest | None = None


def guest() -> Guest:
    """The lesson's guest: the live one called ``mine``, else one made for it."""
    global _guest
    live = registry.get(GUEST)
    if live is not None:
        return live
    if _guest is None:
        _guest = Guest(GUEST, memory_mb=128, cpus=1, replace=True)
    return _guest


# -- the checks -------------------------------------------------------------------------


def check_kernel(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    inside = found.run(["uname", "-r"]).stdout.strip()
    outside = platform.release()
    if not answer:
        return Verdict.fail("type the guest's kernel release in the box first.")
    if answer != inside and answer == outside:
        return Verdict.fail(f"{answer} is the **host's** kernel: that is the answer from "
                            "outside the guest.",
                            hint="Read the 'inside' column of the table, or ask the guest "
                            "itself: mine.run('uname -r').")
    if answer != inside:
        return Verdict.fail(f"the guest does not report {answer!r}.")
    return Verdict.ok(f"the guest runs its own kernel, {inside}.",
                      f"inside (uname -r through the guest agent): {inside}",
                      f"outside (this host's platform.release()): {outside}")


def check_memory() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    given = hypervisor_memory_mb(found)
    line = found.run(["grep", "MemTotal", "/proc/meminfo"]).stdout.split()
    inside = int(line[1]) / 1024 if len(line) > 1 and line[1].isdigit() else 0.0
    evidence = (f"the hypervisor (QMP `query-memory-size-summary`): {given:.0f} MiB",
                f"inside (/proc/meminfo through the agent): MemTotal {inside:.0f} MiB")
    if round(given) != TASK_MEMORY_MB:
        return Verdict.fail(f"guest {GUEST} has {given:.0f} MiB; the task asks for "
                            f"{TASK_MEMORY_MB} MiB.", *evidence)
    if not TASK_MEMORY_MB / 2 < inside <= TASK_MEMORY_MB:
        return Verdict.fail(f"the guest itself sees {inside:.0f} MiB, which does not fit "
                            f"{TASK_MEMORY_MB} MiB.", *evidence,
                            hint="Check again in a moment; if it stays so, reboot the guest.")
    return Verdict.ok(f"guest {GUEST} has {TASK_MEMORY_MB} MiB, and it says so from inside; "
                      f"its kernel kept {TASK_MEMORY_MB - inside:.0f} MiB for itself.",
                      *evidence)


def check_pid(answer: str) -> Verdict:
    found = find_guest(GUEST, HYPERVISOR_ANSWERS)
    if isinstance(found, Verdict):
        return found
    pid = parse_number(answer)
    if pid is None:
        return Verdict.fail("type the process id: a whole number, like 12345.")
    if pid != found.pid:
        return Verdict.fail(f"process {pid} is {_describe(pid)}, not guest {GUEST}'s QEMU.")
    process = psutil.Process(pid)
    named = any(word.startswith(f"{GUEST},") for word in process.cmdline())
    return Verdict.ok(f"host process {pid} is the whole computer {GUEST}.",
                      f"psutil: process {pid} is {process.name()}, with "
                      f"{process.num_threads()} threads and "
                      f"{process.memory_info().rss / 2**20:.0f} MiB of host memory",
                      f"its command line names the guest (-name {GUEST},...): "
                      f"{'yes' if named else 'no'}")


def check_vcpus(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    seen = machine_process(found)
    if len(seen.qmp_vcpu_tids) != TASK_CPUS:
        return Verdict.fail(f"guest {GUEST} has {len(seen.qmp_vcpu_tids)} virtual CPU(s); the "
                            f"task asks for {TASK_CPUS}.",
                            f"QMP `query-cpus-fast` lists {len(seen.qmp_vcpu_tids)}")
    names = ", ".join(t.name for t in seen.vcpu_threads)
    inside = found.run(["nproc"]).stdout.strip()
    counted = parse_number(answer)
    if counted != len(seen.vcpu_threads):
        return Verdict.fail(f"you counted {answer or 'nothing'}; count again.",
                            hint="In the thread table, count the rows marked ✔ vCPU "
                            "(their names start with CPU).")
    return Verdict.ok(f"{TASK_CPUS} virtual CPUs are {counted} ordinary threads of one "
                      "host process.",
                      f"host threads: {names}",
                      f"QMP `query-cpus-fast` names the same thread ids: "
                      f"{list(seen.qmp_vcpu_tids)}",
                      f"inside the guest, nproc says {inside}")


def _describe(pid: int) -> str:
    try:
        return f"'{psutil.Process(pid).name()}'"
    except psutil.Error:
        return "not a running process"


# -- the lesson ---------------------------------------------------------------------------

kernel = Checkpoint(
    "l1-kernel", "Whose kernel is it?",
    "Type the kernel release that the **guest** runs (what `uname -r` prints inside it).",
    check_kernel, answer_label="guest kernel release:",
    hint="The 'inside' column of the table above has it; the 'outside' column is the host's.",
    solution="Copy the guest's kernel release from the table's 'inside' column, or ask the "
    "guest with the line below.",
    code='lesson1.kernel.verify(mine.run("uname -r").stdout)',
)
memory = Checkpoint(
    "l1-memory", f"A computer with {TASK_MEMORY_MB} MiB",
    f"Give guest {GUEST} **{TASK_MEMORY_MB} MiB** of memory: stop it with ■ Stop, choose "
    f"{TASK_MEMORY_MB} MiB in the panel's Memory list, and ▶ Start it again. The kit checks "
    "with the hypervisor and from inside the guest.",
    check_memory,
    hint=f"Memory is fixed while a machine runs: stop it first, pick {TASK_MEMORY_MB} MiB, "
    "then start it.",
    solution=f"Stop, pick {TASK_MEMORY_MB} MiB, start; or run the line below.",
    code=f"kit.lesson.restart_with(mine, memory_mb={TASK_MEMORY_MB})",
)
pid = Checkpoint(
    "l1-pid", "Find the machine among the host's processes",
    f"Type the host process id (PID) of guest {GUEST}'s QEMU.",
    check_pid, answer_label="QEMU's process id:",
    hint="The panel's details line and the 'seen from the host' box both show it.",
    solution="Read the PID from the box 'seen from the host', or use the line below.",
    code="lesson1.pid.verify(mine.pid)",
)
vcpus = Checkpoint(
    "l1-vcpus", "Virtual CPUs are host threads",
    f"Restart guest {GUEST} with **{TASK_CPUS} vCPUs** (panel: ■ Stop, vCPUs {TASK_CPUS}, "
    "▶ Start), press Look again in the 'seen from the host' box, and type how many host "
    "threads run its virtual CPUs.",
    check_vcpus, answer_label="vCPU threads:",
    hint=f"First the guest needs {TASK_CPUS} vCPUs (stop, choose, start). Then count the "
    "threads whose name starts with CPU.",
    solution="Restart with 2 vCPUs and count the rows marked ✔ vCPU; or run the lines below.",
    code=f"kit.lesson.restart_with(mine, cpus={TASK_CPUS})\n"
    "lesson1.vcpus.verify(len(kit.lesson.vcpu_threads(mine)))",
)

quiz = Quiz([
    Question("l1-q1", "Inside the guest, `uname -r` gave another kernel release than the "
             "host's. Why?", [
        Choice("QEMU rewrites the answer to hide the host", False,
               "Nothing is rewritten: the guest's kernel really is another one; its boot log "
               "on the console shows it starting."),
        Choice("The guest shares the host's kernel in another namespace", False,
               "That describes a container (lesson 8). A VM does not share the host's kernel."),
        Choice("The guest booted a Linux kernel of its own", True,
               "A virtual machine runs a whole operating system, kernel included; the host's "
               "kernel only runs QEMU."),
    ]),
    Question("l1-q2", "You gave the guest 192 MiB, yet its /proc/meminfo shows less. Why?", [
        Choice("The guest's kernel keeps part of it for itself before counting", True,
               "MemTotal is what the guest kernel can hand out after its own code, data and "
               "tables; QMP, asked from outside, reports the full 192 MiB."),
        Choice("QEMU gave it less than asked", False,
               "The hypervisor reported exactly 192 MiB (query-memory-size-summary)."),
        Choice("The host was short of memory", False,
               "The guest's size is fixed at start; the host's free memory does not change "
               "what the guest sees."),
    ]),
    Question("l1-q3", "Seen from the host, what is the whole virtual machine?", [
        Choice("A separate piece of hardware inside the host", False,
               "No hardware was set aside: the guest's memory is the QEMU process's memory."),
        Choice("One ordinary process (QEMU), with threads and memory like any other", True,
               "You found its PID, its threads and its memory with the same tools that "
               "show any program."),
        Choice("Nothing: the host cannot see guests", False,
               "The host sees it well, as the process you found; it is the guest that "
               "cannot see the host's processes."),
    ]),
    Question("l1-q4", "The guest had 2 vCPUs. What did the host show for them?", [
        Choice("Two physical cores reserved for the guest", False,
               "Nothing was reserved: the threads share the host's CPUs with every other "
               "program."),
        Choice("Two more QEMU processes", False,
               "The guest was still one QEMU process (a new one, since it was restarted); "
               "only the number of its CPU threads changed."),
        Choice("Two threads of the QEMU process, named CPU 0/… and CPU 1/…", True,
               "Each virtual CPU is a thread that the host schedules like any other; QMP "
               "named the same thread ids."),
    ]),
    Question("l1-q5", "The notebook's Python process was missing from the guest's process "
             "list. What does that show?", [
        Choice("The guest's ps is broken", False,
               "It listed the guest's own processes well, from its PID 1 up."),
        Choice("The guest OS has its own process table and cannot see the host's", True,
               "Its processes are its own, starting from its own PID 1 (init); the host's "
               "programs are invisible to it."),
        Choice("Python is not installed on the host", False,
               "This notebook runs on Python on the host: the host's list had it."),
    ]),
])

lesson = Lesson(1, [kernel, memory, pid, vcpus], quiz)
