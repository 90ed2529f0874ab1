"""The guest image: a Linux kernel, its root disk and initramfs, built once and cached.

The recipe lives in ``assets/guest/`` (``recipe.toml`` says what goes where).
The kernel is the kit's own where it can be built (:mod:`kit.guestos.build.kernel`, recipe
in ``assets/kernel/``): everything the lessons need built in, booted on
QEMU's ``microvm`` machine.  Where it cannot (no compiler, no source package,
a failed build), or with ``KIT_KERNEL=debian``, the build follows the
recipe's kernel metapackage to Debian's kernel package, downloads it with
``apt-get download`` (never installing it), and takes the kernel and the few
modules the guest loads; such an image boots on ``q35`` and records why it
is not the kit's kernel (:attr:`GuestImage.fallback_reason`).  Either way the
kernel is packed with host programs (busybox, the QEMU guest agent, sqlite3)
and their shared libraries into an initramfs written by :mod:`kit.guestos.build.cpio`; the
kit's kernel boots from an ext2 disk holding the same files instead
(:mod:`kit.guestos.build.rootdisk`), Debian's, which needs modules before it can read a
disk, from the initramfs.  In a guest of the host's own architecture the
guest agent is Debian's, rebuilt as one static program
(:mod:`kit.guestos.build.agent`: it answers sooner), where this machine can
build it; else the host's, with its libraries, and the manifest says why.

Images are cached in ``cache_dir()/images/<arch>-<key>/``.  The key hashes
the recipe folder, the kernel and agent recipe folders, the kernel choice and every
host file copied in, so editing a recipe or upgrading a host program gives a
new image.  It does not include the kernel
package's version: asking apt for it takes most of a second, and
:func:`find_image` runs on every guest start.  The version used is recorded
in the image's manifest instead; a newer kernel arrives with the next build.

A directory only counts as an image once its ``manifest.json`` exists, and
that file is written last, in a folder that is renamed into place whole, so
a build that was interrupted is never found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import struct
import subprocess
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos import system_cache
from kit.guestos.build import agent as static_agent
from kit.guestos.build import foreign, rootdisk
from kit.guestos.build import kernel as kit_kernel
from kit.guestos.build.apt import fetch_package, resolve_kernel_package
from kit.guestos.build.common import (
    HOST_PACKAGES_HINT,
    Progress,
    StatKey,
    build_lock,
    images_dir,
    manifest_kernel_choice,
    no_progress,
    require_tool,
    scratch_dir,
    sha256_of,
    stat_key,
)
from kit.guestos.build.cpio import Archive

log = logging.getLogger(__name__)

#: The line the guest's /init prints on the serial console once it is ready.
READY_LINE = "KIT-READY"
#: The name of the virtio serial port the guest agent listens on.
AGENT_PORT_NAME = "org.qemu.guest_agent.0"

# Bump when the build lays the image out differently: it changes every key.
FORMAT = 1
MANIFEST = "manifest.json"
KERNEL_FILE = "vmlinuz"
# Uncompressed, because it boots faster under TCG.  Measured with the 11 MB
# archive (q35, 128 MB, three boots each): the kernel unpacks it in about
# 0.07 s, against 0.21 to 0.25 s to inflate the 5 MB gzip of it, and
# KIT-READY came 0.3 to 0.5 s sooner.  The price is memory while booting:
# the archive and its unpacked copy both sit in RAM until /init runs.
INITRAMFS_FILE = "initramfs.cpio"
MODULE_LIST = "etc/kit/modules"
#: Which kernel an image boots: "auto" is the kit's own where it can be
#: built, else Debian's; "debian" is always Debian's.  KIT_KERNEL picks one.
KERNEL_CHOICES = ("auto", "debian")


@dataclass(frozen=True)
class GuestImage:
    """A built image, ready to hand to QEMU's -kernel and -initrd (or its root disk).

    ``root_disk`` is set when the kernel boots from a disk holding the same
    files as the initramfs (:mod:`kit.guestos.build.rootdisk`); the initramfs stays for
    kernels that need it and for :mod:`kit.labs.containers`.
    """

    arch: str
    kernel: Path
    initramfs: Path
    kernel_version: str
    kernel_cmdline: str
    min_memory_mb: int
    qemu_binary: str
    key: str
    machine: str = "q35"
    kernel_source: str = "debian"  # "kit": built from assets/kernel/; "debian": a package
    fallback_reason: str | None = None  # why the kit's kernel is not used, if wanted
    root_disk: Path | None = None
    root_disk_problem: str | None = None  # why a kernel that wants a disk has none

    def kernel_summary(self) -> str:
        """Which kernel the guests boot, in words, with the reason for a fallback."""
        if self.kernel_source == "kit":
            return f"the kit's own kernel {self.kernel_version}"
        summary = f"Debian's kernel {self.kernel_version}"
        if self.fallback_reason:
            summary += f" (not the kit's own: {self.fallback_reason})"
        return summary

    @property
    def size_bytes(self) -> int:
        disk = self.root_disk.stat().st_blocks * 512 if self.root_disk else 0  # sparse
        return self.kernel.stat().st_size + self.initramfs.stat().st_size + disk


# --- the recipe ------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """A host program copied into the guest, with the package that provides it."""

    host: Path
    guest: str
    package: str


@dataclass(frozen=True)
class RecipeFile:
    """A file or folder of the recipe folder and where it goes in the guest."""

    source: Path
    guest: str
    mode: int | None


@dataclass(frozen=True)
class Recipe:
    """``recipe.toml`` for one architecture, checked and typed."""

    root: Path
    arch: str
    kernel_package: str
    deb_architecture: str
    qemu_binary: str
    console: str
    cmdline: str
    min_memory_mb: int
    modules: tuple[str, ...]
    programs: tuple[Program, ...]
    files: tuple[RecipeFile, ...]
    dirs: tuple[str, ...]
    # SQL scripts run at build time into SQLite databases the guest finds
    # ready: building them at boot cost the guest ~0.3 s of emulated CPU.
    databases: tuple[RecipeFile, ...] = ()
    # A guest of another architecture: its machine type, its programs taken
    # from its own architecture's packages (kit.guestos.build.foreign), and a longer boot
    # timeout, since every instruction is translated.
    machine: str = "q35"
    foreign_programs: tuple[foreign.ForeignProgram, ...] = ()
    boot_timeout_s: float | None = None

    @property
    def kernel_cmdline(self) -> str:
        return f"console={self.console} {self.cmdline}".strip()


def recipe_dir() -> Path:
    return paths.assets_dir() / "guest"


def supported_arches() -> list[str]:
    return sorted(_read_toml(recipe_dir() / "recipe.toml").get("arch", {}))


def load_recipe(arch: str = "x86_64") -> Recipe:
    root = recipe_dir()
    data = _read_toml(root / "recipe.toml")
    table = data.get("arch", {}).get(arch)
    if table is None:
        raise ImageError(
            f"The guest recipe has no architecture {arch!r}.",
            hint=f"Use one of: {', '.join(supported_arches()) or 'none'}.",
        )
    try:
        return _recipe_from_tables(root, arch, data, table)
    except (KeyError, TypeError, ValueError) as error:
        raise ImageError(
            f"{root / 'recipe.toml'} is missing or has a wrong value for {error}.",
            hint="Compare it with the copy in the kit's repository.",
        ) from error


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ImageError(
            f"Cannot read the guest recipe {path}: {error}",
            hint="Restore assets/guest/ from the kit's repository.",
        ) from error


def _recipe_from_tables(
    root: Path, arch: str, data: dict[str, Any], table: dict[str, Any]
) -> Recipe:
    return Recipe(
        root=root,
        arch=arch,
        kernel_package=str(table["kernel_package"]),
        deb_architecture=str(table["deb_architecture"]),
        qemu_binary=str(table["qemu_binary"]),
        console=str(table["console"]),
        cmdline=str(table.get("cmdline", "")),
        min_memory_mb=int(table["min_memory_mb"]),
        modules=tuple(str(name) for name in table["modules"]),
        programs=tuple(
            Program(Path(item["host"]), str(item["guest"]), str(item["package"]))
            for item in table.get("programs", [])
        ),
        files=tuple(
            RecipeFile(root / source, str(spec["to"]), spec.get("mode"))
            for source, spec in data["files"].items()
        ),
        dirs=tuple(str(path) for path in data.get("dirs", [])),
        databases=tuple(
            RecipeFile(root / source, str(spec["to"]), None)
            for source, spec in data.get("databases", {}).items()
        ),
        machine=str(table.get("machine", "q35")),
        foreign_programs=tuple(
            foreign.ForeignProgram(str(item["package"]), str(item["path"]), str(item["guest"]))
            for item in table.get("foreign_programs", [])
        ),
        boot_timeout_s=float(table["boot_timeout_s"]) if "boot_timeout_s" in table else None,
    )


# --- host files and the cache key ---------------------------------------------


@dataclass(frozen=True)
class HostFile:
    """A host program or library, where it goes in the guest, and its hash."""

    host: Path
    guest: str
    sha256: str


def host_files(recipe: Recipe, static: dict[str, Path] | None = None) -> list[HostFile]:
    """The recipe's programs and every library they load, each once.

    ``static`` maps a program's guest path to a static build of it (the
    guest agent's, :mod:`kit.guestos.build.agent`): that file goes in
    instead, and none of the libraries the host's program loads.
    """
    found: dict[str, HostFile] = {}
    for program in recipe.programs:
        if static and program.guest in static:
            path = static[program.guest]
            found[program.guest] = HostFile(path, program.guest, sha256_of(path))
            continue
        if not program.host.is_file():
            raise ImageError(
                f"The guest needs {program.host} from the host, and it is missing.",
                hint=f"Install it with: {HOST_PACKAGES_HINT} (package {program.package}).",
            )
        found[program.guest] = HostFile(program.host, program.guest, sha256_of(program.host))
        for library in shared_libraries(program.host):
            found.setdefault(str(library), HostFile(library, str(library), sha256_of(library)))
    return [found[guest] for guest in sorted(found)]


def shared_libraries(program: Path) -> list[Path]:
    """What ``ldd`` lists for a program, the dynamic loader included.

    Each library goes to the same path in the guest, since that is where the
    loader will look; a static program (busybox) has none.  Remembered while
    the program file is unchanged (see ``_digests``).
    """
    key = stat_key(program)
    cached = _libraries.get(program)
    if cached is not None and cached[0] == key:
        return list(cached[1])
    libraries = _run_ldd(program)
    _libraries[program] = (key, libraries)
    return list(libraries)


def _run_ldd(program: Path) -> list[Path]:
    if shutil.which("ldd") is None:
        raise ImageError(
            "The guest build needs ldd to find the host programs' libraries.",
            hint="Install it with: apt-get install libc-bin",
        )
    result = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if "not a dynamic executable" in result.stdout + result.stderr:
            return []
        raise ImageError(
            f"ldd could not list the libraries of {program}.",
            command=["ldd", str(program)],
            log=result.stdout + result.stderr,
            exit_code=result.returncode,
        )
    return _parse_ldd(program, result.stdout)


def _parse_ldd(program: Path, output: str) -> list[Path]:
    libraries = []
    for line in output.splitlines():
        if "not found" in line:
            raise ImageError(
                f"{program} needs a library the host lacks: {line.strip()}",
                hint=f"Reinstall the program's package: {HOST_PACKAGES_HINT}",
            )
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libraries.append(Path(match.group(1)))
    return libraries


def image_key(arch: str = "x86_64", kernel: str | None = None) -> str:
    recipe = load_recipe(arch)
    return _key(recipe, host_files(recipe), kernel_choice(kernel))


def kernel_choice(kernel: str | None = None) -> str:
    """``kernel``, else ``$KIT_KERNEL``, else "auto"; "debian" when there is no kernel recipe."""
    choice = kernel or os.environ.get("KIT_KERNEL") or "auto"
    if choice not in KERNEL_CHOICES:
        raise ImageError(f"Unknown kernel choice {choice!r}.",
                         hint=f"Use one of: {', '.join(KERNEL_CHOICES)} (KIT_KERNEL=...).")
    if choice == "auto" and not kit_kernel.has_recipe():
        return "debian"
    return choice


def _key(recipe: Recipe, files: list[HostFile], choice: str) -> str:
    digest = hashlib.sha256(f"kit guest image, format {FORMAT}, {recipe.arch}\n".encode())
    digest.update(f"kernel {choice}\n".encode())
    if choice == "auto":
        digest.update(f"kit kernel recipe {_kernel_recipe_digest(recipe.arch)}\n".encode())
    if static_agent.applies_to(recipe.arch):
        digest.update(f"static agent recipe {_agent_recipe_digest()}\n".encode())
    for path in _tree(recipe.root):
        if path.is_dir():
            continue
        digest.update(f"recipe {path.relative_to(recipe.root)} {sha256_of(path)}\n".encode())
    for file in files:
        digest.update(f"host {file.host} {file.guest} {file.sha256}\n".encode())
    return digest.hexdigest()[:20]


def _kernel_recipe_digest(arch: str) -> str:
    """The kit kernel recipe's hash, or a word saying why there is none for ``arch``."""
    try:
        return kit_kernel.recipe_digest(kit_kernel.load_recipe(arch))
    except ImageError as error:
        return f"unusable: {error.message}"


