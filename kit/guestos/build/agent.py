"""The guest agent as one static program: Debian's QEMU source, built once for the guests.

Why: Debian's ``qemu-ga`` is dynamically linked against glib and seven
other libraries.  In a guest emulated by TCG, loading and relocating them is
emulated instruction by instruction, and the agent is the last thing a cold
boot waits for.  The same source linked statically answers its first
command sooner (numbers in ``assets/agent/agent.toml``), and speaks the same
protocol: it *is* Debian's agent, of the same version, linked differently.

The recipe is ``assets/agent/agent.toml``.  A build

1. asks the kit's own apt configuration which version of the source package
   ``apt-get source`` would fetch (part of the key), and fetches it;
2. unpacks it with ``dpkg-source -x`` (Debian's patches applied) in a scratch
   folder of the cache;
3. unpacks the static libraries and meson from Debian packages beside it
   (``dpkg-deb -x``: nothing is installed on the host);
4. runs QEMU's ``configure`` for the guest agent alone, ``ninja`` for the
   program, strips it and checks that it runs;
5. keeps the program and a manifest in ``cache_dir()/agents/<arch>-<key>/``
   and deletes the rest.

A build that failed leaves ``<arch>-<key>.failed`` with the reason, so that
the next image build takes the host's ``qemu-ga`` at once, as the kernel
does (``python -m kit image --rebuild`` tries again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import struct
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos.build import apt, common, private_apt

log = logging.getLogger(__name__)

# Bump when a build lays the agent out differently: it changes every key.
FORMAT = 1
MANIFEST = "manifest.json"
PROGRAM = "qemu-ga"
LOG_TAIL_LINES = 40
# Programs a build runs; each missing one is reported by name.
BUILD_TOOLS = ("gcc", "ninja", "pkg-config", "python3", "strip", "apt-get", "dpkg-source",
               "dpkg-deb")
BUILD_PACKAGES_HINT = ("apt-get install --no-install-recommends build-essential ninja-build "
                       "pkg-config python3 dpkg-dev")
# The unpacked source and its objects take about 600 MB.
NEEDED_DISK_BYTES = 1 * 2**30
PT_INTERP = 3  # the ELF program header that names the dynamic loader


# --- the recipe -------------------------------------------------------------------


@dataclass(frozen=True)
class AgentRecipe:
    """``assets/agent/agent.toml``, read."""

    root: Path
    source_package: str
    build_packages: tuple[str, ...]
    configure: tuple[str, ...]
    target: str
    replaces: str  # the program's path in the guest


def recipe_dir() -> Path:
    return paths.assets_dir() / "agent"


def has_recipe() -> bool:
    return (recipe_dir() / "agent.toml").is_file()


def load_recipe() -> AgentRecipe:
    path = recipe_dir() / "agent.toml"
    try:
        table = tomllib.loads(path.read_text())
        return AgentRecipe(
            root=path.parent,
            source_package=str(table["source_package"]),
            build_packages=tuple(str(name) for name in table["build_packages"]),
            configure=tuple(str(word) for word in table["configure"]),
            target=str(table["target"]),
            replaces=str(table["replaces"]),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise ImageError(f"The guest agent recipe {path} cannot be read: {error}",
                         hint="Restore assets/agent/ from the kit's repository.") from error


def applies_to(arch: str) -> bool:
    """Built with the host's compiler: only for guests of the host's own architecture."""
    return has_recipe() and arch == platform.machine()


def recipe_digest(recipe: AgentRecipe) -> str:
    """A hash of the recipe folder's files: cheap, so the image key can use it."""
    digest = hashlib.sha256(f"kit guest agent recipe, format {FORMAT}\n".encode())
    for path in sorted(p for p in recipe.root.rglob("*") if p.is_file()):
        if not any(part.startswith(".") or part.endswith("~")
                   for part in path.relative_to(recipe.root).parts):
            digest.update(f"{path.relative_to(recipe.root)} {common.sha256_of(path)}\n".encode())
    return digest.hexdigest()[:20]


