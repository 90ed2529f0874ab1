"""The guest image: recipe, cache key, cache lookup; one real build (marked guest)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos import images
from kit.guestos.build import apt, common, private_apt

DESIGN_MODULE_ORDER = (
    "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
    "failover", "net_failover", "virtio_net",
    "virtio_console",
    "pvpanic", "pvpanic-pci",
)  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of our own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("KIT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def recipe_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of assets/ that the kit reads instead of the real one."""
    assets = tmp_path / "assets"
    shutil.copytree(paths.assets_dir() / "guest", assets / "guest")
    monkeypatch.setattr(paths, "assets_dir", lambda: assets)
    return assets / "guest"


# --- the recipe --------------------------------------------------------------------


def test_recipe_parses() -> None:
    recipe = images.load_recipe("x86_64")
    assert recipe.qemu_binary == "qemu-system-x86_64"
    assert recipe.kernel_package == "linux-image-cloud-amd64"
    assert recipe.kernel_cmdline.startswith("console=ttyS0")
    assert recipe.min_memory_mb >= 88  # 84 MB measured too small (see recipe.toml)
    guest_paths = {program.guest for program in recipe.programs}
    assert {"/bin/busybox", "/usr/sbin/qemu-ga", "/usr/bin/sqlite3"} <= guest_paths
    targets = {item.guest: item for item in recipe.files}
    assert targets["/init"].mode == 0o755 and targets["/sbin/shutdown"].mode == 0o755
    assert all(item.source.exists() for item in recipe.files)
    assert "x86_64" in images.supported_arches()


def test_modules_load_in_the_order_design_gives() -> None:
    assert images.load_recipe("x86_64").modules == DESIGN_MODULE_ORDER


def test_unknown_architecture_is_refused_with_a_hint() -> None:
    with pytest.raises(ImageError) as caught:
        images.load_recipe("sparc")
    assert caught.value.hint and "x86_64" in caught.value.hint


def test_broken_recipe_says_which_field(recipe_copy: Path) -> None:
    toml = recipe_copy / "recipe.toml"
    toml.write_text(toml.read_text().replace("qemu_binary", "qemu_program"))
    with pytest.raises(ImageError, match="qemu_binary"):
        images.load_recipe("x86_64")


def test_init_prints_the_ready_line_and_reads_the_module_list() -> None:
    init = (paths.assets_dir() / "guest" / "init").read_text()
    assert init.startswith("#!/bin/busybox sh\n")
    assert f"echo {images.READY_LINE} > /dev/console" in init
    assert images.MODULE_LIST in init and images.AGENT_PORT_NAME in init


# --- the cache key -----------------------------------------------------------------


def test_key_changes_when_a_recipe_file_changes(recipe_copy: Path) -> None:
    before = images.image_key()
    init = recipe_copy / "init"
    original = init.read_text()
    init.write_text(original + "# a learner's edit\n")
    assert images.image_key() != before
    init.write_text(original)
    assert images.image_key() == before
    (recipe_copy / ".init.swp").write_text("an editor's swap file")
    (recipe_copy / "www" / "index.html~").write_text("a backup")
    assert images.image_key() == before
    (recipe_copy / "www" / "extra.html").write_text("<p>new</p>\n")
    assert images.image_key() != before


def test_key_covers_host_programs(recipe_copy: Path, tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    shutil.copy("/usr/bin/busybox", fake)
    toml = recipe_copy / "recipe.toml"
    toml.write_text(toml.read_text().replace('"/usr/bin/busybox"', f'"{fake}"'))
    before = images.image_key()
    with fake.open("ab") as file:
        file.write(b"\0")
    assert images.image_key() != before


def test_missing_host_program_says_what_to_install(recipe_copy: Path, cache: Path) -> None:
    toml = recipe_copy / "recipe.toml"
    toml.write_text(toml.read_text().replace('"/usr/bin/sqlite3"', '"/nonexistent/sqlite3"'))
    with pytest.raises(ImageError) as caught:
        images.find_image()
    assert caught.value.hint and "apt-get install" in caught.value.hint
    assert "sqlite3" in caught.value.hint


def test_ldd_output_is_parsed() -> None:
    output = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f9f)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f9f)\n"
    )
    assert images._parse_ldd(Path("/x"), output) == [
        Path("/lib/x86_64-linux-gnu/libglib-2.0.so.0"),
        Path("/lib64/ld-linux-x86-64.so.2"),
    ]
    with pytest.raises(ImageError, match="lacks"):
        images._parse_ldd(Path("/x"), "\tlibfoo.so.1 => not found\n")


