"""The kit's own guest kernel: Debian's kernel source, a small configuration, built once.

Why a kernel of our own: Debian's cloud kernel, with its drivers as modules,
takes about 2 s under TCG (software emulation) before a guest is usable, and
needs 96 MB.  A kernel with exactly what the lessons use built in, booted on
QEMU's ``microvm`` machine, is usable in well under a second with 64 MB.

The recipe is ``assets/kernel/``: ``kernel.toml`` (source package, machine,
command line), ``kit.config`` (options on top of ``make tinyconfig``) and
``patches/``.  A build

1. asks apt for the current version of the source package (part of the key),
2. downloads it into the cache (``apt-get download``; nothing is installed),
3. unpacks its source tarball into a scratch folder in the cache,
4. configures it (``tinyconfig``, then ``merge_config.sh -n kit.config``) and
   checks that every option of the fragment survived,
5. applies the patches that apply,
6. compiles ``vmlinux``, counting objects for the progress bar (about 4 min
   on 2 cores),
7. keeps the stripped kernel and a manifest, and deletes the source tree.

Kernels live in ``cache_dir()/kernels/<arch>-<key>/``, the manifest written
last in a folder renamed into place, like the guest images.  A build that
failed leaves ``<arch>-<key>.failed`` with the reason, so that the next setup
falls back to Debian's kernel at once instead of failing for 4 minutes
again; ``python -m kit image --rebuild`` tries once more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos.build import apt, common

log = logging.getLogger(__name__)

# Bump when a build lays the kernel out differently: it changes every key.
FORMAT = 1
MANIFEST = "manifest.json"
KERNEL_FILE = "vmlinux"
# Lines of make's output kept for the error message of a failed build.
LOG_TAIL_LINES = 60
# The unpacked source and its objects take about 2 GB.
NEEDED_DISK_BYTES = 3 * 2**30
BUILD_PACKAGES_HINT = (
    "apt-get install --no-install-recommends build-essential bc bison flex "
    "libelf-dev libssl-dev xz-utils"
)
# Programs a build runs; each missing one is reported by name.
BUILD_TOOLS = (
    "make", "gcc", "ld", "objcopy", "bison", "flex", "bc", "perl", "xz", "tar", "patch",
    "apt-get", "apt-cache", "dpkg-deb",
)  # fmt: skip
# objtool, run on every object, needs libelf's header.
BUILD_HEADERS = (Path("/usr/include/libelf.h"),)
_OBJECT_LINE = re.compile(r"^\s+(CC|AS)\s+\S+\.o$")


# --- the recipe -----------------------------------------------------------------


@dataclass(frozen=True)
class KernelRecipe:
    """``assets/kernel/kernel.toml`` for one architecture, checked and typed."""

    root: Path
    arch: str
    source_package: str
    config: Path
    patches: tuple[Path, ...]
    make_arch: str
    make_target: str
    built_file: str
    machine: str
    cmdline: str
    min_memory_mb: int
    expected_objects: int
    root_disk: bool = False  # boots from an ext2 disk (build.rootdisk), not an initramfs


def recipe_dir() -> Path:
    return paths.assets_dir() / "kernel"


def has_recipe() -> bool:
    """False when ``assets/kernel/`` is missing: then guests use Debian's kernel."""
    return (recipe_dir() / "kernel.toml").is_file()


def load_recipe(arch: str = "x86_64") -> KernelRecipe:
    root = recipe_dir()
    path = root / "kernel.toml"
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ImageError(f"Cannot read the kernel recipe {path}: {error}",
                         hint="Restore assets/kernel/ from the kit's repository.") from error
    table = data.get("arch", {}).get(arch)
    if table is None:
        raise ImageError(f"The kit's kernel recipe has no architecture {arch!r}.")
    try:
        return _recipe_from_tables(root, arch, data, table)
    except (KeyError, TypeError, ValueError) as error:
        raise ImageError(f"{path} is missing or has a wrong value for {error}.",
                         hint="Compare it with the copy in the kit's repository.") from error


