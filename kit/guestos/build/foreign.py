"""Programs for a guest of another architecture, taken from that architecture's packages.

An x86 host cannot copy its own busybox into an aarch64 guest, and cannot
run ``ldd`` on an aarch64 program either.  So for a foreign guest the recipe
names Debian packages instead of host files (``foreign_programs``), and
this module:

1. asks apt which packages the programs need, with
   ``apt-cache depends --recurse`` limited to ``Depends`` (pre-dependencies
   such as ``init-system-helpers`` lead to perl and dpkg, which a program
   never loads) and to packages of the guest's architecture (the
   ``Architecture: all`` ones hold no machine code);
2. downloads each with ``apt-get download`` and unpacks it with
   ``dpkg-deb -x`` into the kit's cache (nothing is installed on the host);
   both steps ask the kit's private apt configuration for Debian 12
   (:mod:`kit.guestos.build.private_apt`), whose lists hold the guest's
   architecture: the host's dpkg architectures and ``/etc/apt`` stay as
   they are;
3. reads each program's ELF header itself: its interpreter (the dynamic
   loader) and its ``DT_NEEDED`` libraries, found by name in the unpacked
   trees, then their own needs, until nothing new turns up.

Why both steps: the package closure says what to download (there is no
"which package has this library" without apt-file's large indexes); the
ELF walk says which few files of those packages the guest really loads
(libc6 alone ships dozens it does not).  Reading ELF in Python needs no
binutils and works for any architecture.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kit.core.errors import ImageError
from kit.guestos.build import apt

Progress = Callable[[str, float], None]

#: Debian's multiarch folder for each architecture: where its libraries live.
MULTIARCH = {"arm64": "aarch64-linux-gnu", "amd64": "x86_64-linux-gnu"}
_DT_NEEDED = 1
_MAX_LINK_HOPS = 20


@dataclass(frozen=True)
class ForeignProgram:
    """A program taken from a package of the guest's architecture."""

    package: str
    path: str  # where the package puts it
    guest: str  # where it goes in the guest


@dataclass(frozen=True)
class ForeignFile:
    """A file of an unpacked package and where it goes in the guest."""

    source: Path
    guest: str


def image_files(
    programs: tuple[ForeignProgram, ...], deb_arch: str, report: Progress
) -> list[ForeignFile]:
    """The programs and every library they load, from ``deb_arch`` packages."""
    if not programs:
        return []
    config = apt.config_for_architecture(deb_arch, report)
    report("asking apt which packages the programs need", 0.0)
    names = package_closure(sorted({p.package for p in programs}), deb_arch, config)
    packages = package_records(names, deb_arch, config)
    trees = []
    for index, package in enumerate(packages):
        report(f"fetching {package.name}:{deb_arch}", index / len(packages))
        trees.append(unpacked(package, _at(report, index / len(packages))))
    report("finding the libraries the programs load", 1.0)
    return resolve(programs, trees, deb_arch)


def _at(report: Progress, fraction: float) -> Progress:
    """A callback that reports every step at one place on the bar."""
    return lambda step, _fraction: report(step, fraction)


# --- which packages -------------------------------------------------------------


def package_closure(packages: list[str], deb_arch: str, config: Path | None = None) -> list[str]:
    """``packages`` and every package of ``deb_arch`` they depend on, recursively.

    ``config``: the apt configuration to ask (None: the host's own).
    """
    command = [
        "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends",
        *(f"{name}:{deb_arch}" for name in packages),
    ]
    failure = f"apt does not know the {deb_arch} packages {', '.join(packages)}."
    output = apt.run_apt(command, failure, config=config).stdout
    return parse_closure(output, deb_arch)


def parse_closure(output: str, deb_arch: str) -> list[str]:
    """The package names (without ``:arch``) of ``apt-cache depends --recurse`` output.

    Each package heads a block with an unindented line; indented lines are
    its dependencies, which head blocks of their own further down.
    """
    suffix = f":{deb_arch}"
    names = {
        line.strip().removesuffix(suffix)
        for line in output.splitlines()
        if line and not line[0].isspace() and line.strip().endswith(suffix)
    }
    return sorted(name for name in names if not name.startswith("<"))


# --- downloading and unpacking ----------------------------------------------------


def unpacked(package: apt.DebPackage, report: Progress) -> Path:
    """The package's files, unpacked once into the cache with ``dpkg-deb -x``."""
    deb = apt.fetch_package(package, report)
    target = apt.packages_dir() / "unpacked" / deb.name.removesuffix(".deb")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        _run(["dpkg-deb", "-x", str(deb), str(scratch)], f"Could not unpack {deb.name}.")
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def package_records(
    names: list[str], deb_arch: str, config: Path | None = None
) -> list[apt.DebPackage]:
    """What apt knows of each package (version, checksum), asked in one call.

    One ``apt-cache show`` for all of them: each call costs seconds on a
    busy machine, about the same for one package as for twenty.
    """
    command = ["apt-cache", "show", "--no-all-versions", *(f"{n}:{deb_arch}" for n in names)]
    failure = f"apt does not know some of the {deb_arch} packages {names}."
    output = apt.run_apt(command, failure, config=config).stdout
    records = {fields.get("Package"): fields for fields in parse_records(output)}
    return [_package(name, records.get(name, {}), deb_arch, config) for name in names]


def parse_records(output: str) -> list[dict[str, str]]:
    """The ``Field: value`` records of apt-cache output, split at blank lines."""
    records: list[dict[str, str]] = [{}]
    for line in output.splitlines():
        if not line.strip():
            records.append({})
        elif ":" in line and not line[0].isspace():
            field, value = line.split(":", 1)
            records[-1][field] = value.strip()
    return [record for record in records if record]


