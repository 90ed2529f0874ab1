"""``python -m kit doctor`` and the other shell commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kit.guestos import images
from kit.hypervisor import doctor


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
