"""Can this host make namespaces: the switches, the real probe, and real chroots.

The switches are read from fake sysctl folders (the same function, given
another /proc/sys); the probe's answers come from real ``unshare`` runs, in
real chroots and as a real other user (``setpriv``), never from a mock.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kit.core.errors import SetupError
from kit.infrastructure import namespaces
from tests.infrastructure.chroots import AS_NOBODY, needs_root, python, run_in_chroot

ASK = ("import json; from kit.infrastructure import namespaces as n; r = n.refusal(); "
       "print(json.dumps(None if r is None else [r.why, r.what_to_do]))")


def sysctls(folder: Path, **values: int) -> Path:
    for name, value in values.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return folder


@pytest.fixture(autouse=True)
def real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(namespaces.NO_USERNS_ENV, raising=False)


# -- the switches ---------------------------------------------------------------------------


def test_user_namespaces_switched_off_stop_users_but_not_root(tmp_path: Path) -> None:
    off = sysctls(tmp_path, user__max_user_namespaces=0)
    assert namespaces.switch_refusal(off) is not None
    with pytest.raises(SetupError) as caught:
        namespaces.check(off, uid=1000)
    assert "max_user_namespaces" in caught.value.message
    assert caught.value.hint and "sysctl" in caught.value.hint and "as root" in caught.value.hint
    # root needs no user namespace: the switch changes nothing for root
    assert namespaces.refusal(off, uid=0) == namespaces.refusal(tmp_path / "none", uid=0)


@pytest.mark.parametrize(("switch", "value"), [
    ("kernel__unprivileged_userns_clone", 0),
    ("kernel__apparmor_restrict_unprivileged_userns", 1),
])
def test_switches_that_stop_only_unprivileged_users(tmp_path: Path, switch: str,
                                                     value: int) -> None:
    folder = sysctls(tmp_path, user__max_user_namespaces=100, **{switch: value})
    found = namespaces.refusal(folder, uid=1000)
    assert found is not None and switch.split("__")[1] in found.why
    assert "Run the kit as root" in found.what_to_do


def test_a_permissive_host_passes(tmp_path: Path) -> None:
    folder = sysctls(tmp_path, user__max_user_namespaces=100,
                     kernel__unprivileged_userns_clone=1)
    namespaces.check(folder, uid=1000)
    namespaces.check(tmp_path / "missing", uid=1000)  # no files: kernel defaults


def test_the_switch_refuses_whoever_runs_the_kit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(namespaces.NO_USERNS_ENV, "1")
    for uid in (0, 1000, None):
        found = namespaces.refusal(uid=uid)
        assert found is not None and namespaces.NO_USERNS_ENV in found.why
        assert f"Unset {namespaces.NO_USERNS_ENV}" in found.what_to_do


def test_only_users_other_than_root_ask_for_a_user_namespace() -> None:
    assert namespaces.user_flags(uid=0) == []
    assert namespaces.user_flags(uid=1000) == ["--user", "--map-root-user"]
    assert namespaces.needs_user_namespace() == (os.geteuid() != 0)


def test_a_folder_root_is_found_in_mountinfo(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.write_text("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                    "23 22 0:21 / /proc rw - proc proc rw\n")
    chrooted = tmp_path / "chroot"
    chrooted.write_text("66 46 254:0 /usr /usr rw,relatime - ext4 /dev/vda rw\n")
    assert namespaces.root_is_mount_point(host)
    assert not namespaces.root_is_mount_point(chrooted)
    assert namespaces.root_is_mount_point(tmp_path / "unreadable")


# -- the real probe ----------------------------------------------------------------------------


def test_the_probe_agrees_with_a_real_unshare() -> None:
    tried = subprocess.run(["unshare", *namespaces.user_flags(), *namespaces.PLAIN_FLAGS,
                            "true"], capture_output=True, check=False)
    assert (namespaces.refusal() is None) == (tried.returncode == 0)


@needs_root
def test_in_a_chroot_root_needs_no_user_namespace_and_passes() -> None:
    done = run_in_chroot(["sh", "-c", "unshare --user true; echo user=$?"])
    assert "user=1" in done.stdout and "Operation not permitted" in done.stderr  # as measured
    done = run_in_chroot(python(ASK))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is None


@needs_root
def test_in_a_chroot_another_user_is_refused_and_told_why() -> None:
    done = run_in_chroot([*AS_NOBODY, "env", "HOME=/tmp", *python(ASK)])
    assert done.returncode == 0, done.stderr
    why, what_to_do = json.loads(done.stdout)
    assert "chroot" in why and "Run the kit as root" in what_to_do


@needs_root
def test_a_bare_chroot_folder_is_refused_even_to_root_and_told_why() -> None:
    """Where ``/`` is a plain folder, the container's /proc could leak to the host."""
    done = run_in_chroot(python(ASK), mount_point=False)
    assert done.returncode == 0, done.stderr
    why, what_to_do = json.loads(done.stdout)
    assert "not a mount point" in why and "mount --bind DIR DIR" in what_to_do
    done = run_in_chroot([*AS_NOBODY, "env", "HOME=/tmp", *python(ASK)], mount_point=False)
    why, what_to_do = json.loads(done.stdout)
    assert "chroot" in why and "refuses user namespaces" in why
