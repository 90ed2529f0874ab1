"""Lesson 8, The transition to containers: the same userland as a container and as a VM.

The notebook ``lessons/08-containers.ipynb`` shows these; the tests import
them and check each exercise both ways.

Demonstrations:

* :func:`compare` starts the container ``l8-box`` (:mod:`kit.labs.containers`)
  and the virtual machine ``l8-vm`` from the same busybox userland and
  measures both in one run: time until each answers a command, host memory,
  whose kernel each reports.  :class:`CompareView` shows it as a table, a
  plot and a stack diagram that puts the container on the host's kernel.
* :class:`CgroupView`: a container is namespaces *plus cgroups*.  The kit puts
  the container in a cgroup with a memory limit and runs a program over it
  (the host's kernel kills it), against the VM's ``-m``; where this host's
  cgroups are not writable, it says so plainly.

The exercises are the learner's own work:

1. start a container of their own, named for them, with one line of code;
2. end it from the host with one signal, as any host process can be;
3. in a JupyterLab terminal, make a container by hand with ``unshare``, with
   a hostname of their own, which the kit then finds among the host's
   processes (its UTS namespace is not the host's, its hostname is theirs).

Where this host refuses the kit's containers (for a user other than root: no
user namespaces in a chroot, under Docker's default seccomp profile or
Ubuntu 24.04's AppArmor; for root too: no right to make namespaces, as in a
Docker container; or ``KIT_NO_USER_NAMESPACES=1``), every cell still runs:
the checks and views say why nothing could start, what would fix it, and
what works all the same.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import re
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphviz
import ipywidgets as widgets
import psutil

from kit.core.errors import KitError, SetupError
from kit.core.state import GuestState
from kit.hypervisor import qemu, registry
from kit.hypervisor.guest import Guest
from kit.infrastructure import namespaces
from kit.labs import containers
from kit.labs.containers import Container
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.checks import eventually
from kit.lesson.lesson import Lesson
from kit.lesson.lesson07_limitations import guest_memory_mb
from kit.lesson.prediction import Outcome, Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import colours, markup, plots
from kit.view.diagram import render_svg
from kit.view.markup import escape
from kit.widgets.base import KitWidget, working

BOX = "l8-box"
VM = "l8-vm"
LIMIT_MB = 48  # the container's cgroup memory limit
SMALL_JOB_MB = 16  # a program under the limit
BIG_JOB_MB = 96  # a program over it
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "user")

_last: dict[str, Side] = {}
_refused: list[str] = []  # why the last container start was refused, if it was
_views: weakref.WeakSet[KitWidget] = weakref.WeakSet()
_terminal: list[subprocess.Popen[bytes]] = []  # the demo's own "terminal" container
_cages: list[Cage] = []


def box_name() -> str:
    """The name of this learner's own container, e.g. ``box-417``."""
    return f"box-{personal.number('l8-box', 100, 999)}"


def hostname_secret() -> str:
    """The hostname this learner gives the container they make by hand."""
    return personal.secret("l8-hostname")


def unshare_command() -> str:
    """What the learner types in a terminal (no user namespace needed as root)."""
    user = "-r " if namespaces.needs_user_namespace() else ""
    return (f"unshare {user}--fork --pid --mount-proc --uts "
            f"sh -c 'hostname {hostname_secret()}; sleep 600'")


# -- can this host run containers? --------------------------------------------------------


def containers_refused() -> str | None:
    """Why this host refuses the kit's containers, in plain words; None if it runs them.

    The doctor asks the same question (:func:`kit.infrastructure.namespaces.refusal`:
    the host's switches, then one real ``unshare``), so both always agree.
    As root no user namespace is needed, so a chroot refuses nothing.
    """
    found = namespaces.refusal()
    return None if found is None else found.why


def _start(name: str) -> Container:
    """Start a kit container, noting a refusal for the views and checks to explain."""
    try:
        started = Container(name).start()
    except KitError as error:
        _refused[:] = [error.message]
        raise
    _refused.clear()
    return started


def _refusal_hint() -> str:
    found = namespaces.refusal()
    fix = f"{found.what_to_do} " if found is not None else ""
    return (f"{fix}Meanwhile the virtual-machine parts of the lesson still work (see the "
            "lesson's first box for what else does).")


# -- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One of the two, measured: seconds until it answered a command, memory, kernel."""

    kind: str
    ready_s: float
    rss_mb: float
    uss_mb: float
    kernel: str
    hostname: str
    pid_inside: str
    host_pid: int


def box() -> Container | None:
    """The lesson's running container, if any."""
    return next((c for c in containers.containers() if c.name == BOX and c.pid), None)


def vm() -> Guest | None:
    found = registry.get(VM)
    return found if found is not None and found.state == GuestState.RUNNING else None


def start_box() -> Side:
    """Start the container (stopping an old one of the lesson first) and measure it."""
    old = next((c for c in containers.containers() if c.name == BOX), None)
    if old is not None:
        old.stop()
    called = time.monotonic()
    container = _start(BOX)
    container.run("true")
    ready = time.monotonic() - called
    _cage_box(container)
    rss, uss = container.memory_mb()
    return _measured("container", container.run, ready, rss, uss, container.pid or 0)


