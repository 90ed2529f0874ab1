"""Lesson 1, What is a virtual machine: the exercises, the predictions, the quiz and the guest.

The notebook ``lessons/01-what-is-a-vm.ipynb`` shows these; the tests import
them and check each exercise both ways.  The learner's guest is called
``mine``; checks find it by that name, however it was started.

The exercises are the learner's own work, on their own guest:

1. read a secret that only this learner's guest holds, with ``mine.run``;
2. make the machine again with a memory size of their own and two vCPUs,
   with ``kit.Guest(...)`` (memory is part of this machine's description);
3. in a JupyterLab terminal, find a virtual CPU among QEMU's host threads
   with ``ps -L`` and lower its priority with ``renice``.

Two predictions come before measurements: the guest's own MemTotal, and how
much host memory its QEMU process really holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest, plant, plant_on_every_boot
from kit.lesson.compare import hypervisor_memory_mb
from kit.lesson.lesson import Lesson, ensure_running, restart_with
from kit.lesson.machine import HostThread, machine_process
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz

GUEST = "mine"
SECRET_PATH = "/etc/kit-secret"
TASK_CPUS = 2
NICE = 10  # the priority the terminal exercise asks for (19 is the lowest)


def task_memory_mb() -> int:
    """This learner's memory size for the guest: between 144 and 256 MiB, a multiple of 16."""
    return personal.number("l1-memory", 144, 256, 16)


def secret() -> str:
    """The words only this learner's guest holds, in /etc/kit-secret."""
    return personal.secret("l1-secret")


plant_on_every_boot(GUEST, SECRET_PATH, secret)

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


# -- exercise 1: a secret inside the guest ----------------------------------------------