def _agent_recipe_digest() -> str:
    try:
        return static_agent.recipe_digest(static_agent.load_recipe())
    except ImageError as error:
        return f"unusable: {error.message}"


def _tree(folder: Path) -> list[Path]:
    """Everything under a recipe folder, sorted, minus hidden and backup files.

    An editor's swap file next to ``init`` must neither rebuild the image
    nor end up in the guest.
    """
    return sorted(
        path
        for path in folder.rglob("*")
        if not any(
            part.startswith(".") or part.endswith("~") for part in path.relative_to(folder).parts
        )
    )


_libraries: dict[Path, tuple[StatKey, list[Path]]] = {}


# --- finding a cached image ---------------------------------------------------


def find_image(arch: str = "x86_64", kernel: str | None = None) -> GuestImage | None:
    """The cached image for the current recipes, host programs and kernel choice, if complete."""
    recipe = load_recipe(arch)
    return _find(recipe, _key(recipe, host_files(recipe), kernel_choice(kernel)))


def _find(recipe: Recipe, key: str) -> GuestImage | None:
    """The complete image for ``key``: the system-wide one first, else the user's own."""
    name = f"{recipe.arch}-{key}"
    for folder in (*system_cache.candidates(name), images_dir() / name):
        image = _complete(folder, key)
        if image is not None:
            return image
    return None