def start_vm() -> Side:
    old = vm()
    if old is not None:
        old.stop()
    called = time.monotonic()
    guest = Guest(VM, memory_mb=guest_memory_mb(), replace=True).start()
    ready = time.monotonic() - called
    info = psutil.Process(guest.pid).memory_full_info()
    return _measured("virtual machine", lambda c: guest.run(["sh", "-c", c]), ready,
                     info.rss / 2**20, info.uss / 2**20, guest.pid or 0)


def _measured(kind: str, run: Callable[[str], Any], ready: float, rss: float, uss: float,
              host_pid: int) -> Side:
    def ask(command: str) -> str:
        return str(run(command).stdout).strip()

    return Side(kind, ready, rss, uss, ask("uname -r"), ask("hostname"), ask("echo $$"),
                host_pid)


def compare(progress: Callable[[str], None] | None = None) -> dict[str, Side]:
    """Start both, one after the other, and measure them in the same run.

    The new measurement replaces the last one.  Where the container is
    refused, the VM is still measured and the container is left out.
    """
    say = progress or (lambda text: None)
    _last.clear()
    say("1/2: starting the container: new namespaces, one process, no kernel to boot…")
    with contextlib.suppress(KitError):  # _refused says why; the VM is measured all the same
        _last["container"] = start_box()
    say("2/2: starting the virtual machine: QEMU builds a machine, its kernel boots…")
    _last["virtual machine"] = start_vm()
    _refresh_views()
    return dict(_last)


def last() -> dict[str, Side]:
    return dict(_last)


def compare_rows(sides: dict[str, Side]) -> list[list[str]]:
    host = ["the host", "", "", "", escape(platform.release()), escape(socket.gethostname()),
            str(os.getpid()) + " (this notebook)", ""]
    rows = [[escape(s.kind), f"{s.ready_s:.3f}", f"{s.rss_mb:.1f}", f"{s.uss_mb:.1f}",
             escape(s.kernel), escape(s.hostname), escape(s.pid_inside), str(s.host_pid)]
            for s in sides.values()]
    if "container" not in sides and _refused:
        rows.insert(0, ["container", "—", "—", "—", f"could not start: {escape(_refused[0])}",
                        "", "", ""])
    return [*rows, host]


def compare_svg(sides: dict[str, Side]) -> bytes:
    groups = [(s.kind, [s.ready_s * 1000, s.rss_mb]) for s in sides.values()]
    return plots.paired_bars_svg(["until it answers a command (ms)", "host memory, RSS (MiB)"],
                                 groups, title="the same userland, two ways (log scale)",
                                 log=True)


def _refresh_views() -> None:
    for view in list(_views):
        refresh = getattr(view, "refresh", None)
        if callable(refresh):
            view.attempt("showing the new measurement", refresh)


# -- the stack: the container sits on the host's kernel --------------------------------------


RUNNING_FILL, IDLE_FILL, KERNEL_FILL = "#CCECE3", "#FFFFFF", "#DDF0FA"


def stack_graph(graph_id: str = "l8stack") -> graphviz.Digraph:
    """Both stacks side by side on one host kernel, drawn from the live state.

    The structure never changes (only labels and styles), so the picture
    stays put as things start and stop.
    """
    container, guest = box(), vm()
    limit = _cages[0].limit_words() if _cages and container is not None else "none set"
    graph = graphviz.Digraph(graph_attr={"rankdir": "BT", "id": graph_id, "nodesep": "0.3",
                                         "ranksep": "0.25", "bgcolor": "transparent"},
                             node_attr={"shape": "box", "style": "rounded,filled",
                                        "fontname": "Helvetica", "fontsize": "10"})

    def node(name: str, label: str, live: bool, fill: str = RUNNING_FILL, **attrs: str) -> None:
        style = "rounded,filled" if live else "rounded,dashed"
        graph.node(name, label, id=f"{graph_id}_{name}", style=style,
                   fillcolor=fill if live else IDLE_FILL, **attrs)

    vm_pid = f"host PID {guest.pid}" if guest is not None else "not running"
    box_pid = f"host PID {container.pid}" if container is not None else "not running"
    guest_kernel = next((s.kernel for s in _last.values() if s.kind == "virtual machine"), "")
    node("hw", "INFRASTRUCTURE · this host's CPUs and memory", True, "#EEEEEE", width="5")
    node("kernel", f"HOST KERNEL · Linux {platform.release()}\none kernel for the host, "
         "QEMU and every container", True, KERNEL_FILL, width="5")
    node("qemu", f"HYPERVISOR · QEMU ({vm_pid})\nbuilds a machine for {VM}", guest is not None)
    node("gkernel", f"GUEST KERNEL · Linux {guest_kernel or '(its own)'}\n{VM}'s own, "
         "booted by QEMU", guest is not None)
    node("vmapps", f"busybox userland of {VM}", guest is not None)
    kinds = own_namespaces(container.pid) if container is not None and container.pid else []
    node("ns", f"CONTAINER {BOX} ({box_pid})\nnamespaces: {' '.join(kinds or NAMESPACES)}\n"
         f"cgroup memory limit: {limit}", container is not None)
    node("nokernel", "no kernel of its own:\nits system calls go to the host kernel",
         container is not None, "#F5F5F5", fontcolor="#555555")
    node("boxapps", f"busybox userland of {BOX}\n(the same files)", container is not None)
    for low, high in (("hw", "kernel"), ("kernel", "qemu"), ("qemu", "gkernel"),
                      ("gkernel", "vmapps"), ("kernel", "ns"), ("ns", "nokernel"),
                      ("nokernel", "boxapps")):
        graph.edge(low, high, arrowhead="none", color="#888888")
    return graph


