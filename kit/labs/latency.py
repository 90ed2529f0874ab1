"""A web page asked for again and again from the host: how long each answer took, and the gaps.

A live migration is invisible from inside the guest; from outside, the only
thing a customer could notice is a moment when the server does not answer.
So the kit measures it the way a customer would: a thread on the host asks
for the guest's page through its port forward every 10 ms and notes, for
each request, when its answer came, how long it took, whether it failed
(refused, timed out, an HTTP error), and which QEMU process held the guest
when the request was sent.  The longest time between two answers is the
pause a user would see.

The sampler is bounded: each request gives up after ``timeout`` seconds, and
the whole watch ends by itself after ``max_seconds`` (or when ``keep_going``
says so, e.g. once the guest has stopped), so a forgotten chart cannot keep a
thread knocking on a guest for the rest of the session.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kit.core.errors import InvalidInput
from kit.infrastructure.net import LOOPBACK

EVERY_S = 0.010  # the pause between two requests
TIMEOUT_S = 1.0  # one request gives up after this long
MAX_SECONDS = 180.0  # a watch ends by itself after this long


@dataclass(frozen=True)
class Sample:
    """One request: when its answer (or failure) came, how long it took, and who served it."""

    at_s: float  # seconds since the watch began, when the request ended
    ms: float  # how long the request took
    ok: bool  # HTTP 200
    error: str  # "" if ok; else "refused", "timed out", "HTTP 404", ...
    pid: int | None  # the host QEMU process of the guest when the request was sent


@dataclass(frozen=True)
class Gap:
    """The time between two answers in a row (failed requests between them do not count)."""

    start_s: float  # the answer before
    end_s: float  # the answer after
    failed: int  # failed requests in between
    pid_before: int | None
    pid_after: int | None

    @property
    def ms(self) -> float:
        return (self.end_s - self.start_s) * 1000

    @property
    def spans_move(self) -> bool:
        """True if another QEMU process answered after the gap than before it."""
        return self.pid_before != self.pid_after


def request(port: int, path: str = "/", timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """GET ``http://127.0.0.1:PORT/PATH`` once: (answered with 200, why not). Never raises."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        reply.read()
        return reply.status == 200, "" if reply.status == 200 else f"HTTP {reply.status}"
    except ConnectionRefusedError:
        return False, "refused"
    except ConnectionResetError:  # accepted, then dropped (http.client's RemoteDisconnected too)
        return False, "reset"
    except TimeoutError:
        return False, "timed out"
    except http.client.HTTPException:  # the answer broke off half-way
        return False, "cut off"
    except OSError as error:
        return False, type(error).__name__
    finally:
        connection.close()


def gaps(samples: Sequence[Sample]) -> list[Gap]:
    """Every gap between two answers in a row, in order."""
    found = []
    last: Sample | None = None
    failed = 0
    for sample in samples:
        if not sample.ok:
            failed += 1
            continue
        if last is not None:
            found.append(Gap(last.at_s, sample.at_s, failed, last.pid, sample.pid))
        last, failed = sample, 0
    return found


def longest_gap(samples: Sequence[Sample]) -> Gap | None:
    """The longest time without an answer: the pause a user of the page would notice."""
    return max(gaps(samples), key=lambda gap: gap.ms, default=None)


def moved_at(samples: Sequence[Sample]) -> list[float]:
    """When (seconds since the watch began) a request first found another QEMU process."""
    return [b.at_s for a, b in itertools.pairwise(samples)
            if a.pid is not None and b.pid is not None and a.pid != b.pid]


class LatencySampler:
    """Ask for a page every ``every`` seconds from a thread, until stopped or bounded.

    ``pid_of`` says which host process holds the guest now (noted with each
    request); ``keep_going`` is asked before each request, and the watch ends
    when it says no.  ``samples()`` is a copy of what was seen so far, safe to
    read while the thread runs.
    """

    def __init__(self, port: int, path: str = "/", *, every: float = EVERY_S,
                 timeout: float = TIMEOUT_S, max_seconds: float = MAX_SECONDS,
                 pid_of: Callable[[], int | None] = lambda: None,
                 keep_going: Callable[[], bool] = lambda: True, label: str = "") -> None:
        if not 0 < every <= 10 or not 0 < timeout <= 30 or not 0 < max_seconds <= 3600:
            raise InvalidInput(f"a watch of every={every}, timeout={timeout}, "
                               f"max_seconds={max_seconds} is out of bounds.",
                               hint="Ask at most every 10 s, give up within 30 s, stop within "
                               "an hour.")
        self.port, self.path, self.every, self.timeout = port, path, every, timeout
        self.max_seconds = max_seconds
        self.label = label
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.why_stopped = ""
        self._pid_of, self._keep_going = pid_of, keep_going
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "watching" if self.running else "stopped"
        return f"<LatencySampler {self.label or self.port} {state}, {len(self._samples)} requests>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LatencySampler:
        """Begin asking (once: a sampler is one watch; make a new one to watch again)."""
        if self._thread is not None:
            raise InvalidInput("this watch has already run.", hint="Make a new LatencySampler.")
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"kit-latency-{self.port}")
        self._thread.start()
        return self

    def stop(self, why: str = "stopped") -> list[Sample]:
        """Stop asking (waits for the request under way); returns every sample."""
        if not self._stop.is_set():
            self.why_stopped = self.why_stopped or why
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout + 5)
        return self.samples()

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def seconds(self) -> float:
        """How long it has watched (until now, or until it stopped)."""
        if self.started_at is None:
            return 0.0
        return (self.stopped_at or time.monotonic()) - self.started_at

    def _run(self) -> None:
        assert self.started_at is not None
        deadline = self.started_at + self.max_seconds
        try:
            while not self._stop.is_set():
                if time.monotonic() >= deadline:
                    self.why_stopped = self.why_stopped or (
                        f"stopped by itself after {self.max_seconds:g} s")
                    return
                if not self._keep_going():
                    self.why_stopped = self.why_stopped or "stopped: the guest is not running"
                    return
                self._take()
                self._stop.wait(self.every)
        finally:
            self.stopped_at = time.monotonic()

    def _take(self) -> None:
        assert self.started_at is not None
        pid = self._pid_of()
        began = time.monotonic()
        ok, error = request(self.port, self.path, self.timeout)
        ended = time.monotonic()
        with self._lock:
            self._samples.append(Sample(ended - self.started_at, (ended - began) * 1000, ok,
                                        error, pid))
