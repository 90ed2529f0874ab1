"""A short part of the suite again, on the newest Python this machine has.

The suite itself runs on Debian's own Python (``.ci/run`` sets
``KIT_PYTHON=/usr/bin/python3``), because that is what a fresh Debian 12
has, and the kit once failed there while passing on a newer 3.11 (issue 14).
The newest interpreter here gets the parts most sensitive to the
interpreter's asyncio: the guest lifecycle, the stress test of channels and
descriptors, and one lesson.  Its environment, ``.venv-newest``, is made
once and kept while ``pyproject.toml`` and that interpreter stay the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-newest"
SHORT_PART = [
    "tests/hypervisor/test_channels.py",
    "tests/hypervisor/test_guest.py",
    "tests/hypervisor/test_guest_stress.py",
    "tests/lesson/test_lesson00_welcome.py",
]

pytestmark = [pytest.mark.guest, pytest.mark.slow]

Version = tuple[int, int, int]


def _candidates() -> set[Path]:
    """Every python3 executable on PATH, in the usual folders, and under pyenv."""
    folders = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    folders += [Path("/usr/local/bin"), Path("/usr/bin")]
    folders += sorted(Path.home().glob(".pyenv/versions/*/bin"))
    found = set()
    for folder in folders:
        for path in folder.glob("python3*"):
            if re.fullmatch(r"python3(\.\d+)?", path.name) and os.access(path, os.X_OK):
                found.add(path.resolve())
    return found


def _version(python: Path) -> Version | None:
    """The interpreter's version, if it runs and has venv; None otherwise."""
    probe = "import sys, venv; print(*sys.version_info[:3])"
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor, micro = (int(word) for word in out.split())
    return major, minor, micro


def newest_python() -> tuple[Path, Version] | None:
    versions = {path: v for path in _candidates() if (v := _version(path)) and v >= (3, 11, 0)}
    if not versions:
        return None
    path = max(versions, key=lambda p: versions[p])
    return path, versions[path]


def _stamp(python: Path, version: Version) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{python} {'.'.join(map(str, version))} {digest}\n"


def _environment_for(python: Path, version: Version) -> Path:
    """``.venv-newest`` with the kit installed, made again only when something changed."""
    stamp_file = VENV / ".kit-installed"
    stamp = _stamp(python, version)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return VENV / "bin" / "python"
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([str(python), "-m", "venv", str(VENV)], check=True, timeout=300)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-e", ".[test]"],
                   cwd=ROOT, check=True, timeout=1200)
    stamp_file.write_text(stamp)
    return VENV / "bin" / "python"


@pytest.mark.timeout(2400)
def test_short_part_on_the_newest_python() -> None:
    found = newest_python()
    assert found is not None, "no Python 3.11 or later with venv was found"
    python, version = found
    running = tuple(sys.version_info[:3])
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if base == python or version <= running:
        pytest.skip(f"the suite already runs on the newest Python here ({python}, "
                    f"{'.'.join(map(str, running))})")
    venv_python = _environment_for(python, version)
    env = {k: v for k, v in os.environ.items()
           if k not in {"KIT_RUNTIME_DIR", "KIT_PROGRESS_FILE", "PYTEST_ADDOPTS"}}
    result = subprocess.run(
        [str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SHORT_PART],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=2100, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"on Python {'.'.join(map(str, version))} ({python}): {summary[0]}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
