"""Each member a system user of their own: checked before anything is made."""

from __future__ import annotations

import pwd
from pathlib import Path

import pytest

from kit.core.errors import InvalidInput
from kit.hub import accounts
from kit.hub.classfile import ClassFile

GHOST = "kit-hub-nosuchuser"


def a_class(*learners: str, create: bool = True) -> ClassFile:
    return ClassFile(Path("/srv/class.toml"), "nobody", learners, create_users=create)


def test_an_unknown_user_stops_a_class_that_makes_no_accounts() -> None:
    with pytest.raises(InvalidInput, match=f"'{GHOST}' is an unknown user") as info:
        accounts.check(a_class(GHOST, create=False))
    assert "useradd --create-home" in (info.value.hint or "")


def test_a_missing_user_is_fine_when_the_hub_makes_accounts() -> None:
    accounts.check(a_class(GHOST))


def test_a_services_account_is_no_learner() -> None:
    daemon = pwd.getpwnam("daemon")  # uid 1 on Debian
    with pytest.raises(InvalidInput, match=f"system account \\(uid {daemon.pw_uid}\\)"):
        accounts.check(a_class("daemon"))


def test_people_start_at_uid_min(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defs = tmp_path / "login.defs"
    defs.write_text("# comment\nUID_MIN\t\t\t 2000\nUID_MAX 60000\n")
    monkeypatch.setattr(accounts, "LOGIN_DEFS", defs)
    assert accounts.first_uid() == 2000
    monkeypatch.setattr(accounts, "LOGIN_DEFS", tmp_path / "none")
    assert accounts.first_uid() == 1000


def test_first_passwords_are_read_back_latest_first(tmp_path: Path) -> None:
    record = tmp_path / "passwords"
    record.write_text("alice one\nbob two\nalice three\n")
    assert accounts.first_passwords(record) == {"alice": "three", "bob": "two"}
    assert accounts.first_passwords(tmp_path / "none") == {}
