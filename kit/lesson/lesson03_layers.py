"""Lesson 3, The layers one by one: the exercises, the predictions, the quiz and the guest.

The notebook ``lessons/03-layers.ipynb`` walks up the four layers on one
guest called ``layers`` (two vCPUs; its web server and the API behind it
forwarded to a free port of the host's 127.0.0.1).  The tests import this
module and check each exercise both ways.

The exercises are the learner's own work, one or more per layer:

1. in a JupyterLab terminal, start a QEMU **by hand**, with a memory size of
   their own; the kit finds that process among the host's (psutil);
2. pause the whole machine with one QMP command (``layers.qmp("stop")``);
   checked with QMP ``query-status``;
3. find the host thread of every virtual CPU, from QMP; checked against QMP
   and the host's own thread list;
4. ask the guest agent for the guest's clock and work out how far it lags
   the host's after the pauses; checked against the kit's own reading;
5. ask the guest's API, from the host, for the stock of an item only this
   learner's shop holds (planted in the guest's database at every boot);
   checked against the database inside the guest.

Two predictions: how far the guest's clock lags after a 3 s pause (it stops
with the machine: it does not jump), and how long one command run inside the
guest through its agent takes, against QMP's fraction of a millisecond.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import psutil

from kit.applications import apps
from kit.core import kitloop
from kit.core.errors import AgentError, ImageError
from kit.core.state import GuestState
from kit.guestos import images
from kit.guestos.images import READY_LINE
from kit.hypervisor import qemu, registry
from kit.hypervisor.accelerator import accelerator as decided_accelerator
from kit.hypervisor.accelerator import host
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest
from kit.lesson.lesson import Lesson, ensure_running, show
from kit.lesson.machine import thread_name
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import MONOSPACE, escape
from kit.widgets.base import KitWidget, on_enter

GUEST = "layers"
CPUS = 2
BY_HAND = "byhand"  # the name of the machine the learner starts in a terminal
PAUSE_S = 3.0  # how long the clock prediction pauses the guest
LAG_AT_LEAST_S = 1.0  # the clock exercise wants a lag the learner can measure
_KERNEL_LINE = re.compile(r"Linux version (\S+)")
_STAMP = re.compile(r"^\[\s*[\d.]+\]\s*")

log = logging.getLogger(__name__)
_guest: Guest | None = None


def guest() -> Guest:
    """The lesson's guest: the live one called ``layers``, else one made for it.

    Its web server is forwarded from a free port of 127.0.0.1, chosen now.
    """
    global _guest
    live = registry.get(GUEST)
    if live is not None:
        return live
    if _guest is None or _guest.state.has_process:
        _guest = Guest(GUEST, memory_mb=128, cpus=CPUS,
                       forwards={net.free_port(): apps.WEB_PORT}, replace=True)
    return _guest


# -- personal values ------------------------------------------------------------------------


def by_hand_memory_mb() -> int:
    """This learner's memory size for the machine they start by hand (never QEMU's 128)."""
    return personal.number("l3-by-hand", 144, 240, 16)


def my_item() -> str:
    """The name of the item only this learner's shop holds, e.g. 'Lamp cedar-quartz-417'."""
    return f"Lamp {personal.secret('l3-item')}"


def my_item_stock() -> int:
    """How many of :func:`my_item` the kit puts in stock in this learner's guest."""
    return personal.number("l3-stock", 13, 89)


# The database is on the guest's disk, which starts afresh at every boot (QEMU
# keeps the guest's writes in a scratch file): the item is put in at each boot.
_ADD_ITEM = ('i=0; while [ ! -e "$0" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done; '
             'exec sqlite3 -cmd ".timeout 5000" "$0" "$1"')


def plant_item(g: Guest) -> None:
    """Put this learner's own item in the guest's shop database (once per boot)."""
    name, stock = my_item(), my_item_stock()
    sql = ("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY; "
           f"INSERT INTO items (name, price_cents, stock) SELECT '{name}', 2490, {stock} "
           f"WHERE NOT EXISTS (SELECT 1 FROM items WHERE name = '{name}');")
    result = g.run(["sh", "-c", _ADD_ITEM, apps.DATABASE, sql], timeout=15)
    if not result.ok:
        raise RuntimeError(f"adding {name} to the shop failed: {result}")


_last_state: dict[str, str] = {}
_planting: dict[str, threading.Thread] = {}


def _plant_on_every_boot(g: Guest, state: str) -> None:
    """At the end of each boot (not after a pause), put the item in, on a thread of its own.

    Listeners are called on the kit loop, which must not wait for the agent.
    """
    if g.name != GUEST:
        return
    before, _last_state[g.name] = _last_state.get(g.name), str(state)
    if state == GuestState.RUNNING and before in (None, GuestState.BOOTING):
        job = threading.Thread(target=_plant_quietly, args=(g,), daemon=True,
                               name="kit-plant-layers")
        _planting[g.name] = job
        job.start()