def _recipe_from_tables(
    root: Path, arch: str, data: dict[str, Any], table: dict[str, Any]
) -> KernelRecipe:
    return KernelRecipe(
        root=root,
        arch=arch,
        source_package=str(data["source_package"]),
        config=root / str(data["config"]),
        patches=tuple(root / str(name) for name in data.get("patches", [])),
        make_arch=str(table["make_arch"]),
        make_target=str(table["make_target"]),
        built_file=str(table["built_file"]),
        machine=str(table["machine"]),
        cmdline=str(table.get("cmdline", "")),
        min_memory_mb=int(table["min_memory_mb"]),
        expected_objects=int(table["expected_objects"]),
        root_disk=bool(table.get("root_disk", False)),
    )


def required_options(recipe: KernelRecipe) -> dict[str, str]:
    """The fragment's options: ``{"CONFIG_X": "y"}``, and ``"n"`` for "is not set"."""
    options: dict[str, str] = {}
    for line in recipe.config.read_text().splitlines():
        unset = re.fullmatch(r"#\s*(CONFIG_\w+) is not set", line.strip())
        if unset:
            options[unset.group(1)] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            options[name.strip()] = value.strip()
    return options


def recipe_digest(recipe: KernelRecipe) -> str:
    """A hash of every file of the recipe folder: cheap, so guest starts can use it."""
    digest = hashlib.sha256(f"kit kernel recipe, format {FORMAT}, {recipe.arch}\n".encode())
    for path in _recipe_files(recipe.root):
        digest.update(f"{path.relative_to(recipe.root)} {common.sha256_of(path)}\n".encode())
    return digest.hexdigest()[:20]


