"""The class file: who is in the class, and what each learner may use.

One TOML file says everything a class hub needs: :data:`EXAMPLE` (which
``python -m kit hub example`` prints) is one, with a comment on each line.

Why one file: a class is set up once, by one person, before the lesson; the
file is what they hand to the next instructor.  Why so strict: a typo
(``gests = 3``) or a limit that is not a number must stop the hub before it
starts, with the line to fix, not give a class of thirty unlimited servers.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kit.core.errors import InvalidInput
from kit.infrastructure.limits import QEMU_OVERHEAD_MB

USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")  # Debian's useradd, without the '$'
DEFAULT_GROUP = "kit-instructors"
DEFAULT_PORT = 8000
DEFAULT_IP = "127.0.0.1"

TABLES: dict[str, tuple[str, ...]] = {
    "hub": ("ip", "port", "firewall"),
    "instructor": ("name", "group"),
    "learners": ("names", "create"),
    "limits": ("guests", "guest_memory_mb", "cpus", "notebook_memory_mb"),
}

EXAMPLE = """\
# A class on this server: python -m kit hub serve THIS-FILE (as root)

[hub]
ip = "127.0.0.1"       # where the hub listens: this machine only (the default)
port = 8000
firewall = true        # each learner's forwards answer that learner alone (nftables)

[instructor]
name = "teacher"       # a hub admin, who may read every learner's progress
group = "kit-instructors"

[learners]
names = ["alice", "bob", "carol"]
create = true          # make missing accounts (useradd); false: they must exist

[limits]               # for each learner (and the instructor)
guests = 3             # guests running at once
guest_memory_mb = 512  # the memory of those guests together
cpus = 2               # CPU time for the learner's whole server, in CPUs (lessons 1
                       # and 4 boot guests of 2 vCPUs; the kit refuses more vCPUs than this)
notebook_memory_mb = 1024  # for their Jupyter server and kernels

[limits.alice]         # one person's own limits, where they differ
guests = 5
"""


@dataclass(frozen=True)
class Limits:
    """What one person's server may use."""

    guests: int = 3
    guest_memory_mb: int = 512
    cpus: float = 2.0  # lessons 1 and 4 boot guests of 2 vCPUs, refused under a smaller quota
    notebook_memory_mb: int = 1024

    @property
    def server_memory_mb(self) -> int:
        """The memory limit of the whole server: guests, QEMU's own share per guest, Jupyter."""
        return self.guest_memory_mb + self.guests * QEMU_OVERHEAD_MB + self.notebook_memory_mb


@dataclass(frozen=True)
class ClassFile:
    """A class, as its file describes it (checked: every field here is valid)."""

    path: Path
    instructor: str
    learners: tuple[str, ...]
    ip: str = DEFAULT_IP
    port: int = DEFAULT_PORT
    firewall: bool = True
    group: str = DEFAULT_GROUP
    create_users: bool = True
    limits: Limits = Limits()
    own_limits: Mapping[str, Limits] = field(default_factory=dict)

    @property
    def members(self) -> tuple[str, ...]:
        """Everyone who may log in: the instructor first, then the learners."""
        return (self.instructor, *self.learners)

    def limits_for(self, user: str) -> Limits:
        return self.own_limits.get(user, self.limits)


def read(path: Path) -> ClassFile:
    """The class file at ``path``, checked; :class:`InvalidInput` says what to fix."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"there is no class file at {path}.",
                           hint="Write one (python -m kit hub example > class.toml prints a "
                           "start), then pass its path.") from None
    except OSError as error:
        raise InvalidInput(f"the class file {path} cannot be read: {error.strerror}.",
                           hint="Check its permissions.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"the class file {path} is not valid TOML: {error}.",
                           hint="Fix that line; python -m kit hub example prints a valid "
                           "class file.") from None
    return parse(data, path)


def parse(data: Mapping[str, Any], path: Path = Path("class.toml")) -> ClassFile:
    """A class from the file's tables (split from :func:`read` for the tests)."""
    where = _Where(path)
    where.only_known(data, "", TABLES)
    tables = {name: where.table(data, name) for name in TABLES}
    hub, instructor, learners = tables["hub"], tables["instructor"], tables["learners"]
    for name in ("hub", "instructor", "learners"):
        where.only_known(tables[name], name, TABLES[name])
    names = where.user_list(learners.get("names"), "learners.names")
    leader = where.user(instructor.get("name"), "instructor.name")
    if leader in names:
        raise where.error(f"{leader!r} is both the instructor and a learner.",
                          "The instructor is not a learner: give them another account.")
    limits = where.limits(tables["limits"], "limits", Limits())
    own = where.own_limits(tables["limits"], limits, (leader, *names))
    return ClassFile(
        path=path, instructor=leader, learners=names,
        ip=where.address(hub.get("ip", DEFAULT_IP)),
        port=where.port(hub.get("port", DEFAULT_PORT)),
        firewall=where.flag(hub.get("firewall", True), "hub.firewall"),
        group=where.user(instructor.get("group", DEFAULT_GROUP), "instructor.group"),
        create_users=where.flag(learners.get("create", True), "learners.create"),
        limits=limits, own_limits=own)