def _plant_quietly(g: Guest) -> None:
    try:
        plant_item(g)
    except Exception as error:  # the check plants again if the item is missing
        log.warning("could not plant the item in %s: %s", g.name, error)


def ready(g: Guest) -> Guest:
    """Start the guest (or wait for a boot under way) and for the kit's item to be in its shop.

    Writing the item takes the database's lock for a moment (the first sqlite3
    of a boot takes a second or two to load, under TCG); waiting for it here
    keeps the lesson's own reads from meeting that lock.
    """
    ensure_running(g)
    job = _planting.get(g.name)
    if job is not None:
        job.join(30)
    if item_stock(g) is None:
        plant_item(g)
    return g


registry.subscribe(_plant_on_every_boot)


# -- what the notebook shows ----------------------------------------------------------


def infrastructure_facts() -> widgets.HTML:
    """The host's hardware, virtualization flags, /dev/kvm and the accelerator's verdict."""
    info = host()
    accel = info.accelerator
    flags = ", ".join(info.virtualization_flags) or "none (no vmx, no svm)"
    rows = [
        ["real CPUs", f"{info.cpus}, {escape(info.cpu_model)}"],
        ["memory", f"{info.memory_total_mb} MiB, {info.memory_available_mb} MiB free now"],
        ["virtualization flags in /proc/cpuinfo", escape(flags)],
        ["/dev/kvm", "present" if info.kvm_device else "absent"],
        ["KVM, tried for real", escape(accel.kvm)],
        ["guests here run under", f"<b>{escape(accel.name.upper())}</b>: {escape(accel.reason)}"],
    ]
    return widgets.HTML(markup.text(markup.table(["", "this host"], rows)))


def kernel_from_boot_log(text: str) -> str | None:
    """The kernel release in a boot log's 'Linux version ...' line, if it has one."""
    found = _KERNEL_LINE.search(text)
    return found.group(1) if found else None


def boot_log(g: Guest, lines: int = 12) -> widgets.HTML:
    """The first lines the guest's kernel printed on its serial console."""
    head = "\n".join(g.console.text().splitlines()[:lines])
    return widgets.HTML(markup.code_block(head or "(nothing yet: start the guest)"))


FIRMWARE_DIRS = (Path("/usr/share/qemu"), Path("/usr/share/seabios"))
FIRMWARE_FILES = {"microvm": "bios-microvm.bin", "q35": "bios-256k.bin", "pc": "bios-256k.bin"}


def firmware_file(machine: str) -> Path | None:
    """The firmware QEMU loads for ``machine`` from its data folders (first found wins)."""
    name = FIRMWARE_FILES.get(machine.split(",")[0])
    if name is None:
        return None
    return next((folder / name for folder in FIRMWARE_DIRS if (folder / name).exists()), None)


def firmware_facts(g: Guest) -> widgets.HTML:
    """Which firmware ran before the guest's kernel, and what the kernel says it got from it."""
    words = g.command
    machine = words[words.index("-machine") + 1] if "-machine" in words else "q35"
    found = firmware_file(machine)
    if found is None:
        what = "none found in QEMU's data folders"
    else:
        real = found.resolve()
        kind = ("qboot" if "qboot" in real.name else
                "SeaBIOS" if "seabios" in str(real) or "bios" in real.name else real.name)
        what = (f"<code>{escape(str(found))}</code>" + (
            f" → <code>{escape(real.name)}</code>" if real != found else "")
            + f": <b>{escape(kind)}</b>, {real.stat().st_size // 1024} KiB")
    told = [_STAMP.sub("", line) for line in g.console.text().splitlines()
            if "BIOS" in line][:4]
    rows = [["machine type (-machine)", f"<code>{escape(machine.split(',')[0])}</code>"],
            ["firmware QEMU loaded", what],
            ["what the kernel's boot log says it got from the firmware",
             markup.code_block("\n".join(told) or "(no line mentions the BIOS)")]]
    return widgets.HTML(markup.text(markup.table(["", "this guest"], rows)))


def vcpu_threads_table(g: Guest) -> widgets.HTML:
    """QMP's answer (vCPU -> host thread id) beside what the host says of that thread."""
    rows = []
    for cpu in g.qmp("query-cpus-fast"):
        tid = int(cpu["thread-id"])
        rows.append([str(cpu["cpu-index"]), f"<b>{tid}</b>",
                     f"<code>{escape(thread_name(g.pid or 0, tid))}</code>"])
    return widgets.HTML(markup.text(markup.table(
        ["vCPU (QMP cpu-index)", "host thread id (QMP thread-id)",
         f"that thread's name in /proc/{g.pid}/task"], rows)))


