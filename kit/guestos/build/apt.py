"""Debian packages fetched with apt, never installed: kernels and foreign programs.

A guest's kernel and an aarch64 guest's programs come from Debian's archive:
``apt-get download`` into the kit's cache, then unpacked by the builders.
Nothing here changes the host's installed packages.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos.build.common import Progress, require_tool, sha256_of


@dataclass(frozen=True)
class DebPackage:
    """The real kernel package behind the recipe's metapackage, as apt knows it."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str


def resolve_kernel_package(meta_package: str, deb_architecture: str) -> DebPackage:
    """The linux-image package that a meta package (linux-image-cloud-amd64) points to."""
    meta = _apt_show(f"{meta_package}:{deb_architecture}")
    name = kernel_dependency(meta.get("Depends", ""))
    if name is None:
        raise ImageError(
            f"{meta_package} does not depend on a linux-image package.",
            hint="Check kernel_package in assets/guest/recipe.toml.",
        )
    return apt_package(name, deb_architecture)


def apt_package(name: str, architecture: str | None = None) -> DebPackage:
    """What apt would download for ``name`` (of ``architecture``, else the host's)."""
    fields = _apt_show(f"{name}:{architecture}" if architecture else name)
    try:
        return DebPackage(
            name=name,
            version=fields["Version"],
            architecture=architecture or fields.get("Architecture", "all"),
            filename=PurePosixPath(fields["Filename"]).name,
            sha256=fields["SHA256"],
        )
    except KeyError as error:
        raise ImageError(
            f"apt's record of {name} has no {error} field.",
            hint="Run `apt-get update` (as root) and try again.",
        ) from error


def kernel_dependency(depends: str) -> str | None:
    for alternative in re.split(r"[,|]", depends):
        name = alternative.strip().split(" ")[0]
        if name.startswith("linux-image-"):
            return name
    return None


def _apt_show(package: str) -> dict[str, str]:
    command = ["apt-cache", "show", "--no-all-versions", package]
    result = _run_apt(command, f"apt does not know the package {package}.")
    fields: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if not line.strip():
            break  # only the first record
        if ":" in line and not line.startswith(" "):
            field, value = line.split(":", 1)
            fields[field] = value.strip()
    return fields


def _run_apt(
    command: list[str], failure: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    require_tool(command)
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if result.returncode != 0:
        raise ImageError(
            failure,
            hint="Run `apt-get update` (as root) so apt knows the current packages, "
            "check the network connection, and try again.",
            command=command,
            log=result.stdout + result.stderr,
            exit_code=result.returncode,
        )
    return result


def packages_dir() -> Path:
    path = paths.cache_dir() / "packages"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_package(package: DebPackage, report: Progress) -> Path:
    """The package's .deb, from the cache if there, else downloaded into it."""
    target = packages_dir() / package.filename
    if target.is_file() and sha256_of(target) == package.sha256:
        report(f"using the cached {package.filename}", 0.3)
        return target
    report(f"downloading {package.filename}", 0.1)
    with _apt_download_dir() as scratch:
        spec = f"{package.name}:{package.architecture}={package.version}"
        _run_apt(["apt-get", "download", spec], f"Could not download {package.name}.", cwd=scratch)
        downloaded = scratch / package.filename
        if not downloaded.is_file() or sha256_of(downloaded) != package.sha256:
            raise ImageError(
                f"apt-get downloaded {package.name}, but not the expected {package.filename}.",
                hint="Run `apt-get update` (as root) and try again.",
            )
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(downloaded, partial)
        partial.replace(target)
    report(f"downloaded {package.filename}", 0.3)
    return target


@contextlib.contextmanager
def _apt_download_dir() -> Iterator[Path]:
    """A fresh folder for apt-get download, writable by apt's sandbox user.

    Run as root, apt downloads as the user ``_apt``; in a folder it cannot
    write to, it warns and downloads as root instead.
    """
    with tempfile.TemporaryDirectory(prefix="kit-apt-") as name:
        folder = Path(name)
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError, OSError):
                import pwd

                os.chown(folder, pwd.getpwnam("_apt").pw_uid, -1)
        yield folder