def _recipe_files(folder: Path) -> list[Path]:
    """The recipe's files, sorted, minus hidden and backup files (an editor's)."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") or part.endswith("~")
                    for part in path.relative_to(folder).parts)
    )


# --- can this machine build it? ---------------------------------------------------


def obstacle(recipe: KernelRecipe) -> str | None:
    """Why this machine cannot build the kernel now, or None if nothing is in the way.

    Cheap (no apt, no compiler run): setup calls it to decide at once, and to
    notice later that the tools have arrived.
    """
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    missing += [str(header) for header in BUILD_HEADERS if not header.exists()]
    if not missing and not recipe.config.is_file():
        return f"the kernel recipe has no {recipe.config.name}"
    return common.build_obstacle("the kernel build", missing, kernels_dir(), NEEDED_DISK_BYTES)


# --- the cache --------------------------------------------------------------------


@dataclass(frozen=True)
class KitKernel:
    """A built kernel, ready to be packed into a guest image."""

    arch: str
    path: Path
    version: str  # what `uname -r` says in the guest
    source_package: str
    source_version: str
    key: str
    patches_applied: tuple[str, ...]
    patches_skipped: tuple[str, ...]
    build_seconds: float


def kernels_dir() -> Path:
    path = paths.cache_dir() / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def kernel_key(recipe: KernelRecipe, source_version: str) -> str:
    digest = hashlib.sha256(
        f"kit kernel, format {FORMAT}, {recipe.arch}, {recipe.source_package} "
        f"{source_version}, recipe {recipe_digest(recipe)}\n".encode()
    )
    return digest.hexdigest()[:20]


def find_kernel(recipe: KernelRecipe, source_version: str) -> KitKernel | None:
    """The cached kernel for this recipe and source version, if complete."""
    key = kernel_key(recipe, source_version)
    folder = kernels_dir() / f"{recipe.arch}-{key}"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        kernel = _kernel_from_manifest(folder, manifest)
        complete = kernel.path.stat().st_size == manifest["size"] and kernel.key == key
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kernel if complete else None


def _kernel_from_manifest(folder: Path, manifest: dict[str, Any]) -> KitKernel:
    return KitKernel(
        arch=str(manifest["arch"]),
        path=folder / KERNEL_FILE,
        version=str(manifest["version"]),
        source_package=str(manifest["source_package"]),
        source_version=str(manifest["source_version"]),
        key=str(manifest["key"]),
        patches_applied=tuple(manifest["patches_applied"]),
        patches_skipped=tuple(manifest["patches_skipped"]),
        build_seconds=float(manifest["build_seconds"]),
    )


def _failure_path(recipe: KernelRecipe, key: str) -> Path:
    return kernels_dir() / f"{recipe.arch}-{key}.failed"


def ensure_kernel(
    arch: str = "x86_64", progress: common.Progress | None = None, *, retry: bool = False
) -> KitKernel:
    """The cached kernel, built first if needed; ImageError says why it cannot be.

    A build that failed before for the same inputs is not tried again unless
    ``retry``: its recorded reason is raised at once.
    """
    report = progress or common.no_progress
    recipe = load_recipe(arch)
    report(f"asking apt for {recipe.source_package}", 0.0)
    package = resolve_source_package(recipe)
    kernel = find_kernel(recipe, package.version)
    if kernel is not None:
        return kernel
    with common.build_lock(arch, kernels_dir()):
        return find_kernel(recipe, package.version) or _build_once(recipe, package, report, retry)


def _build_once(
    recipe: KernelRecipe, package: apt.DebPackage, report: common.Progress, retry: bool
) -> KitKernel:
    key = kernel_key(recipe, package.version)
    failure = _failure_path(recipe, key)
    if failure.exists() and not retry:
        raise _recorded_failure(failure)
    log.info("building the kit's %s kernel from %s %s", recipe.arch, package.name,
             package.version)
    try:
        kernel = _build(recipe, package, key, report)
    except ImageError as error:
        log.warning("the kit's %s kernel could not be built: %s", recipe.arch, error.message)
        _write_failure(failure, error)
        raise
    failure.unlink(missing_ok=True)
    return kernel


def _recorded_failure(failure: Path) -> ImageError:
    try:
        data = json.loads(failure.read_text())
        message, log = str(data["reason"]), str(data.get("log", ""))
    except (OSError, ValueError, KeyError, TypeError):
        message, log = "an earlier build of the kit's kernel failed", ""
    return ImageError(f"{message} (recorded in {failure})", log=log or None,
                      hint="python -m kit image --rebuild tries the kernel build again.")


def _write_failure(failure: Path, error: ImageError) -> None:
    record = {"reason": error.message, "log": error.log or "",
              "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    failure.write_text(json.dumps(record, indent=2) + "\n")


# --- the source package --------------------------------------------------------------


def resolve_source_package(recipe: KernelRecipe) -> apt.DebPackage:
    """The source package as apt knows it now (name, version, file, checksum)."""
    return apt.apt_package(recipe.source_package)


# --- building ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stage:
    """Where each build step sits on the progress bar (fractions of the whole)."""

    download: float = 0.02
    unpack: float = 0.08
    configure: float = 0.12
    compile: float = 0.15
    done: float = 0.98


STAGE = _Stage()


def _build(
    recipe: KernelRecipe, package: apt.DebPackage, key: str, report: common.Progress
) -> KitKernel:
    started = time.monotonic()
    deb = apt.fetch_package(package, lambda step, _: report(step, STAGE.download))
    with common.scratch_dir(f".build-{recipe.arch}-", kernels_dir()) as scratch:
        report(f"unpacking the kernel source ({package.filename})", STAGE.unpack)
        source = unpack_source(deb, scratch)
        report("configuring the kernel (tinyconfig + assets/kernel/kit.config)", STAGE.configure)
        configure(recipe, source)
        applied, skipped = apply_patches(recipe, source)
        compile_kernel(recipe, source, report)
        folder = kernels_dir() / f"{recipe.arch}-{key}"
        with common.scratch_dir(f".new-{recipe.arch}-", kernels_dir()) as out:
            _keep_result(recipe, source, out)
            manifest = {
                "format": FORMAT, "arch": recipe.arch, "key": key,
                "version": _kernel_release(recipe, source),
                "source_package": package.name, "source_version": package.version,
                "patches_applied": applied, "patches_skipped": skipped,
                "size": (out / KERNEL_FILE).stat().st_size,
                "build_seconds": round(time.monotonic() - started, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }  # fmt: skip
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _publish(out, folder)
    _remove_other_kernels(recipe.arch, keep=folder)
    report("the kit's kernel is built", STAGE.done)
    kernel = find_kernel(recipe, package.version)
    if kernel is None:  # pragma: no cover - only if the cache vanished under us
        raise ImageError(f"The kernel built into {folder} cannot be read back.")
    return kernel


def unpack_source(deb: Path, scratch: Path) -> Path:
    """Stream the source tarball out of the .deb into ``tar -xJ``; returns the tree.

    The package holds one ``usr/src/linux-source-*.tar.xz``; nothing but the
    unpacked tree touches the disk.
    """
    command = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as dpkg:
        assert dpkg.stdout is not None and dpkg.stderr is not None
        found = _untar_inner(dpkg.stdout, scratch)
        shutil.copyfileobj(dpkg.stdout, _Discard())
        errors = dpkg.stderr.read().decode(errors="replace")
    if dpkg.returncode != 0 or not found:
        raise ImageError(f"Could not unpack the kernel source from {deb.name}.",
                         command=command, log=errors or None, exit_code=dpkg.returncode,
                         hint=f"Delete {deb} so the next build downloads it again.")
    trees = [path for path in scratch.iterdir() if (path / "Makefile").is_file()]
    if len(trees) != 1:
        raise ImageError(f"{deb.name} did not unpack to one kernel source tree.")
    return trees[0]


def _untar_inner(stream: IO[bytes], scratch: Path) -> bool:
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            name = member.name.removeprefix("./")
            if member.isfile() and re.fullmatch(r"usr/src/linux-source-[^/]*\.tar\.xz", name):
                inner = outer.extractfile(member)
                assert inner is not None
                _run_with_stdin(["tar", "-xJf", "-", "-C", str(scratch)], inner,
                                "Could not unpack the kernel source tarball.")
                return True
    return False


class _Discard:
    """A writable sink, like /dev/null: lets dpkg-deb finish writing."""

    def write(self, data: bytes) -> int:
        return len(data)


def _run_with_stdin(command: list[str], stdin: IO[bytes], failure: str) -> None:
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdin is not None and process.stderr is not None
        with contextlib.suppress(BrokenPipeError):
            shutil.copyfileobj(stdin, process.stdin)
        process.stdin.close()
        errors = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise ImageError(failure, command=command, log=errors, exit_code=process.returncode)


def configure(recipe: KernelRecipe, source: Path) -> None:
    """``tinyconfig``, then the fragment with every other new option off; then check it.

    ``merge_config.sh -n`` fills in options the fragment leaves open with
    ``allnoconfig`` instead of their defaults: otherwise enabling NET alone
    switches on IPv6, wireless and dozens of network card vendors.
    """
    _make(recipe, source, ["tinyconfig"], "make tinyconfig failed.")
    script = ["scripts/kconfig/merge_config.sh", "-n", ".config", str(recipe.config)]
    _run(script, source, "Merging assets/kernel/kit.config failed.",
         env={**os.environ, "ARCH": recipe.make_arch})
    lost = missing_options(required_options(recipe), (source / ".config").read_text())
    if lost:
        raise ImageError(
            "The kernel configuration lost options the kit needs: " + ", ".join(lost) + ".",
            hint="An option's dependency is off, or its name changed in this kernel "
            "version: fix assets/kernel/kit.config.",
        )


def missing_options(wanted: dict[str, str], config: str) -> list[str]:
    """The fragment's options that a generated ``.config`` does not have as asked."""
    have: dict[str, str] = {}
    for line in config.splitlines():
        unset = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
        if unset:
            have[unset.group(1)] = "n"
        elif line.startswith("CONFIG_"):
            name, _, value = line.partition("=")
            have[name] = value
    return [f"{name}={value}" for name, value in wanted.items() if have.get(name, "n") != value]


