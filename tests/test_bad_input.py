"""Bad input, refused before anything starts, with a message that teaches.

One table: each row is something a learner might type, the error it must
raise (None where it must simply work, e.g. stopping twice), and words the
message must contain.  After every row: no new QEMU, no runtime folder left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kit
from kit.core import incidents, paths
from kit.guestos import images
from kit.infrastructure import limits
from kit.labs.cloud import capacity
from kit.widgets import AgentExplorer, DoorsPanel, LiveDiagram, QMPExplorer
from tests.conftest import free_port, our_qemu_pids

Action = Callable[[], object]


@dataclass(frozen=True)
class Case:
    id: str
    action: Action
    error: type[BaseException] | None
    words: str = ""


def guest(**kwargs: Any) -> Action:
    return lambda: kit.Guest(**{"name": "bad", **kwargs})


def created(method: str, *args: Any) -> Action:
    return lambda: getattr(kit.Guest("bad"), method)(*args)


CONSTRUCTION = [
    Case("name empty", guest(name=""), kit.InvalidInput, "cannot be a guest name"),
    Case("name upper case", guest(name="Web1"), kit.InvalidInput, "lower-case"),
    Case("name with slash", guest(name="../etc"), kit.InvalidInput, "cannot be a guest name"),
    Case("name with space", guest(name="my vm"), kit.InvalidInput, "cannot be a guest name"),
    Case("name too long", guest(name="x" * 40), kit.InvalidInput, "1 to 32 characters"),
    Case("name not text", guest(name=42), kit.InvalidInput, "cannot be a guest name"),
    Case("name with dot", guest(name="web.1"), kit.InvalidInput, "cannot be a guest name"),
    Case("name starts with dash", guest(name="-x"), kit.InvalidInput, "cannot be a guest name"),
    Case("memory zero", guest(memory_mb=0), kit.InvalidInput, "too little"),
    Case("memory negative", guest(memory_mb=-128), kit.InvalidInput, "too little"),
    Case("memory below the image's need", guest(memory_mb=32), kit.InvalidInput, "at least"),
    Case("memory as text", guest(memory_mb="128"), kit.InvalidInput, "whole number"),
    Case("memory as float", guest(memory_mb=128.5), kit.InvalidInput, "whole number"),
    Case("memory as bool", guest(memory_mb=True), kit.InvalidInput, "whole number"),
    Case("memory beyond the host", guest(memory_mb=10**8), kit.HostLimit, "more than this host"),
    Case("cpus zero", guest(cpus=0), kit.InvalidInput, "virtual CPUs"),
    Case("cpus negative", guest(cpus=-2), kit.InvalidInput, "virtual CPUs"),
    Case("cpus beyond the host", guest(cpus=4096), kit.InvalidInput, "virtual CPUs"),
    Case("cpus as text", guest(cpus="2"), kit.InvalidInput, "virtual CPUs"),
    Case("forward privileged host port", guest(forwards={80: 80}), kit.InvalidInput, "1024"),
    Case("forward host port too big", guest(forwards={70000: 80}), kit.InvalidInput, "65535"),
    Case("forward guest port zero", guest(forwards={8080: 0}), kit.InvalidInput, "guest port"),
    Case("forward guest port too big", guest(forwards={8080: 99999}), kit.InvalidInput,
         "guest port"),
    Case("forward port as text", guest(forwards={"8080": 80}), kit.InvalidInput, "host port"),
    Case("forwards as a list", guest(forwards=[8080, 80]), kit.InvalidInput, "dict"),
    Case("forwards as a string", guest(forwards="8080:80"), kit.InvalidInput, "dict"),
    Case("unknown architecture", guest(arch="sparc"), kit.InvalidInput, "Choose one of"),
    Case("boot timeout negative", guest(boot_timeout=-1), kit.InvalidInput, "seconds"),
    Case("boot timeout as text", guest(boot_timeout="soon"), kit.InvalidInput, "seconds"),
    Case("kernel args as one string", guest(kernel_args="quiet loglevel=3"), kit.InvalidInput,
         "list of words"),
    Case("kernel arg with a space", guest(kernel_args=["a b"]), kit.InvalidInput,
         "kernel command line"),
    Case("kernel arg with a quote", guest(kernel_args=['x="1"']), kit.InvalidInput,
         "kernel command line"),
    Case("share the whole disk", guest(shared_folder="/"), kit.InvalidInput, "whole home"),
    Case("share the home folder", guest(shared_folder="~"), kit.InvalidInput, "whole home"),
    Case("share a system folder", guest(shared_folder="/etc"), kit.InvalidInput,
         "system folder"),
    Case("share a folder that is not there", guest(shared_folder="/no/such/dir"),
         kit.InvalidInput, "does not exist"),
    Case("share a file", guest(shared_folder="/etc/hostname"), kit.InvalidInput,
         "not a folder"),
    Case("shared_writable as text", guest(shared_folder="/tmp", shared_writable="yes"),
         kit.InvalidInput, "True or False"),
    Case("link a guest to itself", lambda: (lambda g: kit.Link(g, g))(kit.Guest("bad")),
         kit.InvalidInput, "to itself"),
    Case("link to a name, not a guest", lambda: kit.Link(kit.Guest("bad"), "web1"),
         kit.InvalidInput, "two guests"),
]

STATES = [
    Case("pause a guest never started", created("pause"), kit.GuestNotRunning, "g.start()"),
    Case("resume a guest never started", created("resume"), kit.GuestNotRunning, "created"),
    Case("reboot a guest never started", created("reboot"), kit.GuestNotRunning, "created"),
    Case("run on a guest never started", created("run", "ls"), kit.GuestNotRunning,
         "g.start()"),
    Case("qmp on a guest never started", created("qmp", "query-status"), kit.GuestNotRunning,
         "hypervisor is not running"),
    Case("agent on a guest never started", created("agent", "guest-ping"),
         kit.GuestNotRunning, "created"),
    Case("stop a guest never started", created("stop"), None),
    Case("run an empty command", created("run", ""), kit.InvalidInput, "not a command"),
    Case("run an empty list", created("run", []), kit.InvalidInput, "not a command"),
    Case("run a list with a number", created("run", ["ls", 3]), kit.InvalidInput,
         "not a command"),
    Case("run with a NUL byte", created("run", "echo \0"), kit.InvalidInput, "NUL"),
    Case("forward on a guest never started", created("open_forward", 8080, 80),
         kit.GuestNotRunning, "port forward"),
    Case("forward from a privileged port", created("open_forward", 80, 80), kit.InvalidInput,
         "1024"),
    Case("forward to guest port zero", created("open_forward", 8080, 0), kit.InvalidInput,
         "guest port"),
    Case("close a forward never opened", created("close_forward", 8080), kit.InvalidInput,
         "no forward"),
    Case("open a share never declared", created("open_share"), kit.GuestError,
         "no shared folder"),
    Case("close a share never opened", created("close_share"), None),
    Case("plug in a link of guests never started",
         lambda: kit.Link(kit.Guest("bad"), kit.Guest("bad2")).up(), kit.GuestNotRunning,
         "plug in"),
]


def shown(build: Callable[[], Any], act: Callable[[Any], object]) -> Action:
    """Drive a widget as a learner would; raise what its error banner shows.

    A widget never raises into the page: it shows the error in its banner and
    records it.  Raising the recorded error here lets the same table check
    the message a learner reads.
    """
    def action() -> None:
        incidents.clear()
        widget = build()
        try:
            act(widget)
            found = incidents.recorded()
            if found:
                assert widget.banner.message.value, "the error is recorded but not shown"
                raise found[0].error
        finally:
            incidents.clear()
            widget.close()
    return action


def fill_and_send(command: str, arguments: str) -> Callable[[Any], None]:
    def act(explorer: Any) -> None:
        explorer.form.command.value = command
        explorer.form.arguments.value = arguments
        explorer.form.send_button.click()
    return act


def set_value(attribute: str, value: object) -> Callable[[Any], None]:
    return lambda w: setattr(getattr(w, attribute), "value", value)


WIDGETS = [
    Case("QMP explorer: arguments that are not JSON",
         shown(lambda: QMPExplorer(kit.Guest("bad")), fill_and_send("query-status", "{oops")),
         kit.InvalidInput, "JSON"),
    Case("QMP explorer: arguments that are a list",
         shown(lambda: QMPExplorer(kit.Guest("bad")), fill_and_send("query-status", "[1]")),
         kit.InvalidInput, "JSON object"),
    Case("QMP explorer: no command",
         shown(lambda: QMPExplorer(kit.Guest("bad")), fill_and_send("", "")),
         kit.InvalidInput, "no command"),
    Case("QMP explorer: a guest never started",
         shown(lambda: QMPExplorer(kit.Guest("bad")), fill_and_send("query-status", "")),
         kit.GuestNotRunning, "hypervisor is not running"),
    Case("agent explorer: a guest never started",
         shown(lambda: AgentExplorer(kit.Guest("bad")), fill_and_send("guest-ping", "")),
         kit.GuestNotRunning, "created"),
    Case("agent explorer: run on a guest never started",
         shown(lambda: AgentExplorer(kit.Guest("bad")), lambda w: w.run_button.click()),
         kit.GuestNotRunning, "g.start()"),
    Case("doors panel: forward on a guest never started",
         shown(lambda: DoorsPanel(kit.Guest("bad")), set_value("forward", True)),
         kit.GuestNotRunning, "port forward"),
    Case("doors panel: a share never declared",
         shown(lambda: DoorsPanel(kit.Guest("bad")), set_value("share", True)),
         kit.GuestError, "no shared folder"),
    Case("live diagram: a layer that does not exist",
         lambda: LiveDiagram(highlight="roof"), kit.InvalidInput, "layer"),
    Case("explorer for a guest name that is not safe",
         lambda: QMPExplorer("../etc"), kit.InvalidInput, "cannot be a guest name"),
]


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = our_qemu_pids()
    yield
    assert our_qemu_pids() <= before, "a QEMU was left running"
    left = [p.name for p in paths.runtime_dir().iterdir()]
    assert left == [], f"runtime folders left behind: {left}"


@pytest.mark.parametrize("case", CONSTRUCTION + STATES + WIDGETS, ids=lambda c: c.id)
def test_refused_before_anything_starts(case: Case, image: images.GuestImage) -> None:
    check(case)


def check(case: Case) -> None:
    if case.error is None:
        case.action()
        return
    with pytest.raises(case.error) as info:
        case.action()
    text = str(info.value)
    assert case.words in text, text
    assert isinstance(info.value, kit.KitError)
    assert info.value.hint, "every refusal says what to do"


@pytest.mark.guest
def test_refused_at_start(image: images.GuestImage, guest_name: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        check(Case("host port already taken", lambda: kit.Guest("bad", forwards={port: 80})
                   .start(), kit.InvalidInput, "already taken"))
    with kit.Guest(guest_name):
        check(Case("a name already in use", lambda: kit.Guest(guest_name).start(),
                   kit.NameInUse, "already running"))


@pytest.mark.guest
def test_states_and_commands_on_a_live_guest(image: images.GuestImage, guest_name: str) -> None:
    g = kit.Guest(guest_name).start()
    try:
        rows = [
            Case("a command that never ends", lambda: g.run("sleep 100", timeout=1),
                 kit.GuestError, "was killed"),
            Case("a command printing binary data", lambda: g.run("head -c 256 /dev/urandom"),
                 None),
            Case("an unknown QMP command", lambda: g.qmp("no-such-command"), kit.QMPError,
                 "CommandNotFound"),
            Case("QMP arguments of the wrong type", lambda: g.qmp("stop", {"now": 1}),
                 kit.QMPError, "refused"),
            Case("an unknown agent command", lambda: g.agent("guest-no-such"),
                 kit.AgentError, "refused"),
            Case("a program that does not exist", lambda: g.run(["/no/such/program"]),
                 kit.AgentError, "refused"),
            Case("resume a running guest", g.resume, kit.GuestNotRunning, "cannot resume"),
            Case("start a guest twice", g.start, kit.GuestError, "already running"),
            Case("run with a zero timeout", lambda: g.run("true", timeout=0),
                 kit.InvalidInput, "timeout"),
            Case("link a guest already running", lambda: kit.Link(g, kit.Guest("bad")),
                 kit.GuestError, "before the start"),
            Case("open a share never declared, running", g.open_share, kit.GuestError,
                 "no shared folder"),
            Case("forward from a port twice", lambda: [g.open_forward(port, 80)
                                                       for port in (free_port(),) * 2],
                 kit.InvalidInput, "already forwards"),
        ]
        for row in rows:
            check(row)
        binary = g.run("printf '\\377\\376ok'")
        assert binary.stdout.endswith("ok")
        g.crash()
        check(Case("run on a crashed guest", lambda: g.run("ls"), kit.GuestNotRunning,
                   "crashed"))
        check(Case("pause a crashed guest", g.pause, kit.GuestNotRunning, "g.reboot()"))
        g.stop()
        check(Case("stop a guest twice", g.stop, None))
        check(Case("pause a stopped guest", g.pause, kit.GuestNotRunning, "stopped"))
        check(Case("run on a stopped guest", lambda: g.run("ls"), kit.GuestNotRunning,
                   "g.start()"))
    finally:
        g.stop()


# -- what a shared folder may not be -------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A learner's home folder of the test's own (HOME is what ~ and Path.home() read)."""
    folder = tmp_path / "home" / "learner"
    (folder / ".ssh" / "keys").mkdir(parents=True)
    (folder / ".ssh" / "id_ed25519").write_text("not a real key\n")
    (folder / ".config" / "gh").mkdir(parents=True)
    (folder / "lesson-files").mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def test_a_hidden_folder_of_the_home_is_not_shared(home: Path) -> None:
    for given in ("~/.ssh", str(home / ".ssh"), "~/.config"):
        check(Case(f"share {given}", guest(shared_folder=given), kit.InvalidInput,
                   "hidden settings folder of your home"))
    (home / "innocent").symlink_to(home / ".ssh")  # a link is followed before the check
    check(Case("share a link to ~/.ssh", guest(shared_folder="~/innocent"), kit.InvalidInput,
               "hidden settings folder of your home"))
    assert kit.Guest("bad", shared_folder="~/lesson-files").doors  # a plain folder is fine


