"""The kit's own apt configuration, for Debian 12's archive: read without root, changing nothing.

Two kinds of packages cannot come through the host's apt as it is set up:

* those of another architecture (arm64, for the aarch64 guest on an x86
  host): the host's apt knows them only after ``dpkg --add-architecture``,
  which changes the host's package configuration for every later apt run
  (and on Ubuntu, arm64 packages live in another archive than amd64's);
* Debian's kernel packages where the host's apt does not know them (Ubuntu,
  Binder: repo2docker keeps no package lists, and Ubuntu has no
  ``linux-image-cloud-amd64``).

For those the kit keeps a private apt configuration in its cache,
``cache_dir()/apt/debian-bookworm/``, and runs ``apt-get update``,
``apt-cache`` and ``apt-get download`` with ``APT_CONFIG`` pointing at it:

* its own sources: Debian 12 (bookworm, ``main``) from
  ``https://deb.debian.org/debian`` (or ``KIT_DEBIAN_ARCHIVE``), checked with
  Debian's stable release key for bookworm alone
  (``assets/apt/debian-bookworm-stable.asc``, embedded in the sources file,
  so that no path with a space can break it);
* its own lists, caches and an empty dpkg status (``Dir::State``,
  ``Dir::Cache``): nothing under ``/var/lib/apt`` or ``/var/lib/dpkg`` is
  read or written;
* its own ``Dir::Etc``: the host's ``/etc/apt`` (sources, pins, keys,
  ``apt.conf.d`` hooks such as Docker's clean-up) is not read; only its proxy
  settings are copied, so a school's proxy still works;
* ``APT::Architectures``: the host's native one and the guests' (so dpkg's
  list of foreign architectures is never asked for, nor changed);
* ``Debug::NoLocking``: no lock under ``/var/lib``; the kit locks its own
  folder instead (one refresh at a time, no reading during a refresh).

The lists are refreshed when missing, older than a day, or made for another
archive or fewer architectures.  A refresh that fails with usable older lists
is reported and the old lists are used (packages already in the cache still
build an image offline); without lists, the error says what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos.build.common import Progress

log = logging.getLogger(__name__)

#: The archive's URL: a Debian mirror, or a place the tests make unreachable.
ARCHIVE_ENV = "KIT_DEBIAN_ARCHIVE"
DEFAULT_ARCHIVE = "https://deb.debian.org/debian"
SUITE = "bookworm"
COMPONENT = "main"
#: Debian Stable Release Key (12/bookworm), the only key the archive is checked with.
KEY_FILE = ("apt", "debian-bookworm-stable.asc")  # under assets/
KEY_FINGERPRINT = "4D64FEC119C2029067D6E791F8D2585B8783D481"
#: Lists older than this are refreshed: Debian's point releases and fixes
#: replace packages, and the archive then deletes the old files.
MAX_AGE_S = 24 * 3600
#: What ``apt-get update`` fetches per architecture (Packages.xz, measured).
MB_PER_ARCHITECTURE = 9
#: Debian's name for a machine, when dpkg is not there to say it.
DEB_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf",
                     "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}
#: Programs apt checks signatures with (apt >= 2.9 prefers sqv).
VERIFIERS = ("gpgv", "gpgv2", "gpgv1", "sqv")
# Kept in state/: the archive and architectures the lists were made for; its
# modification time is when they were last refreshed.
STAMP = "updated.json"
_NETWORK_TROUBLE = ("Could not resolve", "Could not connect", "Temporary failure",
                    "Connection failed", "Connection timed out", "Failed to fetch",
                    "Network is unreachable", "No route to host")
# A refresh that failed, and when: not tried again in this process for a while,
# so that one build offline does not wait for apt's timeouts at every query.
_failed: dict[tuple[str, str, tuple[str, ...]], float] = {}
RETRY_AFTER_S = 600
_SIGNATURE_TROUBLE = ("NO_PUBKEY", "is not signed", "signatures were invalid",
                      "signatures couldn't be verified", "EXPKEYSIG")


def apt_dir() -> Path:
    """The private configuration's folder in the kit's cache."""
    return paths.cache_dir() / "apt" / f"debian-{SUITE}"


def config_path(folder: Path | None = None) -> Path:
    """The file ``APT_CONFIG`` names for the kit's apt commands."""
    return (folder or apt_dir()) / "apt.conf"


def archive() -> str:
    """The Debian archive's URL: ``KIT_DEBIAN_ARCHIVE`` if set, else Debian's own."""
    return (os.environ.get(ARCHIVE_ENV, "").strip() or DEFAULT_ARCHIVE).rstrip("/")


@functools.cache
def native_architecture() -> str:
    """The host's own Debian architecture (amd64 on x86_64), as dpkg says it."""
    if shutil.which("dpkg"):
        result = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                text=True, check=False)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    machine = platform.machine()
    return DEB_ARCHITECTURES.get(machine, machine)


def is_foreign(architecture: str) -> bool:
    """Whether packages of ``architecture`` are another machine's ("all" is everyone's)."""
    return architecture not in ("all", native_architecture())


