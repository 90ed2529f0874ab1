"""A class on one real JupyterHub: three learners, each booting lesson 1's guest from a kernel.

Nothing here is mocked.  The hub is started as ``python -m kit hub serve``
starts it (accounts made with useradd, the firewall set, JupyterHub and its
proxy on Node.js); each learner logs in through the hub's REST API with the
password the hub gave them, starts their single-user server, and runs code
in a real kernel of it through the server's kernel API and websocket.  Then
the test checks, from each learner's own kernel, that they cannot see, stop
or reach another's guests, sockets, forwards or progress; that the
instructor's server reads everyone's progress; and that stopping a server,
then the hub, stops the guests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from kit.hub import classfile, config, controlgroups, firewall
from kit.hub.accounts import first_passwords
from kit.hub.places import places
from kit.hub.server import Hub
from kit.infrastructure import net
from kit.infrastructure.net import free_port

from . import client
from .client import HubRefused, Kernel, Learner
from .conftest import needs_root

pytest.importorskip("jupyterhub", reason="the hub extra is not installed: pip install -e .[hub]")
pytestmark = [needs_root, pytest.mark.guest, pytest.mark.slow, pytest.mark.timeout(900)]

TEACHER = "kit-hub-tt"
LEARNERS = ("kit-hub-t1", "kit-hub-t2", "kit-hub-t3")
GROUP = "kit-hub-test-teachers"
CAPPED = LEARNERS[2]  # [limits.kit-hub-t3] guests = 1

BOOT = """
import json, os, kit
from kit.core import paths
from kit.infrastructure import cgroups, net
from kit.lesson import progress
g = kit.Guest("vm1", memory_mb=64, forwards={{{port}: 80}}).start()
progress.record_opened(1, ["l1-hub"], [])
progress.record_checkpoint(1, "l1-hub", True)
limit = cgroups.memory_limit()
print(json.dumps({{
    "pid": g.pid, "port": {port}, "page": "httpd" in net.http_get({port}),
    "runtime": str(paths.runtime_dir()), "progress": str(progress.progress_file()),
    "home": os.path.expanduser("~"), "max_guests": os.environ["KIT_MAX_GUESTS"],
    "memory_limit_mb": limit.limit_mb if limit else None,
}}))
"""

PRY = """
import json, os, signal, socket, kit
from kit.hub import progress as class_view
from kit.infrastructure import limits
others = json.loads({others!r})
seen = {{}}
def attempt(action):
    try:
        action()
        return "done"
    except OSError as error:
        return type(error).__name__
for name, o in others.items():
    def connect(port=o["port"]):
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
    seen[name] = {{
        "stop": attempt(lambda: os.kill(o["pid"], signal.SIGTERM)),
        "sockets": attempt(lambda: os.listdir(o["runtime"])),
        "home": attempt(lambda: os.listdir(o["home"])),
        "progress": attempt(lambda: open(o["progress"]).read()),
        "progress folder": attempt(lambda: os.listdir(os.path.dirname(o["progress"]))),
        "forward": attempt(connect),
        "as the class view": class_view.read_learner(
            class_view.places.places().progress, name).problem is not None,
    }}
try:
    class_view.class_progress()
    seen["class list"] = "done"
except kit.KitError:
    seen["class list"] = "refused"
