"""Doors between guest and host: port forwards, a shared folder, a link between guests.

The checks without QEMU come first (what may be shared, how a link is wired);
then real guests prove each door: closed means nothing passes, open means
exactly what was asked passes, and a shared folder does not leak what lies
beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.hypervisor import doors, qemu, registry
from kit.infrastructure.net import free_port, http_get
from kit.view import diagram, picture

LINK_MAC_PREFIX = "52:54:00:4c:"
USER_NET_MAC = "52:54:00:12:34:56"  # QEMU's default for the first card: user networking


# -- what may be shared (no QEMU) -------------------------------------------------------


@pytest.mark.parametrize("folder, words", [
    ("/", "whole home"),
    ("/etc", "system folder"),
    ("/usr/share", "system folder"),
    ("/proc", "system folder"),
    ("/no/such/folder", "does not exist"),
    ("", "not a folder path"),
])
def test_folders_that_may_not_be_shared(folder: str, words: str) -> None:
    with pytest.raises(kit.InvalidInput, match=words) as info:
        doors.check_shared_folder(folder)
    assert info.value.hint


def test_the_home_folder_and_what_holds_it_may_not_be_shared() -> None:
    home = Path.home().resolve()
    for folder in (home, home.parent, Path("~")):
        with pytest.raises(kit.InvalidInput, match="whole home"):
            doors.check_shared_folder(folder)


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(kit.InvalidInput, match="not a folder"):
        doors.check_shared_folder(tmp_path / "f")


def test_a_symlink_is_resolved_before_qemu_sees_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert doors.check_shared_folder(tmp_path / "alias") == real.resolve()
    (tmp_path / "to-etc").symlink_to("/etc")
    with pytest.raises(kit.InvalidInput, match="system folder"):
        doors.check_shared_folder(tmp_path / "to-etc")


def test_a_guest_declares_its_share_read_only_by_default(tmp_path: Path,
                                                          image: images.GuestImage) -> None:
    g = kit.Guest("d-share", shared_folder=tmp_path)
    assert not g.share_open  # declared, not yet open
    (opening,) = g.doors.share.openings()
    assert not opening.is_open and not opening.guest_can_write
    spec = g.doors.configure(bare_spec(g, image)).share
    assert spec is not None and spec.host_path == tmp_path.resolve() and not spec.writable
    with pytest.raises(kit.InvalidInput, match="True or False"):
        kit.Guest("d-share", shared_folder=tmp_path, shared_writable="yes")  # type: ignore[arg-type]


def test_a_share_removed_before_the_start_is_refused_then(tmp_path: Path,
                                                         image: images.GuestImage) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    g = kit.Guest("d-gone", shared_folder=folder)
    folder.rmdir()
    with pytest.raises(kit.InvalidInput, match="does not exist"):
        g.start()
    assert g.state == "created" and kit.guests() == []


def bare_spec(g: kit.Guest, image: images.GuestImage) -> qemu.MachineSpec:
    """The machine a guest's doors are added to, before any door."""
    return qemu.MachineSpec(name=g.name, image=image, memory_mb=g.memory_mb, cpus=g.cpus,
                            accel="tcg", tsc_khz=None)


# -- how a link is wired (no QEMU) ----------------------------------------------------


def test_a_link_is_two_mirrored_sockets_only_their_user_reaches(
        image: images.GuestImage) -> None:
    a, b = kit.Guest("d-a"), kit.Guest("d-b")
    link = kit.Link(a, b)
    nic_a, nic_b = link.nic_for(a), link.nic_for(b)
    assert (nic_a.local_path, nic_a.remote_path) == (nic_b.remote_path, nic_b.local_path)
    link.prepare_end(a)
    assert link.folder.parent == paths.runtime_dir() and link.folder.stat().st_mode & 0o077 == 0
    link.release_end(a)
    assert not link.folder.exists()
    assert nic_a.mac != nic_b.mac and nic_a.mac.startswith(LINK_MAC_PREFIX)
    assert (link.address(a), link.address(b)) == ("10.0.3.1", "10.0.3.2")
    assert a.doors.configure(bare_spec(a, image)).kernel_args[0] == "kit.link_ip=10.0.3.1/24"
    assert not link.is_up  # a door is closed until someone opens it
    (end_a,), (end_b,) = a.doors.link.openings(), b.doors.link.openings()
    assert end_a.between == end_b.between == ("d-a", "d-b") and not end_a.is_open
    assert (end_a.guest_side, end_b.guest_side) == ("eth1 10.0.3.1", "eth1 10.0.3.2")


def test_links_refused(image: images.GuestImage) -> None:
    a, b, c = kit.Guest("d-a"), kit.Guest("d-b"), kit.Guest("d-c")
    with pytest.raises(kit.InvalidInput, match="to itself"):
        kit.Link(a, a)
    with pytest.raises(kit.InvalidInput, match="two guests"):
        kit.Link(a, "d-b")  # type: ignore[arg-type]
    kit.Link(a, b)
    with pytest.raises(kit.InvalidInput, match="already has a link"):
        kit.Link(a, c)
    with pytest.raises(kit.GuestNotRunning, match="plug in"):
        a.doors.link.links[0].up()


def test_doors_of_a_guest_never_started(image: images.GuestImage) -> None:
    g = kit.Guest("d-x")
    with pytest.raises(kit.GuestNotRunning, match="port forward"):
        g.open_forward(free_port(), 80)
    with pytest.raises(kit.GuestError, match="no shared folder"):
        g.open_share()
    with pytest.raises(kit.InvalidInput, match="no forward"):
        g.close_forward(8080)


