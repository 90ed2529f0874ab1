"""The kit as a real package: a wheel, installed outside the repository, boots a guest.

An editable install reads the checkout, so it cannot tell whether a wheel
carries what the kit needs at run time (the image recipes, the lessons).
This test builds the wheel, installs it (not editable) into a new virtual
environment in a temporary folder, and uses it from there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from kit.guestos import images

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.guest, pytest.mark.slow]

USE_THE_WHEEL = textwrap.dedent("""
    import importlib.util, json, sys
    import kit
    from kit.core import paths
    g = kit.Guest("wheel-guest").start()
    try:
        uname = g.run("uname -sr").stdout.strip()
    finally:
        g.stop()
    print(json.dumps({
        "kit": kit.__file__,
        "assets": str(paths.assets_dir()),
        "uname": uname,
        "jupyterlab": importlib.util.find_spec("jupyterlab") is not None,
        "voila": importlib.util.find_spec("voila") is not None,
    }))
""")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "-w", str(out), str(ROOT)],
                   check=True, timeout=600)
    (found,) = out.glob("vm_layers_kit-*.whl")
    return found


def test_the_wheel_carries_the_recipes_the_lessons_and_py_typed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("assets", "lessons"):
        for path in (ROOT / shipped).rglob("*"):
            if path.is_file() and ".ipynb_checkpoints" not in path.parts:
                assert f"kit/_data/{path.relative_to(ROOT)}" in names
    assert "kit/py.typed" in names
    assert not any(".ipynb_checkpoints" in name for name in names)


@pytest.mark.timeout(1500)
def test_installed_outside_the_repository_it_boots_a_guest_and_hands_out_lessons(
    wheel: Path, image: images.GuestImage, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheel)], check=True, timeout=1200)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    used = subprocess.run([python, "-c", USE_THE_WHEEL], cwd=away, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert used.returncode == 0, used.stdout + used.stderr
    facts = json.loads(used.stdout.strip().splitlines()[-1])
    assert facts["kit"].startswith(str(venv)) and facts["assets"].startswith(str(venv))
    assert facts["uname"] == f"Linux {image.kernel_version}"
    assert not facts["jupyterlab"] and not facts["voila"]  # the servers are an extra

    copied = subprocess.run([python, "-m", "kit", "lessons", "mine"], cwd=away, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert copied.returncode == 0, copied.stderr
    shipped = sorted(p.name for p in (ROOT / "lessons").glob("*.ipynb"))
    assert sorted(p.name for p in (away / "mine").glob("*.ipynb")) == shipped
    (away / "mine" / shipped[0]).write_text("the learner's own work")
    again = subprocess.run([python, "-m", "kit", "lessons", "mine"], cwd=away, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and "0 new lesson copies" in again.stdout, again.stderr
    assert (away / "mine" / shipped[0]).read_text() == "the learner's own work"
