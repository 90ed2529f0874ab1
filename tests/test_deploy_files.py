"""The files for a class on many servers (deploy/) agree with the kit, setup.sh and the measurement.

Nothing here builds the image or talks to a cluster (no container runtime
or Kubernetes where the tests run): the files are read and compared.

* ``deploy/Dockerfile``: Debian 12; setup.sh's ``KIT_DEFAULT_APT_PACKAGES``
  word for word, plus the extras explained below; the kit's own setup
  steps; the three guest images built as root (so published to the
  system-wide cache) before root is dropped for uid 1000; nothing that asks
  for KVM or privileges; the same start as the values file.
* ``deploy/z2jh-values.yaml``: YAML with only keys of the Zero to
  JupyterHub chart's values schema (those used, listed below); the image's
  tag is the kit's version; the kit's caps are the class file's defaults;
  the memory and CPU of each learner are what ``benchmarks/class.py``'s
  ``sizing()`` derives from the measurement in ``deploy/sizing.json``, so
  they cannot drift from it.
* ``docs/instructor-guide.md`` ("Many servers") quotes the same numbers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from kit.hub.classfile import Limits
from kit.lesson import workspace

from .test_hosting_files import setup_packages

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VALUES = ROOT / "deploy" / "z2jh-values.yaml"
SIZING = ROOT / "deploy" / "sizing.json"
GUIDE = ROOT / "docs" / "instructor-guide.md"
BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"

# Installed by the Dockerfile beyond setup.sh's list, and why.
IMAGE_EXTRAS = {
    "tini": "the container's init: reaps what a learner's processes leave behind",
}
# The setup.sh functions the Dockerfile may call (after `source ./setup.sh`).
SETUP_STEPS = ("step_venv", "step_python_packages", "require_kit_kernel")

# The chart's values this file may set, with their types in the chart's
# values schema (jupyterhub/values.schema.yaml of z2jh 4.x, checked against
# 4.4.0).  A key ending in ".*" passes anything below it through (extraEnv:
# environment variables; hub.config: traitlets configuration by class name).
CHART_KEYS: dict[str, tuple[type, ...]] = {
    "singleuser.image.name": (str,),
    "singleuser.image.tag": (str,),
    "singleuser.cmd": (list, str),
    "singleuser.defaultUrl": (str,),
    "singleuser.uid": (int,),
    "singleuser.fsGid": (int,),
    "singleuser.startTimeout": (int,),
    "singleuser.memory.guarantee": (str, int, float),
    "singleuser.memory.limit": (str, int, float),
    "singleuser.cpu.guarantee": (int, float),
    "singleuser.cpu.limit": (int, float),
    "singleuser.extraEnv.*": (str, dict),
    "singleuser.storage.capacity": (str,),
    "hub.config.*": (str, int, float, bool, list, dict),
    "cull.enabled": (bool,),
    "cull.users": (bool,),
    "cull.timeout": (int,),
    "cull.every": (int,),
    "prePuller.hook.enabled": (bool,),
    "prePuller.continuous.enabled": (bool,),
}


# -- reading the files ---------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), continuations joined.

    Comment lines are dropped, also inside a continued instruction (Docker
    does the same).
    """
    found: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        found.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued instruction"
    return found


def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def of_kind(kind: str) -> list[str]:
    return [rest for keyword, rest in dockerfile() if keyword == kind]


def args() -> dict[str, str]:
    """The Dockerfile's ARG defaults."""
    found = {}
    for rest in of_kind("ARG"):
        name, _, default = rest.partition("=")
        found[name] = default.strip('"')
    return found


def apt_installed() -> list[str]:
    """Every package an `apt-get install` of a RUN names."""
    packages: list[str] = []
    for body in of_kind("RUN"):
        command: list[str] = []
        for word in [*shlex.split(body), "&&"]:
            if word != "&&":
                command.append(word)
                continue
            if command[:2] == ["apt-get", "install"]:
                packages += [w for w in command[2:] if not w.startswith("-")]
            command = []
    return packages


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return loaded


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Each leaf's dotted path and value (a list is a leaf)."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.update(leaves(value, f"{path}."))
        else:
            found[path] = value
    return found


def sizing_file() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SIZING.read_text())
    return loaded


def benchmark() -> ModuleType:
    """benchmarks/class.py (``class`` is a keyword: it is loaded by its path)."""
    name = "benchmarks_class"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "class.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]


def mebibytes(spec: str | int | float) -> float:
    """A memory value as JupyterHub reads it (ByteSpecification: K, M, G, T are 1024s), in MiB."""
    from jupyterhub.traitlets import ByteSpecification

    class Holder:  # ByteSpecification.validate reads nothing of its object
        pass

    return int(ByteSpecification().validate(Holder(), spec)) / 2**20


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