def test_qemu_ga_brings_its_libraries_and_loader() -> None:
    files = {file.guest for file in images.host_files(images.load_recipe())}
    assert "/usr/sbin/qemu-ga" in files
    assert any("libglib-2.0.so" in guest for guest in files)
    assert any("ld-linux" in guest for guest in files)


# --- finding images in the cache ------------------------------------------------------


def test_empty_cache_has_no_image(cache: Path) -> None:
    assert images.find_image() is None
    assert not list((cache / "images").glob("x86_64-*"))


def test_image_without_manifest_is_not_found(cache: Path) -> None:
    folder = fake_image(cache, manifest=False)
    (folder / (images.MANIFEST + ".partial")).write_text("{}")
    assert images.find_image() is None


def test_image_with_wrong_sizes_or_bad_manifest_is_not_found(cache: Path) -> None:
    folder = fake_image(cache)
    (folder / images.INITRAMFS_FILE).write_bytes(b"truncated")
    assert images.find_image() is None
    (folder / images.MANIFEST).write_text("{not json")
    assert images.find_image() is None


def test_complete_image_is_found_and_ensure_does_not_build(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_image(cache)

    def no_apt(recipe: images.Recipe) -> apt.DebPackage:
        raise AssertionError("ensure_image asked apt although the image was cached")

    monkeypatch.setattr(images, "resolve_kernel_package", no_apt)
    image = images.find_image()
    assert image is not None
    assert image.key == images.image_key() and image.kernel_version == "6.1.0-0-test"
    assert image.size_bytes == 7
    steps: list[tuple[str, float]] = []
    assert images.ensure_image(progress=lambda step, done: steps.append((step, done))) == image
    assert steps[-1][1] == 1.0


def fake_image(cache: Path, *, manifest: bool = True) -> Path:
    """An image folder as a build leaves it, with tiny stand-in files."""
    recipe = images.load_recipe()
    key = images.image_key()
    folder = cache / "images" / f"x86_64-{key}"
    folder.mkdir(parents=True)
    (folder / images.KERNEL_FILE).write_bytes(b"kern")
    (folder / images.INITRAMFS_FILE).write_bytes(b"cpi")
    if manifest:
        data = {
            "arch": "x86_64", "key": key, "kernel_version": "6.1.0-0-test",
            "kernel_cmdline": recipe.kernel_cmdline, "min_memory_mb": recipe.min_memory_mb,
            "qemu_binary": recipe.qemu_binary,
            "sizes": {images.KERNEL_FILE: 4, images.INITRAMFS_FILE: 3},
        }  # fmt: skip
        (folder / images.MANIFEST).write_text(json.dumps(data))
    return folder


# --- apt and the kernel package ---------------------------------------------------------


def test_kernel_dependency_is_read_from_depends() -> None:
    depends = "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
    assert apt.kernel_dependency(depends) == "linux-image-6.1.0-56-cloud-amd64"
    assert apt.kernel_dependency("kmod, linux-base (>= 4.3~)") is None


def test_no_apt_says_what_the_kit_needs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no apt-cache
    with pytest.raises(ImageError) as caught:
        apt.resolve_kernel_package("linux-image-cloud-amd64", "amd64")
    assert "apt-cache" in caught.value.message
    assert caught.value.hint and "busybox-static" in caught.value.hint


def test_apt_failure_says_run_apt_get_update(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "apt-cache"
    fake.write_text("#!/bin/sh\necho 'E: No packages found' >&2\nexit 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    # The host's apt not knowing the package, the kit asks its own Debian 12
    # configuration next (tests/guestos/build/test_private_apt.py): not here.
    config = tmp_path / "private" / "apt.conf"
    monkeypatch.setattr(private_apt, "ensure", lambda architecture, report: config)
    with pytest.raises(ImageError) as caught:
        apt.resolve_kernel_package("linux-image-cloud-amd64", "amd64")
    assert caught.value.hint and "apt-get update" in caught.value.hint
    assert caught.value.exit_code == 100 and "No packages found" in (caught.value.log or "")
    assert f"APT_CONFIG={config}" in (caught.value.command or [])


# --- kernel modules ----------------------------------------------------------------------


def elf_module(**info: str) -> bytes:
    """A minimal 64-bit little-endian ELF file with a .modinfo section."""
    modinfo = b"".join(f"{key}={value}\0".encode() for key, value in info.items())
    names = b"\0.modinfo\0.shstrtab\0"
    data_at = 64
    names_at = data_at + len(modinfo)
    headers_at = names_at + len(names)
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, headers_at, 0, 64, 0, 0, 64, 3, 2)
    sections = bytes(64)
    sections += struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_at, len(modinfo), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_at, len(names), 0, 0, 1, 0)
    return header + modinfo + names + sections


def test_modinfo_reads_the_elf_section() -> None:
    info = images.modinfo(elf_module(name="virtio_net", depends="virtio,net_failover"))
    assert info == {"name": "virtio_net", "depends": "virtio,net_failover"}
    assert images.module_name("pvpanic-pci.ko") == "pvpanic_pci"


def test_module_order_is_checked_against_dependencies() -> None:
    kernel = images.KernelFiles(
        version="test",
        vmlinuz=b"",
        modules={
            "virtio": ("kernel/virtio.ko", elf_module(depends="")),
            "pvpanic": ("kernel/pvpanic.ko", elf_module(depends="")),
            "pvpanic_pci": ("kernel/pvpanic-pci.ko", elf_module(depends="pvpanic")),
        },
    )
    images.check_module_order(kernel, ("virtio", "pvpanic", "pvpanic-pci"))
    with pytest.raises(ImageError, match="needs pvpanic"):
        images.check_module_order(kernel, ("pvpanic-pci", "pvpanic"))


def test_progress_is_one_line_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    common.print_progress("unpacking", 0.5)
    common.print_progress("done", 1.0)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("50%  unpacking") and "############" in lines[0]
    assert lines[1].startswith("[" + "#" * 24 + "]")


# --- one real build --------------------------------------------------------------------------


@pytest.mark.guest
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs the cpio program")
def test_real_image_holds_what_the_guest_needs() -> None:
    image = images.ensure_image()
    assert images.find_image() == image
    manifest = images.read_manifest(image)
    listing = cpio_list(image.initramfs)
    assert ["/" + name for name in listing] == manifest["contents"]
    expected = {
        "init", "sbin/shutdown", "bin/busybox", "usr/sbin/qemu-ga", "usr/bin/sqlite3",
        "etc/passwd", "etc/group", "www/index.html", "www/cgi-bin", "dev/console",
    }  # fmt: skip
    # A static guest agent (kit/guestos/build/agent.py) brings no libraries.
    dynamic = ["/usr/bin/sqlite3"]
    if manifest.get("guest_agent") != "static":
        dynamic.append("/usr/sbin/qemu-ga")
    for program in dynamic:
        expected |= {str(lib).lstrip("/") for lib in images.shared_libraries(Path(program))}
    assert expected <= set(listing)
    modules = cpio_read(image.initramfs, images.MODULE_LIST).split()
    if image.kernel_source == "kit":  # the kit's own kernel has every driver built in
        assert modules == []
    else:
        assert [images.module_name(Path(path).name) for path in modules] == [
            images.module_name(name) for name in DESIGN_MODULE_ORDER
        ]
    assert {path.lstrip("/") for path in modules} <= set(listing)
    assert all(image.kernel_version in path for path in modules)
    assert image.kernel.stat().st_size > 1_000_000 and image.size_bytes > 5_000_000


def cpio_list(archive: Path) -> list[str]:
    with archive.open("rb") as stdin:
        result = subprocess.run(
            ["cpio", "--quiet", "-t"], stdin=stdin, capture_output=True, text=True, check=True
        )
    return result.stdout.split()


def cpio_read(archive: Path, member: str) -> str:
    with archive.open("rb") as stdin:
        result = subprocess.run(
            ["cpio", "--quiet", "-i", "--to-stdout", member],
            stdin=stdin, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return result.stdout


def test_a_database_script_becomes_a_ready_database(tmp_path: Path) -> None:
    script = tmp_path / "shop.sql"
    script.write_text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);"
                      "INSERT INTO items (name) VALUES ('tea');")
    database = tmp_path / "shop.db"
    database.write_bytes(images.sqlite_database(script))
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT name FROM items").fetchall() == [("tea",)]
    script.write_text("CREATE TABLE broken (")
    with pytest.raises(ImageError, match="failed"):
        images.sqlite_database(script)
