"""The QMP and guest-agent explorers: one JSON protocol at two layers, on a real guest."""

from __future__ import annotations

import json

import pytest

import kit
from kit.core import incidents
from kit.core.errors import InvalidInput
from kit.guestos import images
from kit.hypervisor.guest import RunResult
from kit.widgets import AgentExplorer, QMPExplorer
from kit.widgets.agent_explorer import show_result
from kit.widgets.command_form import parse_arguments, request_of
from kit.widgets.qmp_explorer import format_log


def expect_recorded(match: str) -> None:
    """The error was recorded for kit.raise_recorded_errors(); then forget it."""
    with pytest.raises(incidents.RecordedErrors, match=match):
        kit.raise_recorded_errors()


# -- without QEMU -------------------------------------------------------------------


def test_arguments_are_a_json_object_or_nothing() -> None:
    assert parse_arguments("") == {}
    assert parse_arguments('  {"up": false}\n') == {"up": False}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_arguments("{'single': 'quotes'}")
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        parse_arguments("[1, 2]")


def test_request_is_shown_as_it_goes_over_the_wire() -> None:
    assert request_of("query-status", {}) == {"execute": "query-status"}
    assert request_of("set_link", {"up": False}) == {"execute": "set_link",
                                                     "arguments": {"up": False}}


def test_log_has_arrows_and_one_line_per_message() -> None:
    log = format_log([
        {"time": 0, "to": "qemu", "execute": "stop", "arguments": {}},
        {"time": 0, "from": "qemu", "return": {}},
        {"time": 0, "from": "qemu", "error": "GenericError"},
        {"time": 0, "from": "qemu", "event": "STOP", "data": {}},
    ])
    lines = log.splitlines()
    assert len(lines) == 4
    assert "← QEMU" in lines[3] and '"event": "STOP"' in lines[3]
    assert "→ QEMU" in lines[0] and '"execute": "stop"' in lines[0]
    assert "← QEMU" in lines[1] and "GenericError" in lines[2]
    assert format_log([]) == "(no QMP traffic yet)"


def test_run_result_shows_exit_code_and_both_streams() -> None:
    html = show_result(RunResult(["ls"], 2, "out<put>", "no such file"))
    assert "exit code 2" in html and "failure" in html
    assert "out&lt;put&gt;" in html and "no such file" in html


def test_sending_to_a_guest_that_is_not_running_is_shown_and_recorded(guest_name: str) -> None:
    qmp = QMPExplorer(guest_name)
    agent = AgentExplorer(guest_name)
    try:
        qmp.form.send_button.click()
        assert "its hypervisor is not running" in qmp.banner.text
        assert "an error" in qmp.form.reply_view.value
        expect_recorded("not running")
        agent.run_button.click()
        assert "cannot run a command in" in agent.banner.text
        expect_recorded("cannot run a command")
    finally:
        qmp.close()
        agent.close()


def test_bad_json_arguments_are_explained(guest_name: str) -> None:
    qmp = QMPExplorer(guest_name)
    try:
        qmp.form.arguments.value = "{up: false}"
        qmp.form.send_button.click()
        assert "not valid JSON" in qmp.banner.text and "double quotes" in qmp.banner.text
        expect_recorded("not valid JSON")
    finally:
        qmp.close()


def test_choosing_a_command_fills_in_example_arguments(guest_name: str) -> None:
    qmp = QMPExplorer(guest_name)
    try:
        qmp.form.command.value = "human-monitor-command"
        assert json.loads(qmp.form.arguments.value) == {"command-line": "info registers"}
        qmp.form.command.value = "query-something-new"
        assert "sent exactly as typed" in qmp.form.about.value
    finally:
        qmp.close()


@pytest.mark.parametrize("line", ["", "   ", "\t\n"])
def test_an_empty_command_is_refused_before_the_guest_is_asked(guest_name: str,
                                                                line: str) -> None:
    agent = AgentExplorer(guest_name)  # never started: the empty line is the first problem
    try:
        agent.command_line.value = line
        agent.run_button.click()
        assert "there is no command to run" in agent.banner.text
        assert "uname -a" in agent.banner.text  # what to type instead
        assert agent.last_result is None
        expect_recorded("no command")
    finally:
        agent.close()