def environment(config: Path) -> dict[str, str]:
    """The environment of an apt command that must use the private configuration."""
    return {**os.environ, "APT_CONFIG": str(config)}


# --- keeping the lists fresh ----------------------------------------------------------


def ensure(architecture: str, report: Progress) -> Path:
    """The private configuration (``APT_CONFIG``), with fresh lists for ``architecture``.

    The host's native architecture is always in the lists, with every
    architecture asked for before: one refresh serves both guests.
    """
    folder = apt_dir()
    with _locked(folder, fcntl.LOCK_EX):
        stamp = _read_stamp(folder)
        known = stamp.get("architectures") if stamp.get("archive") == archive() else None
        wanted = _architectures(known if isinstance(known, list) else [], architecture)
        config = write_config(folder, wanted)
        problem = _staleness(folder, stamp, wanted)
        if problem is not None:
            _refresh(folder, config, wanted, problem, report)
    return config


@contextlib.contextmanager
def reading(config: Path) -> Iterator[None]:
    """Held around an apt command that reads the lists: never during a refresh."""
    with _locked(config.parent, fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def _locked(folder: Path, how: int) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, how)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _architectures(known: list[object], architecture: str) -> list[str]:
    """The native architecture first, then the others, each once ("all" is in every list)."""
    native = native_architecture()
    others = sorted({*map(str, known), architecture} - {native, "all"})
    return [native, *others]


def _staleness(folder: Path, stamp: dict[str, object], wanted: list[str]) -> str | None:
    """Why the lists must be refreshed now, or None if they are fresh."""
    if not stamp:
        return "there are none yet"
    if stamp.get("archive") != archive():
        return f"they were made for {stamp.get('archive')}"
    if stamp.get("architectures") != wanted or not all(_has_list(folder, a) for a in wanted):
        return f"some are missing (wanted: {', '.join(wanted)})"
    age = time.time() - (folder / "state" / STAMP).stat().st_mtime
    if abs(age) > MAX_AGE_S:  # from the future too: the clock was wrong then
        return f"they are {age / 3600:.0f} hours old"
    return None


def _has_list(folder: Path, architecture: str) -> bool:
    lists = folder / "state" / "lists"
    return any(lists.glob(f"*_dists_{SUITE}_{COMPONENT}_binary-{architecture}_Packages*"))