def _complete(folder: Path, key: str) -> GuestImage | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        image = _image_from_manifest(folder, manifest)
        sizes = manifest["sizes"]
        complete = (
            image.kernel.stat().st_size == sizes[KERNEL_FILE]
            and image.initramfs.stat().st_size == sizes[INITRAMFS_FILE]
            and (image.root_disk is None
                 or image.root_disk.stat().st_size == sizes[rootdisk.ROOT_DISK_FILE])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return image if complete and image.key == key else None


def _image_from_manifest(folder: Path, manifest: dict[str, Any]) -> GuestImage:
    return GuestImage(
        arch=str(manifest["arch"]),
        kernel=folder / KERNEL_FILE,
        initramfs=folder / INITRAMFS_FILE,
        kernel_version=str(manifest["kernel_version"]),
        kernel_cmdline=str(manifest["kernel_cmdline"]),
        min_memory_mb=int(manifest["min_memory_mb"]),
        qemu_binary=str(manifest["qemu_binary"]),
        key=str(manifest["key"]),
        machine=str(manifest.get("machine", "q35")),
        kernel_source=str(manifest.get("kernel_source", "debian")),
        fallback_reason=manifest.get("fallback_reason"),
        root_disk=folder / str(manifest["root_disk"]) if manifest.get("root_disk") else None,
        root_disk_problem=manifest.get("root_disk_problem"),
    )


def read_manifest(image: GuestImage) -> dict[str, Any]:
    """Everything recorded about a build: kernel package, contents, timings."""
    data: dict[str, Any] = json.loads((image.kernel.parent / MANIFEST).read_text())
    return data


# --- building -------------------------------------------------------------------


def ensure_image(
    arch: str = "x86_64", progress: Progress | None = None, kernel: str | None = None
) -> GuestImage:
    """The cached image, built first if there is none for the current inputs.

    An image that fell back to Debian's kernel because build tools were
    missing is rebuilt once they are there (setup installs them).
    """
    report = progress or no_progress
    report("looking for a cached guest image", 0.0)
    recipe = load_recipe(arch)
    files = host_files(recipe)
    choice = kernel_choice(kernel)
    key = _key(recipe, files, choice)
    image = _find(recipe, key)
    if image is None or _better_build_now_possible(image):
        with build_lock(arch):
            # Another process may have built it while we waited for the lock.
            image = _find(recipe, key)
            if image is None or _better_build_now_possible(image):
                image = _build(recipe, files, key, choice, report)
    report("the guest image is ready", 1.0)
    return image


def build_image(
    arch: str = "x86_64", progress: Progress | None = None, kernel: str | None = None
) -> GuestImage:
    """Build the image even if a cached one exists, and replace it.

    A kit kernel build that failed before is tried again too.
    """
    report = progress or no_progress
    recipe = load_recipe(arch)
    files = host_files(recipe)
    choice = kernel_choice(kernel)
    with build_lock(arch):
        image = _build(recipe, files, _key(recipe, files, choice), choice, report,
                       retry_kernel=True)
    report("the guest image is ready", 1.0)
    return image


def _better_build_now_possible(image: GuestImage) -> bool:
    """The kit's kernel, its root disk or the static agent was missing for a reason now gone."""
    return (_kit_kernel_now_possible(image) or _root_disk_now_possible(image)
            or _static_agent_now_possible(image))


def _static_agent_now_possible(image: GuestImage) -> bool:
    """True for an image with the host's agent because build tools were missing, now there."""
    try:
        manifest = read_manifest(image)
    except (OSError, ValueError):
        return False
    return bool(manifest.get("guest_agent_retry")) and static_agent.obstacle() is None


def _root_disk_now_possible(image: GuestImage) -> bool:
    """True for an image built without its root disk because mke2fs was missing then.

    A disk that mke2fs failed to make is not retried: it would fail again at
    every guest start.
    """
    if image.root_disk_problem is None:
        return False
    try:
        missing_tool = bool(read_manifest(image).get("root_disk_retry", False))
    except (OSError, ValueError):
        return False
    return missing_tool and rootdisk.find_mke2fs() is not None


def _kit_kernel_now_possible(image: GuestImage) -> bool:
    """True for a fallback image whose obstacle (missing tools) has gone since."""
    if image.kernel_source != "debian" or image.fallback_reason is None:
        return False
    try:
        if not read_manifest(image).get("fallback_retry", False):
            return False
        return kit_kernel.obstacle(kit_kernel.load_recipe(image.arch)) is None
    except (OSError, ValueError, ImageError):
        return False


def _build(
    recipe: Recipe,
    files: list[HostFile],
    key: str,
    choice: str,
    report: Progress,
    *,
    retry_kernel: bool = False,
) -> GuestImage:
    started = time.monotonic()
    boot = _choose_kernel(recipe, choice, report, retry_kernel)
    files, agent_details = _with_static_agent(recipe, files, report, retry_kernel)
    boot = dataclasses.replace(boot, details={**boot.details, **agent_details})
    files = [*files, *_foreign_files(recipe, _scaled(report, 0.5, 0.75))]
    report("packing the initramfs", 0.75)
    archive = assemble(boot.recipe, files, boot.files)
    report("writing the image to the cache", 0.9)
    folder = images_dir() / f"{recipe.arch}-{key}"
    with scratch_dir(f".build-{recipe.arch}-") as scratch:
        disk_problem = _write_root_disk(scratch, boot, archive, report)
        _write_image(scratch, boot, key, choice, archive, started, *disk_problem)
        _publish(scratch, folder)
    _remove_other_images(recipe.arch, keep=folder, choice=choice)
    image = _find(recipe, key)
    if image is None:  # pragma: no cover - only if the cache vanished under us
        raise ImageError(f"The image built into {folder} cannot be read back.")
    return image


# --- which kernel -------------------------------------------------------------


@dataclass(frozen=True)
class BootKernel:
    """The kernel an image is built with, and everything that follows from it."""

    recipe: Recipe  # the guest recipe, with the modules this kernel needs
    files: KernelFiles
    source: str  # "kit" or "debian"
    machine: str
    cmdline: str
    min_memory_mb: int
    details: dict[str, Any]  # for the manifest: package, version, patches...
    fallback_reason: str | None = None
    fallback_retry: bool = False  # the reason was missing tools: try again later
    root_disk: bool = False  # the kernel boots from a root disk (kit.guestos.build.rootdisk)


def _choose_kernel(recipe: Recipe, choice: str, report: Progress, retry: bool) -> BootKernel:
    """The kit's kernel if wanted and possible, else Debian's with the reason."""
    if choice == "debian" or not _has_kit_kernel(recipe.arch):
        return _debian_kernel(recipe, report)
    krecipe = kit_kernel.load_recipe(recipe.arch)
    reason = kit_kernel.obstacle(krecipe)
    if reason is not None:
        return _fall_back(recipe, report, reason, retry_later=True)
    try:
        built = kit_kernel.ensure_kernel(recipe.arch, _scaled(report, 0.02, 0.7), retry=retry)
    except ImageError as error:
        return _fall_back(recipe, report, error.message, retry_later=False)
    return _kit_boot_kernel(recipe, krecipe, built)


def _has_kit_kernel(arch: str) -> bool:
    """Whether the kit's kernel recipe covers ``arch`` (aarch64 guests use Debian's)."""
    try:
        kit_kernel.load_recipe(arch)
    except ImageError as error:
        return "no architecture" not in error.message
    return True


def _with_static_agent(
    recipe: Recipe, files: list[HostFile], report: Progress, retry: bool
) -> tuple[list[HostFile], dict[str, Any]]:
    """The files with the static guest agent in place of the host's, if it can be had.

    Otherwise the host's agent and its libraries stay, and the manifest says why
    (``guest_agent_retry``: the reason was missing tools, so try again later).
    """
    if not static_agent.applies_to(recipe.arch):
        return files, {}
    try:
        replaces = static_agent.load_recipe().replaces
        if replaces not in {program.guest for program in recipe.programs}:
            return files, {}
        built = static_agent.ensure_agent(_scaled(report, 0.7, 0.75), retry=retry)
    except ImageError as error:
        log.warning("image for %s: the host's guest agent, not a static one: %s",
                    recipe.arch, error.message)
        report(f"using the host's guest agent: {error.message}", 0.75)
        return files, {"guest_agent": "host", "guest_agent_reason": error.message,
                       "guest_agent_retry": static_agent.obstacle() is not None}
    details = {"guest_agent": "static", "guest_agent_source_version": built.source_version,
               "guest_agent_key": built.key}
    return host_files(recipe, static={replaces: built.path}), details


def _foreign_files(recipe: Recipe, report: Progress) -> list[HostFile]:
    """The recipe's programs for another architecture, with their libraries.

    Their package versions are not in the cache key, like the kernel's: the
    manifest lists the files, and a rebuild picks up newer packages.
    """
    found = foreign.image_files(recipe.foreign_programs, recipe.deb_architecture, report)
    return [HostFile(item.source, item.guest, sha256_of(item.source)) for item in found]


def _fall_back(recipe: Recipe, report: Progress, reason: str, *, retry_later: bool) -> BootKernel:
    log.warning("image for %s: using Debian's kernel instead of the kit's: %s",
                recipe.arch, reason)
    report(f"using Debian's kernel instead of the kit's: {reason}", 0.05)
    boot = _debian_kernel(recipe, report)
    return dataclasses.replace(boot, fallback_reason=reason, fallback_retry=retry_later)


def _scaled(report: Progress, start: float, end: float) -> Progress:
    """A progress callback for one step, drawn between ``start`` and ``end`` of the bar."""
    return lambda step, fraction: report(step, start + (end - start) * fraction)


def _kit_boot_kernel(
    recipe: Recipe, krecipe: kit_kernel.KernelRecipe, built: kit_kernel.KitKernel
) -> BootKernel:
    files = KernelFiles(version=built.version, vmlinuz=built.path.read_bytes(), modules={})
    return BootKernel(
        recipe=dataclasses.replace(recipe, modules=()),  # everything is built in
        files=files,
        source="kit",
        machine=krecipe.machine,
        cmdline=f"{recipe.kernel_cmdline} {krecipe.cmdline}".strip(),
        min_memory_mb=krecipe.min_memory_mb,
        root_disk=krecipe.root_disk,
        details={
            "kernel_package": built.source_package,
            "kernel_package_version": built.source_version,
            "kernel_build_key": built.key,
            "kernel_patches_applied": list(built.patches_applied),
            "kernel_patches_skipped": list(built.patches_skipped),
            "kernel_build_seconds": built.build_seconds,
        },
    )


def _debian_kernel(recipe: Recipe, report: Progress) -> BootKernel:
    report("asking apt for the kernel package", 0.05)
    package = resolve_kernel_package(recipe.kernel_package, recipe.deb_architecture,
                                     lambda step, _: report(step, 0.05))
    deb = fetch_package(package, report)
    report(f"unpacking {package.filename}", 0.4)
    kernel = unpack_kernel(deb, recipe.modules)
    check_module_order(kernel, recipe.modules)
    return BootKernel(
        recipe=recipe,
        files=kernel,
        source="debian",
        machine=recipe.machine,
        cmdline=recipe.kernel_cmdline,
        min_memory_mb=recipe.min_memory_mb,
        details={
            "kernel_package": package.name,
            "kernel_package_version": package.version,
            "kernel_deb": package.filename,
        },
    )


# --- the kernel package -------------------------------------------------------


# --- unpacking the kernel ------------------------------------------------------


@dataclass(frozen=True)
class KernelFiles:
    """What the build takes from a kernel package."""

    version: str
    vmlinuz: bytes
    modules: dict[str, tuple[str, bytes]]  # module name -> (path in the package, contents)


def module_name(name: str) -> str:
    """The kernel's spelling of a module name: "pvpanic-pci" is "pvpanic_pci"."""
    return name.removesuffix(".ko").replace("-", "_")


def unpack_kernel(deb: Path, modules: tuple[str, ...]) -> KernelFiles:
    """Read the kernel and the wanted modules out of the .deb, in one pass.

    Streaming the package's file tree through ``dpkg-deb --fsys-tarfile``
    avoids writing its hundred megabytes of modules to disk.
    """
    command = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    require_tool(command)
    wanted = {module_name(name) for name in modules}
    stderr = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            vmlinuz, found = _read_kernel_tree(process.stdout, wanted)
            shutil.copyfileobj(process.stdout, _Discard())  # let dpkg-deb finish writing
        except tarfile.TarError as error:
            stderr = str(error)
        stderr += process.stderr.read().decode(errors="replace")
    if process.returncode != 0 or stderr:
        raise ImageError(
            f"Could not unpack {deb.name}.",
            hint=f"Delete {deb} so the next build downloads it again.",
            command=command,
            log=stderr,
            exit_code=process.returncode,
        )
    return _kernel_files(deb, vmlinuz, found, wanted)


class _Discard:
    """A writable sink, like /dev/null."""

    def write(self, data: bytes) -> int:
        return len(data)


def _read_kernel_tree(
    stream: Any, wanted: set[str]
) -> tuple[tuple[str, bytes] | None, dict[str, tuple[str, bytes]]]:
    vmlinuz: tuple[str, bytes] | None = None
    found: dict[str, tuple[str, bytes]] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if not member.isfile():
                continue
            if name.startswith("boot/vmlinuz-"):
                vmlinuz = (name, _member_bytes(tar, member))
            elif name.endswith(".ko") and module_name(Path(name).name) in wanted:
                found[module_name(Path(name).name)] = (name, _member_bytes(tar, member))
    return vmlinuz, found


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tar.extractfile(member)
    assert file is not None
    return file.read()


def _kernel_files(
    deb: Path,
    vmlinuz: tuple[str, bytes] | None,
    found: dict[str, tuple[str, bytes]],
    wanted: set[str],
) -> KernelFiles:
    if vmlinuz is None:
        raise ImageError(
            f"{deb.name} holds no boot/vmlinuz-*: it is not a kernel package.",
            hint="Check kernel_package in assets/guest/recipe.toml.",
        )
    missing = sorted(wanted - set(found))
    if missing:
        raise ImageError(
            f"{deb.name} has no module named {', '.join(missing)}.",
            hint="Remove it from modules in assets/guest/recipe.toml, or check its spelling.",
        )
    version = vmlinuz[0].removeprefix("boot/vmlinuz-")
    return KernelFiles(version=version, vmlinuz=vmlinuz[1], modules=found)


def check_module_order(kernel: KernelFiles, order: tuple[str, ...]) -> None:
    """Refuse a recipe that loads a module before one it depends on.

    insmod, unlike modprobe, does not load dependencies: in the wrong order
    the guest boots without its network or agent, far from the cause.
    """
    loaded: set[str] = set()
    for name in order:
        module = module_name(name)
        needs = modinfo(kernel.modules[module][1]).get("depends", "")
        missing = [dep for dep in needs.split(",") if dep and module_name(dep) not in loaded]
        if missing:
            raise ImageError(
                f"The kernel module {name} needs {', '.join(missing)} loaded before it.",
                hint="Reorder (or add to) modules in assets/guest/recipe.toml.",
            )
        loaded.add(module)


def modinfo(module: bytes) -> dict[str, str]:
    """The ``key=value`` pairs of a module's .modinfo section (like ``modinfo``).

    Read straight from the ELF file, since the host may have no kmod and the
    module is for the guest's kernel, not the host's.
    """
    section = _elf_section(module, b".modinfo")
    info: dict[str, str] = {}
    for item in section.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, value)
    return info