@dataclass(frozen=True)
class _Where:
    """Checks of one class file's values, each error naming the file and the key."""

    path: Path

    def error(self, message: str, hint: str) -> InvalidInput:
        return InvalidInput(f"class file {self.path}: {message}", hint=hint)

    def table(self, data: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.error(f"{name} must be a table ([{name}]), not {value!r}.",
                             f"Write [{name}] on a line of its own, then its keys.")
        return value

    def only_known(self, table: Mapping[str, Any], name: str, known: Any) -> None:
        for key, value in table.items():
            if key in known or (name == "limits" and isinstance(value, dict)):
                continue
            place = (f"[{name}] {key}" if name else f"[{key}]" if isinstance(value, dict)
                     else f"{key} (outside any table)")
            raise self.error(f"{place} is not something a class file can say.",
                             f"Known{f' in [{name}]' if name else ' tables'}: "
                             f"{', '.join(known)}.")

    def user(self, value: object, key: str) -> str:
        if value is None:
            raise self.error(f"{key} is missing.", f"Add it, e.g. {key} = \"teacher\".")
        if not isinstance(value, str) or not USER_PATTERN.match(value):
            raise self.error(f"{key} = {value!r} cannot be a user name on this system.",
                             "Use 1 to 32 characters: lower-case letters, digits, '_' and '-', "
                             "starting with a letter or '_'.")
        if value == "root":
            raise self.error(f"{key} = 'root': no one works in a class as root.",
                             "Give them an account of their own.")
        return value

    def user_list(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(f"{key} must be a list of user names, not {value!r}.",
                             f'For example {key} = ["alice", "bob"].')
        names = tuple(self.user(item, key) for item in value)
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise self.error(f"{key} names {', '.join(twice)} more than once.",
                             "List each learner once.")
        return names

    def own_limits(self, table: Mapping[str, Any], base: Limits,
                   members: tuple[str, ...]) -> dict[str, Limits]:
        own = {}
        for name, value in table.items():
            if not isinstance(value, dict):
                continue
            if name not in members:
                raise self.error(
                    f"[limits.{name}] is for an unknown user: {name!r} is not in the class.",
                    f"Add {name!r} to learners.names, or fix the name (the class: "
                    f"{', '.join(members)}).")
            own[name] = self.limits(value, f"limits.{name}", base)
        return own

    def limits(self, table: Mapping[str, Any], name: str, base: Limits) -> Limits:
        self.only_known({k: v for k, v in table.items() if not isinstance(v, dict)}, name,
                        TABLES["limits"])
        values: dict[str, Any] = {}
        for key, minimum in (("guests", 1), ("guest_memory_mb", 64),
                             ("notebook_memory_mb", 256)):
            if key in table:
                values[key] = self.whole(table[key], f"{name}.{key}", minimum)
        if "cpus" in table:
            values["cpus"] = self.cpus(table["cpus"], f"{name}.cpus")
        return replace(base, **values)

    def whole(self, value: object, key: str, minimum: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"{key} = {value!r} is not a number.",
                             f"Write a whole number without quotes, e.g. {key.split('.')[-1]} "
                             f"= {getattr(Limits(), key.split('.')[-1])}.")
        if value < minimum:
            raise self.error(f"{key} = {value} is too small: at least {minimum}.",
                             f"Give {key} {minimum} or more.")
        return value

    def cpus(self, value: object, key: str) -> float:
        host = os.cpu_count() or 1
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(f"{key} = {value!r} is not a number.",
                             "Write a number of CPUs without quotes, e.g. cpus = 1 or 0.5.")
        if not 0 < value <= host:
            raise self.error(f"{key} = {value} is not possible here: this host has {host} "
                             "CPUs.", f"Give a number above 0 and at most {host}.")
        return float(value)

    def port(self, value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
            raise self.error(f"hub.port = {value!r} is not a port number.",
                             "Give a whole number from 1 to 65535, e.g. port = 8000.")
        return value

    def address(self, value: object) -> str:
        try:
            return str(ipaddress.ip_address(str(value)))
        except ValueError:
            raise self.error(f"hub.ip = {value!r} is not an IP address.",
                             'Use "127.0.0.1" (this machine only) or this server\'s own '
                             "address.") from None

    def flag(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"{key} = {value!r} is not true or false.",
                             f"Write {key.split('.')[-1]} = true or false, without quotes.")
        return value
