"""The host-side HTTP helpers, against a real server on the loopback interface."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from kit.infrastructure import net


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.HTTPServer((net.LOOPBACK, 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_a_free_port_can_be_bound() -> None:
    assert 1024 <= net.free_port() <= 65535


def test_a_live_server_is_found_and_read(server: int) -> None:
    assert net.wait_http(server, time.monotonic() + 5) <= time.monotonic()
    assert "<" in net.http_get(server, "/")


def test_an_http_error_still_means_the_server_is_up(server: int) -> None:
    net.wait_http(server, time.monotonic() + 5, path="/no-such-page")


def test_nobody_listening_times_out_with_the_url() -> None:
    with pytest.raises(TimeoutError, match=r"http://127\.0\.0\.1:\d+/"):
        net.wait_http(net.free_port(), time.monotonic() + 0.2)