@pytest.mark.parametrize("inside", [".ssh/keys", ".config/gh"])
def test_a_folder_inside_a_hidden_folder_of_the_home_is_not_shared(home: Path,
                                                                   inside: str) -> None:
    check(Case(f"share ~/{inside}", guest(shared_folder=f"~/{inside}"), kit.InvalidInput,
               "hidden settings folder"))


def test_a_shared_folder_with_a_line_break_in_its_path_is_refused(tmp_path: Path) -> None:
    for folder in (tmp_path / "two\nlines", tmp_path / "a\nb" / "below"):
        folder.mkdir(parents=True)
        check(Case("share a path with a line break", guest(shared_folder=folder),
                   kit.InvalidInput, "cannot contain a line break"))
    check(Case("share a missing path with a line break",
               guest(shared_folder=tmp_path / "gone\naway"), kit.InvalidInput,
               "does not exist"))


# -- the caps of one user: KIT_MAX_GUESTS, KIT_MAX_GUEST_MEMORY_MB ------------------------------

CAPS = ["KIT_MAX_GUESTS", "KIT_MAX_GUEST_MEMORY_MB"]


@pytest.mark.parametrize("value", ["", " ", "0", "-1", "8.5", "1e3", "lots", "0x10"])
@pytest.mark.parametrize("variable", CAPS)
def test_a_bad_cap_setting_is_refused_where_it_is_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    read = limits.max_guests if variable == "KIT_MAX_GUESTS" else limits.max_guest_memory_mb
    check(Case(f"{variable}={value!r}", read, kit.InvalidInput,
               f"{variable}={value!r} is not a positive whole number"))
    check(Case(f"the cloud's capacity with {variable}={value!r}", capacity, kit.InvalidInput,
               variable))


@pytest.mark.parametrize("variable", CAPS)
def test_a_bad_cap_setting_refuses_a_start_before_anything_starts(
    image: images.GuestImage, guest_name: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "none")
    check(Case(f"start with {variable}='none'", kit.Guest(guest_name).start,
               kit.InvalidInput, f"Unset {variable}"))
    assert kit.guests() == []
