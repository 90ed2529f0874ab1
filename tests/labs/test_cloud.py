"""The kit's cloud: real guests launched, described, read from inside, balanced, ended."""

from __future__ import annotations

import pytest

import kit
from kit.core.errors import InvalidInput
from kit.infrastructure.net import http_get
from kit.labs import cloud as kc
from tests.conftest import our_qemu_pids


def test_instance_types_respect_the_image_floor(image: kc.images.GuestImage) -> None:
    types = kc.instance_types()
    assert {"t.nano", "t.micro", "t.small"} <= set(types)
    assert all(t.memory_mb >= image.min_memory_mb for t in types.values())
    with pytest.raises(InvalidInput, match=r"t\.nano"):
        kc.instance_type("t.gigantic")


def test_capacity_names_each_limit_in_numbers() -> None:
    room = kc.Capacity(free_memory_mb=1000, user_memory_cap_mb=800, user_memory_used_mb=0,
                       user_guest_cap=4, user_guests=1, vcpu_budget=16, vcpus_used=0)
    micro = kc.InstanceType("t.micro", 128, 1)
    assert room.room_for(micro) == 3  # the guest cap is the tightest
    assert room.shortfalls(micro, 3) == []
    words = " ".join(room.shortfalls(kc.InstanceType("x", 900, 20), 1))
    assert "900 MiB" in words and "per-user cap is 800" in words and "20 vCPUs" in words


def test_a_launch_too_big_is_refused_before_anything_starts() -> None:
    cloud = kc.Cloud()
    before = our_qemu_pids()
    with pytest.raises(kc.InsufficientInstanceCapacity) as refused:
        cloud.run_instances(type="t.micro", count=1000)
    assert "Nothing was started" in refused.value.message and refused.value.hint
    assert "room for" in refused.value.hint
    assert cloud.instances() == [] and cloud.last_refusal is refused.value
    assert our_qemu_pids() == before and kit.guests() == []


@pytest.mark.parametrize("count", [0, -1, True, 2.5, "2", None])
def test_a_count_that_is_not_a_number_of_instances_is_refused(image: object,
                                                              count: object) -> None:
    cloud = kc.Cloud()
    before = our_qemu_pids()
    with pytest.raises(InvalidInput, match="is not a number of instances") as refused:
        cloud.run_instances(type="t.nano", count=count)  # type: ignore[arg-type]
    assert "count=2" in (refused.value.hint or "")
    assert cloud.instances() == [] and cloud.last_refusal is None
    assert our_qemu_pids() == before and kit.guests() == []


def test_a_name_prefix_that_makes_bad_names_is_refused() -> None:
    cloud = kc.Cloud()
    with pytest.raises(InvalidInput, match="cannot be a guest name"):
        cloud.run_instances(name_prefix="Web Servers")
    assert cloud.instances() == []


def test_an_unknown_instance_is_refused_and_the_cloud_lists_its_own() -> None:
    cloud = kc.Cloud()
    for action in (lambda: cloud.get("i-ffff"),
                   lambda: cloud.describe_instances(["i-ffff"]),
                   lambda: cloud.start_instances(["i-ffff"]),
                   lambda: cloud.stop_instances("i-ffff"),
                   lambda: cloud.terminate_instances(["i-ffff"])):
        with pytest.raises(InvalidInput, match="there is no instance 'i-ffff'") as refused:
            action()
        assert "Its instances are none" in (refused.value.hint or "")


def test_instance_ids_that_are_not_a_list_are_refused_in_words() -> None:
    with pytest.raises(InvalidInput):
        kc.Cloud().terminate_instances(7)  # type: ignore[arg-type]


def test_a_load_balancer_with_no_instances_is_refused() -> None:
    for nothing in ([], (), iter([])):
        with pytest.raises(InvalidInput, match="at least one instance") as refused:
            kc.LoadBalancer(nothing)
        assert "run_instances" in (refused.value.hint or "")


def test_a_load_balancer_given_a_name_is_refused_in_words() -> None:
    with pytest.raises(InvalidInput):
        kc.LoadBalancer("web1")  # type: ignore[arg-type]


@pytest.mark.guest
def test_launch_describe_metadata_balance_and_terminate(image: object) -> None:
    cloud = kc.Cloud()
    try:
        web = cloud.run_instances(type="t.nano", count=2, name_prefix="tcloud")
        rows = cloud.describe_instances()
        assert [r["state"] for r in rows] == ["running", "running"]
        assert len({r["instance id"] for r in rows}) == 2
        assert all(str(r["instance id"]).startswith("i-") for r in rows)
        for instance in web:
            # read from inside the guest, at EC2's metadata address
            assert instance.read_own_metadata("instance-id") == instance.id
            assert instance.read_own_metadata("instance-type") == "t.nano"
            assert http_get(instance.host_port, "/latest/meta-data/instance-id").strip() \
                == instance.id

        cloud.deploy_app()
        balancer = kc.LoadBalancer(web)
        report = balancer.spread(10)
        assert report.client_errors == 0 and report.mismatched == 0
        assert all(count >= 4 for count in report.answered.values()), report

        report = kc.LoadBalancer(web).spread(
            12, stop=web[1], stopper=lambda i: cloud.stop_instances([i.id]))
        assert report.client_errors == 0, report
        assert report.failovers >= 1 and web[1].id in report.marked_down
        assert web[1].state == "stopped" and web[0].state == "running"
        assert sum(report.answered.values()) == report.requests

        # One unknown id among real ones: refused as a whole, nothing is stopped.
        with pytest.raises(InvalidInput, match="there is no instance 'i-ffff'") as refused:
            cloud.terminate_instances([web[0].id, "i-ffff"])
        assert web[0].id in (refused.value.hint or "")
        assert web[0].state == "running" and web[0].guest.run("echo up").stdout == "up\n"

        cloud.terminate_instances([i.id for i in web])
        assert [r["state"] for r in cloud.describe_instances()] == ["terminated"] * 2
        # A balancer whose instances are all gone: every request is a client error, no crash.
        report = kc.LoadBalancer(web).spread(4)
        assert report.client_errors == report.requests and not any(report.answered.values())
        assert set(report.marked_down) == {i.id for i in web}
    finally:
        cloud.terminate_all()
    assert kit.guests() == []
