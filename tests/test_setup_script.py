"""Tests of setup.sh, .ci/run and the README's two commands.

None of these runs apt-get, pip or QEMU for real: every test either stops the
script before it changes anything, or loads its functions (``source
setup.sh``) and calls one with stand-in programs first on PATH.  The script
under test is a copy in a scratch folder, so a mistake cannot touch this
checkout's ``.venv``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "setup.sh"
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"
BASH = shutil.which("bash") or "/bin/bash"
NO_SUCH_PACKAGE = "kit-test-no-such-package"
REQUIRED_PACKAGES = (
    "qemu-system-x86",
    "qemu-utils",
    "graphviz",
    "busybox-static",
    "qemu-guest-agent",
    "cpio",
    "sqlite3",
    "python3",
    "python3-venv",
    "python3-dev",
    "gcc",
    "curl",
    "ca-certificates",
    "util-linux",
)

needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg-query") is None or shutil.which("apt-get") is None,
    reason="needs a Debian-like system (dpkg-query, apt-get)",
)


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A world-readable scratch folder holding a copy of setup.sh.

    Not pytest's tmp_path: that lives under a root-only folder, and some tests
    run the script as the unprivileged user ``nobody``.
    """
    folder = Path(tempfile.mkdtemp(prefix="kit-setup-test-"))
    try:
        folder.chmod(0o755)
        shutil.copy2(SETUP, folder / "setup.sh")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would change what the script does."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KIT_") and key not in {"DISPLAY", "WAYLAND_DISPLAY"}
    }
    env.update(extra)
    return env


