"""The guest-agent explorer: ask the guest's operating system itself.

The QEMU guest agent is a program *inside* the guest; it answers the same
JSON protocol as QMP, but from the guest OS's side: its name for itself, its
users, its files, its processes.  ``qemu-ga`` 7.2 has no process list, so
*processes* runs ``ps`` in the guest (through the agent's ``guest-exec``).
"""

from __future__ import annotations

import base64
from typing import Any

import ipywidgets as widgets

from kit.core.errors import InvalidInput
from kit.hypervisor.guest import Guest, RunResult
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget, on_enter, resolve_guest
from kit.widgets.command_form import Command, CommandForm

READ_LIMIT_BYTES = 64 * 1024
CHUNK_BYTES = 16 * 1024
PS_COMMAND = ["ps", "-o", "pid,ppid,user,vsz,rss,stat,args"]

AGENT_COMMANDS = [
    Command("guest-get-osinfo", "The guest OS's own description of itself: name, kernel."),
    Command("guest-get-host-name", "The guest's host name (set by its init from the kit's name)."),
    Command("guest-get-users", "Who is logged in to the guest (nobody, in a fresh guest)."),
    Command("guest-info", "The agent's version, and every command it supports."),
    Command("guest-ping", "Is the agent there? An empty reply means yes."),
    Command("guest-get-time", "The guest's clock, in nanoseconds since 1970."),
    Command("guest-get-timezone", "The guest's time zone."),
    Command("guest-get-vcpus", "The CPUs the guest OS sees (the hypervisor's vCPUs)."),
    Command("guest-get-memory-blocks", "The guest's memory, as blocks the guest OS manages."),
    Command("guest-get-memory-block-info", "The size of one memory block, in bytes."),
    Command("guest-get-cpustats", "Time each CPU spent in user, system, idle… (jiffies)."),
    Command("guest-network-get-interfaces", "The guest's network cards and their addresses."),
]


def read_guest_file(guest: Guest, path: str, limit: int = READ_LIMIT_BYTES
                    ) -> tuple[bytes, bool]:
    """Read a file through the agent: open, read base64 chunks, close.

    Returns the bytes and whether the file went on beyond ``limit``.
    """
    handle = guest.agent("guest-file-open", {"path": path, "mode": "r"})
    data = b""
    try:
        while len(data) < limit:
            chunk = guest.agent("guest-file-read", {"handle": handle, "count": CHUNK_BYTES})
            data += base64.b64decode(chunk.get("buf-b64", ""))
            if chunk.get("eof") or not chunk.get("count"):
                return data[:limit], len(data) > limit
    finally:
        guest.agent("guest-file-close", {"handle": handle})
    return data[:limit], True


def show_result(result: RunResult) -> str:
    """A command's exit code, standard output and standard error, as HTML."""
    verdict = "success" if result.ok else "failure"
    parts = [f"<b>exit code {result.exit_code}</b> ({verdict})",
             "<b>standard output</b>", pre(result.stdout or "(empty)", "18em")]
    if result.stderr:
        parts += ["<b>standard error</b>", pre(result.stderr, "8em")]
    return "<br>".join(parts)


def _path(value: str) -> str:
    path = value.strip()
    if not path.startswith("/"):
        raise InvalidInput(f"{path!r} is not a full path in the guest.",
                           hint="Start it with '/', e.g. /etc or /etc/hostname.")
    return path


# ipywidgets draws the titles of tabs not shown in a secondary grey, 4.2-4.4:1 against
# the tab's background (measured in the browser tests): the primary text colour instead.
TAB_TITLES_CSS = ("<style>.kit-tabs .widget-tab-bar li:not(.lm-mod-current),"
                  ".kit-tabs .widget-tab-bar li:not(.lm-mod-current) *"
                  "{color: var(--jp-ui-font-color1) !important;}</style>")