# -- real guests ---------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A read-only share, a writable share, and a secret folder beside them."""
    ro, rw, secret = (tmp_path / n for n in ("ro", "rw", "secret"))
    for folder in (ro, rw, secret):
        folder.mkdir()
    (secret / "key").write_text("TOP-SECRET\n")
    (ro / "hello.txt").write_text("hello from the host\n")
    (ro / "absolute").symlink_to(secret / "key")
    (ro / "relative").symlink_to(Path("..") / "secret" / "key")
    yield ro, rw, secret


@pytest.mark.guest
def test_shares_and_a_link_on_two_real_guests(
        image: images.GuestImage, guest_name: str, folders: tuple[Path, Path, Path]) -> None:
    ro, rw, _ = folders
    a = kit.Guest(f"{guest_name}a", shared_folder=ro)
    b = kit.Guest(f"{guest_name}b", shared_folder=rw, shared_writable=True)
    link = kit.Link(a, b)
    with a, b:
        _user_net_stays_eth0(a, link)
        _link_passes_only_when_up(a, b, link)
        _read_only_share(a)
        _writable_share(b, rw)
        _nothing_beside_the_share_leaks(a)
        svg = diagram.render_svg(diagram.layers(picture.take([a, b])))
        assert "shared folder" in svg and "link down" in svg  # the diagram draws the doors
        b.reboot()
        assert not b.share_open  # a reboot unmounts everything
        assert not any(o.is_open for o in b.doors.share.openings())
        link.up()
        assert _reaches(a, link.address(b)), "the link survives b's reboot"


def _user_net_stays_eth0(a: kit.Guest, link: kit.Link) -> None:
    macs = a.run("cat /sys/class/net/eth0/address /sys/class/net/eth1/address").stdout.split()
    assert macs == [USER_NET_MAC, link.nic_for(a).mac]
    by_card = {line.split()[1]: line for line in a.run("ip -4 -o addr").stdout.splitlines()}
    assert "10.0.2.15/24" in by_card["eth0"] and "10.0.3.1/24" in by_card["eth1"]
    # the way out is the internet door's card, the last one (see test_internet.py)
    assert "default via 10.0.4.2 dev eth2" in a.run("ip route").stdout


def _reaches(guest: kit.Guest, address: str) -> bool:
    """Ping, with a few tries: a cable just plugged in needs a moment (carrier, then ARP)."""
    return guest.run(f"for try in 1 2 3; do ping -c1 -W3 {address} && exit 0; done; exit 1",
                     timeout=20).ok


def _link_passes_only_when_up(a: kit.Guest, b: kit.Guest, link: kit.Link) -> None:
    announced: list[str] = []
    stop_listening = registry.subscribe(lambda g, _s: announced.append(g.name))
    try:
        assert not a.run("ping -c1 -W1 10.0.3.2").ok, "the cable starts pulled out"
        link.up()
        assert link.is_up and a.doors.link.openings()[0].is_open
        assert {a.name, b.name} <= set(announced), "the diagram hears of the change"
        assert _reaches(a, "10.0.3.2")
        page = a.run("timeout 5 wget -qO- http://10.0.3.2/")  # (wget -T crashes busybox)
        assert "<html" in page.stdout.lower(), page  # b's web server, reached over the cable
        link.down()
        assert not a.run("ping -c1 -W1 10.0.3.2").ok
    finally:
        stop_listening()
    pictured = picture.take([a, b]).links
    assert pictured == (picture.LinkPicture(a.name, b.name, False),)


def _read_only_share(a: kit.Guest) -> None:
    a.open_share()
    assert a.share_open
    (share,) = picture.guest_snapshot(a).shared_folders
    assert share.guest_path == "/mnt/share" and not share.writable
    assert a.run("cat /mnt/share/hello.txt").stdout == "hello from the host\n"
    write = a.run("echo x > /mnt/share/new")
    assert not write.ok and "Read-only file system" in write.stderr
    assert "ro" in a.run("grep /mnt/share /proc/mounts").stdout.split()[3].split(",")
    a.close_share()
    assert not a.share_open and a.run("ls /mnt/share").stdout == ""
    a.open_share()  # and again: a door opens as often as it closes


def _writable_share(b: kit.Guest, rw: Path) -> None:
    b.open_share()
    assert b.run("echo from-the-guest > /mnt/share/note").ok
    assert (rw / "note").read_text() == "from-the-guest\n"
    assert picture.guest_snapshot(b).shared_folders[0].writable


def _nothing_beside_the_share_leaks(a: kit.Guest) -> None:
    for path in ("/mnt/share/absolute", "/mnt/share/relative", "/mnt/share/../secret/key",
                 "/mnt/share/../../secret/key"):
        result = a.run(f"cat {path}")
        assert "TOP-SECRET" not in str(result), path
    listing = a.run("ls -a /mnt/share/.. /mnt/share/../..").stdout
    assert "secret" not in listing


@pytest.mark.guest
def test_port_forwards_open_and_close_live(image: images.GuestImage, guest_name: str) -> None:
    port = free_port()
    with kit.Guest(guest_name) as g:
        with pytest.raises(OSError):
            http_get(port, timeout=2)
        g.open_forward(port, 80)
        assert g.forwards == {port: 80}
        assert "<html" in http_get(port).lower()
        assert picture.guest_snapshot(g).services[0].host_port == port
        with pytest.raises(kit.InvalidInput, match="already forwards"):
            g.open_forward(port, 81)
        g.close_forward(port)
        assert g.forwards == {}
        with pytest.raises(OSError):
            http_get(port, timeout=2)
        with pytest.raises(kit.InvalidInput, match="no forward"):
            g.close_forward(port)
        _forward_to_a_taken_port(g)


def _forward_to_a_taken_port(g: kit.Guest) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(kit.InvalidInput, match="already taken"):
            g.open_forward(taken, 80)
    assert g.forwards == {}