def call(
    function: str, *args: str, env: dict[str, str] | None = None, script: Path = SETUP
) -> subprocess.CompletedProcess[str]:
    """Load setup.sh's functions into bash and run one of them."""
    return subprocess.run(
        [BASH, "-c", 'source "$1"; shift; "$@"', "bash", str(script), function, *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=30,
        check=False,
    )


def make_stub(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def fenced_blocks(markdown: str) -> list[str]:
    return [
        m.group(1).strip() for m in re.finditer(r"^```[^\n]*\n(.*?)^```", markdown, re.M | re.S)
    ]


def script_commands(path: Path) -> list[str]:
    """The lines of a shell script that do something (no comments, no blanks)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


# The files themselves ---------------------------------------------------------


def test_setup_script_parses() -> None:
    subprocess.run([BASH, "-n", str(SETUP)], check=True)
    subprocess.run([BASH, "-n", str(CI_RUN)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_happy() -> None:
    result = subprocess.run(
        ["shellcheck", str(SETUP), str(CI_RUN)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [SETUP, CI_RUN], ids=["setup.sh", ".ci/run"])
def test_scripts_are_executable(path: Path) -> None:
    assert path.stat().st_mode & stat.S_IXUSR, f"chmod +x {path.relative_to(ROOT)}"
    tracked = subprocess.run(
        ["git", "ls-files", "-s", "--", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if tracked:
        assert tracked.startswith("100755"), f"git does not record {path.name} as executable"


def test_ci_run_runs_the_test_command_and_nothing_else() -> None:
    assert CI_RUN.read_text().startswith("#!/usr/bin/env bash\n")
    assert script_commands(CI_RUN) == [
        "set -euo pipefail",
        'cd "$(dirname "$0")/.."',
        "if [[ -x /usr/bin/python3 ]]; then export KIT_PYTHON=/usr/bin/python3; fi",
        "exec ./setup.sh test",
    ]


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    first_section = text.split("\n## ", 1)[0]
    blocks = fenced_blocks(first_section)
    assert blocks[:2] == ["./setup.sh lab", "./setup.sh test"]
    ci_command = script_commands(CI_RUN)[-1].removeprefix("exec ")
    assert blocks[1] == ci_command


def test_default_package_list() -> None:
    packages = call("apt_packages").stdout.split()
    for needed in REQUIRED_PACKAGES:
        assert needed in packages
    assert len(packages) == len(set(packages))


def test_package_list_can_be_overridden() -> None:
    result = call("apt_packages", env=clean_env(KIT_APT_PACKAGES=" cpio  foo "))
    assert result.stdout.split() == ["cpio", "foo"]


def test_unknown_command_is_refused_before_doing_anything(sandbox: Path) -> None:
    for args in (["bogus"], ["lab", "extra"]):
        result = subprocess.run(
            [BASH, str(sandbox / "setup.sh"), *args],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        assert "usage:" in result.stderr
    assert listing(sandbox) == ["setup.sh"]


# System packages --------------------------------------------------------------


@needs_dpkg
def test_missing_packages_names_only_the_missing_ones() -> None:
    result = call("missing_packages", "dpkg", NO_SUCH_PACKAGE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [NO_SUCH_PACKAGE]


@needs_dpkg
def test_non_root_user_gets_the_exact_sudo_command(sandbox: Path) -> None:
    command = [BASH, str(sandbox / "setup.sh")]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop root")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = clean_env(KIT_APT_PACKAGES=f"dpkg {NO_SUCH_PACKAGE}", HOME="/nonexistent")
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    wanted = f"sudo apt-get install -y --no-install-recommends {NO_SUCH_PACKAGE}"
    assert wanted in [line.strip() for line in result.stderr.splitlines()]
    assert "as your normal user" in result.stderr
    assert "installing" not in result.stdout
    assert listing(sandbox) == ["setup.sh"]


def test_without_apt_it_lists_the_programs_in_plain_words(sandbox: Path) -> None:
    empty = sandbox / "empty-path"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(sandbox), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [BASH, str(sandbox / "setup.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no apt-get" in result.stderr
    listed = {line.split()[1] for line in result.stderr.splitlines() if line.startswith("  - ")}
    assert {"qemu-system-x86_64", "dot", "busybox", "sqlite3", "cpio"} <= listed
    assert "Graphviz" in result.stderr
    assert "KIT_SKIP_APT=1" in result.stderr
    assert listing(sandbox) == ["empty-path", "setup.sh"]


@needs_dpkg
@needs_dpkg
def test_npm_from_nodesource_counts_as_installed(tmp_path: Path) -> None:
    """NodeSource's nodejs brings npm and conflicts with Debian's npm package."""
    make_stub(tmp_path, "npm", "exit 0\n")
    make_stub(tmp_path, "node", "exit 0\n")
    path = f"{tmp_path}:{os.environ['PATH']}"
    result = call("missing_packages", "npm", "nodejs", NO_SUCH_PACKAGE, env=clean_env(PATH=path))
    assert result.stdout.split() == [NO_SUCH_PACKAGE]


def test_nothing_missing_means_no_apt_get_at_all(sandbox: Path) -> None:
    log = sandbox / "apt.log"
    make_stub(sandbox, "apt-get", f'echo "apt-get $*" >> {log}\n')
    env = clean_env(KIT_APT_PACKAGES="dpkg", PATH=f"{sandbox}:{os.environ['PATH']}")
    result = call("step_system_packages", env=env)
    assert result.returncode == 0, result.stderr
    assert "all 1 installed" in result.stdout
    assert not log.exists()


@needs_dpkg
def test_root_installs_only_what_is_missing(sandbox: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the apt-get branch runs only as root")
    log = sandbox / "apt.log"
    stub = make_stub(sandbox, "apt-get", f'echo "$DEBIAN_FRONTEND apt-get $*" >> {log}\n')
    env = clean_env(
        KIT_APT_PACKAGES=f"dpkg {NO_SUCH_PACKAGE}", PATH=f"{sandbox}:{os.environ['PATH']}"
    )
    # Refuse to go on unless the stand-in really is the apt-get the script will use.
    guard = f'[ "$(command -v apt-get)" = "{stub}" ] || exit 99; source "$1"; step_system_packages'
    result = subprocess.run(
        [BASH, "-c", guard, "bash", str(SETUP)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"==> installing system packages: {NO_SUCH_PACKAGE}" in result.stdout
    assert log.read_text().splitlines() == [
        "noninteractive apt-get update -qq",
        f"noninteractive apt-get install -y -qq --no-install-recommends {NO_SUCH_PACKAGE}",
    ]


# Python -----------------------------------------------------------------------


def test_pick_python_skips_an_old_python3(sandbox: Path) -> None:
    system = Path("/usr/bin/python3")
    if call("python_ok", str(system)).returncode != 0:
        pytest.skip("/usr/bin/python3 is missing or older than 3.11")
    make_stub(sandbox, "python3", "exit 1\n")  # answers "too old" to the version check
    result = call("pick_python", env=clean_env(PATH=f"{sandbox}:/usr/bin:/bin"))
    assert result.stdout.strip() == str(system)


def test_pick_python_prefers_the_systems_own(sandbox: Path) -> None:
    """Debian's /usr/bin/python3 is what a fresh Debian 12 has, and what CI tests."""
    (sandbox / "usr-bin").mkdir()
    system = make_stub(sandbox / "usr-bin", "python3", "exit 0\n")
    make_stub(sandbox, "python3", "exit 0\n")  # a newer one first on PATH
    env = clean_env(PATH=f"{sandbox}:/usr/bin:/bin", KIT_SYSTEM_PYTHON=str(system))
    result = call("pick_python", env=env)
    assert result.stdout.strip() == str(system)


def test_pick_python_falls_back_to_python3_on_path(sandbox: Path) -> None:
    good = make_stub(sandbox, "python3", "exit 0\n")  # answers "new enough"
    env = clean_env(PATH=f"{sandbox}:/usr/bin:/bin", KIT_SYSTEM_PYTHON=str(sandbox / "none"))
    result = call("pick_python", env=env)
    assert result.stdout.strip() == str(good)


def test_a_venv_of_another_python_is_remade_when_kit_python_asks(sandbox: Path) -> None:
    venv = sandbox / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    mine = call("venv_matches_kit_python", str(venv), env=clean_env(KIT_PYTHON=sys.executable))
    assert mine.returncode == 0, mine.stderr
    other = make_stub(sandbox, "python3", "exit 0\n")
    theirs = call("venv_matches_kit_python", str(venv), env=clean_env(KIT_PYTHON=str(other)))
    assert theirs.returncode == 1
    unset = call("venv_matches_kit_python", str(venv), env=clean_env())
    assert unset.returncode == 0


def test_pip_runs_only_when_pyproject_changed(sandbox: Path) -> None:
    (sandbox / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = sandbox / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = sandbox / "pip.log"
    make_stub(bin_dir, "python", f'echo "$*" >> {log}\n')
    script = sandbox / "setup.sh"

    first = call("step_python_packages", str(sandbox), script=script)
    assert first.returncode == 0, first.stderr
    assert (
        log.read_text() == "-m pip install --quiet --quiet --disable-pip-version-check -e .[lab]\n"
    )
    assert (sandbox / ".venv" / ".kit-installed").exists()

    log.unlink()
    again = call("step_python_packages", str(sandbox), script=script)
    assert "up to date" in again.stdout
    assert not log.exists()

    (sandbox / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    changed = call("step_python_packages", str(sandbox), script=script)
    assert changed.returncode == 0, changed.stderr
    assert log.exists()


def test_failed_pip_leaves_no_stamp(sandbox: Path) -> None:
    (sandbox / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = sandbox / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    make_stub(bin_dir, "python", "exit 1\n")
    result = call("step_python_packages", str(sandbox), script=sandbox / "setup.sh")
    assert result.returncode == 1
    assert "pip could not install" in result.stderr
    assert not (sandbox / ".venv" / ".kit-installed").exists()


# JupyterLab -------------------------------------------------------------------


SAVE_HOOK = "--ContentsManager.pre_save_hook=kit.lesson.workspace.drop_widget_views"


def test_jupyter_lab_as_root_without_display() -> None:
    args = call("jupyter_lab_args", "/repo", "0", "/root/kit-lessons").stdout.split()
    assert args == [
        "--ip=127.0.0.1",
        "--ServerApp.root_dir=/root/kit-lessons",
        SAVE_HOOK,
        "--allow-root",
        "--no-browser",
    ]


def test_jupyter_lab_as_user_with_display() -> None:
    for display in ({"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}):
        args = call("jupyter_lab_args", "/repo", "1000", "/home/ana/kit-lessons",
                    env=clean_env(**display)).stdout.split()
        assert args == ["--ip=127.0.0.1", "--ServerApp.root_dir=/home/ana/kit-lessons",
                        SAVE_HOOK]


def test_the_lessons_open_in_the_learners_own_folder() -> None:
    assert call("lessons_folder", env=clean_env(HOME="/home/ana")).stdout.strip() == (
        "/home/ana/kit-lessons")
    chosen = clean_env(HOME="/home/ana", KIT_LESSONS_DIR="/srv/ana-lessons")
    assert call("lessons_folder", env=chosen).stdout.strip() == "/srv/ana-lessons"


# The test command: strict where setting up for the lessons is forgiving ----------


def test_test_tools_are_installed_for_the_tests_only() -> None:
    lab = call("apt_packages").stdout.split()
    tests = call("apt_packages", "test").stdout.split()
    assert {"shellcheck", "gpg", "chromium"}.isdisjoint(lab)  # a learner needs no browser here
    assert tests == [*lab, "nodejs", "npm", "nftables", "chromium", "shellcheck", "gpg"]
    hub = call("apt_packages", "hub").stdout.split()
    assert hub == [*lab, "nodejs", "npm", "nftables"]  # the class hub: its proxy, its firewall
    assert "fonts-noto-color-emoji" in lab  # the lessons' icons, in a local browser
    # What the tests run is installed by the test command (or by every setup).
    needed = {"shellcheck", "gpg", "cpio", "e2fsprogs", "qemu-guest-agent", "busybox-static",
              "util-linux", "chromium"}
    assert needed <= set(tests)


def fake_venv_python(sandbox: Path, body: str) -> Path:
    bin_dir = sandbox / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    return make_stub(bin_dir, "python", body)


def test_an_image_without_the_kits_kernel_fails_the_test_command(sandbox: Path) -> None:
    fake_venv_python(sandbox, "echo \"Debian's kernel 6.1.0 (not the kit's own: no gcc)\"\n"
                              "exit 1\n")
    result = call("require_kit_kernel", str(sandbox), script=sandbox / "setup.sh")
    assert result.returncode == 1
    assert "the tests need the kit's own guest kernel" in result.stderr
    assert "not the kit's own: no gcc" in result.stderr
    assert "KIT_KERNEL=debian ./setup.sh test" in result.stderr


def test_debian_kernel_on_purpose_is_not_checked(sandbox: Path) -> None:
    log = sandbox / "python.log"
    fake_venv_python(sandbox, f"echo called >> {log}\nexit 1\n")
    result = call("require_kit_kernel", str(sandbox), script=sandbox / "setup.sh",
                  env=clean_env(KIT_KERNEL="debian"))
    assert result.returncode == 0, result.stderr
    assert "KIT_KERNEL=debian" in result.stdout and not log.exists()


def test_the_kit_kernel_check_on_this_checkout() -> None:
    """The check's Python, for real, on this checkout's image (setup built it)."""
    from kit.guestos import images

    if images.kernel_choice() == "debian":
        result = call("require_kit_kernel", str(ROOT), env=clean_env(KIT_KERNEL="debian"))
        assert "on purpose" in result.stdout
    else:
        result = call("require_kit_kernel", str(ROOT))
        assert "guests boot the kit's own kernel" in result.stdout, result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("mode", ["setup", "test"])
def test_an_optional_image_is_required_by_the_test_command(sandbox: Path, mode: str) -> None:
    fake_venv_python(sandbox, 'case "$*" in *aarch64*) exit 1 ;; esac\nexit 0\n')
    result = call("step_image", str(sandbox), mode, script=sandbox / "setup.sh")
    if mode == "test":
        assert result.returncode == 1
        assert "the aarch64 guest image could not be built" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "no aarch64 guest image" in result.stderr


def test_the_test_user_is_made_once(sandbox: Path) -> None:
    log = sandbox / "calls.log"
    there = sandbox / "user-exists"
    make_stub(sandbox, "id", f'echo "id $*" >> {log}\n'
                             f'[ "$1" = -un ] && {{ echo someone; exit 0; }}\n'
                             f'[ -e {there} ] && {{ echo 999; exit 0; }}\nexit 1\n')
    make_stub(sandbox, "useradd", f'echo "useradd $*" >> {log}\ntouch {there}\n')
    make_stub(sandbox, "setpriv", f'echo "setpriv $*" >> {log}\n')
    env = clean_env(PATH=f"{sandbox}:{os.environ['PATH']}")
    first = call("step_test_user", str(ROOT), env=env)
    again = call("step_test_user", str(ROOT), env=env)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    calls = log.read_text().splitlines()
    if os.geteuid() != 0:  # only root makes users; the tests acting as two users say so
        assert calls == ["id -un", "id -un"]
        assert "need root" in first.stdout
        return
    made = [line for line in calls if line.startswith("useradd")]
    assert made == ["useradd --system --create-home --home-dir /var/lib/kit-learner "
                    "--shell /usr/sbin/nologin --comment the kit's tests kit-learner"]
    assert "creating the unprivileged user kit-learner" in first.stdout
    assert "test user kit-learner: there" in again.stdout
    checks = [line for line in calls if line.startswith("setpriv")]
    assert sum(f"test -r {ROOT}/setup.sh" in line for line in checks) == 2


def run_main(sandbox: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """main with every step replaced by a line in a log, and stand-ins for the programs."""
    log = sandbox / "steps.log"
    fake_venv_python(sandbox, f'echo "python $* KIT_TESTING_ALL=${{KIT_TESTING_ALL:-}}" >> {log}\n')
    make_stub(sandbox / ".venv" / "bin", "jupyter", f'echo "jupyter $1" >> {log}\n')
    steps = ("step_system_packages step_venv step_python_packages step_image step_doctor "
             "require_kit_kernel step_test_user")
    fakes = "".join(f'{name}() {{ echo "{name} ${{*#$root}}" >> {log}; }}; '
                    for name in steps.split()).replace("$root", str(sandbox))
    result = subprocess.run(
        [BASH, "-c", f'source "$1"; shift; {fakes} main "$@"', "bash",
         str(sandbox / "setup.sh"), *args],
        capture_output=True, text=True, env=clean_env(), timeout=30, check=False,
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_the_test_command_checks_the_kernel_makes_the_user_and_forbids_skips(
    sandbox: Path,
) -> None:
    result, steps = run_main(sandbox, "test", "-k", "limits")
    assert result.returncode == 0, result.stderr
    assert steps == [
        "step_system_packages test",
        "step_venv ",
        "step_python_packages  lab,test,hub",
        "step_image  test",
        "require_kit_kernel ",
        "step_test_user ",
        "python -m pytest -p tests.skip_policy -k limits KIT_TESTING_ALL=1",
    ]


def test_the_hub_needs_a_class_file_and_serves_it(sandbox: Path) -> None:
    result, steps = run_main(sandbox, "hub")
    assert result.returncode != 0 and "usage: ./setup.sh hub CLASSFILE" in result.stderr
    assert steps == []  # refused before anything is installed
    result, steps = run_main(sandbox, "hub", "class.toml")
    assert result.returncode == 0, result.stderr
    assert steps == ["step_system_packages hub", "step_venv ", "step_python_packages  lab,hub",
                     "step_image  hub", "python -m kit hub serve class.toml KIT_TESTING_ALL="]


def test_the_lab_stays_lean(sandbox: Path) -> None:
    result, steps = run_main(sandbox, "lab")
    assert result.returncode == 0, result.stderr
    home = os.environ["HOME"]
    assert steps == ["step_system_packages lab", "step_venv ", "step_python_packages  lab",
                     "step_image  lab", "step_doctor ",
                     f"python -m kit lessons {home}/kit-lessons KIT_TESTING_ALL=",  # own copies
                     "jupyter lab"]


def test_a_checkout_in_roots_home_is_opened_to_the_tests_other_users() -> None:
    """A newcomer clones into /root (0700): the tests' second users must still run it."""
    if os.geteuid() != 0:
        pytest.skip("only root can change another folder's mode and act as nobody")
    home = Path(tempfile.mkdtemp(prefix="kit-closed-home-", dir="/var/tmp"))
    try:
        checkout = home / "project"
        (checkout / ".venv" / "bin").mkdir(parents=True)
        (checkout / "setup.sh").write_text("#!/bin/sh\n")
        make_stub(checkout / ".venv" / "bin", "python", "exit 0\n")
        home.chmod(0o700)
        (checkout / "setup.sh").chmod(0o600)
        done = call("open_path_to_others", str(checkout))
        assert done.returncode == 0, done.stderr
        assert home.stat().st_mode & 0o001 and not home.stat().st_mode & 0o004  # pass, not list
        assert "letting other users pass through" in done.stdout
        as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                    "test", "-r", str(checkout / "setup.sh")], check=False)
        assert as_nobody.returncode == 0
        again = call("open_path_to_others", str(checkout))
        assert "letting" not in again.stdout  # nothing left to change
    finally:
        shutil.rmtree(home, ignore_errors=True)
