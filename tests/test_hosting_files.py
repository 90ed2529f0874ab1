"""The one-click hosting files (Binder / repo2docker) agree with what setup.sh installs.

``apt.txt`` is setup.sh's ``KIT_DEFAULT_APT_PACKAGES`` minus what a hosted
image does not need (each with its reason below); ``environment.yml`` asks
for pyproject.toml's Python and its dependencies, word for word; ``postBuild``
installs the kit and builds the guest image.  Nothing here runs apt, pip or
repo2docker: the files are read and compared.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
APT_TXT = ROOT / "apt.txt"
ENVIRONMENT = ROOT / "environment.yml"
POST_BUILD = ROOT / "postBuild"

# In setup.sh's list, not in apt.txt, and why.
# Binder builds no kernel of the kit's own (minutes of build time): guests
# there boot Debian's kernel, the fallback, so the compilers stay out.
KERNEL_BUILD_ONLY = "builds the kit's own kernel; Binder boots Debian's instead"
AGENT_BUILD_ONLY = "builds the static guest agent; Binder's guests run Debian's, as it is"
NOT_FOR_HOSTING = {
    "python3": "repo2docker brings its own Python (environment.yml says which)",
    "python3-venv": "the same: repo2docker makes the environment, not a venv",
    "python3-dev": "headers for building wheels; the kit's dependencies have wheels",
    "gcc": "build-only (wheels without a binary); repo2docker's base image has a compiler",
    "build-essential": KERNEL_BUILD_ONLY,
    "bc": KERNEL_BUILD_ONLY,
    "bison": KERNEL_BUILD_ONLY,
    "flex": KERNEL_BUILD_ONLY,
    "libelf-dev": KERNEL_BUILD_ONLY,
    "libssl-dev": KERNEL_BUILD_ONLY,
    "xz-utils": KERNEL_BUILD_ONLY,
    "ninja-build": AGENT_BUILD_ONLY,
    "pkg-config": AGENT_BUILD_ONLY,
    "fonts-noto-color-emoji": "for a browser on the server itself; on Binder the learner's "
                              "browser runs on their own machine, with its own fonts",
}
# Files that would make repo2docker ignore ours: a Dockerfile replaces all of
# them, a binder/ or .binder/ folder is read instead of the repository's root,
# and requirements.txt, Pipfile or setup.py would compete with environment.yml.
SHADOWING = ("Dockerfile", "binder", ".binder", "requirements.txt", "Pipfile", "setup.py")


def setup_packages() -> list[str]:
    """KIT_DEFAULT_APT_PACKAGES from setup.sh, as bash would read the array."""
    text = (ROOT / "setup.sh").read_text()
    body = re.search(r"^KIT_DEFAULT_APT_PACKAGES=\((.*?)^\)", text, re.S | re.M)
    assert body, "setup.sh has no KIT_DEFAULT_APT_PACKAGES=( ... ) array"
    return [line.split("#")[0].strip() for line in body.group(1).splitlines()
            if line.split("#")[0].strip()]


def apt_txt_packages() -> list[str]:
    return [line.partition("#")[0].strip() for line in APT_TXT.read_text().splitlines()
            if line.partition("#")[0].strip()]


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def conda_and_pip() -> tuple[list[str], list[str]]:
    """environment.yml's conda packages, and its pip list."""
    env: dict[str, Any] = yaml.safe_load(ENVIRONMENT.read_text())
    conda: list[str] = []
    pip: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip += entry.get("pip", [])
        else:
            conda.append(str(entry))
    return conda, pip


def normal(requirement: str) -> tuple[str, str, str]:
    parsed = Requirement(requirement)
    return (parsed.name.lower().replace("_", "-"), str(parsed.specifier), str(parsed.marker))


# -- apt.txt ------------------------------------------------------------------------


def test_apt_txt_is_setup_list_minus_the_explained_exceptions() -> None:
    wanted = [p for p in setup_packages() if p not in NOT_FOR_HOSTING]
    assert sorted(apt_txt_packages()) == sorted(wanted)


def test_every_exception_is_in_setup_list() -> None:
    """An exception for a package setup.sh no longer installs is stale: remove it."""
    assert set(NOT_FOR_HOSTING) <= set(setup_packages())


def test_apt_txt_lines_are_package_names() -> None:
    """repo2docker pastes them into an apt-get command line."""
    for package in apt_txt_packages():
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", package), package
    assert len(apt_txt_packages()) == len(set(apt_txt_packages()))


# -- the Python environment ------------------------------------------------------------


def test_environment_pip_list_is_pyproject_dependencies() -> None:
    """The kit's dependencies and its [lab] extra (Binder serves JupyterLab and Voila)."""
    _, pip = conda_and_pip()
    wanted = pyproject()["dependencies"] + pyproject()["optional-dependencies"]["lab"]
    assert sorted(map(normal, pip)) == sorted(map(normal, wanted))


def test_environment_python_satisfies_requires_python() -> None:
    conda, _ = conda_and_pip()
    pythons = [c.removeprefix("python=") for c in conda if c.startswith("python=")]
    assert len(pythons) == 1, f"environment.yml must pin one Python: {conda}"
    assert Version(pythons[0]) in SpecifierSet(str(pyproject()["requires-python"]))
    assert "pip" in conda


def test_nothing_shadows_the_hosting_files() -> None:
    present = [name for name in SHADOWING if (ROOT / name).exists()]
    assert not present, f"repo2docker would not use apt.txt/environment.yml/postBuild: {present}"


# -- postBuild ----------------------------------------------------------------------------


def test_post_build_is_an_executable_bash_script() -> None:
    assert os.access(POST_BUILD, os.X_OK)
    assert POST_BUILD.read_text().startswith("#!/bin/bash\n")
    check = subprocess.run(["bash", "-n", str(POST_BUILD)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_post_build_installs_the_kit_and_builds_the_image() -> None:
    text = POST_BUILD.read_text()
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*python -m pip install .*-e \.$", text, re.M)
    assert re.search(r"^\s*python -m kit image$", text, re.M)


def test_post_build_builds_the_aarch64_image_too() -> None:
    """Lessons 2 and 6 boot an aarch64 guest: its image is built at image-build time too."""
    text = POST_BUILD.read_text()
    assert re.search(r"^\s*python -m kit image --arch aarch64$", text, re.M)
    assert "qemu-system-arm" in apt_txt_packages()  # qemu-system-aarch64


def test_post_build_leaves_apt_to_the_kit() -> None:
    """Debian's packages come through the kit's own apt configuration, not one of postBuild's.

    The kit keeps it (kit/guestos/build/private_apt.py, with Debian's key in
    assets/apt/), so postBuild needs neither a key nor APT_CONFIG of its own,
    and never changes the system's apt (it could not: it runs without root).
    """
    text = POST_BUILD.read_text()
    for word in ("APT_CONFIG", "BEGIN PGP", "apt-get", "dpkg", "sudo"):
        assert word not in text.split("set -euo pipefail", 1)[1], word
