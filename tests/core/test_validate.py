"""Input checks: refused before anything starts, with a message that teaches."""

from __future__ import annotations

import socket

import pytest

from kit.core import validate
from kit.core.errors import HostLimit, InvalidInput


@pytest.mark.parametrize("name", ["web1", "a", "db-2", "x" * 32])
def test_good_names(name: str) -> None:
    assert validate.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Web1", "-web", "web-", "web_1", "../etc", "a b", "x" * 33, None, 7, "wéb"]
)
def test_bad_names(name: object) -> None:
    with pytest.raises(InvalidInput, match="cannot be a guest name") as info:
        validate.check_name(name)
    assert "lower-case" in (info.value.hint or "")


@pytest.mark.parametrize("memory", [0, 32, -1, 95])
def test_too_little_memory(memory: int) -> None:
    with pytest.raises(InvalidInput, match="too little"):
        validate.check_memory(memory, minimum_mb=96)


@pytest.mark.parametrize("memory", ["128", 128.0, None, True])
def test_memory_not_a_number(memory: object) -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        validate.check_memory(memory, minimum_mb=96)


def test_more_memory_than_the_host_has() -> None:
    with pytest.raises(HostLimit, match="more than this host can give"):
        validate.check_memory(10**9, minimum_mb=96)


@pytest.mark.parametrize("cpus", [0, -1, 10_000, 1.5, "2", None])
def test_bad_cpus(cpus: object) -> None:
    with pytest.raises(InvalidInput, match="not possible here"):
        validate.check_cpus(cpus)


@pytest.mark.parametrize(
    "forwards",
    [{80: 80}, {8080: 0}, {8080: 70000}, {70000: 80}, {"8080": 80}, [8080, 80], "8080:80"],
)
def test_bad_forwards(forwards: object) -> None:
    with pytest.raises(InvalidInput):
        validate.check_forwards(forwards)


def test_port_taken_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InvalidInput, match="already taken"):
            validate.check_host_ports_free([port])


def test_free_port_is_accepted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    validate.check_host_ports_free([port])


def test_a_port_whose_last_connection_is_closing_is_free_again() -> None:
    """A guest restarted at once gets its forward back (TIME-WAIT is no owner)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server closes first: its side waits in TIME-WAIT
        client.close()
    assert validate.port_is_free(port)