def _package(
    name: str, fields: dict[str, str], deb_arch: str, config: Path | None
) -> apt.DebPackage:
    try:
        version = fields["Version"]
        return apt.DebPackage(
            name=name, version=version, architecture=deb_arch,
            filename=download_name(name, version, deb_arch), sha256=fields["SHA256"],
            apt_config=config,
        )
    except KeyError as error:
        raise ImageError(f"apt's record of {name}:{deb_arch} has no {error} field.",
                         hint=apt.failure_hint(config)) from error


#: The file name ``apt-get download`` gives a package (its epoch's colon as ``%3a``).
download_name = apt.download_name


def _run(command: list[str], failure: str) -> str:
    """Run a dpkg tool (apt's commands go through :func:`apt.run_apt`)."""
    if shutil.which(command[0]) is None:
        raise ImageError(f"Building a foreign guest needs {command[0]}, and it is missing.",
                         hint="Run the kit on Debian 12 with apt and dpkg.", command=command)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(
            failure, command=command, log=result.stdout + result.stderr,
            exit_code=result.returncode,
            hint=f"Check the free disk space in {apt.packages_dir()}, then try again (a "
            "damaged .deb there is downloaded afresh once deleted).",
        )
    return result.stdout


# --- following the ELF files -------------------------------------------------------


def resolve(
    programs: tuple[ForeignProgram, ...], trees: list[Path], deb_arch: str
) -> list[ForeignFile]:
    """The programs, their loader and their libraries, each once, sorted by guest path."""
    found: dict[str, ForeignFile] = {}
    pending: list[str] = []
    for program in programs:
        source = find_in_trees(program.path, trees)
        if source is None:
            raise ImageError(
                f"The {deb_arch} package {program.package} has no {program.path}.",
                hint="Check foreign_programs in assets/guest/recipe.toml.",
            )
        found[program.guest] = ForeignFile(source, program.guest)
        pending.append(program.guest)
    while pending:
        elf = found[pending.pop()].source.read_bytes()
        for guest in _dependencies(elf, trees, deb_arch):
            if guest.guest not in found:
                found[guest.guest] = guest
                pending.append(guest.guest)
    return [found[guest] for guest in sorted(found)]


def _dependencies(elf: bytes, trees: list[Path], deb_arch: str) -> list[ForeignFile]:
    interpreter, needed = elf_dependencies(elf)
    files = []
    if interpreter:
        source = find_in_trees(interpreter, trees)
        if source is None:
            raise ImageError(f"No unpacked package holds the loader {interpreter}.")
        files.append(ForeignFile(source, interpreter))
    for soname in needed:
        files.append(_library(soname, trees, deb_arch))
    return files


def _library(soname: str, trees: list[Path], deb_arch: str) -> ForeignFile:
    multiarch = MULTIARCH.get(deb_arch, "")
    for folder in (f"/lib/{multiarch}", f"/usr/lib/{multiarch}", "/lib", "/usr/lib"):
        guest = f"{folder}/{soname}"
        source = find_in_trees(guest, trees)
        if source is not None:
            return ForeignFile(source, guest)
    raise ImageError(
        f"No {deb_arch} package unpacked for the guest holds the library {soname}.",
        hint="The packages' dependencies did not bring it: add its package to "
        "foreign_programs' needs in assets/guest/recipe.toml.",
    )


def find_in_trees(path: str, trees: list[Path]) -> Path | None:
    """The regular file ``path`` names in any tree, symbolic links followed inside it."""
    for tree in trees:
        found = _follow(tree, path)
        if found is not None:
            return found
    return None


def _follow(tree: Path, path: str) -> Path | None:
    """``path`` inside ``tree``, links resolved against the tree, never the host's root."""
    current = PurePosixPath("/") / path
    for _ in range(_MAX_LINK_HOPS):
        candidate = tree / str(current).lstrip("/")
        if candidate.is_symlink():
            target = PurePosixPath(str(candidate.readlink()))
            current = target if target.is_absolute() else current.parent / target
            continue
        return candidate if candidate.is_file() else None
    return None


def elf_dependencies(elf: bytes) -> tuple[str | None, list[str]]:
    """A 64-bit ELF file's interpreter (``.interp``) and ``DT_NEEDED`` names, in order."""
    sections = _sections(elf)
    interp = sections.get(b".interp")
    interpreter = elf[interp[0] : interp[0] + interp[1]].rstrip(b"\0").decode() if interp else None
    dynamic, dynstr = sections.get(b".dynamic"), sections.get(b".dynstr")
    if dynamic is None or dynstr is None:
        return interpreter, []  # a static program
    order = "<" if elf[5] == 1 else ">"
    needed = []
    for at in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from(order + "qQ", elf, at)
        if tag == _DT_NEEDED:
            start = dynstr[0] + value
            needed.append(elf[start : elf.index(b"\0", start)].decode())
    return interpreter, needed


def _sections(elf: bytes) -> dict[bytes, tuple[int, int]]:
    """Each section's name -> (file offset, size), from a 64-bit ELF file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ImageError("A program for the guest is not a 64-bit ELF file.")
    order = "<" if elf[5] == 1 else ">"
    (shoff,) = struct.unpack_from(order + "Q", elf, 0x28)
    entsize, count, names_index = struct.unpack_from(order + "HHH", elf, 0x3A)
    headers = []
    for index in range(count):
        header = shoff + index * entsize
        (name,) = struct.unpack_from(order + "I", elf, header)
        offset, size = struct.unpack_from(order + "QQ", elf, header + 0x18)
        headers.append((name, offset, size))
    names_at = headers[names_index][1] if headers else 0
    result = {}
    for name, offset, size in headers:
        label = elf[names_at + name : elf.index(b"\0", names_at + name)]
        result[label] = (offset, size)
    return result
