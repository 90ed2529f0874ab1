"""Lesson 2, Host and guest: the sealed guest, its doors, and another OS on top.

The notebook ``lessons/02-host-and-guest.ipynb`` uses two guests, ``alpha``
and ``beta``, declared with their doors shut: ``alpha`` has a shared folder
(read-only) that is not mounted yet, no port forward, and a network link to
``beta`` that starts unplugged.  The learner opens each door with the Doors
panel; every check asks the live state (HTTP from the host, QMP, the guest
agent).  A third guest, ``arm``, is an aarch64 machine when this host can
build one.
"""

from __future__ import annotations

import os
import platform
import secrets
import tempfile
from pathlib import Path

import ipywidgets as widgets

from kit.applications import apps
from kit.core.errors import KitError
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import doors, registry
from kit.hypervisor.doors import Link
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest
from kit.lesson.lesson import Lesson
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.doors_panel import DoorsPanel

GUEST, PEER, FOREIGN = "alpha", "beta", "arm"
FOREIGN_ARCH = "aarch64"
SHARED_FILE = "from-the-host.txt"
NOTE = "note.txt"
ARCH_NAMES = {"aarch64": "aarch64", "arm64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}

_guests: dict[str, Guest] = {}
_link: Link | None = None


def share_folder() -> Path:
    """The host folder alpha may share: a private folder in /tmp with one file in it."""
    folder = Path(tempfile.gettempdir()) / f"kit-lesson2-share-{os.getuid()}"
    folder.mkdir(mode=0o755, exist_ok=True)
    (folder / SHARED_FILE).write_text("This file lives on the host. The guest reads it only "
                                      "through the shared folder.\n")
    return folder


def guests() -> tuple[Guest, Guest, Link]:
    """alpha and beta, with their doors declared and shut, and the link between them.

    A network card cannot be added to a running machine, so the link is made
    before either guest starts; if one of them already runs (a re-run cell),
    it is stopped first.
    """
    global _link
    alpha, beta = _guests.get(GUEST), _guests.get(PEER)
    if alpha is None or beta is None or _link is None or not _alive(alpha, beta):
        for name in (GUEST, PEER):
            live = registry.get(name)
            if live is not None:
                live.stop()
        alpha = Guest(GUEST, memory_mb=128, shared_folder=share_folder(), replace=True)
        beta = Guest(PEER, memory_mb=128, replace=True)
        _link = Link(alpha, beta)
        _guests.update({GUEST: alpha, PEER: beta})
    return alpha, beta, _link


def _alive(*chosen: Guest) -> bool:
    """True when each guest is the one the registry knows, or not started at all."""
    return all(registry.get(g.name) in (None, g) for g in chosen)


def doors_panel(guest: Guest, link: Link | None = None) -> DoorsPanel:
    """The Doors panel, its host port set to one that is free on this host now."""
    panel = DoorsPanel(guest, link=link)
    if not _port_free(panel.host_port.value):
        panel.host_port.value = net.free_port()
    return panel


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((net.LOOPBACK, port))
        except OSError:
            return False
    return True


# -- what the notebook shows ----------------------------------------------------------


def host_and_guest(guest: Guest) -> widgets.HTML:
    """The two operating systems side by side: the host's and the guest's own report."""
    info = guest.agent("guest-get-osinfo")
    host_os = _os_release_name(Path("/etc/os-release").read_text())
    rows = [
        ["operating system", escape(host_os), escape(str(info.get("pretty-name", "?")))],
        ["kernel", escape(platform.release()), escape(str(info.get("kernel-release", "?")))],
        ["CPU architecture", escape(platform.machine()), escape(str(info.get("machine", "?")))],
        ["host name", escape(platform.node()), escape(guest.agent("guest-get-host-name")
                                                      .get("host-name", "?"))],
    ]
    return widgets.HTML(markup.text(markup.table(
        ["", "host OS (this notebook's machine)", f"guest OS ({escape(guest.name)})"], rows)))


def _os_release_name(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def plant_host_file() -> Path:
    """A file made on the host this very second, with a name nobody could guess."""
    path = Path(tempfile.gettempdir()) / f"kit-host-only-{secrets.token_hex(4)}.txt"
    path.write_text("made on the host\n")
    return path


def search_guest(guest: Guest, path: Path) -> str:
    """Look for ``path``'s file name everywhere in the guest; what the search printed."""
    result = guest.run(f"find / -xdev -name {path.name} 2>/dev/null; ls /tmp", timeout=30)
    return result.stdout


def host_file_demo(guest: Guest) -> widgets.HTML:
    """Make a file on the host, search the whole guest for it, show both sides."""
    path = plant_host_file()
    found = search_guest(guest, path)
    hits = [line for line in found.splitlines() if path.name in line]
    verdict = ("✖ not found anywhere in the guest" if not hits
               else f"found: {', '.join(hits)}")
    return widgets.HTML(markup.text(
        f"<p>On the host, just now: <code>{escape(str(path))}</code> "
        f"(exists on the host: {path.exists()})</p>"
        f"<p>In guest {escape(guest.name)}, <code>find / -name {escape(path.name)}</code>: "
        f"<b>{escape(verdict)}</b>. Its /tmp holds: "
        f"<code>{escape(' '.join(found.split()) or '(nothing)')}</code></p>"))


def web_from_inside(guest: Guest) -> str:
    """The guest's web page as the guest itself fetches it (no door needed inside)."""
    return guest.run("wget -qO- http://127.0.0.1/ | head -5").stdout


def web_from_host(guest: Guest) -> str:
    """Try the guest's web server from the host; a sentence either way."""
    try:
        page = apps.web_page(guest, timeout=3)
    except KitError as error:
        return f"✖ {error.message}"
    except OSError as error:
        return f"✖ nothing answered: {error}"
    return f"✔ {page.url} answered {page.status}: {page.body[:60]!r}..."


def foreign_status() -> tuple[bool, str]:
    """Whether an aarch64 guest can run here, and why not when it cannot."""
    if FOREIGN_ARCH not in images.supported_arches():
        return False, "this kit's guest recipe has no aarch64 guest."
    try:
        images.ensure_image(FOREIGN_ARCH)
    except KitError as error:
        return False, f"the aarch64 guest image cannot be built here: {error.message}"
    return True, "an aarch64 guest image is ready."


def foreign_guest() -> Guest | None:
    """The aarch64 guest, started; None (with the reason shown) when it is not possible."""
    ok, reason = foreign_status()
    if not ok:
        _show_note(f"⚠ No aarch64 guest on this machine: {reason} The lesson shows the other "
                   f"half of the idea instead: guest {GUEST} runs another kernel than the host.")
        return None
    live = registry.get(FOREIGN)
    guest = live if live is not None else Guest(FOREIGN, memory_mb=256, arch=FOREIGN_ARCH,
                                                replace=True, boot_timeout=180)
    if not guest.state.has_process:
        guest.start()
    return guest


def _show_note(text: str) -> None:
    from IPython.display import display

    display(widgets.HTML(markup.box("hint", escape(text), "Note")))  # type: ignore[no-untyped-call]


# -- the checks -------------------------------------------------------------------------


def check_forward() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    try:
        port = apps.host_port(found)
    except KitError:
        return Verdict.fail(f"no host port leads to port 80 of {GUEST} yet.",
                            hint="In the Doors panel, press 'port forward' (guest port 80).")
    try:
        page = apps.web_page(found)
    except OSError as error:
        return Verdict.fail(f"host port {port} is forwarded, but nothing answered: {error}.",
                            hint="Check the guest runs; close the forward and open it again.")
    usernet = str(found.qmp("human-monitor-command", {"command-line": "info usernet"}))
    bound = [line.strip() for line in usernet.splitlines() if "HOST_FORWARD" in line]
    return Verdict.ok(f"the host reached the guest's web server through 127.0.0.1:{port}.",
                      f"HTTP GET {page.url} → {page.status} ({len(page.body)} bytes)",
                      "QEMU's forwards (QMP `info usernet`): " + " | ".join(bound),
                      ("every forward is bound to 127.0.0.1: other computers cannot use it"
                       if all(net.LOOPBACK in line for line in bound)
                       else "⚠ a forward is bound to another address than 127.0.0.1"))


def check_share() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    if not found.share_open:
        return Verdict.fail(f"the shared folder of {GUEST} is not open.",
                            hint="In the Doors panel, press 'shared folder'.")
    mounts = found.run(f"grep {doors.SHARE_MOUNT} /proc/mounts").stdout.strip()
    read = found.run(["cat", f"{doors.SHARE_MOUNT}/{SHARED_FILE}"])
    write = found.run(f"echo hi > {doors.SHARE_MOUNT}/{NOTE}")
    folder = found.shared_folder
    on_host = folder is not None and (folder / NOTE).exists()
    evidence = (f"the guest's /proc/mounts: {mounts}",
                f"the guest read {SHARED_FILE}: {'yes' if read.ok else 'no'}",
                f"a write from inside: {(write.stderr or 'it worked').strip()}")
    if write.ok or on_host:
        return Verdict.fail("the guest could write into the shared folder: it is writable.",
                            *evidence, hint="Declare the guest without shared_writable=True.")
    if not read.ok:
        return Verdict.fail("the guest cannot read the shared file.", *evidence,
                            hint="Close the shared folder and open it again.")
    return Verdict.ok("the guest reads the host's folder and cannot change it: the door "
                      "opens one way only.", *evidence)


def check_link() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    peer = find_guest(PEER)
    if isinstance(peer, Verdict):
        return peer
    cable = _link
    if cable is None or cable.a is not found or cable.b is not peer:
        return Verdict.fail(f"{GUEST} and {PEER} have no link between them.",
                            hint="Run the cell that makes them: lesson2.guests().")
    address = cable.address(peer)
    ping = eventually(lambda: found.run(f"ping -c 1 -W 2 {address}"), lambda r: r.ok,
                      seconds=4 if cable.is_up else 0)
    evidence = (f"the link is {'plugged in' if cable.is_up else 'unplugged'} (QMP set_link)",
                f"ping from {GUEST} to {address}: "
                f"{ping.stdout.strip().splitlines()[-1] if ping.stdout.strip() else 'no reply'}")
    if not cable.is_up:
        return Verdict.fail(f"the cable between {GUEST} and {PEER} is unplugged.", *evidence,
                            hint="In the Doors panel, press 'link'.")
    if not ping.ok:
        return Verdict.fail(f"{PEER} did not answer the ping yet.", *evidence,
                            hint="Wait a second and check again.")
    return Verdict.ok(f"{GUEST} reached {PEER} ({address}) over the cable you plugged in.",
                      *evidence)


def check_arch(answer: str) -> Verdict:
    foreign = registry.get(FOREIGN)
    name = FOREIGN if foreign is not None and foreign.state == GuestState.RUNNING else GUEST
    found = find_guest(name)
    if isinstance(found, Verdict):
        return found
    actual = found.run(["uname", "-m"]).stdout.strip()
    word = ARCH_NAMES.get(answer.strip().lower(), answer.strip().lower())
    evidence = (f"guest {name}, `uname -m` through its agent: {actual}",
                f"this host, platform.machine(): {platform.machine()}")
    if not word:
        return Verdict.fail("type an architecture, like x86_64 or aarch64.")
    if word != ARCH_NAMES.get(actual, actual):
        return Verdict.fail(f"guest {name} does not run on {answer.strip()}.", *evidence,
                            hint=f"Ask the guest: {name}.run('uname -m').")
    other = "another" if actual != platform.machine() else "the same"
    return Verdict.ok(f"guest {name} is a {actual} computer, on {other} architecture than "
                      "the host.", *evidence)


# -- the lesson ---------------------------------------------------------------------------

forward = Checkpoint(
    "l2-forward", "Open the first door: a port",
    f"In the Doors panel of {GUEST}, open the **port forward** to guest port 80. The kit then "
    "fetches the guest's web page from the host.",
    check_forward,
    hint="Press the 'port forward' toggle; keep guest port 80.",
    solution="Open the forward with the Doors panel, or with the line below.",
    code="alpha.open_forward(kit.infrastructure.net.free_port(), 80)\nlesson2.forward.verify()",
)
share = Checkpoint(
    "l2-share", "A folder the guest may read, not write",
    f"Open the **shared folder** of {GUEST}. Then, on its console, try to write into it: "
    f"`echo hi > {doors.SHARE_MOUNT}/{NOTE}`. The kit checks that the guest reads the "
    "host's file and cannot write.",
    check_share,
    hint="Press the 'shared folder' toggle in the Doors panel.",
    solution="Open the share with the panel, or with the line below.",
    code="alpha.open_share()\nlesson2.share.verify()",
)
link = Checkpoint(
    "l2-link", "A cable between two guests",
    f"Plug in the **link** between {GUEST} and {PEER} (Doors panel), then check: {GUEST} "
    f"pings {PEER}.",
    check_link,
    hint="Press the 'link' toggle; both guests must be running.",
    solution="Plug the cable in with the panel, or with the line below.",
    code="cable.up()\nlesson2.link.verify()",
)
arch = Checkpoint(
    "l2-arch", "Which processor does the guest think it has?",
    "Type the CPU architecture of the guest shown in section 5 (the aarch64 guest if it "
    f"runs, else {GUEST}).",
    check_arch, answer_label="architecture:",
    hint="The table in section 5 shows `uname -m` inside the guest.",
    solution="Ask the guest with uname -m, as the line below does.",
    code="lesson2.arch.verify((arm or alpha).run('uname -m').stdout)",
)

quiz = Quiz([
    Question("l2-q1", "In this lesson, which is the host OS?", [
        Choice("The Linux that runs this notebook and QEMU", True,
               "The host OS runs on the real hardware; the hypervisor is one of its programs."),
        Choice("The busybox Linux inside alpha", False,
               "That one is a guest OS: it runs on hardware QEMU makes up."),
        Choice("QEMU", False,
               "QEMU is the hypervisor, a program running on the host OS, not an OS."),
    ]),
    Question("l2-q2", "Why could alpha not find the file made on the host a second earlier?", [
        Choice("The file was hidden", False,
               "It was an ordinary file in /tmp; the host's own ls would list it."),
        Choice("The guest has its own disk and memory; host files reach it only through a "
               "door someone opens", True,
               "A guest is sealed by default. The shared folder was such a door, and it only "
               "showed one folder."),
        Choice("The guest was too slow to see it", False,
               "Waiting changes nothing: no path leads from the host's /tmp into the guest."),
    ]),
    Question("l2-q3", "The forward listens on 127.0.0.1 only. Who can reach the guest's web "
             "server?", [
        Choice("Anyone on the internet", False,
               "127.0.0.1 is the loopback address: only programs on this very host use it."),
        Choice("Programs on this host only", True,
               "Another computer on the network would need a forward bound to a public "
               "address, a wider door that the kit never opens."),
        Choice("Nobody, the guest is isolated", False,
               "The forward is an opening: this notebook fetched the page through it."),
    ]),
    Question("l2-q4", "The shared folder was read-only. What happened when the guest wrote "
             "into it?", [
        Choice("The write failed: read-only file system", True,
               "Both QEMU (readonly=on) and the guest's mount (ro) refuse it: data enters "
               "the guest, nothing comes back."),
        Choice("The file appeared on the host", False,
               "Only a writable share, asked for explicitly, lets the guest change host files."),
        Choice("The guest crashed", False,
               "A refused write is an ordinary error message; the guest carries on."),
    ]),
    Question("l2-q5", "How can an x86_64 host run an aarch64 guest?", [
        Choice("It cannot: a guest must match the host's processor", False,
               "With KVM it must; QEMU's TCG translates any guest's machine code, so it can "
               "emulate another processor, slowly."),
        Choice("QEMU's TCG translates the aarch64 instructions into x86 ones as they run", True,
               "It costs speed, since every instruction is translated, but it lets a "
               "different OS, even one for another CPU, run on top of this one."),
        Choice("The host switches its CPU into ARM mode", False,
               "x86 processors have no ARM mode: everything is done in software."),
    ]),
])

lesson = Lesson(2, [forward, share, link, arch], quiz)
