"""The kit's own apt configuration for Debian 12: another architecture's packages without root.

The quick tests run real apt on configurations written into temporary
folders (``apt-config``, and an archive nobody answers at), with no network.
Those marked ``guest`` and ``slow`` fetch Debian's real lists (about 18 MB,
into a temporary cache shared by this module) or rebuild the real aarch64
image, and check that the host's apt and dpkg configuration stay as they were.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.core import paths
from kit.core.errors import ImageError
from kit.guestos import images
from kit.guestos.build import apt, common, private_apt

ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = "http://127.0.0.1:9/debian"  # the discard port: nothing listens there
KEYRINGS = Path("/usr/share/keyrings")  # debian-archive-keyring's, if installed
# Each source's key: the keyring of debian-archive-keyring it was exported from.
HOST_KEYRINGS = {"bookworm": "debian-archive-bookworm-stable.gpg",
                 "bookworm-updates": "debian-archive-bookworm-automatic.gpg",
                 "bookworm-security": "debian-archive-bookworm-security-automatic.gpg"}
SUITES = ["bookworm", "bookworm-updates", "bookworm-security"]


def apt_config_dump(config: Path) -> dict[str, list[str]]:
    """What apt reads with ``APT_CONFIG=config``, as name -> values (lists have several)."""
    done = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, check=True,
                          env={**os.environ, "APT_CONFIG": str(config)})
    values: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        match = re.fullmatch(r'(\S+) "(.*)";', line)
        if match and match.group(2):  # a list's head reads ""; its items follow
            name = match.group(1).removesuffix("::")
            values.setdefault(name, []).append(match.group(2))
    return values


@pytest.fixture(autouse=True)
def no_remembered_failures() -> Iterator[None]:
    private_apt._failed.clear()
    yield
    private_apt._failed.clear()


# --- without the network ----------------------------------------------------------------


def show_keys(key: str, home: Path) -> tuple[list[str], list[str]]:
    """The primary keys' fingerprints in an ASCII-armoured ``key``, and their user ids (gpg)."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed: cannot read the kit's Debian keys")
    home.mkdir(mode=0o700, exist_ok=True)
    shown = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--show-keys"],
                           input=key, capture_output=True, text=True, check=True).stdout
    fingerprints, uids, last = [], [], ""
    for line in shown.splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and last == "pub":  # not a subkey's
            fingerprints.append(fields[9])
        if fields[0] == "uid":
            uids.append(fields[9])
        if fields[0] in ("pub", "sub"):
            last = fields[0]
    return fingerprints, uids


def test_the_three_suites_in_order() -> None:
    assert [source.suite for source in private_apt.SOURCES] == SUITES
    assert [source.security for source in private_apt.SOURCES] == [False, False, True]


@pytest.mark.parametrize("source", private_apt.SOURCES, ids=lambda source: source.suite)
def test_each_key_is_debians_key_for_its_suite(source: private_apt.Source,
                                               tmp_path: Path) -> None:
    """Each shipped key's fingerprint is the one the kit names (read by gpg), and Debian's."""
    key = private_apt.key_text(source)
    fingerprints, uids = show_keys(key, tmp_path / "gnupg")
    assert fingerprints == [source.fingerprint]
    assert len(uids) == 1 and uids[0].startswith(source.signer + " <")
    expected = {"bookworm": "4D64FEC119C2029067D6E791F8D2585B8783D481",
                "bookworm-updates": "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8",
                "bookworm-security": "05AB90340C0C5E797F44A8C8254CF3B5AEC0A8F0"}
    assert source.fingerprint == expected[source.suite]
    readme = (ROOT / "assets" / "apt" / "README.md").read_text()
    spaced = " ".join(source.fingerprint[i:i + 4] for i in range(0, 40, 4))
    assert spaced[:24] + " " + spaced[24:] in readme  # as gpg shows it, two spaces mid-way
    keyring = KEYRINGS / HOST_KEYRINGS[source.suite]
    if keyring.is_file():  # debian-archive-keyring holds the same key, byte for byte
        binary = subprocess.run(["gpg", "--homedir", str(tmp_path / "gnupg"), "--dearmor"],
                                input=key.encode(), capture_output=True, check=True).stdout
        assert binary == keyring.read_bytes()