# -- the image -----------------------------------------------------------------------------


def test_the_image_starts_from_debian_12() -> None:
    assert of_kind("FROM") == ["debian:12"], "one stage, on the Debian the kit is tested on"


def test_the_image_installs_setup_sh_packages_and_explained_extras() -> None:
    installed = apt_installed()
    assert len(installed) == len(set(installed)), "a package is named twice"
    assert sorted(installed) == sorted([*setup_packages(), *IMAGE_EXTRAS])


def test_the_image_copies_what_the_package_and_its_setup_need() -> None:
    sources = [word for rest in of_kind("COPY") for word in rest.split()[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the checkout"
    manifest = (ROOT / "MANIFEST.in").read_text()
    grafted = re.findall(r"^graft (\S+)$", manifest, re.M)
    needed = {"kit", "setup.sh", "pyproject.toml", str(pyproject()["readme"]), *grafted}
    assert needed <= set(sources)
    assert ".venv" not in sources and "." not in sources, "copy no machine's own files"


def test_the_image_sets_up_with_setup_sh_own_steps() -> None:
    script = (ROOT / "setup.sh").read_text()
    body = " ".join(of_kind("RUN"))
    called = set(re.findall(r"\b(step_\w+|require_\w+)\b", body))
    assert called == set(SETUP_STEPS)
    for step in called:
        assert re.search(rf"^{step}\(\) {{$", script, re.M), f"setup.sh has no {step}"
    extras = re.search(r"step_python_packages /opt/kit ([\w,]+)", body)
    assert extras and set(extras.group(1).split(",")) == {"lab", "hub"}
    assert set(extras.group(1).split(",")) <= set(pyproject()["optional-dependencies"])


def test_the_images_jupyterhub_is_one_the_kit_accepts() -> None:
    """Held to the chart's major version, inside the range of the kit's hub extra."""
    ours = Requirement(args()["JUPYTERHUB_SPEC"])
    kits = next(Requirement(r) for r in pyproject()["optional-dependencies"]["hub"]
                if Requirement(r).name == "jupyterhub")
    both = SpecifierSet(str(ours.specifier)) & kits.specifier
    assert any(Version(f"{major}.{minor}") in both for major in range(5, 7)
               for minor in range(10)), f"{ours} and the kit's {kits} share no version"


def test_the_images_are_built_as_root_and_published_before_root_is_dropped() -> None:
    steps = dockerfile()
    user_at = next(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    builds = [i for i, (keyword, rest) in enumerate(steps)
              if keyword == "RUN" and "-m kit image" in rest]
    assert builds and max(builds) < user_at, "root's `kit image` publishes to /var/cache/kit"
    body = steps[builds[0]][1]
    for command in ("-m kit image &&", "-m kit image --arch aarch64",
                    "-m kit image --kernel debian"):
        assert command in body
    assert "require_kit_kernel" in body
    # A private cache is never published (kit.guestos.system_cache.may_publish).
    assert "KIT_CACHE_DIR" not in " ".join(rest for _, rest in steps[:user_at])


def test_the_image_drops_root_for_uid_1000() -> None:
    users = of_kind("USER")
    assert users and users[-1] in ("${NB_UID}", "$NB_UID", "1000")
    assert args()["NB_UID"] == "1000"
    useradd = next(rest for rest in of_kind("RUN") if "useradd" in rest)
    assert '--uid "$NB_UID"' in useradd and '--gid "$NB_GID"' in useradd
    assert "sudo" not in " ".join(of_kind("RUN")), "a learner gets no root"


def test_nothing_in_the_image_asks_for_kvm_or_privileges() -> None:
    text = " ".join(rest for _, rest in dockerfile())
    for word in ("/dev/kvm", "--privileged", "KIT_ACCEL", "setcap", "chmod u+s"):
        assert word not in text, word


def test_every_run_is_valid_shell() -> None:
    for body in of_kind("RUN"):
        check = subprocess.run(["bash", "-n", "-c", body], capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, f"{body[:80]}...: {check.stderr}"


def test_the_image_and_the_values_start_the_same_server() -> None:
    command = json.loads(of_kind("CMD")[0])
    assert command == values()["singleuser"]["cmd"]
    assert command[1:3] == ["-m", "kit.hub.learner"], "the start of kit/hub/config.py"
    assert importlib.util.find_spec("kit.hub.learner") is not None
    lessons = next(rest for rest in of_kind("ENV") if "KIT_LESSONS_DIR" in rest)
    folder = re.search(r"KIT_LESSONS_DIR=(\S+)", lessons)
    assert folder and folder.group(1).replace("${NB_USER}", args()["NB_USER"]) in \
        command[-1], "the server opens on the folder the lessons are copied into"
    assert of_kind("ENTRYPOINT") == ['["tini", "--"]']


# -- the Helm chart's values ----------------------------------------------------------------


def test_the_values_use_only_the_charts_keys_with_their_types() -> None:
    for path, value in leaves(values()).items():
        known = CHART_KEYS.get(path) or next(
            (types for key, types in CHART_KEYS.items()
             if key.endswith(".*") and path.startswith(key[:-1])), None)
        assert known is not None, f"{path}: not a key of the chart's values this file uses"
        assert isinstance(value, known), f"{path} = {value!r}: not {known}"
    classes = values()["hub"]["config"]
    assert all(name[0].isupper() for name in classes), "hub.config's keys are class names"


def test_the_values_sizing_is_the_measurements() -> None:
    """The four numbers are sizing() of the figures measured, as rounded by its rules."""
    record = sizing_file()
    derived = benchmark().sizing(record["measured"])
    assert derived == record["sizing"], "deploy/sizing.json's sizing is not sizing(measured)"
    single = values()["singleuser"]
    assert single["memory"] == {"guarantee": derived["memory_guarantee"],
                                "limit": derived["memory_limit"]}
    assert single["cpu"] == {"guarantee": derived["cpu_guarantee"],
                             "limit": derived["cpu_limit"]}


def test_the_limits_hold_lesson_4_and_the_kits_caps() -> None:
    record = sizing_file()
    measured, single = record["measured"], values()["singleuser"]
    limit = mebibytes(single["memory"]["limit"])
    assert mebibytes(single["memory"]["guarantee"]) <= limit
    lesson4 = measured["notebook_cgroup_mb"] + sum(
        g["memory_mb"] + measured["qemu_overhead_mb"] for g in measured["guests"])
    assert lesson4 <= limit, "the kit would refuse lesson 4's second guest"
    assert measured["rss_peak_mb"] <= limit
    assert single["cpu"]["guarantee"] <= single["cpu"]["limit"]
    assert single["cpu"]["limit"] >= max(g["cpus"] for g in measured["guests"])
    env = single["extraEnv"]
    caps = {"guests": int(env["KIT_MAX_GUESTS"]),
            "guest_memory_mb": int(env["KIT_MAX_GUEST_MEMORY_MB"])}
    assert caps == measured["caps"] == {"guests": Limits().guests,
                                        "guest_memory_mb": Limits().guest_memory_mb}


def test_the_sizing_comes_from_a_run_of_the_benchmark() -> None:
    record = sizing_file()
    assert record["command"].startswith("benchmarks/class.py")
    assert "--write-sizing" in record["command"]
    measured = record["measured"]
    assert measured["host_cpus"] >= 1 and measured["rss_idle_mb"] > 0
    assert {g["name"] for g in measured["guests"]} == {"alpha", "beta"}


@pytest.mark.parametrize("memory, expected", [("384M", 384), ("1G", 1024), ("1536M", 1536)])
def test_memory_values_are_read_in_mebibytes(memory: str, expected: int) -> None:
    assert mebibytes(memory) == expected == benchmark().mebibytes(memory)


def test_the_image_tag_is_the_kits_version() -> None:
    assert values()["singleuser"]["image"]["tag"] == pyproject()["version"]


def test_learners_open_the_first_lesson() -> None:
    first = workspace.shipped_notebooks()[0].name
    assert values()["singleuser"]["defaultUrl"] == f"/lab/tree/{first}"


def test_the_values_run_the_images_user() -> None:
    single = values()["singleuser"]
    assert (single["uid"], single["fsGid"]) == (int(args()["NB_UID"]), int(args()["NB_GID"]))


def test_idle_servers_are_culled() -> None:
    cull = values()["cull"]
    assert cull["enabled"] is True and cull["timeout"] > 0 and cull["every"] > 0


# -- the guide -----------------------------------------------------------------------------------


def test_the_guide_quotes_the_sizing_and_its_command() -> None:
    text = GUIDE.read_text()
    assert "## Many servers" in text
    section = text.split("## Many servers", 1)[1].split("\n## ", 1)[0]
    record = sizing_file()
    size = record["sizing"]
    for value in (size["memory_guarantee"], size["memory_limit"],
                  f"{size['cpu_guarantee']:g}", f"{size['cpu_limit']:g}"):
        assert value in section, f"the guide's Many servers section does not say {value}"
    assert record["command"] in section
    assert record["command"] in BENCHMARKS_DOC.read_text()
