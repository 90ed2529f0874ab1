"""Choose or type a JSON command, send it, see request and reply: for QMP and the agent.

QMP (to the hypervisor) and the guest agent (to the guest OS) speak the same
JSON protocol, ``{"execute": ..., "arguments": {...}}`` answered by
``{"return": ...}``.  The two explorers share this form, which is itself the
lesson: one protocol, two layers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from kit.core.errors import InvalidInput
from kit.view.markup import escape, pre

Sender = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class Command:
    """A command worth trying, what it shows, and arguments to start from."""

    name: str
    about: str
    example: Mapping[str, Any] = field(default_factory=dict)


def parse_arguments(text: str) -> dict[str, Any]:
    """The arguments box as a JSON object; empty means no arguments."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"the arguments are not valid JSON: {error.msg} (line {error.lineno}, "
            f"column {error.colno}).",
            hint='Write a JSON object such as {"command-line": "info status"} '
            "(double quotes, no trailing comma), or leave the box empty.",
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"the arguments must be a JSON object, not {type(value).__name__}.",
            hint='Wrap them in braces with names: {"name": value}, or leave the box empty.',
        )
    return value


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def one_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def request_of(command: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The message as it goes over the wire."""
    message: dict[str, Any] = {"execute": command}
    if arguments:
        message["arguments"] = dict(arguments)
    return message


class CommandForm:
    """Combobox + arguments + send, and the request and reply side by side."""

    def __init__(self, commands: list[Command], send: Sender, target: str) -> None:
        self._commands = {c.name: c for c in commands}
        self._send = send
        self.last_reply: Any = None
        self.command = widgets.Combobox(
            options=[c.name for c in commands], value=commands[0].name if commands else "",
            placeholder="choose or type a command", ensure_option=False,
            description="command", layout=widgets.Layout(width="24em"))
        self.send_button = widgets.Button(description=f"send to {target}", icon="paper-plane",
                                          button_style="primary",
                                          layout=widgets.Layout(width="auto"))
        self.about = widgets.HTML()
        self.arguments = widgets.Textarea(
            placeholder='arguments as a JSON object, e.g. {"name": "value"}; empty for none',
            description="arguments", rows=3, layout=widgets.Layout(width="36em"))
        self.request_view = widgets.HTML(pre("(nothing sent yet)", "18em"))
        self.reply_view = widgets.HTML(pre("", "18em"))
        self.command.observe(lambda _: self._chosen(), names="value")
        self._chosen()
        column = widgets.Layout(flex="1 1 0", min_width="16em")
        self.box = widgets.VBox([
            widgets.HBox([self.command, self.send_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.about,
            self.arguments,
            widgets.HBox([
                widgets.VBox([widgets.HTML("<b>request</b>"), self.request_view], layout=column),
                widgets.VBox([widgets.HTML("<b>reply</b>"), self.reply_view], layout=column),
            ], layout=widgets.Layout(grid_gap="8px")),
        ])

    def _chosen(self) -> None:
        known = self._commands.get(self.command.value.strip())
        if known is None:
            self.about.value = "<small>not in the list: it is sent exactly as typed</small>"
            return
        self.about.value = f"<small>{escape(known.about)}</small>"
        self.arguments.value = to_json(dict(known.example)) if known.example else ""

    def submit(self) -> None:
        """Send the command; the reply (or the failure) appears beside the request."""
        name = self.command.value.strip()
        if not name:
            raise InvalidInput("no command to send.",
                               hint="Choose one from the list or type its name.")
        arguments = parse_arguments(self.arguments.value)
        self.request_view.value = pre(to_json(request_of(name, arguments)), "18em")
        self.reply_view.value = pre("(waiting…)", "18em")
        self.last_reply = None
        try:
            reply = self._send(name, arguments)
        except Exception:
            self.reply_view.value = pre("(an error, not a reply: see the message above)", "18em")
            raise
        self.last_reply = reply
        self.reply_view.value = pre(to_json({"return": reply}), "18em")
