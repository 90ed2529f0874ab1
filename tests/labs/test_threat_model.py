"""docs/threat-model.md names the tests that prove each protection: they must all exist.

The document is parsed for ``tests/...py::name`` references; each file must
exist and define a test function of that name (found with :mod:`ast`, so a
name in a comment or a string does not count).  Renaming or deleting a test
then fails here until the document is updated.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "threat-model.md"
REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def references() -> list[tuple[str, str]]:
    return sorted(set(REFERENCE.findall(DOC.read_text())))


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def test_the_document_names_tests() -> None:
    found = references()
    assert len(found) >= 20, found
    # Each kind of protection the brief asks for is backed by at least one test file.
    files = {path for path, _ in found}
    for needed in ("tests/infrastructure/test_limits.py", "tests/hypervisor/test_faults.py",
                   "tests/test_bad_input.py", "tests/test_jupyter_kernel.py",
                   "tests/hypervisor/test_guest.py", "tests/hypervisor/test_qemu.py"):
        assert needed in files, f"{needed} is not cited"


@pytest.mark.parametrize(("path", "name"), references(),
                         ids=[f"{p}::{n}" for p, n in references()])
def test_every_named_test_exists(path: str, name: str) -> None:
    file = ROOT / path
    assert file.is_file(), f"docs/threat-model.md cites {path}, which does not exist"
    assert name in defined_tests(file), (
        f"docs/threat-model.md cites {path}::{name}, which is not a test there; "
        "update the document to name the test that now proves it")


def test_the_document_says_what_it_does_not_protect() -> None:
    text = DOC.read_text()
    assert "does NOT protect" in text
    for limit in ("127.0.0.1", "CPU", "root inside the guest"):
        assert limit in text, limit