class ApiExplorer(KitWidget):
    """Ask the guest's API from the host: table, optional row id, Fetch; shows the reply."""

    def __init__(self, g: Guest) -> None:
        super().__init__("API explorer")
        self.guest = g
        self.last_reply: apps.HttpReply | None = None
        self.table = widgets.Combobox(options=[*apps.TABLES, "users"], value="items",
                                      description="table", ensure_option=False)
        self.row = widgets.Text(description="row id", placeholder="(all rows)")
        self.fetch_button = widgets.Button(description="Fetch", icon="download",
                                           tooltip="GET the API from the host")
        self.reply = widgets.HTML()
        self.fetch_button.on_click(self._callback("fetching from the API", self.fetch))
        on_enter(self.row, self._callback("fetching from the API", self.fetch))
        self._set_body(widgets.HTML("<b>The guest's API, asked from the host</b>"),
                       widgets.HBox([self.table, self.row, self.fetch_button]), self.reply)

    def fetch(self) -> apps.HttpReply:
        row = self.row.value.strip()
        path = apps.api_path(self.table.value.strip() or None)
        if row:
            path += ("&" if "?" in path else "?") + "id=" + row.replace("&", "%26")
        reply = self.last_reply = apps.fetch_ready(apps.host_port(self.guest), path)
        self.reply.value = reply_html(reply)
        return reply


def reply_html(reply: apps.HttpReply) -> str:
    """An HTTP reply as a learner reads it: the request, status, type, and the body."""
    body = reply.body
    if reply.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    return (f'<div style="font-family:{MONOSPACE};line-height:1.4">GET {escape(reply.url)}'
            f"<br>→ <b>{reply.status}</b> · Content-Type: {escape(reply.content_type)}</div>"
            + markup.code_block(body))


# -- exercise 1: a QEMU started by hand (terminal) ----------------------------------------


def by_hand_argv(memory_mb: int | None = None) -> list[str]:
    """The command that boots the kit's guest image by hand, its console in the terminal.

    The kit's own command line (``layers.command_line``) hands QEMU sockets
    it has already opened; a person in a terminal cannot, so this one keeps
    the same machine, kernel and disk, and puts the serial console and QEMU's
    monitor on the terminal itself (``-serial mon:stdio``: Ctrl-A then X quits).
    """
    image = images.find_image("x86_64")
    if image is None:
        raise ImageError("the guest image is not built yet.",
                         hint="Run lesson 0 (or start any guest once): it builds the image.")
    accel = decided_accelerator().name
    spec = qemu.MachineSpec(name=BY_HAND, image=image, memory_mb=128, cpus=1, accel=accel)
    chosen = qemu.profile(spec)
    kvm = qemu.uses_kvm(spec, chosen)
    cpu = ["-cpu", "host"] if kvm else (
        ["-cpu", chosen.cpu] if chosen.cpu else ["-cpu", "max"] if chosen.name == "microvm"
        else [])
    append = [image.kernel_cmdline]
    disk = getattr(image, "root_disk", None)
    if disk is not None:
        append += qemu.ROOT_DISK_CMDLINE
        files = ["-drive", f"file={str(disk).replace(',', ',,')},format=raw,if=none,id=disk,"
                 "snapshot=on", "-device", f"virtio-blk-{chosen.virtio_suffix},drive=disk"]
    else:
        files = ["-initrd", str(image.initramfs)]
    if chosen.name == "microvm" and not kvm and spec.tsc_khz:
        append.append(f"tsc_early_khz={spec.tsc_khz}")
    append.append(f"kit.name={BY_HAND}")
    size = by_hand_memory_mb() if memory_mb is None else memory_mb
    return [image.qemu_binary, "-name", f"{BY_HAND},process=qemu-{BY_HAND},debug-threads=on",
            "-machine", chosen.machine, "-accel", "kvm" if kvm else "tcg", *cpu,
            "-m", str(size), "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "mon:stdio",
            "-kernel", str(image.kernel), *files, "-append", " ".join(append),
            "-netdev", "user,id=net0,restrict=on",
            "-device", f"virtio-net-{chosen.virtio_suffix},netdev=net0"]


def by_hand_command(memory_mb: int | None = None) -> str:
    """:func:`by_hand_argv` as one line to paste into a terminal."""
    return shlex.join(by_hand_argv(memory_mb))


_SIZE = re.compile(r"^(?:size=)?(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?(?:,|$)")
_UNIT_MIB = {"": 1.0, "m": 1.0, "k": 1 / 1024, "g": 1024.0, "t": 1024.0 * 1024}


def memory_from_argv(argv: list[str]) -> int | None:
    """The guest memory a QEMU command line asks for, in MiB (QEMU's default: 128)."""
    for index, word in enumerate(argv):
        value = None
        if word in ("-m", "--m") and index + 1 < len(argv):
            value = argv[index + 1]
        elif word.startswith("-m") and word[2:3].isdigit():
            value = word[2:]
        if value is not None:
            found = _SIZE.match(value.strip())
            if found is None:
                return None
            return round(float(found.group(1)) * _UNIT_MIB[found.group(2).lower()])
    return 128


