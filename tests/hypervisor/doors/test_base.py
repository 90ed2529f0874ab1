"""The door protocol: a new kind of door is one class, and the guest and the diagram use it."""

from __future__ import annotations

import dataclasses

import pytest

import kit
from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import doors, qemu
from kit.hypervisor.doors import Door, Opening
from kit.view import diagram, picture


class BellDoor(Door):
    """A made-up door: rings a bell on the host; the guest hears it on a serial port."""

    kind = "bell"

    def __init__(self, guest: kit.Guest) -> None:
        super().__init__(guest)
        self.rung = False
        self.states: list[GuestState] = []

    def configure(self, spec: qemu.MachineSpec) -> qemu.MachineSpec:
        return dataclasses.replace(spec, kernel_args=(*spec.kernel_args, "kit.bell=1"))

    def on_state(self, state: GuestState) -> None:
        self.states.append(state)

    def openings(self) -> tuple[Opening, ...]:
        return (Opening(self.kind, "1", self.rung, "a bell on the host", "ttyS1",
                        "the bell is " + ("ringing" if self.rung else "quiet"),
                        guest_can_write=False),)


@pytest.fixture
def with_bell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doors, "KINDS", (*doors.KINDS, BellDoor))


def test_every_guest_gets_one_door_of_each_kind(with_bell: None) -> None:
    g = kit.Guest("bell-1")
    assert [type(door) for door in g.doors] == list(doors.KINDS)
    assert g.doors.get(BellDoor).guest is g
    # nothing else declared; the internet door is always there, closed
    assert [o.kind for o in g.doors.openings()] == ["internet", "bell"]


def test_a_new_door_adds_its_part_to_qemu(with_bell: None, image: images.GuestImage) -> None:
    g = kit.Guest("bell-2")
    spec = qemu.MachineSpec(name=g.name, image=image, memory_mb=128, cpus=1, accel="tcg",
                            tsc_khz=None)
    assert "kit.bell=1" in g.doors.configure(spec).kernel_args


def test_a_new_door_is_drawn_without_touching_the_diagram(with_bell: None) -> None:
    g = kit.Guest("bell-3")
    shot = picture.guest_snapshot(g)
    assert [o.kind for o in shot.other_doors] == ["internet", "bell"]
    host = picture.HostSnapshot("h", "cpu", 2, 1000, 500, "tcg", "TCG", "broken")
    svg = diagram.render_svg(diagram.layers(picture.Snapshot(host, (shot,)), graph_id="g"))
    assert "bell door" in svg and "the bell is quiet" in svg


def test_a_door_of_an_unknown_kind_is_refused_by_name() -> None:
    g = kit.Guest("bell-4")
    with pytest.raises(LookupError, match="BellDoor"):
        g.doors.get(BellDoor)
