"""Debian packages fetched with apt, never installed: kernels and foreign programs.

A guest's kernel and an aarch64 guest's programs come from Debian's archive:
``apt-get download`` into the kit's cache, then unpacked by the builders.
Nothing here changes the host's installed packages, nor its apt or dpkg
configuration.

Which apt answers: the host's own, for packages of the host's architecture
that it knows (on Debian, its lists are the administrator's: their mirror,
their security updates); the kit's private configuration for Debian 12
(:mod:`kit.guestos.build.private_apt`) for packages of another architecture,
and for those the host's apt does not know (Ubuntu, Binder).  Each
:class:`DebPackage` remembers which, so that it is downloaded from where it
was found.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos.build import private_apt
from kit.guestos.build.common import Progress, no_progress, require_tool, sha256_of

HOST_APT_HINT = ("Run `apt-get update` (as root) so apt knows the current packages, "
                 "check the network connection, and try again.")


@dataclass(frozen=True)
class DebPackage:
    """The real kernel package behind the recipe's metapackage, as apt knows it."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    #: The kit's private apt configuration it was found through; None: the host's apt.
    apt_config: Path | None = None


def config_for_architecture(architecture: str, report: Progress = no_progress) -> Path | None:
    """The apt configuration for packages of ``architecture``: None (the host's) for its own.

    Another architecture's packages always come through the kit's private
    configuration, so the host's dpkg never needs ``--add-architecture``.
    """
    if private_apt.is_foreign(architecture):
        return private_apt.ensure(architecture, report)
    return None


def resolve_kernel_package(
    meta_package: str, deb_architecture: str, report: Progress = no_progress
) -> DebPackage:
    """The linux-image package that a meta package (linux-image-cloud-amd64) points to.

    Both are asked of the same apt, so that the two agree on the version.
    """
    meta, config = _apt_show(f"{meta_package}:{deb_architecture}", deb_architecture, report)
    name = kernel_dependency(meta.get("Depends", ""))
    if name is None:
        raise ImageError(
            f"{meta_package} does not depend on a linux-image package.",
            hint="Check kernel_package in assets/guest/recipe.toml.",
        )
    fields = _show_with(f"{name}:{deb_architecture}", config)
    return _deb_package(name, deb_architecture, fields, config)


def apt_package(
    name: str, architecture: str | None = None, report: Progress = no_progress
) -> DebPackage:
    """What apt would download for ``name`` (of ``architecture``, else the host's)."""
    spec = f"{name}:{architecture}" if architecture else name
    fields, config = _apt_show(spec, architecture, report)
    return _deb_package(name, architecture, fields, config)


def _deb_package(
    name: str, architecture: str | None, fields: dict[str, str], config: Path | None
) -> DebPackage:
    try:
        return DebPackage(
            name=name,
            version=fields["Version"],
            architecture=architecture or fields.get("Architecture", "all"),
            filename=download_name(name, fields["Version"],
                                   architecture or fields.get("Architecture", "all")),
            sha256=fields["SHA256"],
            apt_config=config,
        )
    except KeyError as error:
        raise ImageError(
            f"apt's record of {name} has no {error} field.",
            hint=failure_hint(config),
        ) from error


def download_name(name: str, version: str, deb_arch: str) -> str:
    """The file name ``apt-get download`` gives a package: its epoch's colon as ``%3a``.

    Not the archive's own file name, which leaves the epoch out.
    """
    return f"{name}_{version.replace(':', '%3a')}_{deb_arch}.deb"


def kernel_dependency(depends: str) -> str | None:
    for alternative in re.split(r"[,|]", depends):
        name = alternative.strip().split(" ")[0]
        if name.startswith("linux-image-"):
            return name
    return None


def _apt_show(
    package: str, architecture: str | None, report: Progress
) -> tuple[dict[str, str], Path | None]:
    """apt's record of ``package``, and the configuration (None: the host's) that had it.

    The host's apt first, for its own architecture; where it does not know
    the package (Ubuntu has no Debian kernel; repo2docker keeps no lists),
    the kit's private configuration for Debian 12.
    """
    if architecture is not None and private_apt.is_foreign(architecture):
        config = private_apt.ensure(architecture, report)
        return _show_with(package, config), config
    command = ["apt-cache", "show", "--no-all-versions", package]
    require_tool(command)
    host = subprocess.run(command, capture_output=True, text=True, check=False)
    if host.returncode == 0 and host.stdout.strip():
        return _first_record(host.stdout), None
    report(f"this machine's apt does not know {package}: asking Debian 12's archive", 0.0)
    config = private_apt.ensure(architecture or private_apt.native_architecture(), report)
    try:
        return _show_with(package, config), config
    except ImageError as error:
        raise ImageError(
            f"Neither this machine's apt nor the kit's own apt configuration for Debian 12 "
            f"knows the package {package}.",
            hint="On Debian, run `apt-get update` (as root) so apt knows the current "
            "packages; check the package's name in assets/ (the recipes), and the network.",
            command=error.command,
            log=f"{shlex.join(command)}:\n{host.stdout}{host.stderr}\n"
            f"{shlex.join(error.command or [])}:\n{error.log or ''}",
            exit_code=error.exit_code,
        ) from error


def _show_with(package: str, config: Path | None) -> dict[str, str]:
    command = ["apt-cache", "show", "--no-all-versions", package]
    result = run_apt(command, f"apt does not know the package {package}.", config=config)
    return _first_record(result.stdout)


def _first_record(output: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            break  # only the first record
        if ":" in line and not line.startswith(" "):
            field, value = line.split(":", 1)
            fields[field] = value.strip()
    return fields


def failure_hint(config: Path | None) -> str:
    """What to do when apt failed: the host's apt wants root, the kit's refreshes itself."""
    if config is None:
        return HOST_APT_HINT
    return (f"The kit's own lists of Debian 12 packages ({config.parent}) are refreshed "
            "when a day old: check the network connection, or delete that folder so that "
            "the next build fetches them afresh; then try again.")


def run_apt(
    command: list[str], failure: str, *, config: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an apt command with the host's configuration, or with the kit's private one.

    With the private one, ``APT_CONFIG`` names it, and the command waits for
    a refresh of its lists to end.
    """
    require_tool(command)
    env = None if config is None else private_apt.environment(config)
    with contextlib.nullcontext() if config is None else private_apt.reading(config):
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd,
                                env=env)
    if result.returncode != 0:
        raise ImageError(
            failure,
            hint=failure_hint(config),
            command=command if config is None else [f"APT_CONFIG={config}", *command],
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
        run_apt(["apt-get", "download", spec], f"Could not download {package.name}.",
                config=package.apt_config, cwd=scratch)
        downloaded = scratch / package.filename
        if not downloaded.is_file() or sha256_of(downloaded) != package.sha256:
            raise ImageError(
                f"apt-get downloaded {package.name}, but not the expected {package.filename}.",
                hint=failure_hint(package.apt_config),
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
