"""Lesson 2, Host and guest: what the guest cannot see, the doors into it, another OS on top.

The notebook ``lessons/02-host-and-guest.ipynb`` uses two guests, ``alpha``
and ``beta``, declared with their doors shut: ``alpha`` has a shared folder
(read-only) that is not mounted yet, no port forward, and a network link to
``beta`` that starts unplugged.  A third guest, ``arm``, is one the learner
makes for another processor (aarch64 on an x86_64 host).

The exercises are the learner's own work, each checked on the live state:

1. open a port forward from a host port of their own to alpha's web server
   (``alpha.open_forward``; checked with QMP ``info usernet`` and an HTTP
   request from the host);
2. mount the shared folder and read, inside alpha, the words of their own
   that the kit put in the host's folder (checked in the guest's
   ``/proc/mounts`` and against the host's file);
3. plug the cable between alpha and beta in and fetch, from alpha, the word
   only beta serves (checked with QMP's link state, a ping across, and beta's
   own file);
4. open alpha's internet door, fetch from inside alpha a word of their own
   that a server on the host's 127.0.0.1 serves, and shut the door again
   (checked with the door's state, the server's count of answers, and a
   fetch from alpha that must now fail);
5. make ``arm``, a guest for another processor, with a memory size of their
   own (checked with QMP ``query-target`` and ``query-memory-size-summary``).

Three predictions come before measurements: whether a guest reaches a
server on the host's own 127.0.0.1 with no door open (it does not: the
guest's user network is ``restrict=on``), what a write into the read-only
share does, and how long the other processor's guest takes to boot.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import platform
import re
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets

from kit.applications import apps
from kit.core.errors import KitError
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import doors, registry
from kit.hypervisor.doors import Link, internet
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually, find_guest, plant, plant_on_every_boot, time_boot
from kit.lesson.compare import hypervisor_memory_mb
from kit.lesson.lesson import Lesson, ensure_running
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.doors_panel import DoorsPanel

GUEST, PEER, FOREIGN, TIMER = "alpha", "beta", "arm", "arm-timer"
SHARED_FILE = "from-the-host.txt"
SECRET_FILE = "secret.txt"  # words of the learner's own, in the host's shared folder
NOTE = "note.txt"
WORD_PATH = "/www/word.txt"  # beta's web server serves it as /word.txt
WEB_PORT = apps.WEB_PORT
HOST_FROM_GUEST = "10.0.2.2"  # the host, as eth0's (restricted) user network shows it
HOST_THROUGH_DOOR = internet.HOST_ADDRESS  # the host, through the internet door
PORTS = (20000, 29999)  # where the learner's own host port is drawn from
ARM_SIZES = (160, 192, 224, 288, 320)  # MiB: the learner's size for arm is one of these
TIMER_MEMORY_MB = 256
FOREIGN_BOOT_TIMEOUT = 180.0
ARCH_NAMES = {"aarch64": "aarch64", "arm64": "aarch64", "x86_64": "x86_64", "amd64": "x86_64"}

_guests: dict[str, Guest] = {}
_link: Link | None = None


# -- the learner's own values ----------------------------------------------------------


def task_port() -> int:
    """This learner's host port for the forward (the next free one if theirs is taken)."""
    base = personal.number("l2-port", *PORTS)
    alpha = registry.get(GUEST)
    for port in range(base, min(base + 50, 65536)):
        if (alpha is not None and port in alpha.forwards) or _port_free(port):
            return port
    return base


def share_secret() -> str:
    """The words the kit puts in the host's shared folder for this learner."""
    return personal.secret("l2-share")


def beta_word() -> str:
    """The word only beta serves (``/www/word.txt``), this learner's own."""
    return personal.secret("l2-beta")


def arm_memory_mb() -> int:
    """This learner's memory size for the guest arm."""
    return ARM_SIZES[personal.number("l2-arm-memory", 0, len(ARM_SIZES) - 1)]


def host_arch() -> str:
    return ARCH_NAMES.get(platform.machine().lower(), platform.machine())


def task_arch() -> str:
    """The processor arm is made for: another one than the host's, if the recipe has one."""
    others = [arch for arch in images.supported_arches() if arch != host_arch()]
    return others[0] if others else host_arch()


