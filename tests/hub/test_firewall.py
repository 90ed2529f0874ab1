"""The firewall table: each learner's sockets answer that learner and root, whatever the port.

Connections between real users through it are in test_class_on_hub.py.
"""

from __future__ import annotations

from kit.hub import firewall


def test_one_table_per_hub_named_by_its_port() -> None:
    assert firewall.table_name(8000) == "kit_hub_8000"


def test_each_learner_is_marked_and_guarded() -> None:
    text = firewall.ruleset("kit_hub_8000", [1001, 1002, 1001])
    assert text.count("ct mark set 1001") == 1
    assert "meta skuid 1002 ct mark != { 0, 1002 } drop" in text
    assert "meta skuid 0 ct mark set 0" in text  # root (the hub's proxy) gets through
    assert "ct mark set 0xffffffff" in text  # anyone else is someone else
    assert all("oif lo" in line for line in text.splitlines() if "ct " in line)


def test_a_new_ruleset_replaces_the_old_in_one_transaction() -> None:
    lines = firewall.ruleset("kit_hub_8000", [1001]).splitlines()
    assert lines[:2] == ["table inet kit_hub_8000 {}", "delete table inet kit_hub_8000"]
