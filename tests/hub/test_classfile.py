"""The class file: one file says who is in the class and what each may use; bad ones stop."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from kit.core.errors import InvalidInput
from kit.hub import classfile
from kit.hub.classfile import Limits
from kit.infrastructure.limits import QEMU_OVERHEAD_MB


def example() -> dict[str, Any]:
    return tomllib.loads(classfile.EXAMPLE)


def test_the_example_is_a_valid_class() -> None:
    klass = classfile.parse(example())
    assert klass.instructor == "teacher"
    assert klass.learners == ("alice", "bob", "carol")
    assert klass.members == ("teacher", "alice", "bob", "carol")
    assert (klass.ip, klass.port, klass.firewall) == ("127.0.0.1", 8000, True)
    assert klass.limits_for("bob") == Limits(3, 512, 2.0, 1024)  # 2 CPUs: lessons 1, 4
    assert klass.limits_for("alice").guests == 5  # [limits.alice]
    assert klass.limits_for("alice").guest_memory_mb == 512  # the rest from [limits]


def test_the_smallest_class_file_takes_the_defaults() -> None:
    klass = classfile.parse({"instructor": {"name": "t"}, "learners": {"names": ["a"]}})
    assert (klass.ip, klass.port, klass.group, klass.create_users) == (
        "127.0.0.1", 8000, "kit-instructors", True)
    assert klass.limits == Limits()


def test_a_servers_memory_is_its_guests_qemus_and_jupyter() -> None:
    limits = Limits(guests=2, guest_memory_mb=256, cpus=1, notebook_memory_mb=1024)
    assert limits.server_memory_mb == 256 + 2 * QEMU_OVERHEAD_MB + 1024


def test_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "class.toml"
    path.write_text(classfile.EXAMPLE)
    assert classfile.read(path).path == path


BAD = [  # (a change to the example, what the error says)
    ({"limits": {"dave": {"guests": 2}}}, "unknown user: 'dave' is not in the class"),
    ({"limits": {"guests": "lots"}}, "limits.guests = 'lots' is not a number"),
    ({"limits": {"guest_memory_mb": "512"}}, "limits.guest_memory_mb = '512' is not a number"),
    ({"limits": {"guests": True}}, "limits.guests = True is not a number"),
    ({"limits": {"guests": 2.5}}, "limits.guests = 2.5 is not a number"),
    ({"limits": {"cpus": "one"}}, "limits.cpus = 'one' is not a number"),
    ({"limits": {"cpus": 0}}, "limits.cpus = 0 is not possible here"),
    ({"limits": {"guests": 0}}, "limits.guests = 0 is too small"),
    ({"limits": {"alice": {"cpus": "x"}}}, "limits.alice.cpus = 'x' is not a number"),
    ({"limits": {"gests": 3}}, "[limits] gests is not something"),
    ({"hub": {"port": "8000"}}, "hub.port = '8000' is not a port number"),
    ({"hub": {"port": 70000}}, "hub.port = 70000 is not a port number"),
    ({"hub": {"ip": "localhost:8000"}}, "is not an IP address"),
    ({"hub": {"firewall": "yes"}}, "hub.firewall = 'yes' is not true or false"),
    ({"learners": {"names": []}}, "learners.names must be a list"),
    ({"learners": {"names": ["alice", "alice"]}}, "names alice more than once"),
    ({"learners": {"names": ["Alice"]}}, "'Alice' cannot be a user name"),
    ({"learners": {"names": ["root"]}}, "no one works in a class as root"),
    ({"learners": {"names": ["teacher"]}}, "both the instructor and a learner"),
    ({"instructor": {"name": None}}, "instructor.name is missing"),
    ({"classroom": {"size": 3}}, "[classroom] is not something"),
    ({"port": 8000}, "port (outside any table) is not something"),
]


@pytest.mark.parametrize(("change", "said"), BAD, ids=[said for _, said in BAD])
def test_a_bad_class_file_says_what_to_fix(change: dict[str, Any], said: str) -> None:
    data = example()
    for table, values in change.items():
        if isinstance(values, dict):
            data.setdefault(table, {}).update(values)
            data[table] = {k: v for k, v in data[table].items() if v is not None}
        else:
            data[table] = values
    with pytest.raises(InvalidInput, match="what to do") as info:
        classfile.parse(data, Path("/srv/class.toml"))
    assert said in str(info.value)
    assert "class file /srv/class.toml" in str(info.value)
    assert info.value.hint


def test_a_missing_or_broken_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="there is no class file"):
        classfile.read(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[hub\nport = 8000\n")
    with pytest.raises(InvalidInput, match=r"not valid TOML.*line 1"):
        classfile.read(broken)
