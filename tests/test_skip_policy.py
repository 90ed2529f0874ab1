"""The test command's rule on skips (tests/skip_policy.py): only README.md's may happen.

The plugin runs here on a scratch suite of its own, in a pytest of its own,
with the real README.md: a skip it does not name fails, one it names stays a
skip, and an expected failure (xfail) is left alone.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import skip_policy

ROOT = Path(__file__).resolve().parent.parent
NAMED = "tests/test_newest_python.py::test_short_part_on_the_newest_python"


def test_every_skip_the_readme_names_is_a_real_test() -> None:
    named = skip_policy.intended_skips(skip_policy.README.read_text())
    assert NAMED in named
    for entry in sorted(named):
        path, _, name = entry.partition("::")
        assert (ROOT / path).is_file(), f"README.md names {entry}: there is no {path}"
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"README.md names {entry}: {path} has no {name}"


def test_a_readme_without_the_section_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match="no section"):
        skip_policy.intended_skips("# The kit\n\n## Requirements\n")


def test_skips_that_need_root_are_intended_only_for_other_users() -> None:
    named = skip_policy.intended_skips(skip_policy.README.read_text())
    other = "tests/test_x.py::test_y"
    assert skip_policy.intended(f"{NAMED}[a-param]", "anything", 0, named)
    assert not skip_policy.intended(other, "needs root", 0, named)  # CI runs as root
    assert skip_policy.intended(other, "making a chroot needs root", 1000, named)
    assert not skip_policy.intended(other, "gpg is not installed", 1000, named)
    assert not skip_policy.intended(other, "no rootfs here", 1000, named)


def run_scratch_suite(folder: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
         "-q", "-rA", f"--rootdir={folder}", str(folder)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )


def test_an_unnamed_skip_fails_and_a_named_one_stays_a_skip(tmp_path: Path) -> None:
    result = run_scratch_suite(tmp_path, {
        "tests/test_newest_python.py": """
            import pytest

            def test_short_part_on_the_newest_python():
                pytest.skip("no newer Python here")
        """,
        "tests/test_other.py": """
            import shutil
            import pytest

            @pytest.mark.skipif(True, reason="gpg is not installed")
            def test_reads_a_key():
                pass

            @pytest.fixture
            def browser():
                pytest.skip("chromium is not installed")

            def test_in_a_browser(browser):
                pass

            @pytest.mark.xfail(strict=True, reason="known")
            def test_known_to_fail():
                assert False

            def test_fine():
                pass
        """,
        "tests/test_skipped_module.py": """
            import pytest

            pytest.skip("not on this machine", allow_module_level=True)
        """,
    })
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    summary = result.stdout.strip().splitlines()[-1]
    # A skip at setup (a mark, a fixture) becomes an error of the setup.
    assert "2 errors" in summary and "1 passed" in summary, output
    assert "2 skipped" in summary and "1 xfailed" in summary, output  # one is the module
    assert "modules skipped, which fails the run" in output
    assert any(line.startswith("SKIPPED [1]") and "tests/test_newest_python.py" in line
               and line.endswith("no newer Python here") for line in output.splitlines()), output
    for unnamed in ("test_other.py::test_reads_a_key", "test_other.py::test_in_a_browser",
                    "test_skipped_module.py"):
        assert any(unnamed in line and "README.md does not name it" in line
                   for line in output.splitlines()), (unnamed, output)
    assert "gpg is not installed" in output and "chromium is not installed" in output


def test_the_test_command_collects_the_builders_tests() -> None:
    """pytest's default norecursedirs has "build": tests/guestos/build/ would never run."""
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
         "--collect-only", "-q", "tests/guestos"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    ).stdout
    files = {line.split("::")[0] for line in listed.splitlines() if "::" in line}
    wanted = {path.relative_to(ROOT).as_posix()
              for path in (ROOT / "tests" / "guestos" / "build").glob("test_*.py")}
    assert wanted and wanted <= files, listed
