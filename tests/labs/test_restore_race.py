"""Cold boot against restore: medians and shares on made-up times, then one real race."""

from __future__ import annotations

import pytest

import kit
from kit.hypervisor import registry
from kit.labs import restore_race
from kit.labs.restore_race import RaceNames, RaceResult
from tests.conftest import our_qemu_pids


def test_medians_and_the_share_of_a_cold_boot() -> None:
    result = RaceResult(64, cold_s=(1.2, 1.0, 1.4), restore_s=(0.3, 0.2, 0.25),
                        restore_call_s=(0.4, 0.3, 0.35), snapshot_paused_s=0.1,
                        snapshot_mib=20.0)
    assert result.rounds == 3
    assert result.cold_median_s == pytest.approx(1.2)
    assert result.restore_median_s == pytest.approx(0.25)
    assert result.ratio == pytest.approx(0.25 / 1.2)


def test_a_race_names_its_guests_and_snapshot_from_its_prefix() -> None:
    names = RaceNames("l7-race")
    assert names.guests() == ("l7-race-source", "l7-race-cold", "l7-race-restore")
    assert names.snapshot == "l7-race"


def test_cleaning_up_nothing_is_fine() -> None:
    restore_race.clean_up("race-nothing")
    assert kit.snapshots() == []


@pytest.mark.guest
def test_a_real_race_times_both_kinds_and_leaves_nothing(image: object) -> None:
    before = our_qemu_pids()
    said: list[str] = []
    result = restore_race.race(2, memory_mb=64, prefix="race-test", progress=said.append)
    assert result.rounds == 2 and len(result.restore_s) == 2 == len(result.restore_call_s)
    assert all(value > 0 for value in (*result.cold_s, *result.restore_s))
    # the restore's call goes on after the agent's answer: the identity is refreshed
    assert all(call >= agent for agent, call in zip(result.restore_s, result.restore_call_s,
                                                     strict=True))
    assert result.snapshot_mib > 0 and result.snapshot_paused_s > 0
    assert said[0].startswith("saving a ready guest")
    assert any("cold boot" in text for text in said) and any("restore" in text for text in said)
    assert kit.snapshots() == [] and registry.guests() == []
    assert our_qemu_pids() <= before


@pytest.mark.guest
def test_a_race_that_fails_midway_still_deletes_its_snapshot(
        image: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, memory_mb: int) -> float:
        assert [snap.name for snap in kit.snapshots()] == ["race-broken"]  # saved by now
        raise kit.GuestError("the cold boot broke.", hint="(a test's own failure)")

    monkeypatch.setattr(restore_race, "cold_boot", broken)
    with pytest.raises(kit.GuestError, match="the cold boot broke"):
        restore_race.race(1, memory_mb=64, prefix="race-broken")
    assert kit.snapshots() == [] and registry.guests() == []