def stanzas(sources: str) -> list[dict[str, str]]:
    """A deb822 sources file's stanzas, as field -> value (continuation lines unfolded)."""
    found: list[dict[str, str]] = []
    for block in sources.split("\n\n"):
        fields: dict[str, str] = {}
        name = ""
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if line.startswith(" "):
                fields[name] += "\n" + ("" if line == " ." else line[1:])
            else:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if fields:
            found.append(fields)
    return found


def test_each_suite_is_checked_with_its_own_key_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One stanza per suite; its Signed-By holds one key, the one that signs its InRelease."""
    monkeypatch.delenv(private_apt.ARCHIVE_ENV, raising=False)
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    found = stanzas(private_apt.sources_text())
    assert [(f["URIs"], f["Suites"], f["Components"]) for f in found] == [
        (private_apt.DEFAULT_ARCHIVE, "bookworm", "main"),
        (private_apt.DEFAULT_ARCHIVE, "bookworm-updates", "main"),
        (private_apt.DEFAULT_SECURITY_ARCHIVE, "bookworm-security", "main")]
    for number, (fields, source) in enumerate(zip(found, private_apt.SOURCES, strict=True)):
        assert fields["Types"] == "deb deb-src"  # sources: the static guest agent's
        key = fields["Signed-By"].strip() + "\n"
        assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")  # the blank kept
        assert show_keys(key, tmp_path / f"gnupg{number}")[0] == [source.fingerprint]


def test_the_mirror_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """KIT_DEBIAN_ARCHIVE moves bookworm and -updates; KIT_DEBIAN_SECURITY_ARCHIVE the other."""
    monkeypatch.setenv(private_apt.ARCHIVE_ENV, "http://mirror.example/debian/")
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    assert [(f["URIs"], f["Suites"]) for f in stanzas(private_apt.sources_text())] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        (private_apt.DEFAULT_SECURITY_ARCHIVE, "bookworm-security")]
    monkeypatch.setenv(private_apt.SECURITY_ARCHIVE_ENV, " http://mirror.example/security ")
    assert private_apt.origins() == ["http://mirror.example/debian bookworm",
                                     "http://mirror.example/debian bookworm-updates",
                                     "http://mirror.example/security bookworm-security"]
    # Read back by apt itself: the three suites, for every architecture.
    config = private_apt.write_config(tmp_path / "apt", ["amd64", "arm64"])
    targets = subprocess.run(
        ["apt-get", "indextargets", "--no-release-info", "--format",
         "$(SITE) $(RELEASE) $(ARCHITECTURE)", "Created-By: Packages"],
        capture_output=True, text=True, check=True, env=private_apt.environment(config)).stdout
    assert sorted(targets.split("\n")[:-1]) == sorted(
        f"{origin} {arch}" for origin in private_apt.origins()
        for arch in ("amd64", "arm64", "all"))


def _fake_lists(folder: Path, suites: list[str], architectures: list[str]) -> None:
    lists = folder / "state" / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    for suite in suites:
        (lists / f"x_dists_{suite}_main_source_Sources.lz4").touch()
        for arch in architectures:
            (lists / f"x_dists_{suite}_main_binary-{arch}_Packages.lz4").touch()


def test_lists_are_stale_without_every_suite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Lists of before the -updates and -security suites, or missing one, are refreshed."""
    monkeypatch.delenv(private_apt.ARCHIVE_ENV, raising=False)
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    wanted = ["amd64", "arm64"]
    _fake_lists(tmp_path, ["bookworm"], wanted)
    stamp = tmp_path / "state" / private_apt.STAMP
    old = {"archive": private_apt.DEFAULT_ARCHIVE, "architectures": wanted}  # the kit's before
    stamp.write_text(json.dumps(old))
    why = private_apt._staleness(tmp_path, private_apt._read_stamp(tmp_path), wanted)
    assert why == f"they were made for {private_apt.DEFAULT_ARCHIVE} bookworm alone"
    new: dict[str, object] = {"sources": private_apt.origins(), "architectures": wanted}
    stamp.write_text(json.dumps(new))
    why = private_apt._staleness(tmp_path, new, wanted)
    assert why is not None and "missing" in why  # no -updates, no -security lists
    _fake_lists(tmp_path, ["bookworm-updates", "bookworm-security"], ["amd64"])
    assert "missing" in (private_apt._staleness(tmp_path, new, wanted) or "")
    _fake_lists(tmp_path, ["bookworm-updates", "bookworm-security"], ["arm64"])
    assert private_apt._staleness(tmp_path, new, wanted) is None
    monkeypatch.setenv(private_apt.SECURITY_ARCHIVE_ENV, "http://mirror.example/security")
    why = private_apt._staleness(tmp_path, new, wanted)
    assert why is not None and why.startswith("they were made for ") and "debian-security" in why


