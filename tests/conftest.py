"""Shared fixtures: a real guest image, and a check that no guest is left behind."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kit
from kit.guestos import images
from kit.guestos.build import agent as static_agent
from kit.guestos.build import kernel as kit_kernel
from kit.hypervisor import registry
from kit.infrastructure.net import free_port  # noqa: F401  (tests import it from here

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests keep their guests' sockets and logs in a folder of their own."""
    folder = tmp_path_factory.mktemp("runtime")
    os.environ["KIT_RUNTIME_DIR"] = str(folder)
    # Lessons save progress; the tests must not write into the learner's own file.
    os.environ["KIT_PROGRESS_FILE"] = str(folder / "progress.json")
    yield folder


@pytest.fixture(autouse=True)
def snapshot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its snapshots in a folder of its own, never the learner's cache."""
    folder = tmp_path / "snapshots"
    monkeypatch.setenv("KIT_SNAPSHOT_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def built_image() -> images.GuestImage:
    """The real guest image, built once if the cache does not have it."""
    return images.ensure_image()


@pytest.fixture
def image(request: pytest.FixtureRequest) -> images.GuestImage:
    """The real guest image, for any test: built only in a run that boots guests anyway.

    A test not marked ``guest`` may read the image (its memory floor, its
    files).  In the quick run (``-m "not guest"``) it never builds it: without
    a cached image it is skipped, and says so.  In a run with guest tests the
    image is built once, by whichever test needs it first.
    """
    if request.node.get_closest_marker("guest") is None:
        cached = images.find_image()
        if cached is not None:
            return cached
        if not _session_boots_guests(request.session):
            pytest.skip("needs the cached guest image, which is not built yet, and this run "
                        "boots no guest to build it (python -m kit image builds it)")
    unmarked = _unmarked_test[:]
    _unmarked_test.clear()  # the session builds it for its guest tests: allowed here too
    try:
        built: images.GuestImage = request.getfixturevalue("built_image")
    finally:
        _unmarked_test[:] = unmarked
    return built


def _session_boots_guests(session: pytest.Session) -> bool:
    return any(item.get_closest_marker("guest") is not None for item in session.items)


@pytest.fixture
def guest_name() -> str:
    return f"t{os.getpid() % 10000}-{next(_names)}"


@pytest.fixture(autouse=True)
def no_guest_left_behind() -> Iterator[None]:
    yield
    left = kit.guests()
    kit.stop_all()
    assert not left, f"the test left guests running: {left}"


# -- the markers tell the truth --------------------------------------------------------
#
# ``-m "not guest"`` is the quick run: it must boot no guest and build no image.
# So a test that is not marked ``guest`` and starts a guest (in this process)
# or builds an image fails, saying which marker it lacks, before QEMU runs.


class UnmarkedGuestWork(Exception):
    """A test not marked ``guest`` tried to boot a guest or build an image."""


_unmarked_test: list[str] = []  # the node id of the running test, if it is not marked guest
_caught: list[str] = []  # what such a test tried, for the check at its end


def _refuse_when_unmarked(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _unmarked_test:
            _caught.append(what)
            if what == "started a guest" and args:  # registry.add(guest): its folder is made
                cleanup = getattr(args[0], "_cleanup_files", None)
                if cleanup is not None:
                    cleanup()
            raise UnmarkedGuestWork(
                f"{_unmarked_test[0]} {what}, but it is not marked guest: add "
                "@pytest.mark.guest (and @pytest.mark.slow if it takes more than a few "
                "seconds), or keep the test from booting and building.")
        return real(*args, **kwargs)

    guarded.__wrapped__ = real  # type: ignore[attr-defined]
    return guarded


_GUARDED = [  # (module, attribute, what calling it means)
    (registry, "add", "started a guest"),  # Guest.start registers the guest before QEMU runs
    (images, "_build", "built a guest image"),
    (kit_kernel, "_build_once", "built the kit's kernel"),
    (static_agent, "_build", "built the static guest agent"),
]


def pytest_configure(config: pytest.Config) -> None:
    for module, name, what in _GUARDED:
        setattr(module, name, _refuse_when_unmarked(what, getattr(module, name)))


def pytest_unconfigure(config: pytest.Config) -> None:
    for module, name, _ in _GUARDED:
        setattr(module, name, getattr(getattr(module, name), "__wrapped__", getattr(module, name)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """From the test's first fixture to its last teardown, know whether it may boot."""
    unmarked = item.get_closest_marker("guest") is None
    _unmarked_test[:] = [item.nodeid] if unmarked else []
    _caught.clear()
    try:
        yield
    finally:
        _unmarked_test.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    yield
    if call.excinfo is not None and call.excinfo.errisinstance(UnmarkedGuestWork):
        _caught.clear()  # the test already fails with it: once is enough


@pytest.fixture(autouse=True)
def markers_tell_the_truth() -> Iterator[None]:
    """Fail a test not marked ``guest`` that tried to boot or build, even if it caught the error."""
    yield
    if _unmarked_test and _caught:
        tried = ", ".join(sorted(set(_caught)))
        _caught.clear()
        pytest.fail(f"{_unmarked_test[0]} {tried}, but it is not marked guest "
                    "(add @pytest.mark.guest)", pytrace=False)


SLOW_S = 10.0  # "more than a few seconds": over this, a test should be marked slow
_slow_unmarked: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note tests that took long but are not marked slow (said at the end; never a failure:
    a test's speed depends on the machine, and is measured in benchmarks/, not asserted)."""
    if report.when == "call" and report.duration > SLOW_S and "slow" not in report.keywords:
        _slow_unmarked[report.nodeid] = report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _slow_unmarked:
        terminalreporter.section("not marked slow, but took over "
                                 f"{SLOW_S:g} s here (add @pytest.mark.slow)")
        for nodeid, seconds in sorted(_slow_unmarked.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")


def forgive_unmarked_guest_work() -> None:
    """For the test of this very check: it tried on purpose."""
    _caught.clear()


def our_qemu_pids() -> set[int]:
    """QEMUs started by this test session (their pidfile is in our runtime folder).

    Other programs on the machine may run QEMU too; they are none of our business.
    """
    import psutil

    from kit.core import paths

    marker = str(paths.runtime_dir())
    found = set()
    for process in psutil.process_iter(["name", "cmdline"]):
        # QEMU renames itself qemu-<guest> (-name ...,process=), so look at
        # the command line, which names a socket in our runtime folder.
        cmdline = process.info["cmdline"] or []
        if cmdline and "qemu-system" in cmdline[0] and any(marker in word for word in cmdline):
            found.add(process.pid)
    return found
