"""Limits that protect the host and other users from one learner's guests.

The test command (``./setup.sh test``) runs as root, and root can do what a
learner cannot, so the tests here that hold for every user run a second time
as the unprivileged user ``kit-learner`` that setup creates (the last test),
and the tests that act as two users at once (``root_only``) check what one
user's guests are to the other, both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

import kit
from kit.core import paths
from kit.core.errors import SetupError
from kit.guestos import images
from kit.guestos.build import kernel as kit_kernel
from kit.infrastructure import limits
from kit.widgets import control_room

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()
#: setup.sh's KIT_TEST_USER (checked below).
LEARNER = "kit-learner"
#: A learner's PATH: Debian's for normal users, without the sbin folders.
LEARNER_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Settings of this run that the learner's runs keep; nothing else passes.
PASSED_ON = ("KIT_TESTING_ALL", "KIT_KERNEL", "LANG")
#: Tests of other files that hold for every user, run as the learner too.
ALSO_AS_LEARNER = ("tests/test_setup_script.py::test_non_root_user_gets_the_exact_sudo_command",)

_root_only: list[str] = []
Test = TypeVar("Test", bound=Callable[..., None])


def root_only(test: Test) -> Test:
    """A test that acts as two users: it needs root, and the learner's run leaves it out."""
    _root_only.append(test.__name__)
    mark = pytest.mark.skipif(os.geteuid() != 0,
                              reason="acts as a second user, which needs root; ./setup.sh test "
                              "runs as root, and this run is already unprivileged")
    return mark(test)


def test_default_caps_are_a_safe_share_of_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_MAX_GUESTS", raising=False)
    monkeypatch.delenv("KIT_MAX_GUEST_MEMORY_MB", raising=False)
    import psutil

    assert limits.max_guests() >= 16
    assert limits.max_guest_memory_mb() <= psutil.virtual_memory().total // 2**20


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_bad_cap_settings_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KIT_MAX_GUESTS", value)
    with pytest.raises(kit.InvalidInput, match="KIT_MAX_GUESTS"):
        limits.max_guests()