plant_on_every_boot(PEER, WORD_PATH, beta_word)


# -- the guests ---------------------------------------------------------------------------


def share_folder() -> Path:
    """The host folder alpha may share: a private folder in /tmp with two files in it."""
    folder = Path(tempfile.gettempdir()) / f"kit-lesson2-share-{os.getuid()}"
    folder.mkdir(mode=0o755, exist_ok=True)
    (folder / SHARED_FILE).write_text("This file lives on the host. The guest reads it only "
                                      "through the shared folder.\n")
    _write_secret(folder)
    return folder


def _write_secret(folder: Path) -> None:
    path = folder / SECRET_FILE
    wanted = share_secret() + "\n"
    with contextlib.suppress(OSError):
        if path.read_text() == wanted:
            return
    path.write_text(wanted)


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


def _running_alpha() -> Guest:
    """alpha, running: the live one, else the lesson's, started."""
    live = registry.get(GUEST)
    return ensure_running(live if live is not None else guests()[0])


def doors_panel(guest: Guest, link: Link | None = None) -> DoorsPanel:
    """The Doors panel, its host port set to this learner's own port."""
    panel = DoorsPanel(guest, link=link)
    panel.host_port.value = task_port()
    return panel


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((net.LOOPBACK, port))
        except OSError:
            return False
    return True


# -- what the notebook shows ----------------------------------------------------------


def host_and_guest(*chosen: Guest) -> widgets.HTML:
    """The host OS and each running guest's own report, side by side."""
    host_os = _os_release_name(Path("/etc/os-release").read_text())
    columns = [[host_os, platform.release(), platform.machine(), platform.node()]]
    heads = ["", "host OS (this notebook's machine)"]
    for guest in chosen:
        if guest.state != GuestState.RUNNING:
            continue
        info = guest.agent("guest-get-osinfo")
        columns.append([str(info.get("pretty-name", "?")), str(info.get("kernel-release", "?")),
                        str(info.get("machine", "?")),
                        str(guest.agent("guest-get-host-name").get("host-name", "?"))])
        heads.append(f"guest OS ({guest.name})")
    labels = ["operating system", "kernel", "CPU architecture", "host name"]
    rows = [[label, *(escape(column[i]) for column in columns)]
            for i, label in enumerate(labels)]
    note = "" if len(columns) > 1 else (
        "<p><i>No guest of this lesson is running yet: only the host answers.</i></p>")
    return widgets.HTML(markup.text(markup.table([escape(h) for h in heads], rows) + note))