def test_every_place_apt_uses_is_inside_the_kits_folder(tmp_path: Path) -> None:
    """Read back by apt itself: lists, status, caches and /etc are the kit's (a space too)."""
    folder = tmp_path / "a cache" / "apt"
    config = private_apt.write_config(folder, ["amd64", "arm64"])
    seen = apt_config_dump(config)
    assert seen["APT::Architectures"] == ["amd64", "arm64"]
    assert seen["Debug::NoLocking"] == ["true"]
    assert seen["Dir::State::status"] == [str(folder / "state" / "status")]
    assert (folder / "state" / "status").read_bytes() == b""  # nothing installed
    for name in ("Dir::State", "Dir::Cache", "Dir::Etc", "Dir::Log"):
        assert seen[name][0].startswith(str(folder) + "/"), name
    # The host's apt.conf.d is not read: none of its hooks (Docker's clean-up) run.
    assert not any(name.endswith("Post-Invoke") or "Post-Invoke" in name for name in seen)
    sources = (folder / "etc" / "sources.list.d" / "debian.sources").read_text()
    assert f"URIs: {private_apt.DEFAULT_ARCHIVE}\nSuites: bookworm\n" in sources
    assert f"URIs: {private_apt.DEFAULT_SECURITY_ARCHIVE}\nSuites: bookworm-security\n" \
        in sources
    # Embedded, one key per stanza: no path to break.
    assert sources.count(" -----BEGIN PGP PUBLIC KEY BLOCK-----") == 3


def test_the_hosts_proxy_is_kept(tmp_path: Path) -> None:
    proxies = {"Acquire::https::Proxy": "http://proxy.school.example:3128"}
    text = private_apt.config_text(tmp_path, ["amd64"], proxies)
    (tmp_path / "apt.conf").write_text(text)
    assert apt_config_dump(tmp_path / "apt.conf")["Acquire::https::Proxy"] == [
        "http://proxy.school.example:3128"]


def test_native_architecture_first_then_every_one_asked_for() -> None:
    native = private_apt.native_architecture()
    assert native == subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                    text=True, check=True).stdout.strip()
    assert private_apt._architectures([], native) == [native]
    assert private_apt._architectures(["riscv64"], "arm64")[0] == native
    assert private_apt._architectures(["riscv64", native], "all") == [native, "riscv64"]
    assert not private_apt.is_foreign(native) and not private_apt.is_foreign("all")


def test_another_architectures_packages_ask_the_private_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[str] = []
    config = tmp_path / "apt.conf"

    def ensure(architecture: str, report: common.Progress) -> Path:
        asked.append(architecture)
        return config

    monkeypatch.setattr(private_apt, "ensure", ensure)
    foreign = "riscv64" if private_apt.native_architecture() != "riscv64" else "amd64"
    assert apt.config_for_architecture(foreign) == config
    assert apt.config_for_architecture(private_apt.native_architecture()) is None
    assert asked == [foreign]