STACK_SCOPE = "kit-l8-stack"


def stack_svg() -> str:
    """The stacks picture, with its dark-theme twin colours (kit.view.colours)."""
    svg = render_svg(stack_graph())
    css = colours.dark_css(svg, f".{STACK_SCOPE}")
    return f'<div class="{STACK_SCOPE}">{svg}<style>{css}</style></div>'


class CompareView(KitWidget):
    """Start the container and the VM, and show both measured side by side."""

    def __init__(self) -> None:
        super().__init__("container and VM")
        self.go = widgets.Button(description="Start both and measure", icon="play",
                                 layout=widgets.Layout(width="auto", flex="none"))
        self.go.on_click(self._callback("starting both", self.measure))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.stack = widgets.HTML()
        self.plot = widgets.Image(format=plots.IMAGE_FORMAT)
        self._set_body(self.go, self.status, self.table, self.stack, self.plot)
        _views.add(self)
        self.refresh()

    def measure(self) -> None:
        with working(self.status, self.go) as say:
            compare(say)
            say.done(f"measured in {say.seconds:.1f} s; this replaces the last measurement")

    def refresh(self) -> None:
        sides = last()
        self.stack.value = stack_svg()
        if not sides:
            self.table.value = markup.text("<i>Nothing measured yet: press the button.</i>")
            self.plot.layout.display = "none"
            return
        header = ["", "ready after (s)", "RSS (MiB)", "USS (MiB)", "kernel (uname -r)",
                  "hostname", "its PID, inside", "host PID"]
        self.table.value = markup.text(markup.table(header, compare_rows(sides)))
        self.plot.value = compare_svg(sides)
        self.plot.layout.display = "block"


# -- cgroups: a limit on what the container may use ----------------------------------------------


