"""A learner's side of a class hub, spoken through its real APIs: no browser, no mock.

* :class:`Learner` logs in through the hub's REST API (a token for a user
  and password: ``POST /hub/api/users/NAME/tokens`` with ``auth``), starts
  and stops their server (``/hub/api/users/NAME/server``), and starts a
  kernel in it (``/user/NAME/api/kernels``);
* :class:`Kernel` runs code in that kernel over its websocket (Jupyter's
  messaging protocol: an ``execute_request`` on the shell channel, the
  output on iopub, the ``execute_reply`` last).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import websocket


class HubRefused(Exception):
    """The hub or a server answered with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect (to the login page, for someone else's server) is an answer, not a detour."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


KERNEL_CONNECT_S = 120.0  # bounded, but past what a loaded host needs
_OPENER = urllib.request.build_opener(_NoRedirect)


def request(url: str, method: str = "GET", token: str | None = None,
            body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request; :class:`HubRefused` for an HTTP error status or a redirect."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(call, timeout=timeout) as reply:
            text = reply.read().decode()
    except urllib.error.HTTPError as error:
        raise HubRefused(error.code, error.read().decode(errors="replace")) from None
    return json.loads(text) if text.strip() else None


@dataclass
class Learner:
    """One member, logged in through the hub's API."""

    hub: str  # http://127.0.0.1:PORT/
    name: str
    token: str = ""

    @classmethod
    def log_in(cls, hub: str, name: str, password: str) -> Learner:
        reply = request(f"{hub}hub/api/users/{name}/tokens", "POST",
                        body={"auth": {"username": name, "password": password},
                              "note": "kit hub test", "expires_in": 3600})
        return cls(hub, name, str(reply["token"]))

    def api(self, path: str, method: str = "GET", body: Any = None,
            user: str | None = None) -> Any:
        return request(f"{self.hub}hub/api/users/{user or self.name}{path}", method,
                       self.token, body)

    def start_server(self, timeout: float = 180.0) -> None:
        """Ask for this learner's server, and wait until the hub says it is ready."""
        try:
            self.api("/server", "POST")
        except HubRefused as error:
            if error.status != 400:  # 400: already running
                raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("").get("servers", {}).get("", {})
            if server.get("ready"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server was not ready in {timeout:.0f} s")

    def stop_server(self, timeout: float = 120.0) -> None:
        self.api("/server", "DELETE")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.api("").get("servers"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server did not stop in {timeout:.0f} s")

    def server_api(self, path: str, method: str = "GET", body: Any = None,
                   user: str | None = None) -> Any:
        return request(f"{self.hub}user/{user or self.name}/api{path}", method, self.token,
                       body)

    def kernel(self) -> Kernel:
        started = self.server_api("/kernels", "POST", {"name": "python3"})
        url = f"{self.hub.replace('http', 'ws', 1)}user/{self.name}/api/kernels/" \
              f"{started['id']}/channels"
        # The handshake waits for the new kernel through the hub's proxy and the learner's
        # server: on a busy host (measured: two test runs at once) that took over 30 s.
        socket = websocket.create_connection(
            url, header=[f"Authorization: token {self.token}"], timeout=KERNEL_CONNECT_S)
        return Kernel(started["id"], socket)


@dataclass
class Kernel:
    """A kernel of a learner's server, spoken to over its websocket."""

    id: str
    socket: websocket.WebSocket
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    def execute(self, code: str, timeout: float = 120.0) -> str:
        """Run ``code``; returns what it printed.  An exception in it fails here, with it."""
        msg_id = uuid.uuid4().hex
        self.socket.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": self.session, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        return self._collect(msg_id, time.monotonic() + timeout)

    def _collect(self, msg_id: str, deadline: float) -> str:
        printed, error, replied, idle = [], None, False, False
        while not (replied and idle):
            self.socket.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                error = "\n".join(content.get("traceback", [])) or content.get("evalue")
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        if error is not None:
            raise AssertionError(f"the kernel raised:\n{error}\nprinted: {''.join(printed)}")
        return "".join(printed)

    def json(self, code: str, timeout: float = 120.0) -> Any:
        """Run ``code`` whose last printed line is JSON; returns it."""
        return json.loads(self.execute(code, timeout).strip().splitlines()[-1])

    def close(self) -> None:
        self.socket.close()


def remove_accounts(names: tuple[str, ...], group: str) -> None:
    """A hub test's accounts, homes and group: made by the hub, removed after (and before)."""
    for name in names:
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True,
                       check=False)
    subprocess.run(["groupdel", group], capture_output=True, check=False)
