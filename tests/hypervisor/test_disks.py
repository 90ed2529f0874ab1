"""A guest's own disk file: an empty qcow2 overlay, made once per backing file and copied."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kit.hypervisor import disks


def test_a_disk_overlay_is_made_once_then_copied(tmp_path: Path) -> None:
    if not disks.available():
        pytest.skip("qemu-img is not installed (package qemu-utils)")
    backing = tmp_path / "base.raw"
    backing.write_bytes(b"\0" * (1 << 20))
    first = disks.new_overlay(tmp_path / "a.qcow2", backing, "raw", templates=tmp_path)
    second = disks.new_overlay(tmp_path / "b.qcow2", backing, "raw", templates=tmp_path)
    templates = list(tmp_path.glob("overlay-*.qcow2"))
    assert len(templates) == 1
    assert first.read_bytes() == second.read_bytes() == templates[0].read_bytes()
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert str(backing).encode() in first.read_bytes()  # qcow2 names its backing file


def test_a_template_over_a_changed_backing_file_is_replaced(tmp_path: Path) -> None:
    if not disks.available():
        pytest.skip("qemu-img is not installed (package qemu-utils)")
    backing = tmp_path / "base.raw"
    backing.write_bytes(b"\0" * (1 << 20))
    disks.new_overlay(tmp_path / "a.qcow2", backing, "raw", templates=tmp_path)
    [first] = tmp_path.glob("overlay-*.qcow2")
    assert disks.backing_file(first) == backing
    backing.write_bytes(b"\0" * (2 << 20))  # the image rebuilt: another size, another time
    disks.new_overlay(tmp_path / "b.qcow2", backing, "raw", templates=tmp_path)
    [second] = tmp_path.glob("overlay-*.qcow2")
    assert second != first  # made anew, and the stale one removed
    assert disks.backing_file(tmp_path / "a.qcow2") == backing  # a guest's copy is its own
    assert disks.backing_file(backing) is None  # not a qcow2 file at all