@dataclass(frozen=True)
class Cage:
    """A cgroup of the memory controller that the kit made: its folder and cgroup version."""

    path: Path
    version: int

    @property
    def limit_file(self) -> Path:
        return self.path / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")

    def limit_mb(self) -> float:
        text = self.limit_file.read_text().strip()
        return float("inf") if text == "max" else int(text) / 2**20

    def limit_words(self) -> str:
        return f"{self.limit_mb():.0f} MiB ({self.limit_file.name})"

    def oom_kills(self) -> int:
        """How many times the kernel killed a process here for going over the limit."""
        events = self.path / ("memory.events" if self.version == 2 else "memory.oom_control")
        try:
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (they go as the container stops)."""
        deadline = time.monotonic() + 3
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)


def memory_hierarchy() -> tuple[int, Path, Path] | None:
    """(cgroup version, mount point, this process's own cgroup folder) of the memory controller."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for version in (1, 2):
        for line in own:
            _, controllers, path = line.split(":", 2)
            if version == 1 and "memory" not in controllers.split(","):
                continue
            if version == 2 and controllers != "":
                continue
            mount = _mount_of(mounts, version)
            if mount is None:
                continue
            if version == 2 and "memory" not in _read(mount / "cgroup.controllers").split():
                continue
            folder = mount / path.lstrip("/")
            return version, mount, folder if folder.is_dir() else mount
    return None


def _mount_of(mounts: list[str], version: int) -> Path | None:
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields, kinds = left.split(), right.split()
        if len(fields) < 5 or len(kinds) < 3:
            continue
        if version == 2 and kinds[0] == "cgroup2":
            return Path(fields[4])
        if version == 1 and kinds[0] == "cgroup" and "memory" in kinds[2].split(","):
            return Path(fields[4])
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def make_cage(limit_mb: int = LIMIT_MB) -> Cage | str:
    """A new memory cgroup with ``limit_mb`` for the container; or why the host allows none.

    It is made under this notebook's own cgroup where it can be (so any limit
    the notebook is under still applies), else at the hierarchy's top.
    """
    found = memory_hierarchy()
    if found is None:
        return "this host has no cgroup memory controller that this notebook can see"
    version, mount, own = found
    reasons = []
    for parent in dict.fromkeys((own, mount)):
        folder = parent / f"kit-{BOX}-{os.getpid()}"
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            reasons.append(f"cannot make a cgroup in {parent} ({error.strerror})")
            continue
        cage = Cage(folder, version)
        if not cage.limit_file.exists():
            cage.remove()
            reasons.append(f"{parent} gives its children no memory controller")
            continue
        try:
            cage.limit_file.write_text(str(limit_mb * 2**20))
        except OSError as error:
            cage.remove()
            reasons.append(f"cannot write {cage.limit_file.name} in {parent} "
                           f"({error.strerror})")
            continue
        swap = folder / ("memory.swap.max" if version == 2 else "memory.memsw.limit_in_bytes")
        with contextlib.suppress(OSError):  # no swap accounting: nothing to do
            swap.write_text("0" if version == 2 else str(limit_mb * 2**20))
        return cage
    return "; ".join(reasons)


def cage() -> Cage | str:
    """The lesson's cgroup (made once), or why this host's cgroups are not writable here."""
    if not _cages:
        made = make_cage()
        if isinstance(made, str):
            return made
        _cages.append(made)
    return _cages[0]


def _cage_box(container: Container) -> None:
    """Put the container's PID 1 in the lesson's cgroup, if there is one."""
    found = cage()
    if isinstance(found, Cage) and container.pid:
        with contextlib.suppress(OSError):
            found.add(container.pid)


def cgroup_of(pid: int) -> str:
    """The memory cgroup a host process is in (its line of /proc/PID/cgroup)."""
    for line in _read(Path(f"/proc/{pid}/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") or controllers == "":
            return path
    return "?"


@dataclass(frozen=True)
class JobResult:
    exit_code: int
    stdout: str
    stderr: str


def run_caged(container: Container, command: str, timeout: float = 30.0) -> JobResult:
    """Run ``command`` in the container, its processes in the lesson's cgroup.

    The host's ``sh`` writes its own PID into the cgroup, then becomes
    ``nsenter``: everything the command starts is born in the cgroup.
    """
    found = cage()
    if not isinstance(found, Cage):
        raise SetupError(f"there is no cgroup to run in: {found}.",
                         hint="This host's cgroups are not writable from this notebook.")
    if container.pid is None:
        raise SetupError(f"container {container.name} is not running.",
                         hint="Start it first.")
    inner = ["nsenter", f"--target={container.pid}",
             *containers.enter_user_namespace(container.pid), "--mount", "--uts", "--ipc",
             "--net", "--pid", "--root", "--wd", "/bin/sh", "-c", command]
    argv = ["/bin/sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "sh",
            str(found.path / "cgroup.procs"), *inner]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    return JobResult(done.returncode, done.stdout, done.stderr)


def job(megabytes: int) -> str:
    """A shell line: ``dd`` fills a buffer of ``megabytes`` MiB, then ``wc`` counts its bytes."""
    return f"yes | dd bs={megabytes}M count=1 iflag=fullblock | wc -c"


def run_job(container: Container, found: Cage, megabytes: int) -> str:
    """Run :func:`job` in the container's cgroup; what happened, in words."""
    before = found.oom_kills()
    result = run_caged(container, job(megabytes))
    kills = found.oom_kills() - before
    held = result.stdout.strip()
    if held == str(megabytes * 2**20) and not kills:
        return f"ran: dd held its {megabytes} MiB and passed them on"
    if kills:
        return (f"killed by the host's kernel: over the cgroup's limit (the cgroup counted "
                f"{kills} out-of-memory kill{'s' if kills > 1 else ''}; {held or 0} bytes "
                "passed on)")
    return f"failed (exit code {result.exit_code}): {result.stderr.strip()[:80]}"


@dataclass(frozen=True)
class Limits:
    """The container's memory limit against the VM's, measured."""

    cage: str  # the cgroup's folder, or why there is none
    limit_mb: float | None
    box_memtotal_mb: float
    host_memtotal_mb: float
    vm_memory_mb: int
    vm_memtotal_mb: float
    small: str
    big: str


def memtotal_mb(text: str) -> float:
    found = re.search(r"MemTotal:\s+(\d+)\s+kB", text)
    return int(found.group(1)) / 1024 if found else 0.0


def _ensure_box() -> Container:
    running = box()
    if running is not None:
        return running
    refused = containers_refused()
    if refused:
        raise SetupError(f"the container cannot start on this host: {refused}.",
                         hint=_refusal_hint())
    old = next((c for c in containers.containers() if c.name == BOX), None)
    if old is not None:
        old.stop()
    started = _start(BOX)
    _cage_box(started)
    return started


def _ensure_vm() -> Guest:
    running = vm()
    if running is not None:
        return running
    return Guest(VM, memory_mb=guest_memory_mb(), replace=True).start()


_limits: list[Limits] = []


def measure_limits(progress: Callable[[str], None] | None = None) -> Limits:
    """The container in its cgroup and the VM with its -m: what each sees and may use."""
    say = progress or (lambda text: None)
    say("starting the container, if it is not running…")
    container = _ensure_box()
    say("starting the virtual machine, if it is not running…")
    guest = _ensure_vm()
    say(f"making a cgroup with a {LIMIT_MB} MiB memory limit for the container…")
    found = cage()
    host_total = memtotal_mb(_read(Path("/proc/meminfo")))
    vm_total = memtotal_mb(guest.run(["cat", "/proc/meminfo"]).stdout)
    if isinstance(found, Cage):
        _cage_box(container)
        say(f"inside the container, a program fills {SMALL_JOB_MB} MiB, then one fills "
            f"{BIG_JOB_MB} MiB…")
        box_total = memtotal_mb(run_caged(container, "cat /proc/meminfo").stdout)
        small = run_job(container, found, SMALL_JOB_MB)
        big = run_job(container, found, BIG_JOB_MB)
        result = Limits(str(found.path), found.limit_mb(), box_total, host_total,
                        guest.memory_mb, vm_total, small, big)
    else:
        box_total = memtotal_mb(container.run("cat /proc/meminfo").stdout)
        skipped = "not run: there is no limit to show on this host"
        result = Limits(found, None, box_total, host_total, guest.memory_mb, vm_total,
                        skipped, skipped)
    _limits[:] = [result]
    _refresh_views()
    return result


def limits_rows(found: Limits) -> list[list[str]]:
    if found.limit_mb is not None:
        ceiling = (f"its cgroup: {found.limit_mb:.0f} MiB<br><small><code>"
                   f"{escape(found.cage)}</code></small>")
    else:
        ceiling = (f"none: this host's cgroups are not writable from this notebook "
                   f"({escape(found.cage)})")
    return [
        ["what limits its memory", ceiling,
         f"the machine QEMU built: <code>-m {found.vm_memory_mb}</code> MiB"],
        ["MemTotal inside (<code>/proc/meminfo</code>)",
         f"{found.box_memtotal_mb:,.0f} MiB: the host's own "
         f"({found.host_memtotal_mb:,.0f} MiB)",
         f"{found.vm_memtotal_mb:,.0f} MiB: its own machine's, less what its kernel keeps"],
        [f"a program filling {SMALL_JOB_MB} MiB inside", escape(found.small), "—"],
        [f"a program filling {BIG_JOB_MB} MiB inside", escape(found.big), "—"],
    ]


class CgroupView(KitWidget):
    """The container's cgroup memory limit against the VM's ``-m``, measured live."""

    def __init__(self) -> None:
        super().__init__("memory limits")
        self.go = widgets.Button(description="Limit and measure", icon="tachometer",
                                 layout=widgets.Layout(width="auto", flex="none"),
                                 tooltip="Put the container in a cgroup with a memory limit, "
                                 "run programs under and over it, and ask the VM too")
        self.go.on_click(self._callback("measuring the limits", self.measure))
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self._set_body(self.go, self.status, self.table)
        _views.add(self)
        self.refresh()

    def measure(self) -> None:
        with working(self.status, self.go) as say:
            measure_limits(say)
            say.done("measured; this replaces the last measurement")

    def refresh(self) -> None:
        if not _limits:
            self.table.value = markup.text("<i>Nothing measured yet: press the button.</i>")
            return
        self.table.value = markup.text(markup.table(
            ["", f"container {BOX}", f"virtual machine {VM}"], limits_rows(_limits[0])))


# -- exercise 1: a container of your own (code) ------------------------------------------------


def _named(name: str) -> Container | None:
    return next((c for c in containers.containers() if c.name == name), None)


def own_namespaces(pid: int) -> list[str]:
    """The kinds of namespace process ``pid`` does not share with this notebook.

    A container started as root has no ``user`` among them: root needs none.
    """
    return [kind for kind in NAMESPACES if _namespace(pid, kind) != _namespace("self", kind)]


def _namespace(pid: int | str, kind: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return "?"


def check_own_box() -> Verdict:
    name = box_name()
    mine = _named(name)
    if mine is None or mine.pid is None:
        refused = containers_refused()
        if refused:
            return Verdict.fail(f"containers cannot start on this host: {refused}.",
                                hint=_refusal_hint())
        running = [c.name for c in containers.containers() if c.pid]
        also = f" (running: {', '.join(running)})" if running else ""
        return Verdict.fail(f"no container named {name} runs in this notebook{also}.",
                            hint=f"my_box = kit.containers.Container('{name}').start()")
    pid = mine.pid
    hostname = mine.run("hostname").stdout.strip()
    kernel = mine.run("uname -r").stdout.strip()
    first = mine.run("cat /proc/1/comm").stdout.strip()
    own = own_namespaces(pid)
    evidence = (f"inside: hostname {hostname}, kernel {kernel}, PID 1 is {first}",
                f"outside: the host's kernel is {platform.release()}; the container's PID 1 "
                f"is host process {pid}",
                f"namespaces not shared with this notebook (/proc/{pid}/ns): "
                f"{', '.join(own) or 'none'}")
    if hostname != name or "uts" not in own or "pid" not in own:
        return Verdict.fail(f"container {name} does not have a view of its own.", *evidence,
                            hint="Stop it (my_box.stop()) and start it again.")
    return Verdict.ok(f"{name} has its own hostname and its own PID 1, yet runs on this host's "
                      f"kernel {kernel}: only what it sees is its own.", *evidence)


def solve_own_box() -> Container | None:
    old = _named(box_name())
    if old is not None:
        if old.pid is not None:
            return old
        old.stop()
    try:
        return _start(box_name())
    except KitError:
        return None  # the check says why


# -- exercise 2: end it from the host (code) ---------------------------------------------------


def check_ended() -> Verdict:
    name = box_name()
    known = _named(name)
    if known is None:
        return Verdict.fail(f"no container named {name} is known to this notebook.",
                            hint="Start it again (exercise 1), then end it yourself with a "
                            "signal: my_box.stop() asks the kit to do it instead.")
    if known.pid is not None:
        return Verdict.fail(f"container {name} still runs: its PID 1 is host process "
                            f"{known.pid}.", hint="From this notebook: os.kill(my_box.pid, "
                            "signal.SIGKILL); or in a terminal: kill -9 PID.")
    former = known.last_pid
    gone = former is None or not _alive(former)
    evidence = (f"host process {former}, its PID 1: {'gone' if gone else 'still there'}",
                "unshare, which started it on the host, has ended too")
    return Verdict.ok(f"one signal from the host ended the whole container {name}: when the "
                      "first process of a PID namespace dies, the kernel ends every other "
                      "process in it. The host sees every process of a container, and can "
                      "signal it.", *evidence)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def solve_ended() -> None:
    mine = solve_own_box()
    if mine is None or mine.pid is None:
        return
    os.kill(mine.pid, signal.SIGKILL)
    eventually(lambda: mine.pid, lambda pid: pid is None, seconds=5.0, every=0.05)


# -- exercise 3: a container by hand, in a terminal ------------------------------------------


@dataclass(frozen=True)
class Namespaced:
    """A host process in a UTS namespace other than this notebook's."""

    pid: int
    name: str
    uts: str
    hostname: str
    own_pid_namespace: bool


def hostname_in(pid: int) -> str:
    """The hostname a process sees (its UTS namespace's), asked with nsenter."""
    # a user's own container (unshare -r) needs its user namespace entered, keeping our uid
    for extra in ([], ["--user", "--preserve-credentials"]):
        try:
            done = subprocess.run(["nsenter", f"--target={pid}", *extra, "--uts", "uname", "-n"],
                                  capture_output=True, text=True, timeout=5, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return done.stdout.strip()
    return "?"


def namespaced_processes() -> list[Namespaced]:
    """Every host process whose UTS namespace is not this notebook's, with its hostname."""
    ours, our_pids = _namespace("self", "uts"), _namespace("self", "pid")
    found, hostnames = [], {}
    for process in psutil.process_iter(["name"]):
        uts = _namespace(process.pid, "uts")
        if uts in ("?", ours):
            continue
        if uts not in hostnames:
            hostnames[uts] = hostname_in(process.pid)
        found.append(Namespaced(process.pid, process.info["name"] or "?", uts, hostnames[uts],
                                _namespace(process.pid, "pid") not in ("?", our_pids)))
    return found


def check_unshare() -> Verdict:
    secret = hostname_secret()
    found = namespaced_processes()
    ours = _namespace("self", "uts")
    mine = [p for p in found if p.hostname == secret]
    if not mine:
        seen = sorted({p.hostname for p in found})
        refused = namespaces.refusal()
        also = (f" If unshare says 'Operation not permitted': this host refuses containers "
                f"({refused.why}). {refused.what_to_do}" if refused is not None else "")
        return Verdict.fail(f"no process on this host has the hostname {secret} in a UTS "
                            "namespace of its own.",
                            f"this notebook's UTS namespace: {ours}",
                            "hostnames of the other UTS namespaces on this host: "
                            f"{', '.join(seen) or 'none'}",
                            hint=f"In a terminal, type: {unshare_command()} — and leave it "
                            f"running while you press Check.{also}")
    first = min(mine, key=lambda p: p.pid)
    pid_words = ("and a PID namespace of its own" if any(p.own_pid_namespace for p in mine)
                 else "but the host's PID namespace")
    evidence = (f"this notebook's UTS namespace: {ours}",
                *(f"host process {p.pid} ({p.name}): {p.uts}, hostname {p.hostname}"
                  for p in mine))
    return Verdict.ok(f"the kit found your container among the host's processes: host PID "
                      f"{first.pid}, in a UTS namespace of its own {pid_words}. No image, no "
                      "daemon: one program asked the host's kernel for new namespaces.",
                      *evidence)


def solve_unshare() -> None:
    stop_terminal()
    command = [*qemu.parent_death_wrapper(), "unshare", *namespaces.user_flags(), "--fork", "--pid",
               "--mount-proc", "--uts", "--kill-child=SIGKILL", "sh", "-c",
               f"hostname {hostname_secret()} && exec sleep 600"]
    _terminal.append(subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    eventually(lambda: [p for p in namespaced_processes() if p.hostname == hostname_secret()],
               bool, seconds=5.0, every=0.1)


def stop_terminal() -> None:
    """Stop the container the demo made in place of the learner's terminal."""
    while _terminal:
        process = _terminal.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


# -- predictions -------------------------------------------------------------------------


def measure_start_ratio() -> float:
    refused = containers_refused()
    if refused:  # say so before booting a VM for nothing
        raise SetupError(f"the container cannot start on this host: {refused}.",
                         hint=_refusal_hint())
    sides = compare()
    if "container" not in sides:
        raise SetupError(f"the container could not start here: "
                         f"{_refused[0] if _refused else 'unknown reason'}.",
                         hint=_refusal_hint())
    return sides["virtual machine"].ready_s / sides["container"].ready_s


def _explain_start(guess: float, measured: float) -> str:
    sides = last()
    if "container" not in sides:
        return ""
    box_s, vm_s = sides["container"].ready_s, sides["virtual machine"].ready_s
    return (f"The container answered after {box_s * 1000:.0f} ms, the VM after {vm_s:.2f} s. "
            "The container had nothing to boot: the host's kernel made a few namespaces and "
            "ran one process; the VM needed a machine built and a kernel booted.")


MEMTOTAL_CHOICES = (f"{LIMIT_MB} MiB: the limit its cgroup sets",
                    "The host's total memory",
                    "Nothing: a container has no /proc/meminfo of its own")


def measure_memtotal_choice() -> float:
    found = measure_limits()
    if abs(found.box_memtotal_mb - found.host_memtotal_mb) <= 0.01 * found.host_memtotal_mb:
        return 1.0
    if found.box_memtotal_mb and abs(found.box_memtotal_mb - LIMIT_MB) <= 0.2 * LIMIT_MB:
        return 0.0
    return 2.0


def _explain_memtotal(guess: float, measured: float) -> str:
    found = _limits[0] if _limits else None
    limit = ("" if found is None or found.limit_mb is not None else
             " (Here no limit could be set: this host's cgroups are not writable from this "
             "notebook. The answer would be the same.)")
    return ("/proc/meminfo comes from the one kernel, which reports the host's memory to every "
            "namespace; the cgroup limits what the container's processes may use without "
            "changing what it reports (tools such as LXCFS exist to fake it). The VM's "
            f"MemTotal is its own machine's.{limit}")


class ContainerPrediction(Prediction):
    """A prediction whose measurement needs a container.

    Where this host refuses containers, the learner's commit shows the reason
    in the widget's banner; the instructor's demo mode (which measures as the
    cell is shown) says it in the widget instead of failing the cell.
    """

    def observe_in_demo(self) -> Outcome:
        refused = containers_refused()
        if refused is None:
            return super().observe_in_demo()
        return self._show(Outcome(self.id, None, float("nan"),
                                  f"not measured: the container cannot start on this host "
                                  f"({refused})."))


start_time = ContainerPrediction(
    "l8-p-start",
    "The same busybox userland starts as a container and as a VM. How many times longer will "
    "the VM take than the container to answer its first command? (1 = just as fast)",
    measure_start_ratio, unit="times", explain=_explain_start,
)
memtotal = ContainerPrediction(
    "l8-p-memtotal",
    f"The container is put in a cgroup that limits its memory to {LIMIT_MB} MiB. Inside it, "
    "what will `/proc/meminfo` report as MemTotal?",
    measure_memtotal_choice, choices=MEMTOTAL_CHOICES, explain=_explain_memtotal,
)


# -- the lesson ---------------------------------------------------------------------------

own_box = Checkpoint(
    "l8-own-box", "A container of your own",
    "Start a container named with **your** name (the cell prints it), with one line: "
    "`kit.containers.Container(NAME).start()`. The kit then looks at it from the host: its "
    "hostname, its namespaces, its kernel.",
    check_own_box, solve=solve_own_box,
    hint="my_box = kit.containers.Container(lesson8.box_name()).start() starts it and keeps it "
    "in my_box.",
    solution="Make the container with your name and start it:",
    code="my_box = kit.containers.Container(lesson8.box_name()).start()",
)
ended = Checkpoint(
    "l8-ended", "End it from the host",
    "Your container's first process is an ordinary host process. End the **whole** container "
    "with one signal from the host, as for any process (not with `my_box.stop()`).",
    check_ended, solve=solve_ended,
    hint="my_box.pid is its PID 1 on the host: os.kill(my_box.pid, signal.SIGKILL) sends the "
    "signal (or kill -9 PID in a terminal).",
    solution="Send SIGKILL to the container's PID 1, from the host:",
    code="os.kill(my_box.pid, signal.SIGKILL)",
)
unshare = Checkpoint(
    "l8-unshare", "A container by hand, in a terminal",
    "Open a terminal (File ▸ New ▸ Terminal) and make a container yourself with `unshare`: new "
    "PID, mount and UTS namespaces, and **your** hostname (the cell prints the command). Leave "
    "it running, then press Check: the kit looks for it among the host's processes.",
    check_unshare, solve=solve_unshare,
    hint="Type the command the cell printed; it sets the hostname inside, then sleeps for ten "
    "minutes. Press Check while it runs.",
    solution="In a terminal (add -r after unshare if you are not root):",
    code="unshare --fork --pid --mount-proc --uts sh -c 'hostname YOUR-HOSTNAME; sleep 600'",
)

quiz = Quiz([
    Question("l8-q1", "The container reported the host's kernel release, the VM another one. "
             "Why?", [
        Choice("The container's busybox is an older build that reports a different release",
               False, "It is the very same busybox as in the VM; uname asks the kernel, not "
               "busybox."),
        Choice("It runs on the host's kernel", True,
               "Namespaces change what a process sees, not which kernel serves it; the VM "
               "booted a kernel of its own."),
        Choice("unshare fakes the release", False,
               "Nothing is faked: the UTS namespace can change the hostname, not the kernel "
               "release."),
    ]),
    Question("l8-q2", "Why did the container start so much faster than the VM?", [
        Choice("Its image was smaller", False,
               "It used the very same busybox files as the VM."),
        Choice("Nothing had to boot: no machine, no kernel", True,
               "The host's kernel made a few namespaces and ran one process; the VM needed a "
               "machine built and a kernel booted."),
        Choice("It skipped the userland and ran only the single command it was given", False,
               "It ran the same busybox userland; it only skipped the machine and the kernel."),
    ]),
    Question("l8-q3", "A container's memory was limited to 48 MiB. What set that limit?", [
        Choice("Its cgroup", True,
               "Namespaces decide what a container sees; cgroups decide how much of the "
               "host's memory and CPU it may use. Over the limit, the host's kernel killed "
               "the program."),
        Choice("The mount namespace, which gives it a smaller /proc/meminfo", False,
               "/proc/meminfo inside still showed the host's total: namespaces do not limit "
               "memory."),
        Choice("A virtual memory size given on the command line, like QEMU's -m", False,
               "That is how a VM is limited: its machine has that much memory. A container "
               "has no machine."),
    ]),
    Question("l8-q4", "What do containers give up, compared with VMs?", [
        Choice("Their own hostname and process numbers", False,
               "They keep all of these (UTS, PID and network namespaces), as your containers "
               "showed."),
        Choice("A kernel of their own, and the boundary it gives", True,
               "They share the host's kernel: a kernel flaw, or a wrong setting, reaches every "
               "container at once, and they cannot run another OS."),
        Choice("Nothing at all: they are as isolated as VMs, only lighter", False,
               "They share one kernel. (VMs are not sealed either: a host-kernel or KVM flaw "
               "reaches every VM, and the host can read a VM's memory.)"),
    ]),
    Question("l8-q5", "Could a container here run a different kernel, e.g. an older Linux or "
             "another architecture's?", [
        Choice("Yes, if its image ships that kernel alongside its userland", False,
               "The image carries only the userland; the kernel is always the host's."),
        Choice("No: that takes a virtual machine", True,
               "A container uses the host's running kernel; QEMU can boot any kernel, even "
               "another architecture's."),
        Choice("Only when it is started as root", False,
               "Root or not, a container never gets a kernel of its own."),
    ]),
])

lesson = Lesson(8, [own_box, ended, unshare], quiz, [start_time, memtotal])


def readiness() -> widgets.HTML:
    """What this host allows: containers (user namespaces), cgroups, root; in plain words."""
    refused = namespaces.refusal()
    found = cage()
    if refused:
        boxes = (f"✖ This host refuses the kit's containers: {escape(refused.why)}. "
                 f"{escape(refused.what_to_do)}<br>What works all the same: section 1 "
                 "measures the virtual machine alone (the container's row says why it is "
                 "missing), the quiz and the table of section 6 need no container, and each "
                 "exercise's check says why it cannot pass here.")
    elif not namespaces.needs_user_namespace():
        boxes = ("✔ This host runs the kit's containers. You are root, so they need no user "
                 "namespace: the kernel lets root make the other namespaces directly.")
    else:
        boxes = ("✔ This host runs the kit's containers: it allows you a user namespace, in "
                 "which you are root and may make the other namespaces.")
    if isinstance(found, Cage):
        groups = (f"✔ Its cgroups are writable from this notebook (cgroup v{found.version}, "
                  f"<code>{escape(found.path.parent)}</code>): section 5 limits a container's "
                  "memory.")
    else:
        groups = (f"✖ Its cgroups are not writable from this notebook ({escape(found)}): "
                  "section 5 shows what a container sees, but cannot set a limit here.")
    who = ("You are root here: <code>unshare</code> needs no user namespace for the terminal "
           "exercise." if os.geteuid() == 0 else "You are not root: the terminal exercise "
           "needs <code>unshare -r</code> (a user namespace).")
    return widgets.HTML(markup.text("<br>".join((boxes, groups, who))))


def look() -> widgets.HTML:
    """One running container seen from inside (``ps``) and from the host (psutil).

    The learner's own container if it runs, else the lesson's ``l8-box``.
    """
    shown = _named(box_name())
    if shown is None or shown.pid is None:
        shown = box()
    if shown is None or shown.pid is None:
        return widgets.HTML(markup.text(
            "<i>No container runs yet: start yours (exercise 1) or press "
            "<b>Start both and measure</b>, then run this cell again.</i>"))
    inside = shown.run("ps -o pid,comm").stdout.strip()
    host = "\n".join(_process_line(p) for p in shown.processes())
    return widgets.HTML(markup.text(
        f"<p><b>Inside {escape(shown.name)}</b> (<code>ps</code>, run in its namespaces):</p>"
        + markup.pre(inside, "10em")
        + "<p><b>On the host</b> (this notebook's process table, psutil):</p>"
        + markup.pre(host, "10em")
        + f"<p>{len(psutil.pids())} processes run on the host; the container sees "
        f"{max(0, len(inside.splitlines()) - 1)}.</p>"))


def _process_line(process: psutil.Process) -> str:
    try:
        return f"{process.pid:>7}  {process.name()}  (its parent: {process.ppid()})"
    except psutil.Error:
        return f"{process.pid:>7}  (gone)"


def _cleanup() -> None:
    stop_terminal()
    for made in _cages:
        made.remove()


atexit.register(_cleanup)


def stop_all() -> None:
    """Stop the lesson's containers and VM, the demo's terminal container, remove the cgroup."""
    containers.stop_all()
    stop_terminal()
    for made in _cages:
        made.remove()
    _cages.clear()
    guest = registry.get(VM)
    if guest is not None:
        guest.stop()