def _read_stamp(folder: Path) -> dict[str, object]:
    try:
        data = json.loads((folder / "state" / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _refresh(folder: Path, config: Path, wanted: list[str], why: str, report: Progress) -> None:
    """``apt-get update`` with the private configuration; old lists if it fails and they serve."""
    stamp = _read_stamp(folder)
    usable = (stamp.get("archive") == archive() and stamp.get("architectures") == wanted
              and all(_has_list(folder, a) for a in wanted))
    attempt = (str(folder), archive(), tuple(wanted))
    failed_at = _failed.get(attempt)
    if usable and failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
        return  # failed a moment ago, and said so: the old lists serve
    report(f"refreshing the kit's lists of Debian 12 packages for {', '.join(wanted)} "
           f"(apt-get update, about {MB_PER_ARCHITECTURE * len(wanted)} MB; {why})", 0.0)
    try:
        update(config)
    except ImageError as error:
        if not usable:
            raise
        _failed[attempt] = time.monotonic()
        when = time.strftime("%Y-%m-%d %H:%M",
                             time.localtime((folder / "state" / STAMP).stat().st_mtime))
        log.warning("%s\nUsing the lists of %s.", error, when)
        report(f"could not refresh the kit's Debian package lists: using those of {when}", 0.0)
        return
    _failed.pop(attempt, None)
    stamp_file = folder / "state" / STAMP
    stamp_file.write_text(json.dumps({"archive": archive(), "architectures": wanted}) + "\n")


def update(config: Path) -> None:
    """Run ``apt-get update`` with the private configuration; raise what went wrong, and the fix."""
    folder = config.parent
    command = ["apt-get", "update", "--error-on=any", "-q"]
    if shutil.which("apt-get") is None:
        raise ImageError(
            "The kit fetches Debian's packages with apt-get, and this machine has none.",
            hint="Run the kit on Debian 12, Ubuntu or another system with apt; or copy a "
            f"built image into {paths.cache_dir() / 'images'} from such a machine.",
            command=command,
        )
    if not any(shutil.which(verifier) for verifier in VERIFIERS):
        raise ImageError(
            "apt checks the signature of Debian's archive with gpgv, and this machine has none.",
            hint="Install it, as root: apt-get install gpgv. Then try again.",
            command=command,
        )
    env = {**environment(config), "LC_ALL": "C"}  # apt's English messages, to say why
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                            cwd=folder)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    raise ImageError(
        f"Could not fetch Debian 12's package lists from {archive()} into the kit's own apt "
        f"configuration ({config}).",
        hint=_update_hint(output),
        command=[f"APT_CONFIG={config}", *command],
        log=output,
        exit_code=result.returncode,
    )


def _update_hint(output: str) -> str:
    if any(sign in output for sign in _SIGNATURE_TROUBLE):
        return (f"The archive at {archive()} is not signed with Debian 12's stable release "
                f"key ({KEY_FINGERPRINT}): if {ARCHIVE_ENV} is set, point it at a full "
                "Debian mirror; else the network may be altering what it downloads.")
    if any(sign in output for sign in _NETWORK_TROUBLE):
        return (f"Check this machine's network connection and that {archive()} answers. "
                "Behind a proxy, set https_proxy (or Acquire::https::Proxy in "
                f"/etc/apt/apt.conf.d/); to use another Debian mirror, set {ARCHIVE_ENV} "
                "to its URL. Then try again.")
    return (f"Read apt's messages above; deleting {apt_dir()} makes the kit start its "
            "lists afresh at the next build.")


# --- the configuration files ------------------------------------------------------------


def write_config(folder: Path, architectures: list[str]) -> Path:
    """Write the configuration and its sources into ``folder`` (only what changed)."""
    for sub in ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d",
                "etc/trusted.gpg.d", "state/lists/partial", "cache/archives/partial", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    status = folder / "state" / "status"
    if not status.exists():
        status.touch()  # no package is installed, as far as this apt knows
    _write_if_changed(folder / "etc" / "sources.list.d" / "debian.sources", sources_text())
    config = config_path(folder)
    _write_if_changed(config, config_text(folder, architectures, host_proxies()))
    return config


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def key_text() -> str:
    """Debian 12's stable release key, ASCII-armoured, as the kit ships it."""
    return paths.assets_dir().joinpath(*KEY_FILE).read_text()


def sources_text() -> str:
    """The one source, in deb822 form, with the key embedded in ``Signed-By``."""
    lines = key_text().strip().splitlines()
    key = "\n".join(f" {line}" if line.strip() else " ." for line in lines)
    return (
        "# Written by the kit (kit/guestos/build/private_apt.py); rewritten at every build.\n"
        f"Types: deb\nURIs: {archive()}\nSuites: {SUITE}\nComponents: {COMPONENT}\n"
        f"Signed-By:\n{key}\n"
    )


def config_text(folder: Path, architectures: list[str], proxies: dict[str, str]) -> str:
    """The ``APT_CONFIG`` file: every place apt reads or writes is inside ``folder``."""
    def quoted(value: str | Path) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "// The kit's own apt configuration (kit/guestos/build/private_apt.py), for Debian",
        "// 12's archive; rewritten at every build. Use it with APT_CONFIG=<this file>.",
        f"Dir::Etc {quoted(str(folder / 'etc') + '/')};",
        'Dir::Etc::main "apt.conf";',  # none: the host's /etc/apt/apt.conf is not read
        'Dir::Etc::parts "apt.conf.d";',  # empty: nor are its apt.conf.d hooks
        'Dir::Etc::sourcelist "sources.list";',
        'Dir::Etc::sourceparts "sources.list.d";',
        'Dir::Etc::preferences "preferences";',
        'Dir::Etc::preferencesparts "preferences.d";',
        'Dir::Etc::trusted "trusted.gpg";',
        'Dir::Etc::trustedparts "trusted.gpg.d";',
        'Dir::Etc::netrc "auth.conf";',
        'Dir::Etc::netrcparts "auth.conf.d";',
        f"Dir::State {quoted(str(folder / 'state') + '/')};",
        'Dir::State::lists "lists/";',
        f"Dir::State::status {quoted(folder / 'state' / 'status')};",
        f"Dir::Cache {quoted(str(folder / 'cache') + '/')};",
        'Dir::Cache::srcpkgcache "";',  # 55 MB that only speeds up apt-get install
        f"Dir::Log {quoted(str(folder / 'log') + '/')};",
        "APT::Architectures { " + " ".join(f"{quoted(a)};" for a in architectures) + " };",
        'Acquire::Languages "none";',
        'Acquire::GzipIndexes "true";',  # the lists stay compressed: 37 MB instead of 90
        'Acquire::Retries "1";',
        'Acquire::http::Timeout "30";',
        'Acquire::https::Timeout "30";',
        'Debug::NoLocking "true";',
    ]
    if os.geteuid() == 0:
        # apt downloads as the user _apt, who cannot enter root's home (0700).
        lines.append('APT::Sandbox::User "root";')
    lines += [f"{name} {quoted(value)};" for name, value in sorted(proxies.items())]
    return "\n".join(lines) + "\n"


def host_proxies() -> dict[str, str]:
    """The host apt's proxy settings, the one thing of its configuration the kit keeps."""
    names = {"HTTP": "Acquire::http::Proxy", "HTTPS": "Acquire::https::Proxy"}
    if shutil.which("apt-config") is None:
        return {}
    command = ["apt-config", "shell", *(word for pair in names.items() for word in pair)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {}
    found = {}
    for line in result.stdout.splitlines():
        variable, _, value = line.partition("=")
        words = shlex.split(value) if value else []
        if variable in names and words and words[0]:
            found[names[variable]] = words[0]
    return found
