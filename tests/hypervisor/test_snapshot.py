"""Snapshots on real guests: a machine saved whole, and guests started from it.

No mocks: QEMU saves the machine, QEMU loads it, and the guest agent inside
answers with the processes, files and uptime the snapshot holds.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

import kit
from kit.core import paths
from kit.guestos import images
from kit.hypervisor import fleet, footprint
from kit.hypervisor import snapshot as snapshots
from tests.conftest import free_port, our_qemu_pids
from tests.waiting import gone

MEMORY_MB = 64  # the kit kernel's smallest guest: small snapshots, quick saves


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def uptime(guest: kit.Guest) -> float:
    return float(guest.run("cat /proc/uptime").stdout.split()[0])


def http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=10) as reply:
        return str(reply.read().decode())


# -- without a guest -------------------------------------------------------------------


def test_a_mac_address_per_name_in_qemus_range() -> None:
    assert snapshots.mac_for("web1") == snapshots.mac_for("web1")
    macs = {snapshots.mac_for(f"web{i}") for i in range(50)}
    assert len(macs) == 50
    assert all(mac.startswith("52:54:00:") and len(mac) == 17 for mac in macs)


def test_a_missing_or_misnamed_snapshot_is_explained(snapshot_dir: Path) -> None:
    with pytest.raises(kit.SnapshotError, match="no snapshot named 'nothing'") as error:
        kit.Snapshot.of("nothing")
    assert "kit.snapshots()" in str(error.value)
    with pytest.raises(kit.InvalidInput, match="snapshot name"):
        kit.Snapshot.of("Not A Name")
    assert kit.snapshots() == []
    assert mode(snapshot_dir) == 0o700  # the folder is made owner-only


def test_the_snapshot_folder_is_in_the_cache_unless_moved(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.delenv("KIT_SNAPSHOT_DIR")
    monkeypatch.setenv("KIT_CACHE_DIR", str(tmp_path / "cache"))
    assert paths.snapshots_dir() == tmp_path / "cache" / "snapshots"
    assert mode(paths.snapshots_dir()) == 0o700


def test_an_interrupted_save_is_never_listed_and_is_cleaned_up(snapshot_dir: Path) -> None:
    snapshot_dir.mkdir(mode=0o700)
    abandoned = snapshot_dir / f"{snapshots.PARTIAL_PREFIX}web-999999999-abcd"  # no such pid
    ours = snapshot_dir / f"{snapshots.PARTIAL_PREFIX}web-{os.getpid()}-abcd"  # a save going on
    for folder in (abandoned, ours):
        folder.mkdir()
        (folder / snapshots.STATE_FILE).write_bytes(b"half")
    assert kit.snapshots() == []
    assert not abandoned.exists()
    assert ours.exists()


def test_the_manifest_round_trips() -> None:
    info = snapshots.SnapshotInfo(
        name="s", source="web", created=1.5, arch="x86_64", kernel="auto", image_key="k",
        machine="microvm", memory_mb=64, cpus=1, kernel_args=("a=b",), qemu_version="7.2.0",
        uptime_s=2.0, paused_s=0.01, files={"state.bin": snapshots.FileRecord(3, "abc")})
    assert snapshots.SnapshotInfo.from_json(info.to_json()) == info
    with pytest.raises(ValueError, match="format"):
        snapshots.SnapshotInfo.from_json(json.dumps({"format": 99}))


# -- with real guests ------------------------------------------------------------------------


@pytest.mark.guest
def test_state_survives_a_snapshot_and_a_restore(image: images.GuestImage,
                                                 guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        source.run("echo in-memory > /tmp/note; echo on-disk > /root/note; "
                   "sleep 4242 > /dev/null 2>&1 &")
        snap = source.snapshot("saved")
        # Read only now: the guest's init drew its boot id at boot, so the snapshot holds it.
        boot_id = source.run("cat /proc/sys/kernel/random/boot_id").stdout
        saved_uptime = snap.info.uptime_s
        assert saved_uptime is not None
        # The source runs on, and what it does now is not in the snapshot.
        assert source.state == "running"
        source.run("echo later > /tmp/later; echo later > /root/later")
        with kit.Guest.from_snapshot(snap, f"{guest_name}-c") as clone:
            assert clone.state == "running"
            assert clone.pid != source.pid
            assert clone.restored_from == snap
            assert clone.run("cat /tmp/note /root/note").stdout == "in-memory\non-disk\n"
            assert "sleep 4242" in clone.run("ps").stdout  # the background process lives on
            assert clone.run("test -e /tmp/later || test -e /root/later").exit_code == 1
            assert uptime(clone) >= saved_uptime  # no boot: the uptime carries on
            assert clone.run("cat /proc/sys/kernel/random/boot_id").stdout == boot_id
            assert "KIT-READY" not in clone.console.text()  # nothing booted
            # Its disk writes are its own: not the source's, not the snapshot's.
            clone.run("echo mine > /root/note")
            assert source.run("cat /root/note").stdout == "on-disk\n"
            assert clone.disk_overlay is not None and clone.disk_overlay != source.disk_overlay
        assert snap.info.paused_s < 5  # recorded, not a speed test: the guest ran on
    with clone:  # started again, the guest boots from the image like any other
        assert clone.restored_from is None and "KIT-READY" in clone.console.text()
        assert clone.run("test -e /tmp/note || test -e /root/note").exit_code == 1


@pytest.mark.guest
def test_snapshot_files_are_owner_only_sized_listed_and_deleted(
        image: images.GuestImage, guest_name: str, snapshot_dir: Path) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        snap = source.snapshot("listed")
        with pytest.raises(kit.SnapshotError, match="exists already"):
            source.snapshot("listed")
        again = source.snapshot("listed", replace=True)
    assert again == snap
    assert kit.snapshots() == [snap]
    assert mode(snap.folder) == 0o700
    files = sorted(path.name for path in snap.folder.iterdir())
    assert files == sorted([snapshots.DISK_FILE, snapshots.MANIFEST, snapshots.RAM_FILE,
                            snapshots.STATE_FILE])
    assert all(mode(snap.folder / name) == 0o600 for name in files)
    info = snap.info
    assert (info.arch, info.memory_mb, info.image_key) == ("x86_64", MEMORY_MB, image.key)
    # The memory is a file as large as the guest's RAM, with holes where the guest had
    # nothing: it takes less room than it says, and the snapshot's size counts the room.
    ram = snap.folder / snapshots.RAM_FILE
    assert ram.stat().st_size == MEMORY_MB << 20
    assert 1 << 20 < ram.stat().st_blocks * 512 < ram.stat().st_size
    assert snap.size_bytes < (MEMORY_MB << 20)
    assert snap.name in repr(snap)
    snap.verify()
    with kit.Guest.from_snapshot("listed", guest_name) as clone:
        with pytest.raises(kit.SnapshotError, match="in use by"):
            snap.delete()
        assert clone.run("true").ok
        # Its memory is the snapshot's, mapped copy-on-write from the kit's sealed memfd.
        maps = Path(f"/proc/{clone.pid}/maps").read_text()
        assert f"/memfd:kit-snapshot-{snap.name} (deleted)" in maps
        template = [p for p in snap.folder.iterdir() if p.name.startswith("overlay-")]
        assert template and mode(template[0]) == 0o600  # clones' disks start from it
    snap.delete()
    assert not snap.folder.exists()
    assert kit.snapshots() == []


@pytest.mark.guest
@pytest.mark.slow
def test_clones_run_side_by_side_each_with_its_own_identity(image: images.GuestImage,
                                                            guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        source.run("echo shared-past > /tmp/past")
        snap = source.snapshot("fleet")
    ports = [free_port() for _ in range(3)]
    clones = fleet.clones(snap, [f"{guest_name}-{i}" for i in range(3)],
                          forwards=[{port: 80} for port in ports])
    try:
        assert [c.name for c in clones] == [f"{guest_name}-{i}" for i in range(3)]
        for index, clone in enumerate(clones):
            assert clone.run("cat /tmp/past").stdout == "shared-past\n"
            assert clone.run("hostname").stdout.strip() == clone.name
            assert clone.run("cat /etc/hostname").stdout.strip() == clone.name
            hosts = clone.run("cat /etc/hosts").stdout
            assert f"127.0.1.1\t{clone.name}\n" in hosts and guest_name + "\n" not in hosts
            assert "localhost" in hosts  # the rest of the file is kept
            mac = snapshots.mac_for(clone.name)
            assert clone.run("cat /sys/class/net/eth0/address").stdout.strip() == mac
            # The virtual card itself took the new address, as QEMU reports it.
            assert clone.qmp("query-rx-filter", name="nic0")[0]["main-mac"] == mac
            clone.run(f"echo {clone.name} > /www/who")  # on its own disk
            assert http_get(ports[index], "who") == f"{clone.name}\n"  # its own forward
            guest_clock = float(clone.run("date +%s").stdout)
            assert abs(guest_clock - time.time()) < 30  # the clock was set from the host's
        assert len({c.pid for c in clones}) == 3
        assert len({c.disk_overlay for c in clones}) == 3
        # The snapshot's memory is mapped by all three: each clone's own cost is far below
        # its RSS, and footprint says so (USS, as psutil measures it, agrees).
        for clone in clones:
            found = footprint.of_guest(clone)
            assert found is not None and found.shared_mib > 0
            assert found.private_mib < found.total_mib
            uss = psutil.Process(clone.pid).memory_full_info().uss / 2**20
            assert abs(found.private_mib - uss) < max(4.0, 0.1 * uss), (found, uss)
    finally:
        fleet.stop(clones)
    assert gone([c.pid for c in clones if c.pid])
    snap.delete()


@pytest.mark.guest
def test_a_damaged_snapshot_is_refused(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        snap = source.snapshot("damaged")
    kit.Guest.from_snapshot(snap, guest_name).stop()  # whole, it starts
    state = snap.folder / snapshots.STATE_FILE
    whole = state.read_bytes()
    flipped = bytearray(whole)
    flipped[len(flipped) // 2] ^= 0xFF  # one bit flipped in the middle of the devices' state
    state.write_bytes(bytes(flipped))
    with pytest.raises(kit.SnapshotError, match=r"damaged: state\.bin has changed") as error:
        kit.Guest.from_snapshot(snap, guest_name)
    assert "delete it" in str(error.value)
    with open(state, "r+b") as file:
        file.truncate(1000)
    with pytest.raises(kit.SnapshotError, match=r"state\.bin has 1000 bytes"):
        kit.Guest.from_snapshot(snap, guest_name)
    state.write_bytes(whole)
    memory = snap.folder / snapshots.RAM_FILE
    with open(memory, "r+b") as file:  # the memory, changed where the guest had data
        file.seek(os.lseek(file.fileno(), 0, os.SEEK_DATA))
        file.write(b"\xff" * 16)
    with pytest.raises(kit.SnapshotError, match=r"damaged: ram\.bin has changed"):
        kit.Guest.from_snapshot(snap, guest_name)
    with pytest.raises(kit.SnapshotError, match=r"ram\.bin has changed"):
        snap.verify()
    (snap.folder / snapshots.MANIFEST).write_text("{not json")
    broken = kit.Snapshot.of("damaged")
    with pytest.raises(kit.SnapshotError, match="manifest cannot be read"):
        kit.Guest.from_snapshot(broken, guest_name)
    assert "damaged" in repr(broken)
    assert kit.guests() == [] and not our_qemu_pids()
    broken.delete()  # a damaged snapshot can still be deleted
    assert kit.snapshots() == []


@pytest.mark.guest
@pytest.mark.slow
def test_another_architecture_image_or_machine_is_refused(image: images.GuestImage,
                                                          guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        snap = source.snapshot("mine")
    with pytest.raises(kit.SnapshotError, match="architecture x86_64, not aarch64"):
        kit.Guest.from_snapshot(snap, guest_name, arch="aarch64")
    with pytest.raises(kit.SnapshotError, match="memory"):
        kit.Guest.from_snapshot(snap, guest_name, memory_mb=MEMORY_MB * 2)
    manifest = snap.folder / snapshots.MANIFEST
    data = json.loads(manifest.read_text())
    data["image_key"] = "0" * 20  # as if taken before the image was rebuilt
    manifest.write_text(json.dumps(data))
    with pytest.raises(kit.SnapshotError, match="another image") as error:
        kit.Guest.from_snapshot(kit.Snapshot.of("mine"), guest_name)
    assert "take a new snapshot" in str(error.value)
    assert kit.guests() == [] and not our_qemu_pids()


@pytest.mark.guest
def test_a_guest_with_a_shared_folder_cannot_be_saved(image: images.GuestImage,
                                                      guest_name: str, tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    with kit.Guest(guest_name, memory_mb=MEMORY_MB, shared_folder=folder) as g:
        with pytest.raises(kit.SnapshotError, match="shared folder") as error:
            g.snapshot("nope")
        assert "what to do" in str(error.value)
        assert g.run("true").ok
    assert kit.snapshots() == []


@pytest.mark.guest
def test_a_snapshot_of_a_clone_stands_alone(image: images.GuestImage, guest_name: str) -> None:
    with kit.Guest(guest_name, memory_mb=MEMORY_MB) as source:
        source.run("echo first > /root/first")
        first = source.snapshot("first")
    with kit.Guest.from_snapshot(first, guest_name) as clone:
        clone.run("echo second > /root/second")
        second = clone.snapshot("second")
    first.delete()  # the second snapshot's disk no longer needs the first's
    with kit.Guest.from_snapshot(second, guest_name) as again:
        assert again.run("cat /root/first /root/second").stdout == "first\nsecond\n"
    second.delete()
