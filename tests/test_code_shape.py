"""The code's shape, checked in CI: the layers' import direction, no cycles, types, style.

The contracts live in pyproject.toml ([tool.importlinter]): the package is
arranged as the layers it teaches, and a lower layer never imports a higher
one (docs/architecture.md has the map).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


def test_the_layers_import_in_one_direction_and_without_cycles() -> None:
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_mypy_strict_on_the_package() -> None:
    result = run(sys.executable, "-m", "mypy", "kit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "kit", "tests", "benchmarks", "lessons")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_reaches_into_anothers_private_names() -> None:
    result = run("grep", "-rnP", r"from kit[\w.]* import [^#\n]*\b_[a-z]", "kit")
    assert result.stdout == "", result.stdout
