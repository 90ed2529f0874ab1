"""The applications inside the guest, reached from the host as a learner would.

The guest image runs three small applications, one per classic job of a
server (``assets/guest/``):

* a **web server**: busybox httpd on guest port 80, serving ``/www``;
* a **database**: ``/var/lib/kit/shop.db``, made by the image builder from
  ``assets/guest/apps/shop.sql`` (tables ``items`` and ``orders``; the script
  is also in the guest, as ``/usr/share/kit/shop.sql``);
* an **API backend**: the CGI script ``/cgi-bin/api``, which the web server
  runs per request; it reads the database and answers JSON.

From the host they are reached only through a port forward bound to
127.0.0.1 (the door lesson 2 opens), and the database also through the
guest agent.  These functions say plainly which door is missing when one is.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from kit.core.errors import AgentError, GuestError, InvalidInput
from kit.infrastructure.net import LOOPBACK

WEB_PORT = 80
API_PATH = "/cgi-bin/api"
DATABASE = "/var/lib/kit/shop.db"
TABLES = ("items", "orders")
WEB_AND_API = "web server + API"
# What listens in every guest of the kit's image, by guest port (for diagrams).
GUEST_SERVICES = {WEB_PORT: WEB_AND_API}


class _HasForwards(Protocol):
    name: str

    @property
    def forwards(self) -> Any: ...


@dataclass(frozen=True)
class HttpReply:
    """One HTTP answer: status, content type and body, whatever the status."""

    url: str
    status: int
    content_type: str
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON; raises InvalidInput when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise InvalidInput(f"{self.url} did not answer JSON: {self.body[:80]!r}.",
                               hint="Ask the API (/cgi-bin/api), not the web page.") from error


def services(guest: object) -> dict[int, str]:
    """The guest's applications by guest port: those the kit's image runs."""
    del guest  # every guest runs the image's; a guest of its own kind would differ
    return dict(GUEST_SERVICES)


def host_port(guest: _HasForwards, guest_port: int = WEB_PORT) -> int:
    """The host port forwarded to ``guest_port`` of ``guest``; raises when the door is shut."""
    for host, inside in dict(guest.forwards).items():
        if int(inside) == guest_port:
            return int(host)
    raise GuestError(
        f"no host port leads to port {guest_port} of guest {guest.name}: that door is shut.",
        hint=f"Open a port forward first, e.g. {guest.name}.open_forward(8080, {guest_port}), "
        "or the Doors panel's toggle.")


def fetch(port: int, path: str = "/", timeout: float = 5.0) -> HttpReply:
    """GET ``http://127.0.0.1:PORT/PATH``; an HTTP error status is a reply, not an error.

    Raises OSError when nothing answers (no forward, or the guest is down).
    """
    url = f"http://{LOOPBACK}:{port}/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return HttpReply(url, answer.status, answer.headers.get_content_type(),
                             answer.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        with error:
            return HttpReply(url, error.code, error.headers.get_content_type(),
                             error.read().decode("utf-8", "replace"))


def api_path(table: str | None = None, row: int | None = None) -> str:
    """The API's path for a table (and a row), query string quoted."""
    query: dict[str, str] = {}
    if table is not None:
        query["table"] = table
    if row is not None:
        query["id"] = str(row)
    return API_PATH + (f"?{urllib.parse.urlencode(query)}" if query else "")


def web_page(guest: _HasForwards, timeout: float = 5.0) -> HttpReply:
    """The guest's home page, fetched from the host through its port forward."""
    return fetch(host_port(guest), "/", timeout)


def api(guest: _HasForwards, table: str | None = None, row: int | None = None,
        timeout: float = 10.0) -> HttpReply:
    """Ask the guest's API from the host: ``api(g, "items")`` -> reply with JSON rows.

    The API answers 503 while it has no database (a learner may have removed
    it): this asks again until ``timeout`` has passed.
    """
    return fetch_ready(host_port(guest), api_path(table, row), timeout)


def fetch_ready(port: int, path: str, timeout: float = 10.0) -> HttpReply:
    """:func:`fetch`, asked again while the server answers 503 (not ready yet)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = fetch(port, path, timeout)
        if reply.status != 503 or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


# Waits (up to 5 s) for the database to be there, then queries read-only
# (so a missing database is an error, never a new empty file).
# Waits for the database file, then for a writer's lock (up to 3 s) instead of failing.
_WAIT_AND_QUERY = (f"i=0; while [ ! -e {DATABASE} ] && [ $i -lt 50 ]; do sleep 0.1; "
                   f'i=$((i + 1)); done; exec sqlite3 -cmd ".timeout 3000" -json -readonly '
                   f'{DATABASE} "$1"')


class _Runs(Protocol):
    def run(self, command: list[str], timeout: float = 30.0) -> Any: ...


def query(guest: _Runs, sql: str) -> list[dict[str, Any]]:
    """Run ``sql`` on the guest's database through the guest agent; rows as dicts.

    This is the administrator's way in (a command inside the guest), not a
    client's: no port is involved.
    """
    result = guest.run(["sh", "-c", _WAIT_AND_QUERY, "sh", sql])
    if not result.ok:
        raise AgentError(f"sqlite3 in the guest refused {sql!r}: {result.stderr.strip()}",
                         hint=f"The tables are {', '.join(TABLES)}; check the SQL.")
    text = result.stdout.strip()
    rows: list[dict[str, Any]] = json.loads(text) if text else []
    return rows