def test_unreachable_archive_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(private_apt.ARCHIVE_ENV, UNREACHABLE)
    steps: list[str] = []
    with pytest.raises(ImageError) as caught:
        private_apt.ensure("arm64", lambda step, _: steps.append(step))
    error = caught.value
    assert UNREACHABLE in error.message and "package lists" in error.message
    assert error.hint and "network" in error.hint and private_apt.ARCHIVE_ENV in error.hint
    assert private_apt.SECURITY_ARCHIVE_ENV in error.hint
    assert error.command and error.command[0] == f"APT_CONFIG={private_apt.config_path()}"
    assert "apt-get" in error.command and "Could not connect" in (error.log or "")
    assert any(step.startswith("refreshing the kit's lists") for step in steps)
    assert str(private_apt.config_path()).startswith(str(tmp_path))


def test_missing_gpgv_says_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("apt-get")
    assert real is not None
    (bin_dir / "apt-get").symlink_to(real)
    monkeypatch.setenv("PATH", str(bin_dir))  # apt-get, and no gpgv
    with pytest.raises(ImageError) as caught:
        private_apt.update(tmp_path / "apt.conf")
    assert "gpgv" in caught.value.message
    assert caught.value.hint and "apt-get install gpgv" in caught.value.hint


def test_failures_are_told_apart_by_apt_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(private_apt.ARCHIVE_ENV, raising=False)
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    main, updates, security = private_apt.SOURCES
    network = "E: Failed to fetch https://x/InRelease  Could not resolve 'x'"
    assert "network" in private_apt._update_hint(network)
    # A signature apt could not check: the key of the suite it names, and only its.
    signature = (f"Get:1 {main.origin()} InRelease [151 kB]\n"
                 f"W: GPG error: {security.origin()} InRelease: The following signatures "
                 "couldn't be verified because the public key is not available: "
                 "NO_PUBKEY BDE6D2B9216EC7A8\n"
                 f"E: The repository '{security.origin()} InRelease' is not signed.")
    hint = private_apt._update_hint(signature)
    assert security.fingerprint in hint and security.signer in hint
    assert main.fingerprint not in hint and updates.fingerprint not in hint
    unnamed = private_apt._update_hint("W: GPG error: somewhere: NO_PUBKEY 0E98404D386FA1D9")
    assert all(source.fingerprint in unnamed for source in private_apt.SOURCES)
    expired = (f"E: Release file for {security.uri()}/dists/{security.suite}/InRelease is "
               "expired (invalid since 2d 3h). Updates for this repository will not be applied.")
    assert "clock" in private_apt._update_hint(expired)
    assert "delet" in private_apt._update_hint("E: something else")


# --- with Debian's archive --------------------------------------------------------------


@pytest.fixture(scope="module")
def lists_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder of this module's own, whose lists are fetched once."""
    return tmp_path_factory.mktemp("kit-cache")