@dataclass(frozen=True)
class HandMachine:
    """A QEMU on this host that the kit did not start: one a person ran by hand."""

    pid: int
    memory_mb: int | None
    parent: str  # the program that started it (a terminal's shell, usually)
    age_s: float
    rss_mb: float
    threads: tuple[str, ...]  # the names QEMU gave its threads


def hand_machines() -> list[HandMachine]:
    """Every QEMU of this user that is not a kit guest (those get their sockets as fd=N)."""
    kit_pids = {g.pid for g in registry.guests() if g.pid is not None}
    found = []
    for process in psutil.process_iter(["cmdline", "uids"]):
        argv = process.info["cmdline"] or []
        uids = process.info["uids"]
        if (not argv or "qemu-system" not in os.path.basename(argv[0])
                or process.pid in kit_pids or any("fd=" in word for word in argv)
                or (uids is not None and uids.real != os.getuid())):
            continue
        try:
            with process.oneshot():
                parent = process.parent()
                names = tuple(thread_name(process.pid, t.id) for t in process.threads())
                found.append(HandMachine(process.pid, memory_from_argv(argv),
                                         parent.name() if parent else "?",
                                         time.time() - process.create_time(),
                                         process.memory_info().rss / 2**20, names))
        except psutil.Error:
            continue
    return found


def check_by_hand() -> Verdict:
    want = by_hand_memory_mb()
    found = hand_machines()
    if not found:
        return Verdict.fail(
            "no QEMU started by hand is running on this host.",
            hint="Open a terminal (File ▸ New ▸ Terminal), paste the command the cell printed, "
            "press Enter, and leave the guest running while you check.")
    mine = [m for m in found if m.memory_mb == want]
    sizes = ", ".join(f"PID {m.pid}: {m.memory_mb} MiB" for m in found)
    if not mine:
        return Verdict.fail(
            f"the QEMU started by hand has another memory size ({sizes}); yours is {want} MiB.",
            f"psutil found QEMU processes the kit did not start: {sizes}",
            hint=f"Quit it (in its terminal: Ctrl-A, then X) and start it again with -m {want}.")
    machine = mine[0]
    vcpus = [name for name in machine.threads if name.startswith("CPU ")]
    return Verdict.ok(
        f"you started a virtual machine yourself: QEMU process {machine.pid}, with your "
        f"{want} MiB. It is an ordinary program; quit it with Ctrl-A, then X, in its terminal.",
        f"psutil: process {machine.pid}, started by {machine.parent}, running for "
        f"{machine.age_s:.0f} s, holding {machine.rss_mb:.0f} MiB of host memory",
        f"its command line asks for -m {machine.memory_mb}",
        f"its threads include {', '.join(vcpus) or 'no vCPU thread yet'}")


@dataclass
class _Started:
    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def output(self) -> str:
        try:
            return (self.folder / "console.txt").read_text(errors="replace")
        except OSError:
            return ""


_by_hand: _Started | None = None


async def _spawn(argv: list[str], folder: Path) -> subprocess.Popen[bytes]:
    # On the kit's permanent thread: a parent-death signal fires when the
    # spawning *thread* exits, and this one never does before the kernel.
    with open(folder / "console.txt", "wb") as out:
        return subprocess.Popen([*qemu.parent_death_wrapper(), *argv], stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def solve_by_hand(timeout: float = 90.0) -> None:
    """What the learner types in the terminal, done by the kit (demo mode and tests)."""
    global _by_hand
    if any(m.memory_mb == by_hand_memory_mb() for m in hand_machines()):
        return
    stop_by_hand()
    folder = Path(tempfile.mkdtemp(prefix="kit-byhand-"))
    process = kitloop.call(_spawn(by_hand_argv(), folder), timeout=15)
    _by_hand = _Started(process, folder)
    deadline = time.monotonic() + timeout
    while READY_LINE not in _by_hand.output:
        if process.poll() is not None or time.monotonic() > deadline:
            text = _by_hand.output[-400:]
            stop_by_hand()
            raise RuntimeError(f"the QEMU started by hand did not boot: {text}")
        time.sleep(0.1)


def stop_by_hand() -> None:
    """Stop the QEMU that :func:`solve_by_hand` started, if it runs (the learner's own stay)."""
    global _by_hand
    started, _by_hand = _by_hand, None
    if started is None:
        return
    if started.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.process.pid, 9)
        with contextlib.suppress(subprocess.TimeoutExpired):
            started.process.wait(5)
    if started.process.stdin is not None:
        started.process.stdin.close()
    for path in started.folder.iterdir():
        path.unlink()
    started.folder.rmdir()


# -- exercise 2: pause the whole machine (QMP) ----------------------------------------------


