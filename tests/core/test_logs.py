"""Logging: silent by default, and kit.trace() shows one guest's traffic or everyone's."""

from __future__ import annotations

import io
import logging

import pytest

import kit
from kit.core import logs


def test_the_kit_prints_nothing_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("kit.hypervisor.guest").warning("a shutdown step failed")
    assert capsys.readouterr().err == ""


def test_trace_shows_one_guests_messages_and_can_be_switched_off() -> None:
    out = io.StringIO()
    kit.trace("web1", stream=out)
    try:
        logs.log_message(logs.traffic_logger("web1"), "->", "qemu", {"execute": "stop"})
        logs.log_message(logs.traffic_logger("web2"), "->", "qemu", {"execute": "cont"})
    finally:
        kit.trace("web1", on=False)
    logs.log_message(logs.traffic_logger("web1"), "->", "qemu", {"execute": "quit"})
    text = out.getvalue()
    assert 'kit.trace.web1 -> qemu {"execute": "stop"}' in text
    assert "cont" not in text and "quit" not in text


def test_trace_of_every_guest() -> None:
    out = io.StringIO()
    kit.trace(stream=out)
    try:
        logs.log_message(logs.traffic_logger("a"), "<-", "agent", {"return": {}})
        logs.log_message(logs.traffic_logger("b"), "->", "agent", {"execute": "guest-ping"})
    finally:
        kit.trace(on=False)
    assert "kit.trace.a <- agent" in out.getvalue() and "kit.trace.b -> agent" in out.getvalue()