@pytest.fixture
def private_cache(lists_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KIT_CACHE_DIR", str(lists_cache))
    monkeypatch.delenv(private_apt.ARCHIVE_ENV, raising=False)
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    return lists_cache


def _stamp() -> Path:
    return private_apt.apt_dir() / "state" / private_apt.STAMP


def _refreshes(architecture: str = "arm64") -> list[str]:
    steps: list[str] = []
    private_apt.ensure(architecture, lambda step, _: steps.append(step))
    return [step for step in steps if "lists" in step]


@pytest.mark.guest  # fetches Debian's lists (network)
@pytest.mark.slow
def test_the_private_lists_are_fetched_and_used(private_cache: Path) -> None:
    refreshed = _refreshes()
    assert refreshed and "amd64, arm64" in refreshed[0]
    assert _refreshes() == []  # fresh: not fetched again
    config = private_apt.config_path()
    lists = private_apt.apt_dir() / "state" / "lists"
    assert sorted(p.name.split("_dists_")[1].split("_Packages")[0]
                  for p in lists.glob("*_Packages*")) == sorted(
        f"{suite}_main_binary-{arch}" for suite in SUITES for arch in ("amd64", "arm64"))
    env = private_apt.environment(config)
    policy = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True,
                            check=True, env=env).stdout
    origins = set(re.findall(r"^\s+\d+ (\S+) (\S+) (\S+) Packages$", policy, re.M))
    assert origins == {(source.uri(), f"{source.suite}/main", arch)
                       for source in private_apt.SOURCES
                       for arch in ("amd64", "arm64")}  # none of the host's sources
    assert (private_apt.DEFAULT_SECURITY_ARCHIVE, "bookworm-security/main", "arm64") in origins
    assert "l=Debian-Security,c=main,b=arm64" in policy
    shown = apt.run_apt(["apt-cache", "show", "--no-all-versions", "busybox-static:arm64"],
                        "no busybox", config=config).stdout
    assert "Architecture: arm64" in shown
    assert json.loads(_stamp().read_text()) == {
        "sources": [f"{private_apt.DEFAULT_ARCHIVE} bookworm",
                    f"{private_apt.DEFAULT_ARCHIVE} bookworm-updates",
                    f"{private_apt.DEFAULT_SECURITY_ARCHIVE} bookworm-security"],
        "architectures": ["amd64", "arm64"]}


def _policy(package: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, set[str]]]:
    """``apt-cache policy``'s candidate for ``package``, and each version's suites."""
    text = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                          check=True, env=env).stdout
    candidate = re.search(r"^\s+Candidate: (\S+)$", text, re.M)
    assert candidate, text
    versions: dict[str, set[str]] = {}
    version = ""
    for line in text.split("Version table:", 1)[1].splitlines():
        if match := re.fullmatch(r"\s+(?:\*\*\* )?(\S+) -?\d+", line):
            version = match.group(1)
            versions[version] = set()
        elif match := re.fullmatch(r"\s+-?\d+ \S+ (\S+)/main \S+ Packages", line):
            versions[version].add(match.group(1))
    return candidate.group(1), versions


def _newer(left: str, right: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", left, "gt", right],
                          check=False).returncode == 0


@pytest.mark.guest  # fetches Debian's lists (network)
@pytest.mark.slow
def test_the_arm64_kernel_comes_from_the_newest_suite(private_cache: Path) -> None:
    """Security fixes: the candidate is the newest of the three suites' (-security's now)."""
    _refreshes()
    package = "linux-image-cloud-arm64:arm64"
    candidate, versions = _policy(package, private_apt.environment(private_apt.config_path()))
    assert set().union(*versions.values()) <= set(SUITES)
    assert all(not _newer(version, candidate) for version in versions), versions
    point_release = [v for v, suites in versions.items() if "bookworm" in suites]
    assert len(point_release) == 1, versions
    if candidate != point_release[0]:  # a fix since the last point release
        assert _newer(candidate, point_release[0])
        assert versions[candidate] & {"bookworm-updates", "bookworm-security"}, versions
    # Never older than what this machine's apt offers, when it knows arm64 packages.
    host = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                          check=False, env={k: v for k, v in os.environ.items()
                                            if k != "APT_CONFIG"})
    host_candidate = re.search(r"^\s+Candidate: (\S+)$", host.stdout, re.M)
    if host_candidate and host_candidate.group(1) != "(none)":
        assert not _newer(host_candidate.group(1), candidate), (host_candidate.group(1),
                                                                candidate)
    print(f"{package}: {candidate} from {', '.join(sorted(versions[candidate]))}")


