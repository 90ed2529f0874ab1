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

* its own sources, Debian 12's ``main`` in three suites (:data:`SOURCES`),
  binary packages and source packages (``deb-src``: the static guest
  agent's build, :mod:`kit.guestos.build.agent`, fetches QEMU's source),
  each checked with the one key that signs its ``InRelease`` file (ASCII-
  armoured in ``assets/apt/``, embedded in the stanza's ``Signed-By`` so that
  no path with a space can break it):

  - ``bookworm`` (the point releases) from ``https://deb.debian.org/debian``,
    with Debian's stable release key for bookworm;
  - ``bookworm-updates`` (fixes between point releases), same archive, with
    the Debian archive's automatic signing key for bookworm;
  - ``bookworm-security`` (security fixes, and LTS's) from
    ``https://deb.debian.org/debian-security``, with the security archive's
    automatic signing key for bookworm.

  Without the last two a guest would get the packages of the last point
  release: a kernel and libraries without the security fixes since.
  ``KIT_DEBIAN_ARCHIVE`` replaces the first archive (both its suites), and
  ``KIT_DEBIAN_SECURITY_ARCHIVE`` the security archive: the one is not derived
  from the other, since Debian's mirrors carry ``debian`` but seldom
  ``debian-security`` (Debian serves that itself);
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

The lists are refreshed when missing (for any suite), older than a day, or
made for other sources (another archive, fewer suites) or fewer
architectures.  A refresh that fails with usable older lists
is reported and the old lists are used (packages already in the cache still
build an image offline); without lists, the error says what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
#: The security archive's URL (bookworm-security): not derived from the other.
SECURITY_ARCHIVE_ENV = "KIT_DEBIAN_SECURITY_ARCHIVE"
DEFAULT_SECURITY_ARCHIVE = "https://deb.debian.org/debian-security"
SUITE = "bookworm"  # the release; its point-release suite has the same name
COMPONENT = "main"


@dataclasses.dataclass(frozen=True)
class Source:
    """One stanza of the kit's sources: a suite, and the one key its InRelease is checked with."""

    suite: str
    #: The key, ASCII-armoured, under assets/apt/ (from Debian's debian-archive-keyring).
    key_file: str
    #: Its primary key's fingerprint, and its user id.
    fingerprint: str
    signer: str
    #: From the security archive (:func:`security_archive`), else the main one.
    security: bool = False

    def uri(self) -> str:
        """The archive it comes from, overrides included."""
        return security_archive() if self.security else archive()

    def origin(self) -> str:
        """``URI suite``, as apt names it in its messages."""
        return f"{self.uri()} {self.suite}"


#: The three suites, oldest packages first (apt takes the newest version of any).
SOURCES = (
    Source(SUITE, "debian-bookworm-stable.asc",
           "4D64FEC119C2029067D6E791F8D2585B8783D481",
           "Debian Stable Release Key (12/bookworm)"),
    Source(f"{SUITE}-updates", "debian-bookworm-automatic.asc",
           "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8",
           "Debian Archive Automatic Signing Key (12/bookworm)"),
    Source(f"{SUITE}-security", "debian-bookworm-security-automatic.asc",
           "05AB90340C0C5E797F44A8C8254CF3B5AEC0A8F0",
           "Debian Security Archive Automatic Signing Key (12/bookworm)", security=True),
)
#: Lists older than this are refreshed: Debian's point releases and fixes
#: replace packages, and the archive then deletes the old files.
MAX_AGE_S = 24 * 3600
#: What ``apt-get update`` fetches per architecture, the three suites (measured).
MB_PER_ARCHITECTURE = 10
#: And the lists of source packages (deb-src), which the static guest agent's
#: build (kit/guestos/build/agent.py) fetches its source with (measured).
SOURCE_LISTS_MB = 10
#: Debian's name for a machine, when dpkg is not there to say it.
DEB_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf",
                     "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}
#: Programs apt checks signatures with (apt >= 2.9 prefers sqv).
VERIFIERS = ("gpgv", "gpgv2", "gpgv1", "sqv")
# Kept in state/: the sources (URI suite) and architectures the lists were made
# for; its modification time is when they were last refreshed.
STAMP = "updated.json"
_NETWORK_TROUBLE = ("Could not resolve", "Could not connect", "Temporary failure",
                    "Connection failed", "Connection timed out", "Failed to fetch",
                    "Network is unreachable", "No route to host")
# A refresh that failed, and when: not tried again in this process for a while,
# so that one build offline does not wait for apt's timeouts at every query.
_failed: dict[tuple[str, tuple[str, ...], tuple[str, ...]], float] = {}
RETRY_AFTER_S = 600
_SIGNATURE_TROUBLE = ("NO_PUBKEY", "is not signed", "signatures were invalid",
                      "signatures couldn't be verified", "EXPKEYSIG")
# A Release file past its Valid-Until (the security archive's lasts a week), or
# from the future: a stale mirror, or this machine's clock.
_DATE_TROUBLE = ("is expired", "is not valid yet")


def apt_dir() -> Path:
    """The private configuration's folder in the kit's cache."""
    return paths.cache_dir() / "apt" / f"debian-{SUITE}"


def config_path(folder: Path | None = None) -> Path:
    """The file ``APT_CONFIG`` names for the kit's apt commands."""
    return (folder or apt_dir()) / "apt.conf"


def archive() -> str:
    """The Debian archive's URL: ``KIT_DEBIAN_ARCHIVE`` if set, else Debian's own."""
    return (os.environ.get(ARCHIVE_ENV, "").strip() or DEFAULT_ARCHIVE).rstrip("/")


def security_archive() -> str:
    """The security archive's URL: ``KIT_DEBIAN_SECURITY_ARCHIVE`` if set, else Debian's own."""
    return (os.environ.get(SECURITY_ARCHIVE_ENV, "").strip()
            or DEFAULT_SECURITY_ARCHIVE).rstrip("/")


def origins() -> list[str]:
    """Every source, as ``URI suite``: what the lists are made for."""
    return [source.origin() for source in SOURCES]


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
        known = stamp.get("architectures") if stamp.get("sources") == origins() else None
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
    made_for = stamp.get("sources")
    if made_for != origins():
        if isinstance(made_for, list):
            return f"they were made for {', '.join(map(str, made_for))}"
        return f"they were made for {stamp.get('archive', 'other sources')} {SUITE} alone"
    if stamp.get("architectures") != wanted or not all(_has_list(folder, a) for a in wanted):
        return f"some are missing (wanted: {', '.join(wanted)})"
    if not _has_source_lists(folder):
        return "the lists of source packages are missing"
    age = time.time() - (folder / "state" / STAMP).stat().st_mtime
    if abs(age) > MAX_AGE_S:  # from the future too: the clock was wrong then
        return f"they are {age / 3600:.0f} hours old"
    return None


def _has_list(folder: Path, architecture: str) -> bool:
    """Whether every suite's list of ``architecture``'s packages is there."""
    lists = folder / "state" / "lists"
    return all(any(lists.glob(f"*_dists_{source.suite}_{COMPONENT}_binary-{architecture}"
                              "_Packages*"))
               for source in SOURCES)


def _has_source_lists(folder: Path) -> bool:
    """Whether every suite's list of source packages is there (the guest agent's build)."""
    lists = folder / "state" / "lists"
    return all(any(lists.glob(f"*_dists_{source.suite}_{COMPONENT}_source_Sources*"))
               for source in SOURCES)


def _read_stamp(folder: Path) -> dict[str, object]:
    try:
        data = json.loads((folder / "state" / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _refresh(folder: Path, config: Path, wanted: list[str], why: str, report: Progress) -> None:
    """``apt-get update`` with the private configuration; old lists if it fails and they serve."""
    stamp = _read_stamp(folder)
    usable = (stamp.get("sources") == origins() and stamp.get("architectures") == wanted
              and all(_has_list(folder, a) for a in wanted))
    attempt = (str(folder), tuple(origins()), tuple(wanted))
    failed_at = _failed.get(attempt)
    if usable and failed_at is not None and time.monotonic() - failed_at < RETRY_AFTER_S:
        return  # failed a moment ago, and said so: the old lists serve
    report(f"refreshing the kit's lists of Debian 12 packages for {', '.join(wanted)} "
           f"(apt-get update, about {MB_PER_ARCHITECTURE * len(wanted) + SOURCE_LISTS_MB} MB; "
           f"{why})", 0.0)
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
    stamp_file.write_text(json.dumps({"sources": origins(), "architectures": wanted}) + "\n")


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
        f"Could not fetch Debian 12's package lists from {archive()} and "
        f"{security_archive()} into the kit's own apt configuration ({config}).",
        hint=_update_hint(output),
        command=[f"APT_CONFIG={config}", *command],
        log=output,
        exit_code=result.returncode,
    )


def _update_hint(output: str) -> str:
    # The sources apt's errors name ("Err:2 URI suite InRelease"); all if they name none.
    errors = "\n".join(line for line in output.splitlines()
                       if line.startswith(("E:", "W:", "Err:")))
    named = [s for s in SOURCES if f"{s.origin()} " in errors] or list(SOURCES)
    if any(sign in output for sign in _SIGNATURE_TROUBLE):
        checked = "; ".join(f"{s.origin()} with {s.signer} ({s.fingerprint})" for s in named)
        return (f"The kit checks each of Debian 12's suites with the key that signs it, and "
                f"this did not match: {checked}. If {ARCHIVE_ENV} or {SECURITY_ARCHIVE_ENV} is "
                "set, point it at a full Debian mirror (of debian, or of debian-security); "
                "else the network may be altering what it downloads.")
    if any(sign in output for sign in _DATE_TROUBLE):
        return (f"A Release file of {', '.join(s.origin() for s in named)} is out of date, or "
                f"this machine's clock is wrong (it says {time.strftime('%Y-%m-%d %H:%M %Z')}). "
                f"If {ARCHIVE_ENV} or {SECURITY_ARCHIVE_ENV} points at a mirror, it may have "
                "stopped following Debian's; unset it to use Debian's own.")
    if any(sign in output for sign in _NETWORK_TROUBLE):
        return (f"Check this machine's network connection and that {archive()} and "
                f"{security_archive()} answer. Behind a proxy, set https_proxy (or "
                "Acquire::https::Proxy in /etc/apt/apt.conf.d/); to use another Debian "
                f"mirror, set {ARCHIVE_ENV} (and {SECURITY_ARCHIVE_ENV}, for the security "
                "archive) to its URL. Then try again.")
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


def key_text(source: Source) -> str:
    """The key ``source`` is checked with, ASCII-armoured, as the kit ships it."""
    return paths.assets_dir().joinpath("apt", source.key_file).read_text()


def sources_text() -> str:
    """The sources in deb822 form: a stanza per suite, with its key embedded in ``Signed-By``."""
    stanzas = []
    for source in SOURCES:
        lines = key_text(source).strip().splitlines()
        key = "\n".join(f" {line}" if line.strip() else " ." for line in lines)
        stanzas.append(
            f"# {source.suite}: checked with {source.signer} alone\n"
            f"Types: deb deb-src\nURIs: {source.uri()}\nSuites: {source.suite}\n"
            f"Components: {COMPONENT}\nSigned-By:\n{key}\n"
        )
    return ("# Written by the kit (kit/guestos/build/private_apt.py); rewritten at every "
            "build.\n" + "\n".join(stanzas))


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