def _elf_section(elf: bytes, wanted: bytes) -> bytes:
    """The contents of one section of a 64-bit ELF file, or b"" if it has none."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ImageError("A kernel module is not a 64-bit ELF file.")
    order = "<" if elf[5] == 1 else ">"
    (shoff,) = struct.unpack_from(order + "Q", elf, 0x28)
    entsize, count, names_index = struct.unpack_from(order + "HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        """(name offset, file offset, size) of section ``index``."""
        header = shoff + index * entsize
        (name,) = struct.unpack_from(order + "I", elf, header)
        offset, size = struct.unpack_from(order + "QQ", elf, header + 0x18)
        return name, offset, size

    names_at = section(names_index)[1]
    for index in range(count):
        name, offset, size = section(index)
        start = names_at + name
        if elf[start : elf.index(b"\0", start)] == wanted:
            return elf[offset : offset + size]
    return b""


# --- the initramfs -------------------------------------------------------------


def assemble(recipe: Recipe, files: list[HostFile], kernel: KernelFiles) -> Archive:
    """The guest's whole root file system, as an archive in memory."""
    archive = Archive()
    for folder in recipe.dirs:
        archive.add_dir(folder)
    # The kernel opens /dev/console for /init before anything is mounted.
    archive.add_char_device("/dev/console", 5, 1)
    for item in recipe.files:
        _add_recipe_file(archive, item)
    for item in recipe.databases:
        archive.add_file(item.guest, sqlite_database(item.source), 0o644)
    for file in files:
        archive.add_host_file(file.guest, file.host)
    _add_busybox_links(archive, recipe)
    module_paths = []
    for name in recipe.modules:
        package_path, data = kernel.modules[module_name(name)]
        guest = "/" + package_path
        archive.add_file(guest, data)
        module_paths.append(guest)
    archive.add_file(MODULE_LIST, "".join(f"{path}\n" for path in module_paths).encode())
    return archive


