"""The accelerator verdict: KVM only when a probe guest really boots under it."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

import kit
from kit.guestos import images
from kit.hypervisor import accelerator


def test_host_facts_without_probe() -> None:
    info = kit.host(probe=False)
    assert info.cpus >= 1
    assert 0 < info.memory_available_mb <= info.memory_total_mb
    assert info.qemu_version[0].isdigit()
    assert set(info.virtualization_flags) <= {"vmx", "svm", "hypervisor"}
    assert info.accelerator.name in ("kvm", "tcg")


def test_forced_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_ACCEL", "tcg")
    monkeypatch.setattr(accelerator, "_verdict", None)
    verdict = accelerator.accelerator()
    assert (verdict.name, verdict.kvm) == ("tcg", "forced")
    assert "KIT_ACCEL" in verdict.reason


def test_no_kvm_device_means_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: False if str(p) == "/dev/kvm" else real_exists(p))
    verdict = accelerator.accelerator_without_probe()
    assert (verdict.name, verdict.kvm) == ("tcg", "absent")


@pytest.mark.guest
def test_tcg_probe_boots(image: images.GuestImage) -> None:
    ok, detail = accelerator.boot_probe(image, "tcg")
    assert ok, detail
    assert detail.endswith(" s")


@pytest.mark.guest
def test_accelerator_verdict_is_explained(image: images.GuestImage) -> None:
    verdict = kit.host().accelerator
    if not Path("/dev/kvm").exists():
        assert verdict.kvm == "absent"
    elif verdict.name == "tcg":
        # This machine: /dev/kvm is there, but guests die under it.
        assert verdict.kvm in ("broken", "no-access", "forced")
        assert "software emulation" in verdict.reason or "KIT_ACCEL" in verdict.reason
    else:
        assert verdict.kvm in ("usable", "forced")


def test_a_foreign_architecture_is_always_translated() -> None:
    foreign = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    chosen = accelerator.accelerator_for(foreign)
    assert chosen.name == "tcg" and foreign in chosen.reason
    assert accelerator.accelerator_for(platform.machine()) == accelerator.accelerator()