@pytest.mark.guest
def test_guest_count_cap(image: images.GuestImage, guest_name: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAX_GUESTS", "1")
    with kit.Guest(f"{guest_name}-a"):
        with pytest.raises(kit.HostLimit, match="limit for one user here is 1") as info:
            kit.Guest(f"{guest_name}-b").start()
        assert "KIT_MAX_GUESTS" in (info.value.hint or "")
        assert not (paths.runtime_dir() / f"{guest_name}-b").exists()


@pytest.mark.guest
def test_guest_memory_cap(image: images.GuestImage, guest_name: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAX_GUEST_MEMORY_MB", "200")
    with kit.Guest(f"{guest_name}-a", memory_mb=128), \
            pytest.raises(kit.HostLimit, match="256 MiB"):
        kit.Guest(f"{guest_name}-b", memory_mb=128).start()


@pytest.mark.guest
def test_caps_count_guests_of_other_notebooks(image: images.GuestImage, guest_name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with kit.Guest(f"{guest_name}-a") as g:
        records = limits.live_records()
        assert [(r.name, r.pid, r.memory_mb) for r in records] == [(g.name, g.pid, 128)]


def test_runtime_folder_of_another_user_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() == 0:
        foreign = tmp_path / "theirs"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
    else:  # a user cannot give a folder away: take one that is root's
        foreign = Path(tempfile.gettempdir())
        assert foreign.stat().st_uid != os.geteuid()
    monkeypatch.setenv("KIT_RUNTIME_DIR", str(foreign))
    with pytest.raises(SetupError, match="belongs to another user"):
        paths.runtime_dir()


def test_our_runtime_folder_is_ours_alone(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o755)
    monkeypatch.setenv("KIT_RUNTIME_DIR", str(folder))
    assert paths.runtime_dir() == folder
    info = folder.stat()
    assert (info.st_uid, oct(info.st_mode & 0o777)) == (os.geteuid(), "0o700")


# --- two users ----------------------------------------------------------------------------


def test_setup_makes_the_learner_these_tests_act_as() -> None:
    said = subprocess.run(["bash", "-c", 'source "$1"; printf %s "$KIT_TEST_USER"', "bash",
                           str(ROOT / "setup.sh")], capture_output=True, text=True, check=True)
    assert said.stdout == LEARNER


@dataclass(frozen=True)
class Learner:
    """The unprivileged user ``kit-learner``, and how to run a program as it."""

    name: str
    uid: int
    gid: int
    home: Path

    def command(self, *args: str, **env: str) -> list[str]:
        """``args`` as the learner, in an environment of its own (nothing of root's leaks)."""
        values = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                  "PATH": LEARNER_PATH, "PYTHONDONTWRITEBYTECODE": "1"}
        values.update({key: os.environ[key] for key in PASSED_ON if key in os.environ})
        values.update(env)
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "env", "-i", *(f"{key}={value}" for key, value in values.items()), *args]

    def run(self, *args: str, timeout: float = 120, **env: str
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args, **env), capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, check=False)

    def python(self, code: str, timeout: float = 120) -> dict[str, object]:
        """Run ``code`` with the kit's Python as the learner; returns the JSON it prints last."""
        result = self.run(sys.executable, "-c", textwrap.dedent(code), timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
        return answer


def learner_or_none() -> Learner | None:
    try:
        entry = pwd.getpwnam(LEARNER)
    except KeyError:
        return None
    return Learner(LEARNER, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


@pytest.fixture(scope="module")
def learner() -> Learner:
    """The learner, with a guest image of its own in its own cache.

    The learner builds its image itself (``python -m kit image``, as it would
    on a lab server); only the kit's kernel, four minutes to compile, is
    copied into its cache from this run's, where setup built it from the same
    recipe and source (the cache key says so).
    """
    found = learner_or_none()
    if found is None:
        why = f"there is no user {LEARNER}: ./setup.sh test, run as root, creates it"
        if os.environ.get("KIT_TESTING_ALL") == "1":  # in the test command: a failure
            pytest.fail(why)
        pytest.skip(why)
    checked = found.run("test", "-r", str(ROOT / "setup.sh"), "-a", "-x", sys.executable)
    if checked.returncode != 0:
        pytest.fail(f"{LEARNER} cannot read this checkout or run {sys.executable}: a folder "
                    f"above {ROOT} is closed to other users. Put the checkout where others "
                    "can read it (for example /srv or /opt) and run ./setup.sh test there.")
    if images.kernel_choice() == "auto":
        _give_kernel(found)
    built = found.run(sys.executable, "-m", "kit", "image", timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    want = "Debian's" if images.kernel_choice() == "debian" else "the kit's own kernel"
    assert want in built.stdout, built.stdout
    return found


def _give_kernel(learner: Learner) -> None:
    """Copy the kit's built kernel into the learner's cache, as the learner's files."""
    recipe = kit_kernel.load_recipe()
    built = kit_kernel.find_kernel(recipe, kit_kernel.resolve_source_package(recipe).version)
    if built is None:
        pytest.fail("this run's cache has no kit kernel to give the learner: "
                    "python -m kit image builds it (./setup.sh test does)")
    cache = learner.home / ".cache" / "kit"
    target = cache / "kernels" / built.path.parent.name
    if (target / kit_kernel.MANIFEST).is_file():
        return
    for old in target.parent.glob(f"{recipe.arch}-*"):  # from an older recipe or source
        shutil.rmtree(old, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=".copy-", dir=_learners_dir(learner, target.parent)))
    try:
        shutil.copytree(built.path.parent, scratch / "kernel")
        for path in [scratch, *scratch.rglob("*")]:
            os.chown(path, learner.uid, learner.gid, follow_symlinks=False)
        (scratch / "kernel").rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _learners_dir(learner: Learner, folder: Path) -> Path:
    """``folder`` under the learner's home, made (as theirs) where missing."""
    missing = [p for p in [folder, *folder.parents] if p.is_relative_to(learner.home)
               and not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o755)
        os.chown(path, learner.uid, learner.gid)
    return folder


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A scratch folder every user may pass through, for a runtime folder the kit makes in it.

    pytest's own folders are closed to other users, which would hide whether
    the kit closes a runtime folder itself.
    """
    folder = Path(tempfile.mkdtemp(prefix="kit-users-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@root_only
@pytest.mark.guest
def test_another_user_can_neither_see_nor_stop_our_guests(
    image: images.GuestImage, guest_name: str, learner: Learner, open_parent: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The learner tries to reach our guest: its folder, its QEMU, through the kit and not."""
    monkeypatch.setenv("KIT_RUNTIME_DIR", str(open_parent / "runtime"))
    with kit.Guest(guest_name) as g:
        folder = paths.runtime_dir()
        seen = learner.python(f"""
            import json, os, signal
            from kit.core import paths
            from kit.core.errors import SetupError
            from kit.infrastructure import limits
            from kit.widgets import control_room
            FOLDER, NAME, PID = {str(folder)!r}, {g.name!r}, {g.pid}
            seen = {{}}
            def attempt(what, action):
                try:
                    action()
                    seen[what] = "done"
                except (PermissionError, SetupError):
                    seen[what] = "refused"
            def take_folder():
                os.environ["KIT_RUNTIME_DIR"] = FOLDER
                try:
                    paths.runtime_dir()
                finally:
                    del os.environ["KIT_RUNTIME_DIR"]
            attempt("list its folder", lambda: os.listdir(FOLDER))
            attempt("read its log", lambda: open(f"{{FOLDER}}/{{NAME}}/qemu.log").read())
            attempt("list its QEMU's sockets", lambda: os.listdir(f"/proc/{{PID}}/fd"))
            attempt("kill its QEMU", lambda: os.kill(PID, signal.SIGKILL))
            attempt("take its folder", take_folder)
            seen["the control room lists"] = [row.name for row in control_room.host_guests()]
            seen["the limits count"] = [record.pid for record in limits.live_records()]
            seen["stop everything stops"] = control_room.stop_everything()
            control_room.stop_other(control_room.HostGuest(NAME, PID, 128, os.getpid(),
                                                           "running", None))
            print(json.dumps(seen))
        """)
        refused = ["list its folder", "read its log", "list its QEMU's sockets",
                   "kill its QEMU", "take its folder"]
        assert seen == {**dict.fromkeys(refused, "refused"), "the control room lists": [],
                        "the limits count": [], "stop everything stops": []}
        assert g.state == "running" and g.run("echo untouched").stdout == "untouched\n"
        assert oct(folder.stat().st_mode & 0o777) == "0o700"


@root_only
@pytest.mark.guest
def test_a_guest_of_another_user_is_out_of_our_kits_reach(
    image: images.GuestImage, guest_name: str, learner: Learner, open_parent: Path
) -> None:
    """The other way: the learner's guest, and our kit (root's) with a guest of the same name."""
    os.chown(open_parent, learner.uid, learner.gid)  # the learner's kit makes its folder here
    runtime = open_parent / "runtime"
    script = textwrap.dedent(f"""
        import json, sys, kit
        g = kit.Guest({guest_name!r}).start()
        print(json.dumps({{"pid": g.pid}}), flush=True)
        sys.stdin.readline()
        print(json.dumps({{"state": str(g.state), "echo": g.run("echo untouched").stdout}}))
        g.stop()
    """)
    command = learner.command(sys.executable, "-c", script, KIT_RUNTIME_DIR=str(runtime))
    with _started(command) as theirs:
        pid = int(json.loads(_line(theirs, 180))["pid"])
        with kit.Guest(guest_name) as mine:  # the same name: names are each user's own
            assert mine.pid != pid and psutil.Process(pid).uids().real == learner.uid
            assert [row.pid for row in control_room.host_guests()] == [mine.pid]
            assert [record.pid for record in limits.live_records()] == [mine.pid]
            control_room.stop_other(control_room.HostGuest(guest_name, pid, 128, theirs.pid,
                                                           "running", None))
        assert control_room.stop_everything() == []
        others = _as_nobody(f"""
            import os, signal
            for action in (lambda: os.listdir({str(runtime)!r}),
                           lambda: os.kill({pid}, signal.SIGKILL)):
                try:
                    action(); print("done")
                except PermissionError:
                    print("refused")
        """)
        assert others == ["refused", "refused"]
        info = runtime.stat()
        assert (info.st_uid, oct(info.st_mode & 0o777)) == (learner.uid, "0o700")
        assert theirs.stdin is not None
        theirs.stdin.write("\n")
        theirs.stdin.flush()
        assert json.loads(_line(theirs, 60)) == {"state": "running", "echo": "untouched\n"}
        assert theirs.wait(timeout=60) == 0


@contextlib.contextmanager
def _started(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:  # a failed test: QEMU dies with it (parent-death signal)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def _line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no answer from the learner's program in {timeout} s"
    line = process.stdout.readline()
    assert line, f"the learner's program ended (exit code {process.wait(timeout=10)})"
    return line


def _as_nobody(code: str) -> list[str]:
    """What a third user (nobody) prints running ``code``, one line an attempt."""
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "/usr/bin/python3", "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=30, cwd="/", check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@root_only
@pytest.mark.guest
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_limits_and_ownership_tests_pass_as_an_unprivileged_user(learner: Learner) -> None:
    """This file's tests (but those acting as two users) and ALSO_AS_LEARNER, run as the learner.

    Every one must pass: none may skip, since each holds for a learner too.
    """
    deselect = [arg for name in _root_only for arg in ("--deselect", f"{THIS}::{name}")]
    result = learner.run(sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                         THIS, *ALSO_AS_LEARNER, *deselect, timeout=840)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, output