def sqlite_database(script: Path) -> bytes:
    """The SQLite database file that running ``script`` on an empty database makes."""
    try:
        sql = script.read_text()
    except OSError as error:
        raise ImageError(f"The guest recipe's database script {script} cannot be read: {error}.",
                         hint="Restore assets/guest/ from the kit's repository.") from None
    with tempfile.TemporaryDirectory(prefix="kit-db-") as folder:
        path = Path(folder) / "database.db"
        connection = sqlite3.connect(path)
        try:
            connection.executescript(sql)
            connection.commit()
        except sqlite3.Error as error:
            raise ImageError(f"The guest recipe's database script {script} failed: {error}.",
                             hint="Fix the SQL (try it with: sqlite3 :memory: < FILE).") from None
        finally:
            connection.close()
        return path.read_bytes()


def _add_busybox_links(archive: Archive, recipe: Recipe) -> None:
    """The links ``busybox --install -s`` would make, made here instead of at boot.

    Measured under TCG: making ~270 links took /init about 0.15 s of every
    boot.  Paths the recipe fills itself (``/sbin/shutdown``) are kept.  A
    busybox that cannot run here (another architecture) gets no links, and
    /init makes them at boot as before.
    """
    for program in recipe.programs:
        if PurePosixPath(program.guest).name != "busybox":
            continue
        try:
            listing = subprocess.run([str(program.host), "--list-full"], capture_output=True,
                                     text=True, check=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for applet in listing.split():
            path = "/" + applet.lstrip("/")
            if path not in archive:
                archive.add_symlink(path, program.guest)


def _add_recipe_file(archive: Archive, item: RecipeFile) -> None:
    if not item.source.exists():
        raise ImageError(
            f"The guest recipe lists {item.source}, which does not exist.",
            hint="Restore assets/guest/ from the kit's repository.",
        )
    if item.source.is_dir():
        for path in _tree(item.source):
            guest = f"{item.guest}/{path.relative_to(item.source).as_posix()}"
            if path.is_dir():
                archive.add_dir(guest)
            else:
                archive.add_file(guest, path.read_bytes(), _recipe_mode(path))
    else:
        mode = item.mode if item.mode is not None else _recipe_mode(item.source)
        archive.add_file(item.guest, item.source.read_bytes(), mode)


def _recipe_mode(path: Path) -> int:
    """0755 or 0644 by the executable bit alone, whatever the checkout's umask."""
    return 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644


# --- writing and publishing ------------------------------------------------------


def _write_root_disk(folder: Path, boot: BootKernel, archive: Archive,
                     report: Progress) -> tuple[str | None, bool]:
    """The root disk, for a kernel that boots from one.

    Returns why there is none, if it could not be made, and whether a later
    build may do better (mke2fs was missing).  Without a disk the image
    still boots, from its initramfs, only less lean.
    """
    if not boot.root_disk:
        return None, False
    report("making the root disk (ext2)", 0.92)
    try:
        rootdisk.make_root_disk(archive, folder / rootdisk.ROOT_DISK_FILE)
    except ImageError as error:
        report(f"no root disk, the guest boots from its initramfs: {error.message}", 0.95)
        problem = f"{error.message} {error.hint or ''}".strip()
        return problem, isinstance(error, rootdisk.Mke2fsMissing)
    return None, False


def _write_image(
    folder: Path, boot: BootKernel, key: str, choice: str, archive: Archive, started: float,
    disk_problem: str | None = None, disk_retry: bool = False,
) -> None:
    recipe = boot.recipe
    disk = folder / rootdisk.ROOT_DISK_FILE
    files = [KERNEL_FILE, INITRAMFS_FILE, *([disk.name] if disk.exists() else [])]
    (folder / KERNEL_FILE).write_bytes(boot.files.vmlinuz)
    with (folder / INITRAMFS_FILE).open("wb") as out:
        archive.write(out)
    manifest = {
        "format": FORMAT,
        "arch": recipe.arch,
        "key": key,
        "kernel_choice": choice,
        "kernel_source": boot.source,
        "fallback_reason": boot.fallback_reason,
        "fallback_retry": boot.fallback_retry,
        "kernel_version": boot.files.version,
        **boot.details,
        "machine": boot.machine,
        "kernel_cmdline": boot.cmdline,
        "min_memory_mb": boot.min_memory_mb,
        "qemu_binary": recipe.qemu_binary,
        "modules": list(recipe.modules),
        "root_disk": disk.name if disk.exists() else None,
        "root_disk_problem": disk_problem,
        "root_disk_retry": disk_retry,
        "sizes": {name: (folder / name).stat().st_size for name in files},
        "contents": ["/" + path for path in archive.paths()],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - started, 2),
    }
    _write_atomically(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _publish(scratch: Path, folder: Path) -> None:
    """Rename the built folder into place, moving an old one of the same key aside."""
    scratch.chmod(0o755)
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-", dir=images_dir()))
        folder.rename(old / folder.name)
        scratch.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        scratch.rename(folder)


def _remove_other_images(arch: str, keep: Path, choice: str = "auto") -> None:
    """Delete images of this architecture and kernel choice built from older inputs.

    QEMU reads the kernel and initramfs when it starts, so running guests do
    not mind; only the newest image is ever found again.  An image of the
    other kernel choice stays (the benchmark boots both).  Scratch folders
    left by a build that was killed go too, once they are an hour old.
    """
    stale_before = time.time() - 3600
    for folder in images_dir().iterdir():
        if not folder.is_dir() or folder == keep:
            continue
        scratch = folder.name.startswith((".build-", ".old-"))
        ours = folder.name.startswith(f"{arch}-") and manifest_kernel_choice(folder) == choice
        if ours or (scratch and folder.stat().st_mtime < stale_before):
            shutil.rmtree(folder, ignore_errors=True)


# --- progress on a terminal ---------------------------------------------------------