def check_secret(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    inside = found.run(["cat", SECRET_PATH]).stdout.strip()
    if not inside:  # the boot's planting may have just been missed: plant now
        plant(found, SECRET_PATH, secret())
        inside = secret()
    on_host = "exists" if Path(SECRET_PATH).exists() else "does not exist"
    evidence = (f"inside the guest, {SECRET_PATH} holds: {inside}",
                f"on the host, {SECRET_PATH} {on_host}")
    if inside not in answer:
        shown = answer[:60] or "nothing"
        return Verdict.fail(f"your cell gave {shown!r}, which is not what your guest holds.",
                            *evidence,
                            hint="Ask the guest itself: mine.run('cat /etc/kit-secret') runs "
                            "cat inside the guest and gives back what it printed.")
    return Verdict.ok("you read a file that exists only inside your guest's own disk.",
                      *evidence)


def solve_secret() -> str:
    return ensure_running(guest()).run(["cat", SECRET_PATH]).stdout


# -- exercise 2: a machine of your own size ----------------------------------------------


def check_machine() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    want = task_memory_mb()
    given = hypervisor_memory_mb(found)
    vcpus = len(found.qmp("query-cpus-fast"))
    nproc = found.run(["nproc"]).stdout.strip()
    evidence = (f"the hypervisor (QMP query-memory-size-summary): {given:.0f} MiB",
                f"the hypervisor (QMP query-cpus-fast): {vcpus} virtual CPU(s)",
                f"inside the guest, nproc says {nproc}")
    if round(given) != want:
        return Verdict.fail(f"guest {GUEST} has {given:.0f} MiB; your task asks for {want} MiB.",
                            *evidence,
                            hint=f"Stop mine, then start a new one: kit.Guest('mine', "
                            f"memory_mb={want}, cpus={TASK_CPUS}, replace=True).start()")
    if vcpus != TASK_CPUS:
        return Verdict.fail(f"guest {GUEST} has {vcpus} virtual CPU(s); the task asks for "
                            f"{TASK_CPUS}.", *evidence,
                            hint=f"Pass cpus={TASK_CPUS} to kit.Guest(...).")
    return Verdict.ok(f"guest {GUEST} is a new machine: {want} MiB and {TASK_CPUS} vCPUs, "
                      "as its description (QEMU's command line) says.", *evidence)


def solve_machine() -> Guest:
    return restart_with(guest(), memory_mb=task_memory_mb(), cpus=TASK_CPUS)


# -- exercise 3: a virtual CPU is a host thread (terminal) -----------------------------


def thread_nice(pid: int, tid: int) -> int | None:
    """A host thread's nice value, from /proc (field 19 of its stat line)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[16])


def check_renice() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    assert found.pid is not None
    seen = machine_process(found)
    cpu1 = _cpu_thread(seen.vcpu_threads, 1)
    if cpu1 is None:
        return Verdict.fail(f"guest {GUEST} has no second virtual CPU to find.",
                            hint="Do exercise 2 first: the guest needs 2 vCPUs.")
    niceness = {t.name: thread_nice(found.pid, t.tid) for t in seen.threads}
    evidence = (f"QEMU is host process {found.pid}; its CPU 1 thread is {cpu1.tid}",
                "nice values read from /proc/PID/task/TID/stat: " +
                ", ".join(f"{name}: {value}" for name, value in sorted(niceness.items())
                          if name.startswith("CPU") or value))
    if (niceness.get(cpu1.name) or 0) < NICE:
        return Verdict.fail(f"thread {cpu1.tid} ({cpu1.name}) still has nice "
                            f"{niceness.get(cpu1.name)}.", *evidence,
                            hint=f"In a terminal: ps -L -o tid,comm -p {found.pid} lists the "
                            f"threads; then renice -n {NICE} -p TID for the one named CPU 1/...")
    others = [t for t in seen.vcpu_threads if t.tid != cpu1.tid and (niceness.get(t.name) or 0)]
    if others:
        return Verdict.fail("another virtual CPU's thread was reniced too; the task is about "
                            "CPU 1 alone.", *evidence,
                            hint="renice -n 0 -p TID puts a thread back.")
    return Verdict.ok(f"you changed how the host schedules one virtual CPU of {GUEST}, with "
                      "the same tool as for any program's thread.", *evidence)


def solve_renice() -> None:
    found = ensure_running(guest())
    if len(found.qmp("query-cpus-fast")) < TASK_CPUS:
        found = solve_machine()
    cpu1 = _cpu_thread(machine_process(found).vcpu_threads, 1)
    assert cpu1 is not None
    os.setpriority(os.PRIO_PROCESS, cpu1.tid, NICE)


def _cpu_thread(threads: tuple[HostThread, ...], index: int) -> HostThread | None:
    return next((t for t in threads if t.name.startswith(f"CPU {index}/")), None)


# -- predictions -------------------------------------------------------------------------


def measure_memtotal() -> float:
    found = ensure_running(guest())
    words = found.run(["grep", "MemTotal", "/proc/meminfo"]).stdout.split()
    return int(words[1]) / 1024


def measure_rss() -> float:
    found = ensure_running(guest())
    assert found.pid is not None
    return float(psutil.Process(found.pid).memory_info().rss) / 2**20


memtotal = Prediction(
    "l1-p-memtotal",
    "Your guest was given its memory size by the hypervisor. How many MiB will the guest's "
    "**own** /proc/meminfo report as MemTotal?", measure_memtotal, unit="MiB",
    explain=lambda guess, got: (
        "MemTotal is what the guest's kernel can hand out after keeping some for its own code "
        "and tables; the boot log's 'Memory:' line says how much it kept."),
)
rss = Prediction(
    "l1-p-rss",
    "On the host, how many MiB does the QEMU process of your guest really hold (its RSS), "
    "compared with the memory the guest was given?", measure_rss, unit="MiB",
    explain=lambda guess, got: (
        "A guest's memory is only promised: the host backs a page the first time the guest "
        "touches it. What QEMU holds is the guest's touched pages plus QEMU itself "
        "(its program, and under TCG its translation cache)."),
)


# -- the lesson ---------------------------------------------------------------------------

secret_exercise = Checkpoint(
    "l1-secret", "A file only your guest has",
    f"The kit wrote words of your own into `{SECRET_PATH}` **inside your guest** (they "
    "differ for every learner). Read them with `mine.run(...)` and give the result.",
    check_secret, takes_answer=True, solve=solve_secret,
    hint="mine.run('cat /etc/kit-secret') runs cat inside the guest and gives back what it "
    "printed (its .stdout). The host has no such file.",
    solution="Run cat inside the guest, through its agent:",
    code=f"secret = mine.run('cat {SECRET_PATH}').stdout",
)
machine = Checkpoint(
    "l1-machine", "A machine of your own size",
    "A machine's memory and CPUs are part of its description. Stop `mine`, then make it "
    f"again with **your** memory size (the cell prints it) and **{TASK_CPUS} vCPUs**, and "
    "start it.",
    check_machine, solve=solve_machine,
    hint="kit.Guest('mine', memory_mb=..., cpus=2, replace=True).start() makes and starts "
    "the new machine; replace=True lets it take the name of the old one.",
    solution="Stop the old machine, then start one with the new description:",
    code=f"mine.stop()\nmine = kit.Guest('mine', memory_mb=lesson1.task_memory_mb(), "
    f"cpus={TASK_CPUS}, replace=True).start()",
)
renice = Checkpoint(
    "l1-renice", "Find a virtual CPU among the host's threads",
    "Open a terminal (File ▸ New ▸ Terminal). List the threads of mine's QEMU process with "
    "`ps -L -o tid,comm -p PID` (PID: `mine.pid`), find the one named `CPU 1/...`, and lower "
    f"its priority with `renice -n {NICE} -p TID`. Then press Check.",
    check_renice, solve=solve_renice,
    hint="The thread table in the box above lists the same thread ids; renice works on one "
    "thread when given its TID.",
    solution="In a terminal (replace PID and TID with your numbers):",
    code=f"ps -L -o tid,comm -p PID\nrenice -n {NICE} -p TID",
)

quiz = Quiz([
    Question("l1-q1", "Inside the guest, `uname -r` gave another kernel release than the "
             "host's. Why?", [
        Choice("QEMU translates the host's kernel version for the guest", False,
               "Nothing is translated: the guest's kernel really is another one; its boot log "
               "on the console shows it starting."),
        Choice("The guest booted a Linux kernel of its own", True,
               "A virtual machine runs a whole operating system, kernel included; the host's "
               "kernel only runs QEMU."),
        Choice("The guest runs the host's kernel in a separate namespace", False,
               "That describes a container (lesson 8). A VM does not share the host's kernel."),
    ]),
    Question("l1-q2", "You gave the guest a memory size, yet its /proc/meminfo shows less. "
             "Why?", [
        Choice("QEMU holds back a share of it for the hypervisor", False,
               "The hypervisor reported exactly the size you asked for "
               "(query-memory-size-summary)."),
        Choice("Its kernel keeps some for itself", True,
               "MemTotal is what the guest kernel can hand out after its own code, data and "
               "tables; QMP, asked from outside, reports the full size."),
        Choice("The host lent it less because the host was busy", False,
               "The guest's size is fixed by its description; the host's free memory does not "
               "change what the guest sees."),
    ]),
    Question("l1-q3", "Seen from the host, what is the whole virtual machine?", [
        Choice("A reserved slice of the host's hardware, invisible to ps", False,
               "No hardware was set aside: the guest's memory is the QEMU process's memory, "
               "and ps lists it."),
        Choice("One process, QEMU", True,
               "You found its PID, its threads and its memory with the same tools that "
               "show any program."),
        Choice("A kernel module inside the host's kernel", False,
               "KVM is a kernel module that helps QEMU, but the machine itself is the QEMU "
               "process; here it even runs without KVM."),
    ]),
    Question("l1-q4", "Your guest had 2 vCPUs. What did the host show for them?", [
        Choice("Two physical cores set aside for the guest alone", False,
               "Nothing was set aside: the threads share the host's CPUs with every other "
               "program, and renice changed one's priority like any thread's."),
        Choice("Two threads of one process", True,
               "Each virtual CPU is a thread (CPU 0/…, CPU 1/…) that the host schedules like any "
               "other; QMP names the same thread ids."),
        Choice("Two QEMU processes, one per virtual CPU", False,
               "The guest was one QEMU process; only the number of its CPU threads changed."),
    ]),
    Question("l1-q5", "Could this guest's memory have been changed without a restart?", [
        Choice("No: no hypervisor can change a running guest's memory", False,
               "QEMU/KVM, VMware and Hyper-V can add memory to a running guest (hotplug) or "
               "take some back (ballooning); the kit's small machine type just has no such "
               "device."),
        Choice("Only with a machine that has hotplug or a balloon device", True,
               "Memory and vCPU hotplug and ballooning exist; this kit's microvm machine has "
               "neither, so here a new size means a new boot (and EC2, too, stops an "
               "instance to change its type)."),
        Choice("Yes: writing to /proc/meminfo inside the guest resizes it", False,
               "/proc/meminfo only reports; the hardware the guest sees comes from the "
               "hypervisor."),
    ]),
])

lesson = Lesson(1, [secret_exercise, machine, renice], quiz, [memtotal, rss])