def architectures() -> widgets.HTML:
    """Host, alpha and arm side by side: whichever of the guests run now."""
    return host_and_guest(*(g for g in (registry.get(GUEST), registry.get(FOREIGN))
                            if g is not None))


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
    try:
        found = search_guest(guest, path)
        exists = path.exists()
    finally:
        path.unlink(missing_ok=True)
    hits = [line for line in found.splitlines() if path.name in line]
    verdict = ("✖ not found anywhere in the guest" if not hits
               else f"found: {', '.join(hits)}")
    return widgets.HTML(markup.text(
        f"<p>On the host, just now: <code>{escape(str(path))}</code> "
        f"(exists on the host: {exists})</p>"
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
    """Whether a guest for another processor can run here, and why not when it cannot."""
    arch = task_arch()
    if arch == host_arch():
        return False, "this kit's guest recipe has no guest for another processor."
    try:
        images.ensure_image(arch)
    except KitError as error:
        return False, f"the {arch} guest image cannot be built here: {error.message}"
    return True, f"an {arch} guest image is ready."


class HostOnlyServer:
    """A small web server on the host's 127.0.0.1 only, answering ``text`` and counting."""

    def __init__(self, text: str) -> None:
        body = (text + "\n").encode()
        self.answered = 0
        server_self = self

        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                server_self.answered += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._server = http.server.ThreadingHTTPServer((net.LOOPBACK, 0), Answer)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="kit-lesson2-host-only").start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def host_only_server(text: str) -> Iterator[int]:
    """A :class:`HostOnlyServer` for the length of a ``with``; yields its port."""
    server = HostOnlyServer(text)
    try:
        yield server.port
    finally:
        server.close()


# -- exercise 1: a port forward of your own -----------------------------------------


USERNET_FORWARD = re.compile(r"HOST_FORWARD\]\s+\d+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)")


def usernet_forwards(guest: Guest) -> dict[int, tuple[str, int]]:
    """QEMU's own list of host forwards (HMP ``info usernet``): host port -> (address, guest port).

    Asked of the hypervisor, not of the kit's bookkeeping: a forward counts
    only if QEMU really listens for it.
    """
    usernet = str(guest.qmp("human-monitor-command", {"command-line": "info usernet"}))
    found = {}
    for line in usernet.splitlines():
        match = USERNET_FORWARD.search(line)
        if match:
            address, host, _inside, guest_port = match.groups()
            found[int(host)] = (address, int(guest_port))
    return found


def check_forward() -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    port = task_port()
    live = usernet_forwards(found)
    evidence = ("QEMU's forwards (QMP `info usernet`): " + (
        " | ".join(f"{address}:{host} → guest port {inside}"
                   for host, (address, inside) in sorted(live.items())) or "none"),)
    if port not in live:
        others = ", ".join(f"127.0.0.1:{p}" for p in sorted(live))
        if others:
            return Verdict.fail(f"{GUEST} has a forward from {others}, but not from your port "
                                f"{port}.", *evidence,
                                hint=f"Open one from your own port: alpha.open_forward({port}, "
                                f"{WEB_PORT}).")
        return Verdict.fail(f"no host port leads into {GUEST} yet: the door is shut.",
                            *evidence,
                            hint=f"alpha.open_forward({port}, {WEB_PORT}) asks QEMU to pass "
                            f"127.0.0.1:{port} of the host to port {WEB_PORT} of the guest.")
    address, inside = live[port]
    if inside != WEB_PORT:
        return Verdict.fail(f"your port {port} leads to guest port {inside}, where nothing "
                            f"listens; the web server listens on port {WEB_PORT}.", *evidence,
                            hint=f"Close it (alpha.close_forward({port})) and open it again to "
                            f"guest port {WEB_PORT}.")
    try:
        page = apps.fetch(port, "/", timeout=5)
    except OSError as error:
        return Verdict.fail(f"host port {port} is forwarded, but nothing answered: {error}.",
                            *evidence,
                            hint="Check that alpha runs; close the forward and open it again.")
    loopback_only = all(a == net.LOOPBACK for a, _ in live.values())
    return Verdict.ok(
        f"the host reached alpha's web server through your door, {address}:{port}.", *evidence,
        f"HTTP GET {page.url} → {page.status} ({len(page.body)} bytes)",
        "every forward is bound to 127.0.0.1: other computers cannot use it" if loopback_only
        else "⚠ a forward is bound to another address than 127.0.0.1")


def solve_forward() -> None:
    alpha = _running_alpha()
    port = task_port()
    if alpha.forwards.get(port) != WEB_PORT:
        alpha.open_forward(port, WEB_PORT)


# -- exercise 2: a folder from the host, read inside the guest -----------------------


def check_share(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    folder = found.shared_folder
    if folder is None:
        return Verdict.fail(f"guest {GUEST} was made without a shared folder.",
                            hint="Make the lesson's guests again: alpha, beta, cable = "
                            "lesson2.guests(), then start them.")
    _write_secret(folder)
    mounts = found.run(["cat", "/proc/mounts"]).stdout
    mounted = [line for line in mounts.splitlines() if f" {doors.SHARE_MOUNT} " in line]
    evidence = (f"inside {GUEST}, /proc/mounts: " + (mounted[0] if mounted
                                                     else f"nothing at {doors.SHARE_MOUNT}"),
                f"on the host, {folder / SECRET_FILE} holds the kit's words for you")
    if not mounted:
        return Verdict.fail(f"the shared folder is not mounted in {GUEST} yet: that door is "
                            "shut.", *evidence,
                            hint="Press 'shared folder' in the Doors panel, or run "
                            "alpha.open_share().")
    if share_secret() not in answer:
        shown = answer.strip()[:60] or "nothing"
        return Verdict.fail(f"your cell gave {shown!r}, which is not what the host put in "
                            f"{SECRET_FILE}.", *evidence,
                            hint=f"Read it inside the guest: alpha.run('cat "
                            f"{doors.SHARE_MOUNT}/{SECRET_FILE}').stdout")
    return Verdict.ok("you read, inside the guest, a file that lives on the host: the shared "
                      "folder is the door it came through.", *evidence)


def solve_share() -> str:
    alpha = _running_alpha()
    alpha.open_share()
    return alpha.run(["cat", f"{doors.SHARE_MOUNT}/{SECRET_FILE}"]).stdout


# -- exercise 3: a cable between two guests ---------------------------------------------


def _beta_serves(beta: Guest) -> str:
    """What beta's /www/word.txt holds (planted now if the boot's planting was missed)."""
    held = beta.run(["cat", WORD_PATH]).stdout.strip()
    if not held:
        plant(beta, WORD_PATH, beta_word())
        held = beta_word()
    return held


def check_link(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    peer = find_guest(PEER)
    if isinstance(peer, Verdict):
        return peer
    cable = _link
    if cable is None or cable.a is not found or cable.b is not peer:
        return Verdict.fail(f"{GUEST} and {PEER} have no cable between them.",
                            hint="Make the lesson's guests again: alpha, beta, cable = "
                            "lesson2.guests(), then start them.")
    address = cable.address(peer)
    word = _beta_serves(peer)
    ping = eventually(lambda: found.run(f"ping -c 1 -W 2 {address}"), lambda r: r.ok,
                      seconds=4 if cable.is_up else 0)
    last = ping.stdout.strip().splitlines()[-1] if ping.stdout.strip() else "no reply"
    evidence = (f"the cable is {'plugged in' if cable.is_up else 'pulled out'} "
                "(QMP set_link on both cards)",
                f"ping from {GUEST} to {PEER} at {address}: {last}",
                f"{PEER} serves http://{address}/word.txt from its own disk")
    if not cable.is_up:
        return Verdict.fail(f"the cable between {GUEST} and {PEER} is pulled out.", *evidence,
                            hint="Plug it in: press 'link' in the Doors panel, or run "
                            "cable.up().")
    if not ping.ok:
        return Verdict.fail(f"{PEER} did not answer a ping across the cable yet.", *evidence,
                            hint="Wait a second and check again.")
    if word not in answer:
        shown = answer.strip()[:60] or "nothing"
        return Verdict.fail(f"your cell gave {shown!r}, which is not the word {PEER} serves.",
                            *evidence,
                            hint=f"From alpha, fetch beta's page over the cable: alpha.run('wget "
                            f"-qO- http://{address}/word.txt').stdout")
    return Verdict.ok(f"{GUEST} fetched {PEER}'s word over the cable you plugged in.",
                      *evidence)


def solve_link() -> str:
    alpha, beta, cable = guests()
    ensure_running(alpha)
    ensure_running(beta)
    if not cable.is_up:
        cable.up()
    plant(beta, WORD_PATH, beta_word())  # the boot's own planting may not have run yet
    address = cable.address(beta)
    fetched = eventually(lambda: alpha.run(f"timeout 3 wget -qO- http://{address}/word.txt"),
                         lambda r: r.ok, seconds=10)
    return fetched.stdout


# -- exercise 4: the way out ------------------------------------------------------------------

_way_out_server: HostOnlyServer | None = None


def way_out_word() -> str:
    """The learner's own word, served only on this host's 127.0.0.1."""
    return personal.secret("l2-way-out")


def way_out_port() -> int:
    """The port of the host-only server for exercise 4 (started on the first call)."""
    global _way_out_server
    if _way_out_server is None:
        _way_out_server = HostOnlyServer(way_out_word())
    return _way_out_server.port


def fetch_through_the_door(guest: Guest, port: int, seconds: int = 3) -> str:
    """From inside ``guest``, GET http://10.0.4.2:PORT/ (what it printed; empty if nothing)."""
    return guest.run(["wget", "-T", str(seconds), "-qO-", f"http://{HOST_THROUGH_DOOR}:{port}/"],
                     timeout=seconds + 10).stdout


def check_way_out(answer: str) -> Verdict:
    found = find_guest(GUEST)
    if isinstance(found, Verdict):
        return found
    port = way_out_port()
    server = _way_out_server
    assert server is not None
    word = way_out_word()
    evidence = [f"a web server on this host's 127.0.0.1:{port} only has answered "
                f"{server.answered} request(s)",
                f"{GUEST}'s internet door is {'open' if found.internet_open else 'closed'} now "
                "(QMP set_link on its card)"]
    if word not in answer:
        shown = answer.strip()[:60] or "nothing"
        return Verdict.fail(f"your cell gave {shown!r}, not the word the host-only server serves.",
                            *evidence,
                            hint=f"alpha.open_internet(), then alpha.run('wget -qO- "
                            f"http://{HOST_THROUGH_DOOR}:{port}/').stdout, then "
                            "alpha.close_internet().")
    if server.answered == 0:
        return Verdict.fail("the host-only server has answered no request yet.", *evidence,
                            hint="Fetch the page from inside alpha, through the door.")
    if found.internet_open:
        return Verdict.fail("you went out and came back with the word; now shut the door.",
                            *evidence, hint="alpha.close_internet() (or the Doors panel's "
                            "internet toggle).")
    after = fetch_through_the_door(found, port, seconds=2)
    evidence.append(f"a fetch from {GUEST} now: "
                    f"{'answered' if word in after else 'no answer (sealed)'}")
    if word in after:
        return Verdict.fail(f"{GUEST} still reaches the host with its door shut.", *evidence,
                            hint="Close the door: alpha.close_internet().")
    return Verdict.ok(f"{GUEST} went out through the door you opened, and is sealed again.",
                      *evidence)


def solve_way_out() -> str:
    alpha = ensure_running(guests()[0])
    port = way_out_port()
    alpha.open_internet()
    try:
        fetched = eventually(lambda: fetch_through_the_door(alpha, port),
                             lambda text: way_out_word() in text, seconds=10)
    finally:
        alpha.close_internet()
    return fetched


# -- exercise 5: another processor ---------------------------------------------------------


def check_foreign() -> Verdict:
    found = find_guest(FOREIGN)
    if isinstance(found, Verdict):
        return Verdict.fail(found.message,
                            hint=f"Make it with kit.Guest('{FOREIGN}', arch='{task_arch()}', "
                            f"memory_mb={arm_memory_mb()}, replace=True).start()")
    target = str(found.qmp("query-target")["arch"])
    given = hypervisor_memory_mb(found)
    inside = found.run(["uname", "-m"]).stdout.strip()
    accel = found.accelerator.name if found.accelerator else "?"
    evidence = (f"the hypervisor (QMP `query-target`): {target}, under {accel}",
                f"the hypervisor (QMP `query-memory-size-summary`): {given:.0f} MiB",
                f"inside the guest, `uname -m`: {inside}",
                f"this host, platform.machine(): {platform.machine()}")
    want_arch, want_memory = task_arch(), arm_memory_mb()
    if ARCH_NAMES.get(target, target) != want_arch:
        return Verdict.fail(f"guest {FOREIGN} is an {target} machine; the task asks for "
                            f"{want_arch}.", *evidence,
                            hint=f"Pass arch='{want_arch}' to kit.Guest(...).")
    if round(given) != want_memory:
        return Verdict.fail(f"guest {FOREIGN} has {given:.0f} MiB; your task asks for "
                            f"{want_memory} MiB.", *evidence,
                            hint=f"Make it again: kit.Guest('{FOREIGN}', arch='{want_arch}', "
                            f"memory_mb={want_memory}, replace=True).start()")
    kind = "another" if want_arch != host_arch() else "the host's own"
    return Verdict.ok(f"guest {FOREIGN} is an {target} computer with {want_memory} MiB, on "
                      f"{kind} kind of processor than this {host_arch()} host.", *evidence)


def solve_foreign() -> Guest:
    live = registry.get(FOREIGN)
    if (live is not None and live.state == GuestState.RUNNING and live.arch == task_arch()
            and live.memory_mb == arm_memory_mb()):
        return live
    return Guest(FOREIGN, arch=task_arch(), memory_mb=arm_memory_mb(), replace=True,
                 boot_timeout=FOREIGN_BOOT_TIMEOUT).start()


# -- predictions -------------------------------------------------------------------------

REACH_CHOICES = ("No: with no door open, nothing of the host is reachable",
                 f"Yes: the guest reaches it at {HOST_FROM_GUEST}")  # measured: No


def measure_loopback() -> float:
    """1 when alpha fetched a page from a server on the host's 127.0.0.1 only, else 0."""
    alpha = _running_alpha()
    word = personal.secret("l2-loopback")
    with host_only_server(word) as port:
        got = alpha.run(["wget", "-T", "5", "-qO-", f"http://{HOST_FROM_GUEST}:{port}/"],
                        timeout=20)
    return 1.0 if word in got.stdout else 0.0


def explain_loopback(guess: float, measured: float) -> str:
    del guess
    if measured:
        return ("The kit started a small web server on this host's 127.0.0.1 only, and alpha "
                f"fetched its page from {HOST_FROM_GUEST}: this guest is not sealed. Its "
                "network should be restrict=on; run `python -m kit doctor` and tell whoever "
                "looks after this kit.")
    return ("The kit started a small web server on this host's 127.0.0.1 only, and alpha "
            f"could not fetch it from {HOST_FROM_GUEST}: QEMU's user network runs here with "
            "restrict=on, so it answers every packet alpha sends to the host or beyond by "
            "dropping it (or refusing the connection). Doors lead in; nothing leads out "
            "until someone opens the way out, the internet door of section 6.")


WRITE_CHOICES = ("The write fails: the guest may only read",
                 "The file appears in the host's folder",
                 "The file is kept, but only inside the guest")


def measure_write() -> float:
    """Which of WRITE_CHOICES happened when alpha wrote into its mounted shared folder."""
    alpha = _running_alpha()
    if not alpha.share_open:
        alpha.open_share()
    folder = alpha.shared_folder
    assert folder is not None  # the lesson's alpha has one
    on_host = folder / NOTE
    on_host.unlink(missing_ok=True)
    wrote = alpha.run(f"echo hi > {doors.SHARE_MOUNT}/{NOTE}")
    if not wrote.ok:
        return 0.0
    if on_host.exists():
        on_host.unlink()
        return 1.0
    return 2.0


def explain_write(guess: float, measured: float) -> str:
    del guess
    if measured == 0:
        return ("The guest's shell said 'Read-only file system'. The kit gave QEMU the folder "
                "with readonly=on and mounted it read-only in the guest: data comes in, "
                "nothing goes back. A share declared with shared_writable=True would let the "
                "guest change the host's files, a wider door.")
    return "This share is writable: it was declared with shared_writable=True."


def measure_foreign_boot() -> float:
    """Seconds for a guest of another processor to boot: arm's own, else a timed one's."""
    live = registry.get(FOREIGN)
    return time_boot(live if live is not None and live.arch == task_arch() else None,
                     lambda: Guest(TIMER, arch=task_arch(), memory_mb=TIMER_MEMORY_MB,
                                   replace=True, boot_timeout=FOREIGN_BOOT_TIMEOUT))


def explain_foreign_boot(guess: float, measured: float) -> str:
    del guess
    alpha = registry.get(GUEST)
    native = alpha.boot_seconds if alpha is not None else None
    accel = alpha.accelerator.name if alpha is not None and alpha.accelerator else "TCG"
    words = (f"alpha, for this host's own processor, booted in {native:.1f} s under {accel}. "
             if native is not None else "")
    image = images.find_image(task_arch())
    kernel = f" ({image.kernel_summary()})" if image is not None else ""
    return (words + f"A guest for {task_arch()} always runs under TCG on this host: QEMU "
            "translates each of its instructions into the host's, whatever the hardware offers "
            "(KVM only runs guests of the host's own kind). Its kernel differs too: Debian's "
            f"general cloud kernel for that processor{kernel}, where alpha boots the kit's "
            "small one.")


reach = Prediction(
    "l2-p-reach",
    "The kit is about to start a small web server on this host that listens on **127.0.0.1 "
    f"only**. No door of alpha is open toward it. Can alpha fetch its page, at "
    f"{HOST_FROM_GUEST} (the address where QEMU's user network shows the host)?",
    measure_loopback, choices=REACH_CHOICES, explain=explain_loopback,
)
write_share = Prediction(
    "l2-p-write",
    f"alpha's shared folder is mounted read-only at {doors.SHARE_MOUNT}. What happens when the "
    f"guest runs `echo hi > {doors.SHARE_MOUNT}/{NOTE}`?",
    measure_write, choices=WRITE_CHOICES, explain=explain_write,
)
foreign_boot = Prediction(
    "l2-p-foreign-boot",
    "alpha booted in the time printed above. How many **seconds** will a guest built for "
    "**another processor** take to boot on this host?",
    measure_foreign_boot, unit="s", explain=explain_foreign_boot,
)


# -- the lesson ---------------------------------------------------------------------------

forward = Checkpoint(
    "l2-forward", "A door of your own: a port forward",
    "Open a port forward from **your host port** (the cell prints it) to port 80 of `alpha`, "
    "where its web server listens. The kit then fetches the page from the host through it.",
    check_forward, solve=solve_forward,
    hint="alpha.open_forward(HOST_PORT, GUEST_PORT): the host port is yours, the guest port is "
    "the web server's, 80. The Doors panel's 'port forward' toggle does the same.",
    solution="Ask QEMU for the forward, with your port:",
    code=f"opened = alpha.open_forward(lesson2.task_port(), {WEB_PORT})",
)
share = Checkpoint(
    "l2-share", "A host folder, read inside the guest",
    f"Mount alpha's shared folder (the Doors panel's **shared folder**, or "
    f"`alpha.open_share()`), then read `{doors.SHARE_MOUNT}/{SECRET_FILE}` **inside alpha** "
    "with `alpha.run(...)`: the kit put words of your own in it, on the host.",
    check_share, takes_answer=True, solve=solve_share,
    hint=f"alpha.open_share() mounts the folder at {doors.SHARE_MOUNT}; then "
    f"alpha.run('cat {doors.SHARE_MOUNT}/{SECRET_FILE}').stdout reads it inside the guest.",
    solution="Open the door, then read the file inside the guest:",
    code=f"alpha.open_share()\nwords = alpha.run('cat {doors.SHARE_MOUNT}/{SECRET_FILE}')"
    ".stdout",
)
link = Checkpoint(
    "l2-link", "A cable between two guests",
    f"Plug the cable between {GUEST} and {PEER} in (the Doors panel's **link**, or "
    f"`cable.up()`). Then, **from {GUEST}**, fetch the word {PEER}'s web server serves at "
    "`http://10.0.3.2/word.txt`: it is a word of your own, on beta's disk only.",
    check_link, takes_answer=True, solve=solve_link,
    hint="cable.up() plugs it in; then alpha.run('wget -qO- http://10.0.3.2/word.txt').stdout "
    "fetches beta's page from inside alpha, over the cable.",
    solution="Plug the cable in, then fetch the page from alpha:",
    code="cable.up()\nword = alpha.run('wget -qO- http://10.0.3.2/word.txt').stdout",
)
way_out = Checkpoint(
    "l2-way-out", "The way out, opened and shut",
    f"Open {GUEST}'s **internet door**, fetch (from inside {GUEST}) the word a server on this "
    f"host's 127.0.0.1 serves at `http://{HOST_THROUGH_DOOR}:PORT/` (the cell prints PORT), "
    "then **shut the door again**.",
    check_way_out, takes_answer=True, solve=solve_way_out,
    hint="alpha.open_internet() opens it (or the Doors panel's internet toggle); "
    "alpha.run(['wget', '-qO-', URL]).stdout fetches from inside; alpha.close_internet() shuts "
    "it.",
    solution="Open the door, fetch the page from inside alpha, shut the door:",
    code=("alpha.open_internet()\nport = lesson2.way_out_port()\n"
          f"page = alpha.run(['wget', '-qO-', f'http://{HOST_THROUGH_DOOR}:{{port}}/']).stdout\n"
          "alpha.close_internet()"),
)
foreign = Checkpoint(
    "l2-foreign", "Another processor on top of this one",
    "Make a guest called `arm` for **another processor** than the host's, with **your** "
    "memory size (the cell prints both), and start it.",
    check_foreign, solve=solve_foreign,
    hint="kit.Guest('arm', arch=..., memory_mb=..., replace=True).start(): arch names the "
    "processor the machine is built with.",
    solution="Describe the machine with the other architecture and your size, then start it:",
    code="arm = kit.Guest('arm', arch=lesson2.task_arch(), memory_mb=lesson2.arm_memory_mb(), "
    "replace=True).start()",
)

quiz = Quiz([
    Question("l2-q1", "In this lesson, which is the host OS?", [
        Choice("The Linux running this notebook", True,
               "The host OS runs on the real hardware; the hypervisor is one of its programs."),
        Choice("The busybox Linux that boots inside alpha", False,
               "That one is a guest OS: it runs on hardware QEMU makes up."),
        Choice("QEMU, which runs the guests", False,
               "QEMU is the hypervisor, a program running on the host OS, not an OS."),
    ]),
    Question("l2-q2", "Why could alpha not find the file made on the host a second earlier?", [
        Choice("Its files are its own; no share was open", True,
               "A guest has its own disk. Host files reach it only through a door such as the "
               "shared folder, which then showed one folder, not the host's whole disk."),
        Choice("The guest was too slow to notice a brand-new file", False,
               "Waiting changes nothing: no path leads from the host's /tmp into the guest."),
        Choice("The host hid it with file permissions", False,
               "It was an ordinary file in /tmp, readable by anyone on the host; the guest "
               "simply has no view of the host's disk."),
    ]),
    Question("l2-q3", "Your forward listens on 127.0.0.1 only. Who can reach alpha's web "
             "server through it?", [
        Choice("Programs on this host", True,
               "127.0.0.1 is the loopback address: only programs on this very host use it. "
               "Another computer would need a forward bound to a public address, a wider door "
               "the kit never opens."),
        Choice("Any computer on the same network as this host", False,
               "127.0.0.1 is never reachable from another computer: it is each machine's own "
               "loopback."),
        Choice("Nobody: a guest can never be reached from outside", False,
               "The forward is an opening: the kit fetched the page through it from the host."),
    ]),
    Question("l2-q4", "The shared folder was read-only. What happened when the guest wrote "
             "into it?", [
        Choice("The write failed: read-only file system", True,
               "Both QEMU (readonly=on) and the guest's mount (ro) refuse it: data enters "
               "the guest, nothing comes back."),
        Choice("The file appeared in the host's folder anyway", False,
               "Only a writable share, asked for explicitly, lets the guest change host files."),
        Choice("The guest's kernel crashed", False,
               "A refused write is an ordinary error message; the guest carries on."),
    ]),
    Question("l2-q5", "How can this x86_64 host run an aarch64 guest?", [
        Choice("It cannot: a guest must always match the host's processor", False,
               "With KVM it must; QEMU's TCG translates any guest's machine code, so it can "
               "emulate another processor, slowly."),
        Choice("QEMU's TCG translates each aarch64 instruction into x86 ones", True,
               "It costs speed, since every instruction is translated, but it lets a "
               "different OS, even one for another CPU, run on top of this one."),
        Choice("The host's processor switches into an ARM mode", False,
               "x86 processors have no ARM mode: everything is done in software."),
    ]),
    Question("l2-q6", "With no door open, can alpha reach a server that listens only on the "
             "host's 127.0.0.1?", [
        Choice("No: QEMU drops what alpha sends to the host (restrict=on)", True,
               "alpha's first card is on a restricted user network: QEMU forwards into the "
               "guest, and drops every packet the guest sends to the host or beyond."),
        Choice("Yes, at 10.0.2.2, through QEMU's user network", False,
               "That is how QEMU's user network behaves without restrict=on; the prediction "
               "measured it here: refused."),
        Choice("Only if alpha's root user changes its routes", False,
               "The seal is QEMU's, outside the guest: whatever alpha's root does inside, "
               "frames on a sealed card go nowhere."),
    ]),
    Question("l2-q7", "You opened alpha's internet door and fetched the host-only page. What "
             "else could alpha reach while the door was open?", [
        Choice("Whatever this host reaches, its own 127.0.0.1 services included", True,
               "The door is outbound NAT through the host: every connection alpha opens "
               "leaves as one of the host's, so an open way out is a way into what the host "
               "serves. That is why it starts closed."),
        Choice("Only the one page the exercise served", False,
               "The door is not a rule for one address: 10.0.4.2 is the host itself, every "
               "port of its loopback, and beyond it the host's networks."),
        Choice("Nothing more: an open door only lets the host in", False,
               "That is a port forward. The internet door is the other direction: the guest "
               "goes out."),
    ]),
])

lesson = Lesson(2, [forward, share, link, way_out, foreign], quiz,
                [reach, write_share, foreign_boot])

