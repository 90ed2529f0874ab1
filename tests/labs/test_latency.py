"""The latency sampler against a real HTTP server on this host's loopback; its gaps, by hand.

No guest is needed: a small server in a thread plays the guest's web server,
and is shut down to play the moment it stops answering.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from kit.core.errors import InvalidInput
from kit.labs import latency
from kit.labs.latency import LatencySampler, Sample
from tests.waiting import wait_until


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        body = b"ok\n" if self.path == "/" else b"no\n"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    served = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def answered(sampler: LatencySampler) -> int:
    return sum(s.ok for s in sampler.samples())


def sample(at: float, ok: bool = True, pid: int | None = 1) -> Sample:
    return Sample(at, 1.0, ok, "" if ok else "refused", pid)


def test_one_request_says_why_it_failed(server: http.server.ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    assert latency.request(port) == (True, "")
    assert latency.request(port, "/missing") == (False, "HTTP 404")


def test_a_closed_port_is_refused_at_once() -> None:
    import socket

    with socket.socket() as holder:  # a port nobody listens on
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    assert latency.request(port, timeout=1.0) == (False, "refused")


def test_the_sampler_asks_until_stopped_and_notes_the_pid(
        server: http.server.ThreadingHTTPServer) -> None:
    pids = iter(range(1000, 100000))
    sampler = LatencySampler(server.server_address[1], pid_of=lambda: next(pids) // 3).start()
    assert wait_until(lambda: answered(sampler) >= 10, 10)
    samples = sampler.stop()
    assert not sampler.running and sampler.why_stopped == "stopped"
    assert all(s.ok and s.ms > 0 and s.error == "" for s in samples)
    assert [s.at_s for s in samples] == sorted(s.at_s for s in samples)
    assert len(latency.moved_at(samples)) >= 2  # the pid it was told changed every 3 requests
    with pytest.raises(InvalidInput, match="already run"):
        sampler.start()


def test_the_sampler_marks_refusals_when_the_server_goes(
        server: http.server.ThreadingHTTPServer) -> None:
    sampler = LatencySampler(server.server_address[1]).start()
    assert wait_until(lambda: answered(sampler) >= 5, 10)
    server.shutdown()
    server.server_close()
    assert wait_until(lambda: any(s.error == "refused" for s in sampler.samples()), 10)
    samples = sampler.stop()
    assert {s.error for s in samples if not s.ok} <= {"refused", "reset"}


def test_the_sampler_stops_by_itself(server: http.server.ThreadingHTTPServer) -> None:
    bounded = LatencySampler(server.server_address[1], max_seconds=0.3).start()
    assert wait_until(lambda: not bounded.running, 10)
    assert "by itself after 0.3 s" in bounded.why_stopped
    told = LatencySampler(server.server_address[1], keep_going=lambda: False).start()
    assert wait_until(lambda: not told.running, 10)
    assert told.samples() == [] and "not running" in told.why_stopped


def test_a_sampler_out_of_bounds_is_refused() -> None:
    with pytest.raises(InvalidInput, match="out of bounds"):
        LatencySampler(8080, every=0)
    with pytest.raises(InvalidInput, match="out of bounds"):
        LatencySampler(8080, max_seconds=86400)


def test_gaps_run_from_answer_to_answer_across_failures() -> None:
    samples = [sample(0.00), sample(0.01), sample(0.02, ok=False), sample(0.03, ok=False),
               sample(0.11, pid=2), sample(0.12, pid=2)]
    found = latency.gaps(samples)
    assert [round(g.ms) for g in found] == [10, 100, 10]
    longest = latency.longest_gap(samples)
    assert longest is not None and round(longest.ms) == 100
    assert longest.failed == 2 and longest.spans_move
    assert not found[0].spans_move
    assert latency.moved_at(samples) == [0.11]


def test_no_answers_no_gap() -> None:
    assert latency.longest_gap([]) is None
    assert latency.longest_gap([sample(0.0), sample(0.1, ok=False)]) is None
