"""Lesson 3, The layers one by one: checkpoints, quiz, guest, and the API explorer.

The notebook ``lessons/03-layers.ipynb`` walks up the four layers on one
guest called ``layers``, whose web server (and the API behind it) is
forwarded to a free port of the host's 127.0.0.1.  Every check asks the live
state: the hypervisor (QMP), the guest OS (its agent and its console) or the
applications (HTTP from the host).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import ipywidgets as widgets
import psutil

from kit.applications import apps
from kit.hypervisor import registry
from kit.hypervisor.accelerator import accelerator as decided_accelerator
from kit.hypervisor.accelerator import host
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import find_guest, parse_number
from kit.lesson.lesson import Lesson
from kit.lesson.machine import thread_name
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import MONOSPACE, escape
from kit.widgets.base import KitWidget, on_enter

GUEST = "layers"
ITEM = "Keyboard"
_KERNEL_LINE = re.compile(r"Linux version (\S+)")

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
        _guest = Guest(GUEST, memory_mb=128, forwards={net.free_port(): apps.WEB_PORT},
                       replace=True)
    return _guest


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


def boot_log(guest: Guest, lines: int = 12) -> widgets.HTML:
    """The first lines the guest's kernel printed on its serial console."""
    head = "\n".join(guest.console.text().splitlines()[:lines])
    return widgets.HTML(markup.code_block(head or "(nothing yet: start the guest)"))


def vcpu_threads_table(guest: Guest) -> widgets.HTML:
    """QMP's answer (vCPU -> host thread id) beside what the host says of that thread."""
    rows = []
    for cpu in guest.qmp("query-cpus-fast"):
        tid = int(cpu["thread-id"])
        rows.append([str(cpu["cpu-index"]), f"<b>{tid}</b>",
                     f"<code>{escape(thread_name(guest.pid or 0, tid))}</code>"])
    return widgets.HTML(markup.text(markup.table(
        ["vCPU (QMP cpu-index)", "host thread id (QMP thread-id)",
         f"that thread's name in /proc/{guest.pid}/task"], rows)))


class ApiExplorer(KitWidget):
    """Ask the guest's API from the host: table, optional row id, Fetch; shows the reply."""

    def __init__(self, guest: Guest) -> None:
        super().__init__("API explorer")
        self.guest = guest
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


# -- the checks -------------------------------------------------------------------------


def check_accelerator(answer: str) -> Verdict:
    found = find_guest(GUEST, ("running", "paused"))
    if isinstance(found, Verdict):
        return found
    kvm = found.qmp("query-kvm")
    actual = "kvm" if kvm.get("enabled") else "tcg"
    word = answer.strip().lower()
    evidence = (f"QMP `query-kvm`: present={kvm.get('present')}, enabled={kvm.get('enabled')}",
                f"the kit's probe: {decided_accelerator().reason}")
    if word not in ("kvm", "tcg"):
        return Verdict.fail("type kvm or tcg.", hint="The host table's last row names it.")
    if word != actual:
        return Verdict.fail(f"guest {GUEST} does not run under {word.upper()}.", *evidence,
                            hint="Read the row 'guests here run under' in the host table.")
    how = ("the real CPU runs guest code directly (hardware-assisted)" if actual == "kvm"
           else "QEMU translates guest code into host code as it goes")
    return Verdict.ok(f"guest {GUEST} runs under {actual.upper()}: {how}.", *evidence)


def check_paused() -> Verdict:
    found = find_guest(GUEST, ("running", "paused"))
    if isinstance(found, Verdict):
        return found
    status = found.qmp("query-status")
    if status["status"] != "paused":
        return Verdict.fail(f"QEMU says guest {GUEST} is {status['status']}.",
                            f"QMP `query-status`: {status}",
                            hint="Press ❚❚ Pause in the guest panel (or send QMP `stop`).")
    return Verdict.ok(f"the whole machine {GUEST} is frozen: every vCPU stopped, its memory "
                      "kept as it was.", f"QMP `query-status`: {status}")