@pytest.mark.guest  # fetches Debian's InRelease files (network)
@pytest.mark.slow
def test_a_suite_is_refused_with_a_key_that_does_not_sign_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each stanza trusts its key alone: with another suite's key, apt refuses all three."""
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(private_apt.ARCHIVE_ENV, raising=False)
    monkeypatch.delenv(private_apt.SECURITY_ARCHIVE_ENV, raising=False)
    keys = [source.key_file for source in private_apt.SOURCES]
    # bookworm <- the security key, -updates <- the stable one, -security <- the archive's.
    swapped = tuple(dataclasses.replace(source, key_file=keys[(number + 2) % 3])
                    for number, source in enumerate(private_apt.SOURCES))
    monkeypatch.setattr(private_apt, "SOURCES", swapped)
    config = private_apt.write_config(private_apt.apt_dir(), ["amd64"])
    with pytest.raises(ImageError) as caught:
        private_apt.update(config)
    for source in swapped:
        assert f"E: The repository '{source.origin()} InRelease' is not signed." \
            in (caught.value.log or ""), caught.value.log
    assert caught.value.hint and swapped[0].fingerprint in caught.value.hint


@pytest.mark.guest  # fetches Debian's lists (network)
@pytest.mark.slow
def test_stale_or_missing_lists_are_refreshed(private_cache: Path) -> None:
    _refreshes()
    day_old = time.time() - private_apt.MAX_AGE_S - 60
    os.utime(_stamp(), (day_old, day_old))
    refreshed = _refreshes()
    assert refreshed and "hours old" in refreshed[0]
    assert _stamp().stat().st_mtime > time.time() - 120
    lists = private_apt.apt_dir() / "state" / "lists"
    for arm64_list in lists.glob("*_binary-arm64_Packages*"):
        arm64_list.unlink()
    refreshed = _refreshes()
    assert refreshed and "missing" in refreshed[0]
    assert list(lists.glob("*_binary-arm64_Packages*"))


