"""In the test command, a test that skips fails, unless README.md names it as skipped on purpose.

``./setup.sh test`` installs everything the tests use and loads this plugin
(``pytest -p tests.skip_policy``), so a skip there means a feature went
untested while the run looked green: a missing program, an image that was not
built, a kernel that fell back.  Those become failures.  The few skips that
are on purpose are listed, with why, in README.md's section
:data:`SECTION`; each entry names its test as ``tests/FILE.py::test_name``
(parametrized tests by their function's name).  One rule covers a kind of
skip instead of naming tests: run by a user other than root, a test whose
skip reason says it needs root may skip (CI runs as root, where it never
applies).  Outside the test command (``pytest`` alone) nothing changes.

A folder of tests that pytest never enters hides more than a skip: pytest's
default ``norecursedirs`` includes ``build``, so without this plugin
``tests/guestos/build/`` (the kit's kernel, the root disk, the initramfs) is
never collected when the whole suite runs.  The plugin collects it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"
SECTION = "## The tests, and what may skip"
_ENTRY = re.compile(r"`(tests/[\w./-]+\.py::\w+)`")
_NEEDS_ROOT = re.compile(r"\broot\b")
_allowed: set[str] = set()
_skipped_modules: list[str] = []


def intended_skips(readme: str) -> set[str]:
    """The tests README.md's section on skips names, as ``path::function``."""
    _, found, rest = readme.partition(f"\n{SECTION}\n")
    if not found:
        raise pytest.UsageError(f"README.md has no section {SECTION!r}: tests/skip_policy.py "
                                "reads the skips that are on purpose from it")
    return set(_ENTRY.findall(rest.split("\n## ", 1)[0]))


def pytest_configure(config: pytest.Config) -> None:
    _skipped_modules.clear()
    _allowed.clear()
    _allowed.update(intended_skips(README.read_text()))


@pytest.hookimpl(tryfirst=True)
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Enter tests/**/build/, which pytest's default ``norecursedirs`` leaves out."""
    if collection_path.name == "build" and collection_path.is_relative_to(TESTS):
        return False
    return None


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure(what: str, reason: str) -> str:
    return (f"{what} skipped ({reason}), and README.md does not name it as skipped on "
            "purpose: in ./setup.sh test a skip hides a feature, so it fails. Install or "
            f"build what it needs, or add it to README.md's {SECTION[3:]!r} with why.")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        if not intended(item.nodeid, reason, os.geteuid(), _allowed):
            report.outcome = "failed"
            report.longrepr = _failure(item.nodeid, reason)
    return report


def intended(nodeid: str, reason: str, euid: int, named: set[str]) -> bool:
    """Whether a skip is on purpose: its test is ``named``, or it needs root and we are not."""
    if nodeid.split("[", 1)[0] in named:
        return True
    return euid != 0 and _NEEDS_ROOT.search(reason) is not None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A whole module skipped: none of its tests is named, so the run fails at its end.

    Not a collection error, which would stop the whole run before any test.
    """
    report = yield
    if report.skipped:
        _skipped_modules.append(_failure(collector.nodeid, _reason(report)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_modules:
        terminalreporter.section("modules skipped, which fails the run", red=True)
        for line in _skipped_modules:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_modules and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