def check_vcpu_thread(answer: str) -> Verdict:
    found = find_guest(GUEST, ("running", "paused"))
    if isinstance(found, Verdict):
        return found
    cpus = found.qmp("query-cpus-fast")
    tid = next(int(c["thread-id"]) for c in cpus if c["cpu-index"] == 0)
    given = parse_number(answer)
    if given is None:
        return Verdict.fail("type the thread id: a whole number.",
                            hint="It is in the table's 'host thread id' column, row vCPU 0.")
    if given == found.pid:
        return Verdict.fail(f"{given} is the QEMU process itself, not one of its threads.",
                            hint="Look for the thread QMP names for cpu-index 0.")
    if given != tid:
        return Verdict.fail(f"thread {given} does not run vCPU 0 of {GUEST}.",
                            hint="Send `query-cpus-fast` in the QMP explorer and read "
                            "thread-id of cpu-index 0.")
    threads = {t.id for t in psutil.Process(found.pid).threads()}
    return Verdict.ok(f"vCPU 0 of {GUEST} is host thread {tid}, of QEMU process {found.pid}.",
                      f"QMP `query-cpus-fast`: cpu-index 0 → thread-id {tid}",
                      f"psutil: process {found.pid} has thread {tid}: {tid in threads}, named "
                      f"{thread_name(found.pid or 0, tid)!r}")


