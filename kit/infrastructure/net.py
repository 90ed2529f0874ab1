"""Reaching a guest's servers from the host, the way a learner's browser does.

Port forwards are bound to 127.0.0.1, so these helpers only ever speak to this
machine's loopback interface.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now.

    The kernel picks it; another program may still take it before we do, which
    QEMU then reports as a forward it could not open.
    """
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str = "/", timeout: float = 5.0) -> str:
    """The body of ``http://127.0.0.1:PORT/PATH`` as text; raises OSError when unreachable."""
    url = f"http://{LOOPBACK}:{port}/{path.lstrip('/')}"
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return str(reply.read().decode("utf-8", "replace"))


def wait_http(port: int, deadline: float, path: str = "/", poll_s: float = 0.005) -> float:
    """Wait until the server behind ``port`` answers; returns the monotonic time it did.

    ``deadline`` is a ``time.monotonic()`` value.  A server that answers with an
    HTTP error status counts as answering: it is up.
    """
    while time.monotonic() < deadline:
        try:
            http_get(port, path, timeout=1.0)
            return time.monotonic()
        except urllib.error.HTTPError:
            return time.monotonic()
        except OSError:
            time.sleep(poll_s)
    raise TimeoutError(f"nothing answered on http://{LOOPBACK}:{port}/ in time")