@pytest.mark.parametrize("path", ["etc", "etc/hostname", "~/notes", "./x", ""])
def test_a_path_that_is_not_a_full_guest_path_is_refused(guest_name: str, path: str) -> None:
    agent = AgentExplorer(guest_name)
    try:
        agent.path.value = path
        for button in (agent.list_button, agent.read_button):
            button.click()
            assert "is not a full path in the guest" in agent.banner.text
            assert "Start it with '/'" in agent.banner.text
            expect_recorded("not a full path")
        assert agent.last_result is None and agent.files_view.value == ""
    finally:
        agent.close()


# -- with a real guest --------------------------------------------------------------


@pytest.mark.guest
def test_explorers_talk_to_a_real_guest(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name) as g:
        qmp = QMPExplorer(g)
        agent = AgentExplorer(g)
        try:
            check_qmp(qmp, g)
            check_agent(agent, guest_name)
        finally:
            qmp.close()
            agent.close()


def check_qmp(qmp: QMPExplorer, g: kit.Guest) -> None:
    assert qmp.form.command.value == "query-status"
    qmp.form.send_button.click()
    assert qmp.form.last_reply["status"] == "running"
    assert "&quot;execute&quot;: &quot;query-status&quot;" in qmp.form.request_view.value
    assert "&quot;return&quot;" in qmp.form.reply_view.value
    assert "query-status" in qmp.log_view.value and "← QEMU" in qmp.log_view.value

    qmp.form.command.value = "query-kvm"
    qmp.form.send_button.click()
    assert g.accelerator is not None
    assert qmp.form.last_reply["enabled"] == (g.accelerator.name == "kvm")

    qmp.form.command.value = "no-such-command"
    qmp.form.send_button.click()
    assert "QEMU refused no-such-command: CommandNotFound" in qmp.banner.text
    assert "query-commands" in qmp.banner.text  # the fix: how to list the real ones
    expect_recorded("no-such-command")


def check_agent(agent: AgentExplorer, name: str) -> None:
    agent.form.send_button.click()
    assert agent.form.last_reply["kernel-release"]
    agent.form.command.value = "guest-get-host-name"
    agent.form.send_button.click()
    assert agent.form.last_reply == {"host-name": name}

    agent.ps_button.click()
    assert "exit code 0" in agent.ps_view.value and "qemu-ga" in agent.ps_view.value

    agent.path.value = "/etc"
    agent.list_button.click()
    assert "hostname" in agent.files_view.value
    agent.path.value = "/etc/hostname"
    agent.read_button.click()
    assert f"{name}\n" in agent.files_view.value and "(" in agent.files_view.value

    agent.command_line.value = "echo out; echo err >&2; exit 3"
    agent.run_button.click()
    assert agent.last_result is not None
    assert (agent.last_result.exit_code, agent.last_result.stdout,
            agent.last_result.stderr) == (3, "out\n", "err\n")
    assert "exit code 3" in agent.run_view.value

    agent.path.value = "/no/such/file"
    agent.read_button.click()
    assert "guest-file-open" in agent.banner.text
    expect_recorded("guest-file-open")

    check_agent_bad_input(agent)


def check_agent_bad_input(agent: AgentExplorer) -> None:
    """What a learner mistypes, on a live guest: refused first, or the guest's own answer."""
    before = agent.last_result
    agent.command_line.value = "   "
    agent.run_button.click()
    assert "there is no command to run" in agent.banner.text
    assert agent.last_result is before  # nothing was sent
    expect_recorded("no command")

    agent.path.value = "etc"  # relative: refused before the agent is asked
    agent.list_button.click()
    assert "is not a full path in the guest" in agent.banner.text
    assert agent.last_result is before
    expect_recorded("not a full path")

    # A relative program is the guest shell's business: it says so, with exit code 127.
    agent.command_line.value = "./no-such-program"
    agent.run_button.click()
    assert agent.last_result is not None and agent.last_result.exit_code == 127
    assert "./no-such-program: not found" in agent.last_result.stderr
    assert "exit code 127" in agent.run_view.value and "not found" in agent.run_view.value

    agent.path.value = "/etc/host\nname"  # a line break: one path, which is not there
    agent.read_button.click()
    assert "No such file or directory" in agent.banner.text
    expect_recorded("guest-file-open")
