"""``python -m kit doctor`` and the other shell commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile

import pytest

from kit.guestos import images
from kit.hypervisor import doctor
from tests.infrastructure.chroots import AS_NOBODY, needs_root, python, run_in_chroot


def kit_command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "kit", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


@pytest.mark.guest
def test_doctor_passes_on_a_ready_machine(image: images.GuestImage) -> None:
    result = kit_command("doctor")
    assert result.returncode == 0, result.stdout
    assert "[ok ] QEMU" in result.stdout
    assert "[ok ] guest image" in result.stdout
    assert "accelerator" in result.stdout


def test_doctor_fails_without_an_image_and_says_how_to_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = kit_command("doctor", KIT_CACHE_DIR=str(tmp_path), KIT_ACCEL="tcg")
    assert result.returncode == 1
    assert "[!! ] guest image: not built yet" in result.stdout
    assert "fix: python -m kit image" in result.stdout


def test_doctor_fails_without_qemu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    check = doctor._check_qemu()
    assert not check.ok
    assert "apt-get install" in check.fix and "qemu-system-x86" in check.fix


def test_host_command_prints_json() -> None:
    result = kit_command("host", KIT_ACCEL="tcg")
    facts = json.loads(result.stdout)
    assert facts["accelerator"]["name"] == "tcg"
    assert facts["cpus"] >= 1


def test_doctor_says_when_containers_are_refused_and_what_to_do() -> None:
    result = kit_command("doctor", KIT_NO_USER_NAMESPACES="1", KIT_ACCEL="tcg")
    assert "[-- ] containers: refused: KIT_NO_USER_NAMESPACES=1 is set" in result.stdout
    assert "fix: Unset KIT_NO_USER_NAMESPACES" in result.stdout
    assert not doctor._check_containers().required  # lesson 8 alone needs them


DOCTOR = "from kit.hypervisor import doctor; c = doctor._check_containers(); print(c.ok, c.detail)"


@needs_root
def test_doctor_in_a_chroot_passes_root_and_refuses_others_saying_why() -> None:
    """The kernel refuses user namespaces there; root needs none, anyone else does."""
    as_root = run_in_chroot(python(DOCTOR))
    assert as_root.stdout.startswith("True ") and "as root, without a user namespace" in (
        as_root.stdout), as_root.stderr
    home = tempfile.mkdtemp(prefix="kit-nobody-", dir="/tmp")
    try:
        shutil.chown(home, "nobody")
        as_nobody = run_in_chroot([*AS_NOBODY, "env", f"HOME={home}",
                                   f"KIT_RUNTIME_DIR={home}/run", *python(DOCTOR)])
    finally:
        shutil.rmtree(home)
    assert as_nobody.stdout.startswith("False refused:") and "chroot" in as_nobody.stdout, (
        as_nobody.stderr)