def _vcpu_cpu_seconds(g: Guest, tids: set[int]) -> float:
    assert g.pid is not None
    with contextlib.suppress(psutil.Error):
        return float(sum(t.user_time + t.system_time
                         for t in psutil.Process(g.pid).threads() if t.id in tids))
    return 0.0


def check_paused() -> Verdict:
    found = find_guest(GUEST, (GuestState.RUNNING, GuestState.PAUSED))
    if isinstance(found, Verdict):
        return found
    status = found.qmp("query-status")
    evidence = [f"QMP `query-status`: {status}"]
    if status["status"] != "paused":
        return Verdict.fail(f"QEMU says guest {GUEST} is {status['status']}.", *evidence,
                            hint="Send QMP's stop command: layers.qmp(\"stop\").")
    tids = {int(c["thread-id"]) for c in found.qmp("query-cpus-fast")}
    before = _vcpu_cpu_seconds(found, tids)
    time.sleep(0.3)
    used = _vcpu_cpu_seconds(found, tids) - before
    evidence.append(f"CPU time its {len(tids)} vCPU threads used in 0.3 s: {used:.2f} s")
    return Verdict.ok(f"the whole machine {GUEST} is frozen: every vCPU stopped, its memory "
                      "kept as it was; the hypervisor still answers.", *evidence)


def solve_paused() -> None:
    g = guest()
    if g.state != GuestState.PAUSED:
        ensure_running(g).qmp("stop")


# -- exercise 3: each virtual CPU is a host thread (QMP) ----------------------------------


def check_threads(answer: str) -> Verdict:
    found = find_guest(GUEST, (GuestState.RUNNING, GuestState.PAUSED))
    if isinstance(found, Verdict):
        return found
    assert found.pid is not None
    cpus = sorted(found.qmp("query-cpus-fast"), key=lambda c: c["cpu-index"])
    want = {int(c["thread-id"]) for c in cpus}
    host_threads = {t.id for t in psutil.Process(found.pid).threads()}
    # Failed verdicts name no thread id: the answer comes from asking QMP, or from the
    # solution (recorded as such), not from the kit's own evidence.
    names = ", ".join(repr(thread_name(found.pid, tid)) for tid in sorted(want))
    evidence = (f"QMP lists {len(want)} virtual CPUs; the host names their threads {names}",)
    if "thread-id" in answer or "cpu-index" in answer:
        return Verdict.fail("that is QMP's whole reply: give only the thread ids in it.",
                            *evidence, hint="Take thread-id out of each entry: "
                            '[cpu["thread-id"] for cpu in layers.qmp("query-cpus-fast")]')
    given = {int(n) for n in re.findall(r"\d+", answer)}
    if not given:
        return Verdict.fail("give the thread ids: whole numbers, one per vCPU.", *evidence)
    if found.pid in given:
        return Verdict.fail(f"{found.pid} is the QEMU process itself (its main thread runs "
                            "the devices), not a virtual CPU.", *evidence,
                            hint="QMP's query-cpus-fast names the thread of each vCPU.")
    wrong = sorted(given - want)
    if wrong:
        words = ", ".join(
            f"{tid} (QEMU's thread {thread_name(found.pid, tid)!r})" if tid in host_threads
            else f"{tid} (not a thread of the QEMU that runs {GUEST})" for tid in wrong)
        return Verdict.fail(f"these do not run a virtual CPU of {GUEST}: {words}.", *evidence,
                            hint="Ask QMP: layers.qmp(\"query-cpus-fast\") lists each vCPU "
                            "with its thread-id.")
    if given != want:
        return Verdict.fail(f"you gave {len(given)} of the {len(want)} vCPU threads.", *evidence,
                            hint=f"{GUEST} has {len(want)} virtual CPUs: give every one's "
                            "thread-id.")
    return Verdict.ok(f"every virtual CPU of {GUEST} is one ordinary thread of QEMU process "
                      f"{found.pid}: the host's own thread list has them all.",
                      *(f"QMP: vCPU {c['cpu-index']} → thread {c['thread-id']}, which the host "
                        f"names {thread_name(found.pid, int(c['thread-id']))!r}" for c in cpus))


def solve_threads() -> list[int]:
    return [int(c["thread-id"]) for c in ensure_alive(guest()).qmp("query-cpus-fast")]


def ensure_alive(g: Guest) -> Guest:
    """The guest with a hypervisor that answers (a paused one is left paused)."""
    if g.state != GuestState.PAUSED:
        ensure_running(g)
    return g


# -- exercise 4: the guest's clock, through its agent ---------------------------------------


def clock_lag(g: Guest) -> float:
    """Seconds the guest's clock is behind the host's (agent ``guest-get-time``)."""
    before = time.time()
    guest_ns = int(g.agent("guest-get-time"))
    after = time.time()
    return (before + after) / 2 - guest_ns / 1e9