@pytest.mark.guest  # fetches Debian's lists (network)
@pytest.mark.slow
def test_old_lists_serve_when_the_archive_cannot_be_reached(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refreshes()
    two_days = time.time() - 2 * private_apt.MAX_AGE_S
    os.utime(_stamp(), (two_days, two_days))
    # The same archive behind a proxy nobody answers at: offline, in effect.
    monkeypatch.setattr(private_apt, "host_proxies",
                        lambda: {"Acquire::https::Proxy": "http://127.0.0.1:9"})
    steps: list[str] = []
    config = private_apt.ensure("arm64", lambda step, _: steps.append(step))
    assert any(step.startswith("could not refresh") for step in steps), steps
    assert _stamp().stat().st_mtime == pytest.approx(two_days)
    apt.run_apt(["apt-cache", "show", "busybox-static:arm64"], "no busybox", config=config)
    steps.clear()
    private_apt.ensure("arm64", lambda step, _: steps.append(step))
    assert steps == []  # not tried again at once: one build waits for apt's timeouts once


def _host_apt_knows_nothing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """As on Ubuntu or Binder: the host's apt knows no Debian package (no lists)."""
    for name in ("apt-cache", "apt-get"):
        real = shutil.which(name)
        fake = folder / name
        fake.write_text(f'#!/bin/sh\n[ -n "$APT_CONFIG" ] || {{ echo "E: {name} $*: no such '
                        f'package" >&2; exit 100; }}\nexec {real} "$@"\n')
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.guest  # fetches Debian's lists (network)
@pytest.mark.slow
def test_a_kernel_the_hosts_apt_does_not_know_comes_from_debian(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _host_apt_knows_nothing(monkeypatch, tmp_path)
    steps: list[str] = []
    native = private_apt.native_architecture()
    package = apt.resolve_kernel_package(f"linux-image-cloud-{native}", native,
                                         lambda step, _: steps.append(step))
    assert package.apt_config == private_apt.config_path()
    assert package.name.startswith("linux-image-6.") and package.architecture == native
    assert any("does not know" in step for step in steps)


@pytest.mark.guest  # builds an image (into this module's own cache)
@pytest.mark.slow
def test_an_image_builds_where_the_hosts_apt_knows_no_debian_package(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What postBuild does on Binder: Debian's kernel, downloaded through the kit's own apt."""
    _host_apt_knows_nothing(monkeypatch, tmp_path)
    image = images.ensure_image("x86_64", kernel="debian")
    assert image.kernel_source == "debian" and image.kernel.is_relative_to(private_cache)
    deb = images.read_manifest(image)["kernel_deb"]
    assert (private_cache / "packages" / deb).is_file()


# --- the real aarch64 image -------------------------------------------------------------


def _host_apt_state() -> dict[str, bytes]:
    """/etc/apt and dpkg's list of architectures, byte for byte (links by their target)."""
    state: dict[str, bytes] = {}
    for path in sorted(Path("/etc/apt").rglob("*")):
        if path.is_symlink():
            state[str(path)] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            state[str(path)] = path.read_bytes()
        else:
            state[str(path)] = b"<dir>"
    arch = Path("/var/lib/dpkg/arch")
    state[str(arch)] = arch.read_bytes() if arch.exists() else b"<none>"
    state["dpkg --print-foreign-architectures"] = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, check=True).stdout
    return state


def _spying_path(folder: Path, log: Path) -> str:
    """A PATH whose apt and dpkg commands note their ``APT_CONFIG`` and arguments, then run."""
    folder.mkdir()
    for name in ("apt-get", "apt-cache", "apt-config", "dpkg"):
        real = shutil.which(name)
        assert real is not None, name
        script = folder / name
        script.write_text(f'#!/bin/sh\nprintf \'%s\\t%s\\n\' "${{APT_CONFIG:-<host>}}" '
                          f'"{name} $*" >>"{log}"\nexec {real} "$@"\n')
        script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.guest  # rebuilds the aarch64 image
@pytest.mark.slow
def test_aarch64_rebuild_leaves_the_hosts_apt_and_dpkg_alone(tmp_path: Path) -> None:
    """``python -m kit image --arch aarch64 --rebuild``, with the learner's own cache."""
    before = _host_apt_state()
    log = tmp_path / "commands.log"
    env = {key: value for key, value in os.environ.items()
           if key not in (private_apt.ARCHIVE_ENV, "APT_CONFIG")}
    env["PATH"] = _spying_path(tmp_path / "bin", log)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kit", "image", "--arch", "aarch64",
                           "--rebuild"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"aarch64 rebuild: {time.monotonic() - started:.0f} s")
    assert _host_apt_state() == before

    config = str(paths.cache_dir() / "apt" / "debian-bookworm" / "apt.conf")
    calls = [line.split("\t", 1) for line in log.read_text().splitlines()]
    apt_calls = [(where, what) for where, what in calls
                 if what.startswith(("apt-get", "apt-cache"))]
    # (apt-get download runs only for packages not in the cache yet.)
    assert any(what.startswith("apt-cache depends") for _, what in apt_calls)
    assert {where for where, _ in apt_calls} == {config}, apt_calls
    dpkg_calls = [what for _, what in calls if what.startswith("dpkg ")]
    assert set(dpkg_calls) <= {"dpkg --print-architecture"}, dpkg_calls
    host_config = [what for where, what in calls if where == "<host>"]
    assert set(host_config) <= {"dpkg --print-architecture",
                                "apt-config shell HTTP Acquire::http::Proxy HTTPS "
                                "Acquire::https::Proxy"}, host_config

    image = images.find_image("aarch64")
    assert image is not None and image.kernel_version.endswith("-arm64")
    manifest = images.read_manifest(image)
    shown = apt.run_apt(["apt-cache", "show", "--no-all-versions",
                         f"{manifest['kernel_package']}:arm64"], "no kernel",
                        config=Path(config)).stdout
    assert f"Version: {manifest['kernel_package_version']}" in shown
