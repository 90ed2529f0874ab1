"""Lesson 0's setup check: findings in plain words, the image build, the first boot."""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit.hypervisor import doctor
from kit.lesson import setup


def test_every_doctor_finding_is_explained(image: object) -> None:
    for check in doctor.checks():
        assert setup.explain(check), f"no plain words for {check.name}"
    assert set(setup.ACCELERATOR_WORDS) >= {"usable", "broken", "absent", "no-access"}


def test_a_ready_machine_offers_the_boot_and_hides_the_build(image: object) -> None:
    view = setup.SetupCheck(kit.Guest("t-unused"))
    assert view.ready and "✔ Passed" in view.verdict.value
    assert view.build_button.layout.display == "none" and not view.boot_button.disabled
    assert "what it is for" in view.table.value and "hypervisor" in view.table.value
    assert view.build_image() == image  # built already: nothing to do, the bar fills
    assert view.progress.value == 1.0


def test_a_missing_image_is_offered_to_be_built(image: object, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))  # an empty cache: no image here
    view = setup.SetupCheck(kit.Guest("t-unused"))
    assert not view.ready and "✖ Not yet" in view.verdict.value
    assert "guest image" in view.verdict.value
    assert view.build_button.layout.display == "flex" and view.boot_button.disabled