def apply_patches(recipe: KernelRecipe, source: Path) -> tuple[list[str], list[str]]:
    """Apply each patch that applies cleanly; skip (and name) those that do not.

    A skipped patch only costs boot time, so it must not cost the learner the
    kit's kernel altogether.
    """
    applied: list[str] = []
    skipped: list[str] = []
    for patch in recipe.patches:
        base = ["patch", "-p1", "--forward", "--batch", "--silent", "-i", str(patch)]
        check = subprocess.run([*base, "--dry-run"], cwd=source, capture_output=True,
                               check=False)
        if check.returncode == 0:
            _run(base, source, f"Applying {patch.name} failed.")
            applied.append(patch.name)
        else:
            skipped.append(patch.name)
    return applied, skipped


def compile_kernel(recipe: KernelRecipe, source: Path, report: common.Progress) -> None:
    """``make -jN vmlinux``, turning each compiled object into progress."""
    jobs = str(os.cpu_count() or 1)
    command = _make_command(recipe, ["-j", jobs, recipe.make_target])
    report(f"compiling the kernel with {jobs} jobs (about 4 minutes on 2 cores)", STAGE.compile)
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    with subprocess.Popen(command, cwd=source, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as make:
        assert make.stdout is not None
        _follow_make(make.stdout, tail, recipe.expected_objects, report)
    if make.returncode != 0:
        raise ImageError("Compiling the kit's kernel failed.", command=command,
                         log="\n".join(tail), exit_code=make.returncode,
                         hint=f"Check the build tools ({BUILD_PACKAGES_HINT}).")


def _follow_make(
    lines: IO[str], tail: deque[str], expected: int, report: common.Progress
) -> None:
    """Report progress at most once a percent and once a second, whichever is rarer."""
    objects = 0
    shown = (-1, 0.0)
    span = STAGE.done - STAGE.compile
    for line in lines:
        tail.append(line.rstrip("\n"))
        if not _OBJECT_LINE.match(line):
            continue
        objects += 1
        percent = min(99, objects * 100 // max(1, expected))
        now = time.monotonic()
        if percent != shown[0] and now - shown[1] >= 1.0:
            report(f"compiling the kernel: {objects} objects",
                   STAGE.compile + span * percent / 100)
            shown = (percent, now)


def _keep_result(recipe: KernelRecipe, source: Path, out: Path) -> None:
    """Copy the kernel without its symbol tables: QEMU maps the whole file."""
    built = source / recipe.built_file
    _run(["objcopy", "--strip-all", str(built), str(out / KERNEL_FILE)], source,
         f"Could not strip {recipe.built_file}.")


def _kernel_release(recipe: KernelRecipe, source: Path) -> str:
    result = _make(recipe, source, ["-s", "kernelrelease"], "make kernelrelease failed.")
    return result.stdout.strip().splitlines()[-1]


def _make(
    recipe: KernelRecipe, source: Path, targets: list[str], failure: str
) -> subprocess.CompletedProcess[str]:
    return _run(_make_command(recipe, targets), source, failure)


def _make_command(recipe: KernelRecipe, targets: list[str]) -> list[str]:
    # A fixed user and host: the banner learners read says who built it, not
    # which machine; the build is the same wherever it runs.
    return ["make", f"ARCH={recipe.make_arch}", "KBUILD_BUILD_USER=kit",
            "KBUILD_BUILD_HOST=the-kit", *targets]


def _run(
    command: list[str], cwd: Path, failure: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                            errors="replace", check=False, env=env)
    if result.returncode != 0:
        raise ImageError(failure, command=command, log=result.stdout + result.stderr,
                         exit_code=result.returncode,
                         hint=f"Check the build tools ({BUILD_PACKAGES_HINT}).")
    return result


def _publish(scratch: Path, folder: Path) -> None:
    """Rename the finished folder into place, replacing an old one of the same key."""
    scratch.chmod(0o755)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)


def _remove_other_kernels(arch: str, keep: Path) -> None:
    """Delete kernels of this architecture built from older inputs, and stale scratch.

    Images hold their own copy of the kernel, so nothing else points here.
    """
    stale_before = time.time() - 3600
    for path in kernels_dir().iterdir():
        if path == keep or path.name.startswith(f".{arch}.lock"):
            continue
        scratch = path.name.startswith((".build-", ".new-"))
        if path.is_dir() and (path.name.startswith(f"{arch}-") or (
                scratch and path.stat().st_mtime < stale_before)):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f"{arch}-") and path.name.endswith(".failed"):
            path.unlink(missing_ok=True)
