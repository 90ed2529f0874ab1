"""The suite's own promises: markers that say the truth, timeouts that fit inside each other.

``-m "not guest"`` is the quick run: tests/conftest.py fails a test that is not
marked ``guest`` and boots a guest or builds an image anyway.  These tests
check that guard, and that every bound on one notebook cell (or one browser
wait) is shorter than the bound on the whole test, so a hang is reported by
the wait that names it, not cut short by pytest-timeout's stack dump.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.guestos.build import common
from kit.guestos.build import kernel as kit_kernel
from kit.hypervisor import registry
from tests import conftest
from tests.conftest import our_qemu_pids

TESTS = Path(__file__).resolve().parent


def _timeout_of(marks: object, default: float) -> float:
    """The ``pytest.mark.timeout(N)`` among ``marks``, else ``default``."""
    found = marks if isinstance(marks, list) else [marks]
    for mark in found:
        if getattr(mark, "name", None) == "timeout":
            return float(mark.args[0])
    return default


# -- the guard on the quick run -------------------------------------------------------


def test_a_test_not_marked_guest_cannot_boot_one(image: images.GuestImage,
                                                 guest_name: str) -> None:
    before = our_qemu_pids()
    g = kit.Guest(guest_name)
    with pytest.raises(conftest.UnmarkedGuestWork, match="not marked guest"):
        g.start()
    conftest.forgive_unmarked_guest_work()  # it tried on purpose
    assert registry.get(guest_name) is None and kit.guests() == []
    assert our_qemu_pids() == before
    assert not (paths.runtime_dir() / guest_name).exists()


def test_a_test_not_marked_guest_cannot_build_an_image_or_a_kernel() -> None:
    with pytest.raises(conftest.UnmarkedGuestWork, match="built a guest image"):
        images._build(images.load_recipe(), [], "key", "auto", common.no_progress)
    with pytest.raises(conftest.UnmarkedGuestWork, match="built the kit's kernel"):
        kit_kernel._build_once(None, None, common.no_progress, False)  # type: ignore[arg-type]
    conftest.forgive_unmarked_guest_work()


# -- timeouts inside timeouts ------------------------------------------------------------


def test_a_notebook_cell_times_out_well_before_its_test(pytestconfig: pytest.Config) -> None:
    from tests import test_lessons
    from tests.lesson import test_notebooks

    default = float(pytestconfig.getini("timeout"))
    cell = test_notebooks.CELL_TIMEOUT_S + test_notebooks.KERNEL_START_S
    tests = {
        "tests/lesson/test_notebooks.py": _timeout_of(test_notebooks.pytestmark, default),
        "tests/test_lessons.py::test_lesson_runs_top_to_bottom": _timeout_of(
            test_lessons.test_lesson_runs_top_to_bottom.pytestmark, default),  # type: ignore[attr-defined]
    }
    for where, bound in tests.items():
        assert 2 * cell <= bound, f"{where}: a cell may take {cell} s, the test only {bound} s"


def _notebook_runs() -> list[tuple[str, str | None]]:
    """Each ``NotebookClient(...)`` in the tests: its file, and its ``timeout=`` as written."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "NotebookClient"):
                words = {k.arg: ast.unparse(k.value) for k in node.keywords}
                found.append((str(path.relative_to(TESTS.parent)), words.get("timeout")))
    return found


# Known to break the rule, in files this suite's maintainers do not own yet: strict,
# so the day one is fixed its entry must go.
_KNOWN_TOO_LONG: dict[str, str] = {}


@pytest.mark.parametrize("where, bound", [
    pytest.param(where, bound, id=where, marks=[pytest.mark.xfail(
        strict=True, reason=_KNOWN_TOO_LONG[where])] if where in _KNOWN_TOO_LONG else [])
    for where, bound in _notebook_runs()])
def test_every_notebook_run_uses_the_cell_bound(where: str, bound: str | None) -> None:
    """A notebook's cells are bounded by CELL_TIMEOUT_S, which fits inside the test's bound."""
    assert bound == "CELL_TIMEOUT_S", f"{where}: NotebookClient(timeout={bound})"


def test_every_browser_wait_fits_inside_one_lesson_test(pytestconfig: pytest.Config) -> None:
    pytest.importorskip("playwright")
    from tests.browser import lab, notebook, test_lessons_in_browser

    bound = _timeout_of(test_lessons_in_browser.pytestmark,
                        float(pytestconfig.getini("timeout")))
    # The first lesson also starts JupyterLab; every lesson opens (two UI waits),
    # runs all its cells, then does its plan's steps (guest-long waits) and shuts down.
    one_lesson = (lab.START_TIMEOUT_S + 2 * notebook.UI_TIMEOUT_MS / 1000
                  + notebook.RUN_ALL_TIMEOUT_S)
    assert one_lesson + 4 * notebook.GUEST_TIMEOUT_MS / 1000 <= bound, (one_lesson, bound)