seen["my guests"] = [g.name for g in kit.guests()]
seen["my records"] = [r.name for r in limits.live_records()]
print(json.dumps(seen))
"""

REFUSED = {"stop": "PermissionError", "sockets": "PermissionError", "home": "PermissionError",
           "progress": "PermissionError", "progress folder": "PermissionError",
           "forward": "TimeoutError", "as the class view": True}


@dataclass
class Seat:
    """One learner at the hub: logged in, their server up, a kernel, a guest booted."""

    learner: Learner
    kernel: Kernel
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Class:
    hub: Hub
    seats: dict[str, Seat]
    seconds: dict[str, float]


def remove_accounts() -> None:
    client.remove_accounts((TEACHER, *LEARNERS), GROUP)


def write_class(folder: Path) -> Path:
    path = folder / "class.toml"
    path.write_text(
        f'[hub]\nport = {free_port()}\n'
        f'[instructor]\nname = "{TEACHER}"\ngroup = "{GROUP}"\n'
        f'[learners]\nnames = {json.dumps(list(LEARNERS))}\n'
        "[limits]\nguests = 2\nguest_memory_mb = 256\n"
        f'[limits.{CAPPED}]\nguests = 1\n')
    return path


@pytest.fixture(scope="module")
def a_class() -> Iterator[Class]:
    remove_accounts()
    root = Path(tempfile.mkdtemp(prefix="kit-hub-class-"))
    root.chmod(0o755)
    seconds: dict[str, float] = {}
    began = time.monotonic()
    hub = Hub.start(classfile.read(write_class(root)), places(root / "hub"))
    seconds["hub start"] = time.monotonic() - began
    try:
        yield Class(hub, seat_everyone(hub, seconds), seconds)
    finally:
        if hub.alive():
            hub.stop()
        print("\n" + "\n".join(f"{what}: {s:.1f} s" for what, s in seconds.items()))
        remove_accounts()
        shutil.rmtree(root, ignore_errors=True)


def seat_everyone(hub: Hub, seconds: dict[str, float]) -> dict[str, Seat]:
    passwords = first_passwords(hub.where.passwords_file)
    seats = {}
    for name in LEARNERS:
        began = time.monotonic()
        learner = Learner.log_in(hub.url, name, passwords[name])
        learner.start_server()
        seats[name] = Seat(learner, learner.kernel())
        seconds[f"{name}: log in, server, kernel"] = time.monotonic() - began
    for name, seat in seats.items():
        began = time.monotonic()
        seat.facts = seat.kernel.json(BOOT.format(port=free_port()), timeout=300)
        seconds[f"{name}: boot vm1 in the kernel"] = time.monotonic() - began
    return seats


def test_each_learner_boots_their_guest_under_their_limits(a_class: Class) -> None:
    for name, seat in a_class.seats.items():
        facts = seat.facts
        qemu = psutil.Process(facts["pid"])
        assert qemu.username() == name, "a learner's guest is a process of theirs"
        assert facts["page"], "the learner reaches their own guest's web server"
        assert facts["runtime"] == str(a_class.hub.where.runtime(name))
        assert facts["progress"] == str(a_class.hub.where.progress_file(name))
        assert facts["max_guests"] == str(a_class.hub.klass.limits_for(name).guests)
        if controlgroups.existing(config.group_name(a_class.hub.klass), name).folders:
            assert facts["memory_limit_mb"] == \
                a_class.hub.klass.limits_for(name).server_memory_mb


def test_a_learners_server_opens_their_own_lesson_copies(a_class: Class) -> None:
    learner = a_class.seats[LEARNERS[1]].learner
    names = {item["name"] for item in learner.server_api("/contents")["content"]}
    assert {"00-welcome.ipynb", "01-what-is-a-vm.ipynb"} <= names
    copy = Path("/home") / learner.name / "kit-lessons" / "01-what-is-a-vm.ipynb"
    assert copy.owner() == learner.name, "made by their server, as them"
    widget = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                       "text/plain": ["a widget"]}}
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c1", "source": "w", "metadata": {}, "execution_count": 1,
         "outputs": [widget]}]}
    learner.server_api("/contents/scratch.ipynb", "PUT",
                       {"type": "notebook", "format": "json", "content": notebook})
    saved = learner.server_api("/contents/scratch.ipynb")["content"]
    assert saved["cells"][0]["outputs"] == [], "saved through the kit's pre-save hook"


def test_a_learners_own_limit_holds(a_class: Class) -> None:
    capped = a_class.seats[CAPPED].kernel
    said = capped.execute(
        "import kit\ntry:\n    kit.Guest('vm2', memory_mb=64).start()\n"
        "except kit.HostLimit as error:\n    print(error)\n")
    assert "the limit for one user here is 1" in said


def test_no_learner_sees_stops_or_reaches_anothers(a_class: Class) -> None:
    facts = {name: seat.facts for name, seat in a_class.seats.items()}
    for name, seat in a_class.seats.items():
        others = {other: f for other, f in facts.items() if other != name}
        seen = seat.kernel.json(PRY.format(others=json.dumps(others)), timeout=120)
        for other in others:
            assert seen[other] == REFUSED, f"{name} about {other}'s"
        assert (seen["class list"], seen["my guests"], seen["my records"]) == (
            "refused", ["vm1"], ["vm1"])
    for fact in facts.values():  # root (the hub's proxy) still reaches every forward
        assert psutil.pid_exists(fact["pid"])
        assert "httpd" in net.http_get(fact["port"])
    assert firewall.active(a_class.hub.klass.port)


def test_no_learners_token_opens_anothers_server(a_class: Class) -> None:
    first, second = (a_class.seats[name].learner for name in LEARNERS[:2])
    for attempt in (lambda: second.api("", user=first.name),
                    lambda: second.api("/server", "DELETE", user=first.name),
                    lambda: second.server_api("/kernels", user=first.name),
                    lambda: second.server_api("/kernels", "POST", {"name": "python3"},
                                              user=first.name)):
        with pytest.raises(HubRefused) as info:
            attempt()
        assert info.value.status in (302, 403, 404)
    assert len(first.server_api("/kernels")) == 1
    assert first.api("")["servers"][""]["ready"]


def test_the_instructor_reads_every_learners_progress(a_class: Class) -> None:
    passwords = first_passwords(a_class.hub.where.passwords_file)
    teacher = Learner.log_in(a_class.hub.url, TEACHER, passwords[TEACHER])
    teacher.start_server()
    kernel = teacher.kernel()
    try:
        view = kernel.json(
            "import json, os\nfrom kit.hub.progress import class_progress\n"
            "rows = {r.learner: [r.problem, list(r.lessons[1].passed) if 1 in r.lessons else []]"
            " for r in class_progress()}\n"
            f"rows['home'] = os.access({str(Path('/home') / LEARNERS[0])!r}, os.R_OK)\n"
            "print(json.dumps(rows))")
    finally:
        kernel.close()
    assert view == {**{name: [None, ["l1-hub"]] for name in LEARNERS}, "home": False}


def test_stopping_a_learners_server_stops_their_guests(a_class: Class) -> None:
    first = a_class.seats[LEARNERS[0]]
    began = time.monotonic()
    first.learner.stop_server()
    assert_gone(first.facts["pid"])
    a_class.seconds["stop one server and its guest"] = time.monotonic() - began
    assert not controlgroups.existing(config.group_name(a_class.hub.klass),
                                      LEARNERS[0]).folders
    for name in LEARNERS[1:]:
        assert psutil.pid_exists(a_class.seats[name].facts["pid"]), f"{name}'s guest is theirs"


def test_stopping_the_hub_stops_every_guest_and_the_firewall(a_class: Class) -> None:
    began = time.monotonic()
    a_class.hub.stop()
    a_class.seconds["stop the hub"] = time.monotonic() - began
    for seat in a_class.seats.values():
        assert_gone(seat.facts["pid"])
    assert not firewall.active(a_class.hub.klass.port)
    assert not controlgroups.existing(config.group_name(a_class.hub.klass), LEARNERS[1]).folders


def assert_gone(pid: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.2)
    raise AssertionError(f"QEMU {pid} still runs {seconds:.0f} s after its server stopped")
