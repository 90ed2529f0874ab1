"""The guest's root disk: an archive laid out as files, then made into ext2 by mke2fs."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from kit.guestos import images
from kit.guestos.build import rootdisk
from kit.guestos.build.cpio import Archive
from tests.guestos.build.expected_kernel import kit_image


def small_archive() -> Archive:
    archive = Archive()
    archive.add_file("/init", b"#!/bin/sh\necho hello\n", 0o755)
    archive.add_file("/etc/hostname", b"guest\n")
    archive.add_symlink("/bin/sh", "/bin/busybox")
    archive.add_char_device("/dev/console", 5, 1)
    archive.add_dir("/locked", 0o555)
    archive.add_file("/locked/inside", b"written before the folder was locked\n")
    return archive


def debugfs(disk: Path, request: str) -> str:
    done = subprocess.run(["debugfs", "-R", request, str(disk)], capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_lay_out_keeps_modes_and_links_and_skips_device_nodes(tmp_path: Path) -> None:
    rootdisk.lay_out(small_archive(), tmp_path)
    assert (tmp_path / "init").read_text().startswith("#!/bin/sh")
    assert stat.S_IMODE((tmp_path / "init").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "etc/hostname").stat().st_mode) == 0o644
    assert (tmp_path / "bin/sh").readlink() == Path("/bin/busybox")
    assert not (tmp_path / "dev/console").exists()  # devtmpfs provides it in the guest
    assert stat.S_IMODE((tmp_path / "locked").stat().st_mode) == 0o555
    assert (tmp_path / "locked/inside").exists()


def test_the_disk_leaves_room_for_learners_files() -> None:
    archive = Archive()
    archive.add_file("/big", b"x" * (10 * 2**20))
    assert rootdisk.disk_size_mb(archive) >= 10 + rootdisk.FREE_SPACE_MB


@pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs")
def test_make_root_disk_holds_the_archive(tmp_path: Path) -> None:
    disk = tmp_path / rootdisk.ROOT_DISK_FILE
    rootdisk.make_root_disk(small_archive(), disk)
    assert "echo hello" in debugfs(disk, "cat /init")
    assert "/bin/busybox" in debugfs(disk, "stat /bin/sh")
    assert "written before" in debugfs(disk, "cat /locked/inside")
    assert not any(p.name.startswith(".root-tree-") for p in tmp_path.iterdir())


def test_without_mke2fs_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootdisk.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(rootdisk.Mke2fsMissing) as caught:
        rootdisk.make_root_disk(small_archive(), tmp_path / "root.ext2")
    assert "e2fsprogs" in (caught.value.hint or "")
    assert not (tmp_path / "root.ext2").exists()


@pytest.mark.guest
def test_the_kit_kernel_image_has_a_root_disk_with_the_same_files(
    image: images.GuestImage,
) -> None:
    # Only the kit's own kernel boots from a root disk; it is expected unless
    # KIT_KERNEL=debian chose Debian's, and its absence fails (test_kernel.kit_image).
    assert kit_image() == image
    assert image.root_disk is not None and image.root_disk.is_file()
    manifest = images.read_manifest(image)
    assert manifest["root_disk"] == rootdisk.ROOT_DISK_FILE
    assert "kit-init" in debugfs(image.root_disk, "cat /init")
    assert "qemu-ga" in debugfs(image.root_disk, "ls -l /usr/sbin")


def fake_image(folder: Path, problem: str, retry: bool) -> images.GuestImage:
    (folder / images.MANIFEST).write_text(json.dumps(
        {"root_disk": None, "root_disk_problem": problem, "root_disk_retry": retry}))
    return images.GuestImage(
        arch="x86_64", kernel=folder / images.KERNEL_FILE, initramfs=folder / "i",
        kernel_version="6.1", kernel_cmdline="", min_memory_mb=64, qemu_binary="q", key="k",
        root_disk_problem=problem)


def test_an_image_made_without_mke2fs_is_rebuilt_once_it_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = fake_image(tmp_path, "mke2fs ... is not installed.", retry=True)
    monkeypatch.setattr(rootdisk, "find_mke2fs", lambda: None)
    assert not images._root_disk_now_possible(image)
    monkeypatch.setattr(rootdisk, "find_mke2fs", lambda: "/usr/sbin/mke2fs")
    assert images._root_disk_now_possible(image)


def test_an_image_whose_disk_mke2fs_failed_to_make_is_not_rebuilt_at_every_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = fake_image(tmp_path, "mke2fs could not make the guest's root disk.", retry=False)
    monkeypatch.setattr(rootdisk, "find_mke2fs", lambda: "/usr/sbin/mke2fs")
    assert not images._root_disk_now_possible(image)