def obstacle() -> str | None:
    """Why this machine cannot build the agent now, or None (cheap: no apt, no compiler run)."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    return common.build_obstacle("the guest agent's build", missing, agents_dir(),
                                 NEEDED_DISK_BYTES)


# --- the cache --------------------------------------------------------------------


@dataclass(frozen=True)
class StaticAgent:
    """A built agent, ready to go into a guest image."""

    path: Path
    source_version: str
    key: str


def agents_dir() -> Path:
    path = paths.cache_dir() / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def agent_key(recipe: AgentRecipe, source_version: str) -> str:
    text = (f"kit guest agent, format {FORMAT}, {platform.machine()}, {recipe.source_package} "
            f"{source_version}, recipe {recipe_digest(recipe)}\n")
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _folder(key: str) -> Path:
    return agents_dir() / f"{platform.machine()}-{key}"


def find_agent(recipe: AgentRecipe, source_version: str) -> StaticAgent | None:
    """The cached agent for this recipe and source version, if complete."""
    key = agent_key(recipe, source_version)
    folder = _folder(key)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        program = folder / PROGRAM
        if manifest["key"] != key or program.stat().st_size != manifest["size"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return StaticAgent(program, source_version, key)


def ensure_agent(progress: common.Progress | None = None, *, retry: bool = False) -> StaticAgent:
    """The cached static agent, built first if needed; ImageError says why it cannot be."""
    report = progress or common.no_progress
    recipe = load_recipe()
    reason = obstacle()
    if reason is not None:
        raise ImageError(reason, hint=f"Install what is missing, as root: {BUILD_PACKAGES_HINT}")
    report(f"asking apt for the source of {recipe.source_package}", 0.0)
    config = private_apt.ensure(private_apt.native_architecture(), report)
    version = source_version(recipe, config)
    found = find_agent(recipe, version)
    if found is not None:
        return found
    with common.build_lock(platform.machine(), agents_dir()):
        found = find_agent(recipe, version)
        if found is not None:
            return found
        failure = _folder(agent_key(recipe, version)).with_suffix(".failed")
        if failure.exists() and not retry:
            raise ImageError(f"{_recorded_reason(failure)} (recorded in {failure})",
                             hint="python -m kit image --rebuild tries the build again.")
        try:
            return _build(recipe, config, version, report)
        except ImageError as error:
            _record_failure(failure, error)
            raise
        except (OSError, subprocess.SubprocessError) as error:
            wrapped = ImageError(f"The static guest agent's build failed: {error}")
            _record_failure(failure, wrapped)
            raise wrapped from error


def _record_failure(failure: Path, error: ImageError) -> None:
    log.warning("the static guest agent could not be built: %s", error.message)
    failure.write_text(json.dumps({"reason": error.message, "log": error.log or "",
                                   "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")


def _recorded_reason(failure: Path) -> str:
    try:
        return str(json.loads(failure.read_text())["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return "an earlier build of the static guest agent failed"


# --- the source --------------------------------------------------------------------


def source_version(recipe: AgentRecipe, config: Path) -> str:
    """The version ``apt-get source`` would fetch now (as its .dsc file spells it)."""
    result = apt.run_apt(["apt-get", "source", "--print-uris", "-q", recipe.source_package],
                         f"apt does not know the source package {recipe.source_package}.",
                         config=config)
    # A line per file: 'URL' NAME SIZE CHECKSUM; the .dsc is named SOURCE_VERSION.dsc.
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].endswith(".dsc") and "_" in words[1]:
            return words[1].removesuffix(".dsc").split("_", 1)[1]
    raise ImageError(f"apt-get source named no .dsc file for {recipe.source_package}.",
                     log=result.stdout + result.stderr,
                     hint=apt.failure_hint(config))


def fetch_source(recipe: AgentRecipe, config: Path, version: str, scratch: Path) -> Path:
    """Download and unpack the source package (Debian's patches applied); returns the tree.

    apt checks the files against the archive's signed lists; ``dpkg-source
    --no-check`` then skips the uploader's signature, which needs a keyring
    this machine need not have.
    """
    download = scratch / "download"
    download.mkdir()
    apt.run_apt(["apt-get", "source", "--download-only", "-q", recipe.source_package],
                f"Could not download the source package {recipe.source_package}.",
                config=config, cwd=download)
    dsc = download / f"{recipe.source_package}_{version}.dsc"
    if not dsc.is_file():  # the lists were refreshed in between: the next build takes it
        raise ImageError(f"apt-get source did not fetch {dsc.name}.",
                         hint="Try again: apt's lists changed during the build.")
    tree = scratch / "source"
    _run(["dpkg-source", "--no-check", "-x", str(dsc), str(tree)],
         f"Could not unpack {dsc.name}.", cwd=scratch)
    return tree


def unpack_build_packages(recipe: AgentRecipe, into: Path, report: common.Progress) -> None:
    """glib's static libraries and friends, unpacked (not installed) into ``into``."""
    for name in recipe.build_packages:
        deb = apt.fetch_package(apt.apt_package(name), lambda step, _: report(step, 0.3))
        _run(["dpkg-deb", "-x", str(deb), str(into)], f"Could not unpack {deb.name}.")


# --- building ---------------------------------------------------------------------------


def _build(recipe: AgentRecipe, config: Path, version: str, report: common.Progress
           ) -> StaticAgent:
    started = time.monotonic()
    key = agent_key(recipe, version)
    with common.scratch_dir(".build-", agents_dir()) as scratch:
        report(f"downloading the source of {recipe.source_package} {version}", 0.1)
        tree = fetch_source(recipe, config, version, scratch)
        report("unpacking glib's static libraries and meson", 0.3)
        deps = scratch / "deps"
        unpack_build_packages(recipe, deps, report)
        report("configuring the guest agent (static)", 0.4)
        build = tree / "build"
        build.mkdir()
        _run(configure_command(recipe, deps), "QEMU's configure failed for the guest agent.",
             cwd=build, env=build_environment(deps))
        report("compiling the guest agent (about a minute)", 0.5)
        _run(["ninja", f"-j{os.cpu_count() or 1}", recipe.target],
             "The guest agent did not compile.", cwd=build, env=build_environment(deps))
        with common.scratch_dir(".new-", agents_dir()) as out:
            program = out / PROGRAM
            _run(["strip", "-o", str(program), str(build / recipe.target)],
                 "Could not strip the guest agent.")
            check_static(program)
            manifest = {"format": FORMAT, "key": key, "source_package": recipe.source_package,
                        "source_version": version, "size": program.stat().st_size,
                        "configure": list(recipe.configure),
                        "build_seconds": round(time.monotonic() - started, 1),
                        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            out.chmod(0o755)
            shutil.rmtree(_folder(key), ignore_errors=True)
            out.rename(_folder(key))
    report("the static guest agent is built", 0.95)
    found = find_agent(recipe, version)
    if found is None:  # pragma: no cover - only if the cache vanished under us
        raise ImageError(f"The agent built into {_folder(key)} cannot be read back.")
    return found


def configure_command(recipe: AgentRecipe, deps: Path) -> list[str]:
    """QEMU's configure, run from ``source/build``, with the unpacked meson."""
    return ["../configure", *recipe.configure, f"--meson={deps / 'usr' / 'bin' / 'meson'}"]


def build_environment(deps: Path) -> dict[str, str]:
    """pkg-config and Python look in the unpacked packages, and only there for libraries.

    ``PKG_CONFIG_SYSROOT_DIR`` puts ``deps`` in front of every path the
    packages' .pc files name (they say ``/usr``, where they would be installed).
    """
    pkgconfig = [str(p) for p in sorted(deps.glob("usr/lib/*/pkgconfig"))]
    pkgconfig.append(str(deps / "usr" / "share" / "pkgconfig"))
    return {**os.environ, "PKG_CONFIG_LIBDIR": os.pathsep.join(pkgconfig),
            "PKG_CONFIG_SYSROOT_DIR": str(deps),
            "PYTHONPATH": str(deps / "usr" / "lib" / "python3" / "dist-packages"),
            "LC_ALL": "C"}


def check_static(program: Path) -> None:
    """The program must run, say it is QEMU's agent, and ask for no dynamic loader."""
    version = subprocess.run([str(program), "--version"], capture_output=True, text=True,
                             check=False, timeout=30)
    if has_interpreter(program) or "QEMU Guest Agent" not in version.stdout:
        raise ImageError(f"The built {program.name} is not a static QEMU guest agent.",
                         log=version.stdout + version.stderr)


def has_interpreter(program: Path) -> bool:
    """Whether a 64-bit little-endian ELF file names a dynamic loader (a PT_INTERP header)."""
    data = program.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ImageError(f"{program} is not a 64-bit little-endian ELF program.")
    offset, = struct.unpack_from("<Q", data, 0x20)
    size, count = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, offset + i * size)[0] == PT_INTERP
               for i in range(count))


def _run(command: list[str], failure: str, *, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd,
                            env=env)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise ImageError(failure, command=command, log=tail, exit_code=result.returncode,
                         hint=f"The build needs: {BUILD_PACKAGES_HINT}.")