def check_kernel(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    logged = kernel_from_boot_log(found.console.text())
    running = found.run(["uname", "-r"]).stdout.strip()
    word = answer.strip()
    if not word:
        return Verdict.fail("type the kernel release from the boot log first.",
                            hint="Find the line starting 'Linux version' in the boot log.")
    if word != logged:
        return Verdict.fail(f"the boot log does not name {word!r} as the kernel.",
                            hint="Copy the word right after 'Linux version' in the log.")
    return Verdict.ok(f"the guest booted Linux {logged}, as its own log says.",
                      f"serial console: 'Linux version {logged} ...'",
                      f"the guest agent, `uname -r` now: {running}")


def check_api(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    reply = apps.api(found, "items")
    if not reply.ok:
        return Verdict.fail(f"the API answered {reply.status}.", reply.body[:200],
                            hint="Reboot the guest: its image holds the database.")
    stock = next(int(r["stock"]) for r in reply.json() if r["name"] == ITEM)
    evidence = (f"the kit asked too: GET {reply.url} → {reply.status} {reply.content_type}",
                f"{ITEM}: stock {stock}")
    given = parse_number(answer)
    if given is None:
        return Verdict.fail("type the stock: a whole number.",
                            hint="Fetch the table items in the API explorer.")
    if given != stock:
        return Verdict.fail(f"the API says another stock for {ITEM} than {given}.",
                            hint=f"Fetch table items and read 'stock' in the row named {ITEM}.")
    return Verdict.ok(f"the host got JSON from an API inside the guest: {ITEM} stock {stock}.",
                      *evidence)


# -- the lesson ---------------------------------------------------------------------------

accelerator = Checkpoint(
    "l3-accel", "Which hypervisor engine?",
    f"Type **kvm** or **tcg**: which one runs guest {GUEST} on this host?",
    check_accelerator, answer_label="kvm or tcg:",
    hint="The host table's last row says which one guests use here, and why.",
    solution="Ask the hypervisor itself: QMP query-kvm says whether KVM is enabled.",
    code='lesson3.accelerator.verify("kvm" if layers.qmp("query-kvm")["enabled"] else "tcg")',
)
paused = Checkpoint(
    "l3-pause", "Freeze a whole computer",
    f"Pause guest {GUEST} with the panel's **❚❚ Pause** button, then check.",
    check_paused,
    hint="Press ❚❚ Pause; the diagram turns striped and says paused.",
    solution="Pause it from the panel, or with the line below (QMP `stop`).",
    code="layers.pause()\nlesson3.paused.verify()",
)
vcpu_thread = Checkpoint(
    "l3-thread", "A virtual CPU is a host thread",
    "Type the **host thread id** that runs **vCPU 0** of the guest.",
    check_vcpu_thread, answer_label="thread id of vCPU 0:",
    hint="In the QMP explorer, send query-cpus-fast: read thread-id for cpu-index 0.",
    solution="Take thread-id of cpu-index 0 from QMP's answer.",
    code='lesson3.vcpu_thread.verify(layers.qmp("query-cpus-fast")[0]["thread-id"])',
)
kernel = Checkpoint(
    "l3-kernel", "Read the boot log",
    "Type the kernel release that the guest's boot log names after **Linux version**.",
    check_kernel, answer_label="kernel release:",
    hint="It is on one of the first lines of the console: 'Linux version 6.1...'.",
    solution="Copy the release from the boot log, or let the kit find it.",
    code="lesson3.kernel.verify(lesson3.kernel_from_boot_log(layers.console.text()))",
)
api = Checkpoint(
    "l3-api", "Ask the API from the host",
    f"With the API explorer, fetch the table **items**; type how many **{ITEM}s** are in "
    "stock.",
    check_api, answer_label=f"{ITEM}s in stock:",
    hint=f"Choose table items, press Fetch, find the row with name {ITEM}, read 'stock'.",
    solution="Ask the API from the host with the line below.",
    code="lesson3.api.verify(lesson3.api_stock(layers))",
)

quiz = Quiz([
    Question("l3-q1", "On this machine, which layer is QEMU?", [
        Choice("Infrastructure", False,
               "The infrastructure is the real hardware: CPUs, memory, /dev/kvm. QEMU is a "
               "program running on it."),
        Choice("Hypervisor", True,
               "QEMU builds the virtual hardware and runs the guest on the real CPUs, with "
               "KVM's help when it works, by translation (TCG) when not."),
        Choice("Guest OS", False,
               "The guest OS is the Linux kernel that boots inside the machine QEMU builds."),
    ]),
    Question("l3-q2", "VirtualBox runs as an application on Windows or macOS. What type of "
             "hypervisor is that?", [
        Choice("Type 1 (bare metal)", False,
               "Type 1 hypervisors (ESXi, Hyper-V, KVM in the Linux kernel) run right on the "
               "hardware, with no ordinary OS below them."),
        Choice("Type 2 (hosted)", True,
               "It is a program on top of a normal operating system, like QEMU with TCG here."),
        Choice("Not a hypervisor at all", False,
               "It runs whole guest operating systems on virtual hardware: that is a "
               "hypervisor's job."),
    ]),
    Question("l3-q3", "What changes when KVM works, compared with TCG?", [
        Choice("The guest gets another kernel", False,
               "The guest boots the same kernel either way; only how its code runs changes."),
        Choice("Guest code runs directly on the real CPU, using vmx/svm, so it is much faster",
               True,
               "KVM uses the CPU's virtualization extensions; TCG must translate every guest "
               "instruction in software."),
        Choice("QEMU is no longer needed", False,
               "QEMU still builds the devices and runs the vCPU threads; KVM only runs guest "
               "code on the CPU for it."),
    ]),
    Question("l3-q4", "You paused the guest. What happened to it?", [
        Choice("Its kernel shut down", False,
               "Nothing inside noticed: after Resume, the same processes carry on."),
        Choice("Its vCPU threads stopped running; memory and devices stayed as they were", True,
               "The hypervisor simply stops scheduling the guest's CPUs: the whole computer "
               "is frozen in place."),
        Choice("QEMU exited and will start again on resume", False,
               "The QEMU process stays, same PID; it answered QMP the whole time."),
    ]),
    Question("l3-q5", "Which program answered your API request with JSON?", [
        Choice("A CGI script inside the guest, reading sqlite with sqlite3", True,
               "busybox httpd ran /cgi-bin/api in the guest; the script read the database "
               "and printed JSON. QEMU only carried the bytes through the port forward."),
        Choice("The guest agent", False,
               "The agent runs commands for the kit; a browser or HTTP client never talks "
               "to it."),
        Choice("QMP", False,
               "QMP talks to the hypervisor about the machine, never about the applications "
               "inside it."),
    ]),
])

lesson = Lesson(3, [accelerator, paused, vcpu_thread, kernel, api], quiz)


def api_stock(guest: Guest, name: str = ITEM) -> Any:
    """The stock of item ``name``, asked from the host through the API."""
    return next(r["stock"] for r in apps.api(guest, "items").json() if r["name"] == name)
