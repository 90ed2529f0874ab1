"""The internet door, and the seal it is the only way through.

Everything is tried from inside real guests: a web server on this host's
127.0.0.1 and another guest's port forward are the targets a guest must not
reach while its door is closed (each attempt fails within a few seconds),
must reach once it is open, and must lose again when it closes.  The seal is
QEMU's: a guest that re-plumbs its own routes stays cut off.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator

import pytest

import kit
from kit.guestos import images
from kit.hypervisor import doors, qemu
from kit.hypervisor.doors import internet
from kit.infrastructure.net import LOOPBACK, free_port
from kit.view import picture

RESTRICTED_HOST = "10.0.2.2"  # the host, as eth0's restricted network shows it
ATTEMPT_LIMIT_S = 3  # nc -w: how long one attempt may wait for an answer
# An attempt that fails must fail within this; nc's own limit plus the agent's round trip.
FAILS_WITHIN_S = ATTEMPT_LIMIT_S + 3


class Word(http.server.BaseHTTPRequestHandler):
    """Answers every GET with one word, so a test knows whose server answered."""

    word = b"host-loopback"

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.word)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A web server on this host's 127.0.0.1 only: the port it listens on."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Word)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def fetch(g: kit.Guest, address: str, port: int) -> tuple[str, float]:
    """From inside ``g``: what a GET of address:port answered, and how long it took."""
    started = time.monotonic()
    result = g.run(f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {ATTEMPT_LIMIT_S} "
                   f"{address} {port}", timeout=FAILS_WITHIN_S + 10)
    return result.stdout, time.monotonic() - started


def reaches(g: kit.Guest, address: str, port: int, word: str) -> bool:
    answer, took = fetch(g, address, port)
    if word not in answer:
        assert took < FAILS_WITHIN_S, f"a failed attempt took {took:.1f} s"
    return word in answer


# -- without QEMU -----------------------------------------------------------------------


def test_the_door_is_closed_by_default_and_drawn(image: images.GuestImage) -> None:
    g = kit.Guest("inet-plain")
    assert not g.internet_open
    (opening,) = g.doors.internet.openings()
    assert opening.kind == "internet" and not opening.is_open
    assert "reaches nothing" in opening.words
    assert any(o.kind == "internet" for o in picture.guest_snapshot(g).other_doors)


def test_the_command_seals_eth0_and_adds_the_door_card(image: images.GuestImage) -> None:
    g = kit.Guest("inet-cmd")
    spec = g.doors.configure(qemu.MachineSpec(name=g.name, image=image, memory_mb=128,
                                              cpus=1, accel="tcg", sandbox=False))
    words = qemu.qemu_command(spec, qemu.ChannelFds(3, 4, 5))
    netdevs = [words[i + 1] for i, w in enumerate(words) if w == "-netdev"]
    assert netdevs[0].startswith("user,id=net0,restrict=on")
    assert f"user,id={internet.CARD.id},net={internet.SUBNET}" in netdevs
    assert "-S" in words  # paused until the door's cable is set
    assert f"kit.internet_mac={internet.CARD.mac}" in spec.kernel_args


def test_a_door_that_is_not_true_or_false_is_refused(image: images.GuestImage) -> None:
    with pytest.raises(kit.InvalidInput, match="True or False") as info:
        kit.Guest("inet-bad", internet="yes")  # type: ignore[arg-type]
    assert "open_internet" in (info.value.hint or "")


def test_a_door_of_a_stopped_guest_is_kept_for_its_start(image: images.GuestImage) -> None:
    g = kit.Guest("inet-later")
    g.open_internet()
    assert g.internet_open
    g.close_internet()
    assert not g.internet_open


# -- real guests ---------------------------------------------------------------------------


@pytest.mark.guest
@pytest.mark.slow
def test_sealed_until_the_door_opens_and_cut_when_it_closes(
        image: images.GuestImage, loopback_server: int) -> None:
    forward_port = free_port()
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(kit.Guest("inet-other", memory_mb=64,
                                              forwards={forward_port: 80}))
        other.run("echo other-guest > /www/who.txt")
        g = stack.enter_context(kit.Guest("inet-me", memory_mb=64))
        targets = [  # (address, port, the word that proves it answered)
            (RESTRICTED_HOST, loopback_server, "host-loopback"),
            (internet.HOST_ADDRESS, loopback_server, "host-loopback"),
            (RESTRICTED_HOST, forward_port, " 200 OK"),
            (internet.HOST_ADDRESS, forward_port, " 200 OK"),
        ]
        for address, port, word in targets:
            assert not reaches(g, address, port, word), f"sealed guest reached {address}:{port}"
        outside = g.run("nc -w 3 192.0.2.1 80 </dev/null", timeout=FAILS_WITHIN_S + 10)
        assert not outside.ok and "unreachable" in outside.stderr.lower()

        g.open_internet()
        assert reaches(g, internet.HOST_ADDRESS, loopback_server, "host-loopback")
        assert reaches(g, internet.HOST_ADDRESS, forward_port, " 200 OK")
        assert not reaches(g, RESTRICTED_HOST, loopback_server, "host-loopback")

        g.close_internet()
        assert not reaches(g, internet.HOST_ADDRESS, loopback_server, "host-loopback")
        assert not reaches(g, internet.HOST_ADDRESS, forward_port, " 200 OK")


@pytest.mark.guest
def test_the_seal_is_qemus_not_the_guests(image: images.GuestImage,
                                          loopback_server: int) -> None:
    """Root inside the guest re-plumbs the door's card: QEMU still drops every frame."""
    with kit.Guest("inet-root", memory_mb=64) as g:
        card = g.run(f"grep -l {internet.CARD.mac} /sys/class/net/*/address").stdout.split("/")
        name = card[4]
        g.run(f"ip link set {name} up; echo 0 > "
              "/proc/sys/net/ipv4/conf/all/ignore_routes_with_linkdown; "
              f"ip route replace default via {internet.HOST_ADDRESS} dev {name}")
        assert not reaches(g, internet.HOST_ADDRESS, loopback_server, "host-loopback")


@pytest.mark.guest
def test_a_door_open_at_the_start_survives_a_reboot(image: images.GuestImage,
                                                    loopback_server: int) -> None:
    with kit.Guest("inet-open", memory_mb=64, internet=True) as g:
        assert reaches(g, internet.HOST_ADDRESS, loopback_server, "host-loopback")
        g.reboot()
        assert reaches(g, internet.HOST_ADDRESS, loopback_server, "host-loopback")
        (opening,) = g.doors.internet.openings()
        assert opening.is_open and "127.0.0.1" in opening.words


def test_every_kind_of_door_is_listed() -> None:
    assert doors.InternetDoor in doors.KINDS
