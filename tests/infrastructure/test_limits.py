"""Limits that protect the host and other users from one learner's guests."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import kit
from kit.core import paths
from kit.core.errors import SetupError
from kit.guestos import images
from kit.infrastructure import limits


def test_default_caps_are_a_safe_share_of_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_MAX_GUESTS", raising=False)
    monkeypatch.delenv("KIT_MAX_GUEST_MEMORY_MB", raising=False)
    import psutil

    assert limits.max_guests() >= 16
    assert limits.max_guest_memory_mb() <= psutil.virtual_memory().total // 2**20


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_bad_cap_settings_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KIT_MAX_GUESTS", value)
    with pytest.raises(kit.InvalidInput, match="KIT_MAX_GUESTS"):
        limits.max_guests()


@pytest.mark.guest
def test_guest_count_cap(image: images.GuestImage, guest_name: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAX_GUESTS", "1")
    with kit.Guest(f"{guest_name}-a"):
        with pytest.raises(kit.HostLimit, match="limit for one user here is 1") as info:
            kit.Guest(f"{guest_name}-b").start()
        assert "KIT_MAX_GUESTS" in (info.value.hint or "")
        assert not (paths.runtime_dir() / f"{guest_name}-b").exists()


@pytest.mark.guest
def test_guest_memory_cap(image: images.GuestImage, guest_name: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_MAX_GUEST_MEMORY_MB", "200")
    with kit.Guest(f"{guest_name}-a", memory_mb=128), \
            pytest.raises(kit.HostLimit, match="256 MiB"):
        kit.Guest(f"{guest_name}-b", memory_mb=128).start()


@pytest.mark.guest
def test_caps_count_guests_of_other_notebooks(image: images.GuestImage, guest_name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with kit.Guest(f"{guest_name}-a") as g:
        records = limits.live_records()
        assert [(r.name, r.pid, r.memory_mb) for r in records] == [(g.name, g.pid, 128)]


def test_runtime_folder_of_another_user_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    monkeypatch.setenv("KIT_RUNTIME_DIR", str(foreign))
    with pytest.raises(SetupError, match="belongs to another user"):
        paths.runtime_dir()


@pytest.mark.guest
@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to act as a second user")
def test_another_user_can_neither_see_nor_stop_our_guests(
    image: images.GuestImage, guest_name: str
) -> None:
    """A second user (nobody) on the same host tries to list and to kill our guest."""
    with kit.Guest(guest_name) as g:
        folder = paths.runtime_dir()
        probe = textwrap.dedent(f"""
            import os, signal
            try:
                os.listdir({str(folder)!r}); print("listed")
            except PermissionError:
                print("cannot list")
            try:
                os.kill({g.pid}, signal.SIGKILL); print("killed")
            except PermissionError:
                print("cannot kill")
        """)
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "/usr/bin/python3", "-c", probe],
            capture_output=True, text=True, timeout=30, cwd="/",
        )
        assert result.stdout.split("\n")[:2] == ["cannot list", "cannot kill"], result
        assert g.run("echo untouched").stdout == "untouched\n"
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
