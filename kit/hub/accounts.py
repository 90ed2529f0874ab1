"""Each learner and the instructor: a system user of their own.

Why real users, not one shared account: then the operating system itself
keeps learners apart.  A learner's guests are QEMU processes of that user,
their sockets and guest records are in a folder only that user may enter,
their lesson copies and progress are their own files; another learner can
neither signal those processes nor open those files.

Making accounts is idempotent: an account that exists is used as it is
(its password is never touched), one that is missing is made with
``useradd`` and a first password, written to a root-only file for the
instructor to hand out.  The instructor is put in the instructors' group,
which may read the learners' progress (:mod:`kit.hub.progress`) and nothing
else of theirs.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kit.core.errors import InvalidInput, SetupError
from kit.hub.classfile import ClassFile
from kit.hub.places import HubPlaces

log = logging.getLogger(__name__)

LOGIN_DEFS = Path("/etc/login.defs")
HOME_MODE = 0o700  # Debian's useradd makes 0755 homes: every learner could read every other's


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


def account(name: str) -> Account:
    """The system user ``name``; :class:`InvalidInput` if there is none."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InvalidInput(f"there is no user {name!r} on this system.",
                           hint="Make the account (useradd), or set create = true in the "
                           "class file's [learners] so the hub makes it.") from None
    return Account(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def check(klass: ClassFile) -> None:
    """Refuse, before anything is made, a class whose accounts cannot be used.

    An unknown user (with ``create = false``) and an existing *system*
    account (a service's, such as ``postgres``: a learner's server would run
    as that service) are both errors.
    """
    first = first_uid()
    for name in klass.members:
        try:
            found = pwd.getpwnam(name)
        except KeyError:
            if not klass.create_users:
                raise InvalidInput(
                    f"class file {klass.path}: {name!r} is an unknown user: there is no such "
                    "account on this system, and [learners] create = false.",
                    hint=f"Make the account first (useradd --create-home {name}), set create = "
                    "true, or fix the name.") from None
            continue
        if found.pw_uid < first:
            raise InvalidInput(
                f"class file {klass.path}: {name!r} is a system account (uid {found.pw_uid}), "
                "not a person's.",
                hint="Give that person another name: their server would run as that service.")


def ensure(klass: ClassFile, places: HubPlaces) -> dict[str, Account]:
    """Every member's account, made if missing; the instructor in the instructors' group."""
    check(klass)
    _ensure_group(klass.group)
    made = [name for name in klass.members if not _exists(name)]
    for name in made:
        _useradd(name)
    if made:
        _set_first_passwords(made, places.passwords_file)
    accounts = {name: account(name) for name in klass.members}
    for member in accounts.values():
        _close_home(member)
    _join_group(klass.instructor, klass.group)
    return accounts


def first_uid() -> int:
    """The lowest uid of a person's account (``UID_MIN`` in /etc/login.defs, else 1000)."""
    try:
        for line in LOGIN_DEFS.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "UID_MIN" and fields[1].isdigit():
                return int(fields[1])
    except OSError:
        pass
    return 1000


def group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise SetupError(f"there is no group {name!r}.",
                         hint="python -m kit hub serve makes it; or: groupadd --system "
                         f"{name}") from None


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        _run(["groupadd", "--system", name], f"make the group {name}")


def _useradd(name: str) -> None:
    _run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash",
          "--comment", "a learner of the kit's class", name], f"make the account {name}")
    log.info("made the account %s", name)


def _join_group(name: str, group: str) -> None:
    if name not in grp.getgrnam(group).gr_mem:
        _run(["usermod", "--append", "--groups", group, name], f"put {name} in {group}")


def _close_home(member: Account) -> None:
    """A home only its owner may enter: lesson copies and the image cache are there."""
    try:
        mode = member.home.stat().st_mode & 0o777
    except FileNotFoundError:
        raise SetupError(f"{member.name}'s home {member.home} does not exist.",
                         hint=f"Make it: mkhomedir_helper {member.name} (or recreate the "
                         "account with useradd --create-home).") from None
    if mode & 0o077:
        member.home.chmod(HOME_MODE)


def _set_first_passwords(names: list[str], record: Path) -> None:
    """A random first password for each new account, for the instructor to hand out."""
    passwords = {name: secrets.token_urlsafe(9) for name in names}
    lines = "".join(f"{name}:{word}\n" for name, word in passwords.items())
    _run(["chpasswd"], "set the new accounts' first passwords", stdin=lines)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a") as out:
        out.write("".join(f"{name} {word}\n" for name, word in passwords.items()))


def first_passwords(record: Path) -> dict[str, str]:
    """The first passwords the hub gave (the latest for each name), from its root-only record."""
    found = {}
    try:
        for line in record.read_text().splitlines():
            name, _, word = line.partition(" ")
            if word:
                found[name] = word
    except FileNotFoundError:
        pass
    return found


def _run(command: list[str], what: str, stdin: str | None = None) -> None:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)
    except FileNotFoundError:
        raise SetupError(f"cannot {what}: {command[0]} is not installed.",
                         hint="Install the passwd package (apt-get install passwd).") from None
    if done.returncode != 0:
        raise SetupError(f"cannot {what}.", command=command, log=done.stderr,
                         exit_code=done.returncode,
                         hint="The hub makes accounts as root: run it with sudo.")