def check_clock(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    lag = clock_lag(found)
    evidence = ("the kit asked too: the agent's guest-get-time against the host's clock",)
    try:
        given = float(answer.strip().rstrip("s").strip())
    except ValueError:
        return Verdict.fail("give the lag as a number of seconds, e.g. 12.5.", *evidence)
    if lag < LAG_AT_LEAST_S:
        return Verdict.fail(f"{GUEST}'s clock is less than {LAG_AT_LEAST_S:g} s behind: too "
                            "little to measure well.", *evidence,
                            hint="Pause the guest a few seconds first (layers.pause(), "
                            "time.sleep(5), layers.resume()), then measure again.")
    close = max(0.5, 0.1 * lag)
    if abs(given - lag) <= close:
        return Verdict.ok(f"{GUEST}'s clock is {lag:.1f} s behind the host's: it stopped while "
                          "the machine was paused, and nothing has set it right since.",
                          f"the kit measured {lag:.2f} s (the agent's guest-get-time against "
                          "the host's clock)")
    if abs(given / 1e9 - lag) <= close:
        return Verdict.fail(f"{given:.3g} is in nanoseconds.", *evidence,
                            hint="guest-get-time answers in nanoseconds since 1970, "
                            "time.time() in seconds: divide the agent's number by 1e9.")
    if abs(given + lag) <= close:
        return Verdict.fail(f"{given:.2f} is the lag the wrong way round.", *evidence,
                            hint="Host's time minus the guest's: the guest is behind.")
    return Verdict.fail(f"{given:.2f} s is not how far {GUEST}'s clock is behind now.",
                        *evidence,
                        hint="time.time() - layers.agent(\"guest-get-time\") / 1e9: both "
                        "in seconds since 1970, the host's first.")


def solve_clock() -> float:
    g = ensure_running(guest())
    if clock_lag(g) < LAG_AT_LEAST_S + 0.5:
        g.pause()
        time.sleep(2.0)
        g.resume()
    return clock_lag(g)


# -- exercise 5: the API, from the host ----------------------------------------------------


def item_stock(g: Guest) -> int | None:
    """The stock of this learner's item, read inside the guest (sqlite3 through the agent).

    A read meets "database is locked" while the kit is writing the item in:
    it asks again, for up to 3 s.
    """
    sql = f"SELECT stock FROM items WHERE name = '{my_item()}'"
    deadline = time.monotonic() + 3.0
    while True:
        try:
            rows = apps.query(g, sql)
            break
        except AgentError as error:
            if "locked" not in error.message or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return int(rows[0]["stock"]) if rows else None


def check_api(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    stock = item_stock(found)
    if stock is None:  # the boot's planting may have just been missed: plant now
        plant_item(found)
        stock = item_stock(found)
    reply = apps.api(found, "items")
    evidence = (f"the kit asked the API too: GET {reply.url} → {reply.status} "
                f"{reply.content_type}",)
    if not reply.ok:
        return Verdict.fail(f"the API answered {reply.status}.", *evidence,
                            hint="Reboot the guest (its panel's ↻): its disk holds the "
                            "database.")
    numbers = re.findall(r"-?\d+", answer)
    given = int(numbers[0]) if len(numbers) == 1 else None
    if given is None:
        return Verdict.fail("give the stock: one whole number.", *evidence,
                            hint=f"apps.api(layers, \"items\").json() lists every item; "
                            f"find the one named {my_item()!r}.")
    if given != stock:
        others = [r["name"] for r in reply.json() if r.get("stock") == given]
        where = f" (that is the stock of {others[0]})" if others else ""
        return Verdict.fail(f"{given} is not the stock of {my_item()}{where}.", *evidence,
                            hint=f"Find the row whose name is {my_item()!r} and read its "
                            "'stock'.")
    return Verdict.ok(f"the host got JSON from the API inside the guest: {my_item()}, "
                      f"{stock} in stock.", *evidence,
                      f"inside the guest (sqlite3, through the agent): {my_item()}: "
                      f"stock {stock}")


def api_stock(g: Guest, name: str | None = None) -> int:
    """The stock of item ``name`` (default: this learner's), asked from the host by HTTP."""
    wanted = my_item() if name is None else name
    return int(next(r["stock"] for r in apps.api(g, "items").json() if r["name"] == wanted))


def solve_api() -> int:
    return api_stock(ready(guest()))


# -- predictions --------------------------------------------------------------------------


def measure_pause_lag() -> float:
    """Pause the guest for :data:`PAUSE_S` s; how much further behind is its clock after?"""
    g = ensure_running(guest())
    before = clock_lag(g)
    g.pause()
    try:
        time.sleep(PAUSE_S)
    finally:
        g.resume()
    return clock_lag(g) - before


_round_trips: dict[str, float] = {}


def measure_agent_ms(times: int = 10) -> float:
    """Median milliseconds of ``layers.run("true")``; QMP's median is kept for the words."""
    g = ensure_running(guest())

    def median_ms(call: Any) -> float:
        taken = []
        for _ in range(times):
            start = time.perf_counter()
            call()
            taken.append((time.perf_counter() - start) * 1000)
        return statistics.median(taken)

    _round_trips["qmp"] = median_ms(lambda: g.qmp("query-status"))
    _round_trips["agent"] = median_ms(lambda: g.run("true"))
    return _round_trips["agent"]


def _agent_words(guess: float, measured: float) -> str:
    qmp_ms = _round_trips.get("qmp", 0.0)
    ratio = f", about {measured / qmp_ms:.0f} times QMP's {qmp_ms:.2f} ms" if qmp_ms else ""
    return (f"A command in the guest took {measured:.0f} ms{ratio}. QMP is answered by a "
            "thread of QEMU on the host. A command in the guest travels over a virtual serial "
            "line to the agent, which starts a new process in the guest (the guest's kernel "
            "at work, on emulated CPUs here), and the kit then asks until it has exited.")


pause_lag = Prediction(
    "l3-p-lag",
    f"The kit will pause {GUEST} for {PAUSE_S:.0f} seconds, then resume it. Right after, how "
    "many seconds **further behind** the host's clock will the guest's own clock be?",
    measure_pause_lag, unit="s",
    explain=lambda guess, got: (
        "The guest's clock is kept by its own kernel, from the virtual CPU's timer, and that "
        "stopped with the machine. On resume it carries on from where it stopped: it does "
        "not jump forward, and it stays behind until something sets it right (NTP, or the "
        "host through the guest agent)."),
)
agent_ms = Prediction(
    "l3-p-agent",
    "QMP answers the kit in well under a millisecond. How many **milliseconds** will one "
    "command run inside the guest take, `layers.run(\"true\")`, through the guest agent?",
    measure_agent_ms, unit="ms", explain=_agent_words,
)


# -- the lesson ---------------------------------------------------------------------------

by_hand = Checkpoint(
    "l3-by-hand", "Start a QEMU yourself",
    "Open a terminal (**File ▸ New ▸ Terminal**), paste the command printed above (it "
    "carries **your** memory size) and press Enter. Watch the guest boot in the terminal; "
    "leave it running and press **Check**: the kit looks for that process on the host.",
    check_by_hand, solve=solve_by_hand,
    hint="The command is long: copy all of it. In the terminal, the guest's console follows; "
    "Ctrl-A then X quits QEMU when you are done.",
    solution="In a terminal, run the printed command: QEMU, the kernel, its disk, your "
    "memory size, and the console on the terminal (-serial mon:stdio).",
    code="# in a terminal (the cell prints the whole line):\nqemu-system-x86_64 -name byhand,... "
    "-m YOUR_SIZE ... -serial mon:stdio -kernel ... -append '...'",
)
paused = Checkpoint(
    "l3-pause", "Freeze a whole computer",
    f"Pause guest {GUEST} with **one QMP command** sent from your cell.",
    check_paused, solve=solve_paused,
    hint="QMP's command to stop a machine's CPUs is called stop: layers.qmp(\"stop\").",
    solution="Send QMP stop to the hypervisor (the panel's ❚❚ does the same):",
    code='paused = layers.qmp("stop")',
)
vcpu_threads = Checkpoint(
    "l3-threads", "Every virtual CPU is a host thread",
    f"Give the **host thread id** of every virtual CPU of {GUEST}, as QMP reports them.",
    check_threads, takes_answer=True, solve=solve_threads,
    hint='layers.qmp("query-cpus-fast") answers a list, one entry per vCPU, each with its '
    "thread-id.",
    solution="Ask QMP for the vCPUs and keep each one's thread-id:",
    code='threads = [cpu["thread-id"] for cpu in layers.qmp("query-cpus-fast")]',
)
clock = Checkpoint(
    "l3-clock", "How far behind is the guest's clock?",
    f"Ask {GUEST}'s **guest agent** for the guest's time (`guest-get-time`: nanoseconds since "
    "1970) and work out how many **seconds** the guest's clock is behind the host's "
    "(`time.time()`).",
    check_clock, takes_answer=True, solve=solve_clock,
    hint="layers.agent(\"guest-get-time\") / 1e9 is the guest's time in seconds; subtract it "
    "from time.time().",
    solution="The host's time minus the guest's, both in seconds:",
    code='lag = time.time() - layers.agent("guest-get-time") / 1e9',
)
api = Checkpoint(
    "l3-api", "Ask the API from the host",
    "Your guest's shop sells an item of your own (the cell above prints its name). Ask the "
    "guest's **API**, from the host, how many of it are **in stock**.",
    check_api, takes_answer=True, solve=solve_api,
    hint='apps.api(layers, "items").json() is the list of items, asked over HTTP through the '
    "port forward; find the row with your item's name and read its stock.",
    solution="Ask the API for the items and pick yours:",
    code='stock = [r["stock"] for r in apps.api(layers, "items").json() '
    "if r[\"name\"] == lesson3.my_item()][0]",
)

quiz = Quiz([
    Question("l3-q1", "On this machine, which layer is QEMU?", [
        Choice("Infrastructure: it is the machine the guests run on", False,
               "The infrastructure is the real hardware: CPUs, memory, /dev/kvm. QEMU is a "
               "program running on it; you even started one yourself in a terminal."),
        Choice("Hypervisor: it builds the machine and runs it", True,
               "QEMU builds the virtual hardware and runs the guest on the real CPUs, with "
               "KVM's help when it works, by translation (TCG) when not."),
        Choice("Guest OS: it is the system the guest boots", False,
               "The guest OS is the Linux kernel that boots inside the machine QEMU builds; "
               "its boot log starts with 'Linux version', not with QEMU."),
    ]),
    Question("l3-q2", "VirtualBox runs as an application on Windows or macOS. What type of "
             "hypervisor is that?", [
        Choice("Type 1 (bare metal)", False,
               "Type 1 hypervisors (ESXi, Hyper-V, KVM in the Linux kernel) run right on the "
               "hardware, with no ordinary OS below them."),
        Choice("Type 2 (hosted)", True,
               "It is a program on top of a normal operating system, like QEMU with TCG here."),
        Choice("Not a hypervisor: only an emulator", False,
               "It runs whole guest operating systems on virtual hardware: that is a "
               "hypervisor's job, whatever it uses to run their code."),
    ]),
    Question("l3-q3", "What changes when KVM works, compared with TCG?", [
        Choice("The guest needs another kernel, one built for KVM", False,
               "The guest boots the same kernel either way; only how its code runs changes."),
        Choice("The real CPU runs the guest's code, with vmx or svm", True,
               "KVM uses the CPU's virtualization extensions (vmx/svm); TCG must translate "
               "every guest instruction in software, which is much slower."),
        Choice("QEMU is no longer needed: the host kernel runs it", False,
               "QEMU still builds the devices and runs the vCPU threads; KVM only runs guest "
               "code on the CPU for it."),
    ]),
    Question("l3-q4", "You paused a guest for a minute, then resumed it. What does the "
             "guest's own clock say?", [
        Choice("The right time: it jumps forward on resume", False,
               "Nothing makes it jump: the guest's clock stopped with its CPUs, and the kernel "
               "carries on from where it stopped, as you measured."),
        Choice("A minute behind, until someone resets it", True,
               "Its timekeeping stopped with the machine; it lags by the pause until NTP, or "
               "the host through the guest agent, sets it right."),
        Choice("The right time: the host kept its clock running", False,
               "The host's clock kept running, not the guest's: the agent's guest-get-time "
               "showed the lag."),
    ]),
    Question("l3-q5", "Which program answered your API request with JSON?", [
        Choice("A CGI script inside the guest, run by its web server", True,
               "busybox httpd ran /cgi-bin/api in the guest; the script read the database "
               "with sqlite3 and printed JSON. QEMU only carried the bytes through the port "
               "forward."),
        Choice("The guest agent, which runs commands for the host", False,
               "The agent runs commands for the kit over its own serial line; an HTTP client "
               "never talks to it."),
        Choice("QEMU itself, at the other end of the forwarded port 80", False,
               "QEMU only forwards the connection into the guest; the answer comes from a "
               "program inside it."),
    ]),
    Question("l3-q6", "Does this kit's small microvm machine boot with no firmware at all?", [
        Choice("Yes: QEMU jumps straight into the guest kernel", False,
               "Even microvm runs firmware first: Debian's QEMU loads qboot, which sets up "
               "the memory map the kernel's boot log calls 'BIOS-provided'."),
        Choice("No: a tiny firmware runs first", True,
               "qboot (64 KiB) prepares the machine in milliseconds, then starts the kernel; "
               "a q35 PC runs SeaBIOS or UEFI firmware instead. The firmware is small, not "
               "absent."),
        Choice("Yes: only physical computers have a BIOS", False,
               "Virtual machines have firmware too: SeaBIOS, OVMF (UEFI) or qboot, loaded by "
               "QEMU from files on the host."),
    ]),
])


class LayersLesson(Lesson):
    """Lesson 3: at the end, also stop the QEMU the kit started by hand (demo mode)."""

    def finish(self) -> None:
        stop_by_hand()
        left = hand_machines()
        if left:
            pids = ", ".join(str(m.pid) for m in left)
            show(widgets.HTML(markup.box("hint", escape(
                f"A QEMU you started by hand still runs (PID {pids}): quit it in its "
                "terminal with Ctrl-A, then X."))))
        super().finish()


lesson = LayersLesson(3, [by_hand, paused, vcpu_threads, clock, api], quiz,
                      [pause_lag, agent_ms])