class AgentExplorer(KitWidget):
    """Commands for the guest agent, and the guest's processes, files and shell."""

    def __init__(self, guest: Guest | str) -> None:
        super().__init__("agent explorer")
        self.guest = resolve_guest(guest)
        self.last_result: RunResult | None = None
        self.form = CommandForm(AGENT_COMMANDS, self._execute, "the guest agent")
        self.form.send_button.on_click(
            self._callback("sending a guest-agent command", self.form.submit))
        self.tabs = widgets.Tab(children=[self.form.box, self._processes_page(),
                                          self._files_page(), self._run_page()])
        self.tabs.titles = ("commands", "processes", "files", "run a command")
        self.tabs.add_class("kit-tabs")
        self._set_body(
            widgets.HTML(f"<b>Guest agent explorer: the OS inside {escape(self.guest.name)}"
                         "</b> <small>(qemu-ga, a program in the guest, answering over a "
                         "virtio serial port)</small>" + TAB_TITLES_CSS),
            self.tabs,
        )

    def _execute(self, command: str, arguments: dict[str, Any]) -> Any:
        return self.guest.agent(command, arguments)

    # -- pages -----------------------------------------------------------------

    def _processes_page(self) -> widgets.VBox:
        self.ps_button = widgets.Button(description="list processes", icon="list")
        self.ps_view = widgets.HTML()
        self.ps_button.on_click(self._callback("listing processes", self.list_processes))
        return widgets.VBox([
            widgets.HTML("<small>The agent has no process list of its own: this runs "
                         f"<code>{' '.join(PS_COMMAND)}</code> in the guest.</small>"),
            self.ps_button, self.ps_view])

    def _files_page(self) -> widgets.VBox:
        self.path = widgets.Text(value="/etc", description="path",
                                 layout=widgets.Layout(width="30em"))
        self.list_button = widgets.Button(description="list folder", icon="folder-open")
        self.read_button = widgets.Button(description="read file", icon="file")
        self.files_view = widgets.HTML()
        self.list_button.on_click(self._callback("listing a folder", self.list_folder))
        self.read_button.on_click(self._callback("reading a file", self.read_file))
        return widgets.VBox([
            widgets.HBox([self.path, self.list_button, self.read_button]),
            widgets.HTML("<small>list: <code>ls -la</code> in the guest; read: the agent's "
                         "guest-file-open, guest-file-read (base64), guest-file-close."
                         "</small>"),
            self.files_view])

    def _run_page(self) -> widgets.VBox:
        self.command_line = widgets.Text(value="uname -a", description="command",
                                         layout=widgets.Layout(width="30em"))
        self.run_button = widgets.Button(description="run", icon="play")
        self.run_view = widgets.HTML()
        run = self._callback("running a command", self.run_command)
        self.run_button.on_click(run)
        on_enter(self.command_line, run)
        return widgets.VBox([
            widgets.HBox([self.command_line, self.run_button]),
            widgets.HTML("<small>Runs under the guest's <code>/bin/sh -c</code> through "
                         "guest-exec; no terminal, so nothing interactive.</small>"),
            self.run_view])

    # -- actions (each a button) -------------------------------------------------------

    def list_processes(self) -> None:
        result = self._run(PS_COMMAND)
        self.ps_view.value = show_result(result)

    def list_folder(self) -> None:
        result = self._run(["ls", "-la", _path(self.path.value)])
        self.files_view.value = show_result(result)

    def read_file(self) -> None:
        path = _path(self.path.value)
        self.files_view.value = ""
        data, cut = read_guest_file(self.guest, path)
        note = f" (only the first {len(data)} bytes)" if cut else f" ({len(data)} bytes)"
        self.files_view.value = f"<b>{escape(path)}</b>{note}" + pre(
            data.decode("utf-8", "replace"), "24em")

    def run_command(self) -> None:
        line = self.command_line.value.strip()
        if not line:
            raise InvalidInput("there is no command to run.", hint="Type one, e.g. uname -a.")
        self.run_view.value = show_result(self._run(line))

    def _run(self, command: str | list[str]) -> RunResult:
        self.last_result = self.guest.run(command)
        return self.last_result
