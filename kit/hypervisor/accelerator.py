"""Which accelerator guests use: KVM if a probe guest really boots under it, else TCG.

``/dev/kvm`` existing proves nothing: on some machines every KVM guest dies
with "KVM internal error", or resets during early boot.  So KVM is judged by a
real probe: a tiny guest is booted under KVM and must print a known line from
its init within a few seconds.  QEMU is killed whatever happens, and the
verdict is cached (in memory and on disk, until the host reboots) because a
probe costs seconds.  :func:`host` lives here, not in the infrastructure
layer, because its facts include that verdict.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import select
import socket
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from kit.core import paths
from kit.guestos.images import READY_LINE, find_image
from kit.hypervisor import qemu
from kit.infrastructure import hostinfo
from kit.infrastructure.hostinfo import (
    Accelerator,
    HostInfo,
    cpu_model,
    os_name,
    qemu_version,
    virtualization_flags,
)

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 15.0
KVM_ERROR_PATTERN = re.compile(r"KVM internal error|kvm run failed|failed to initialize kvm", re.I)


def host(probe: bool = True) -> HostInfo:
    """Facts about this host; ``probe=False`` skips booting a KVM probe guest."""
    memory = psutil.virtual_memory()
    return HostInfo(
        hostname=socket.gethostname(),
        os=os_name(),
        kernel=platform.release(),
        machine=platform.machine(),
        cpu_model=cpu_model(),
        cpus=os.cpu_count() or 1,
        memory_total_mb=memory.total // 2**20,
        memory_available_mb=memory.available // 2**20,
        virtualization_flags=virtualization_flags(),
        kvm_device=Path("/dev/kvm").exists(),
        qemu_version=qemu_version(),
        accelerator=accelerator() if probe else accelerator_without_probe(),
    )


_verdict: Accelerator | None = None


def accelerator_for(arch: str) -> Accelerator:
    """The accelerator a guest of ``arch`` gets: KVM runs only the host's own architecture."""
    if arch == platform.machine():
        return accelerator()
    return Accelerator("tcg", accelerator().kvm,
                       f"a {arch} guest on this {platform.machine()} host: its instructions "
                       "must be translated in software (TCG); KVM only runs guests of the "
                       "host's own architecture.")


def accelerator() -> Accelerator:
    """KVM if a probe guest really boots under it, else TCG; cached until reboot."""
    global _verdict
    if _verdict is None:
        verdict = _decide_accelerator()
        if verdict.kvm == "untested":
            return verdict  # ask again once the image exists
        _verdict = verdict
    return _verdict


def _decide_accelerator() -> Accelerator:
    forced = os.environ.get("KIT_ACCEL")
    if forced in ("kvm", "tcg"):
        return Accelerator(forced, "forced", f"KIT_ACCEL={forced} is set in the environment.")
    early = accelerator_without_probe()
    if early.kvm != "untested":
        return early
    cached = _read_cached_verdict()
    if cached is not None:
        return cached
    verdict = _probe_kvm()
    log.info("accelerator: %s (KVM %s): %s", verdict.name, verdict.kvm, verdict.reason)
    _write_cached_verdict(verdict)
    return verdict


def accelerator_without_probe() -> Accelerator:
    if not Path("/dev/kvm").exists():
        return Accelerator(
            "tcg", "absent",
            "/dev/kvm does not exist: this CPU or machine offers no hardware "
            "virtualization to us, so QEMU translates guest code in software.",
        )
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accelerator(
            "tcg", "no-access",
            "/dev/kvm exists but this user may not open it (add yourself to the "
            "'kvm' group to use it); using software emulation.",
        )
    return Accelerator("tcg", "untested", "KVM has not been tried yet.")


def _probe_kvm() -> Accelerator:

    image = find_image()
    if image is None:
        return Accelerator(
            "tcg", "untested",
            "KVM could not be tried yet: the guest image is not built (python -m kit image).",
        )
    ok, detail = boot_probe(image, "kvm")
    if ok:
        return Accelerator("kvm", "usable", f"a probe guest booted under KVM in {detail}.")
    return Accelerator(
        "tcg", "broken",
        f"/dev/kvm exists but a probe guest failed under KVM ({detail}); "
        "using software emulation (TCG) instead.",
    )


def boot_probe(image: qemu.BootableImage, accel: str) -> tuple[bool, str]:
    """Boot ``image`` under ``accel`` until its init says ready; always kill QEMU.

    Returns (success, detail): the boot time, or what went wrong.
    """
    ends = [socket.socketpair() for _ in range(3)]
    # Not paused: nothing here sends QMP "cont" (the probe only reads the console).
    spec = qemu.MachineSpec(name="kvm-probe", image=image, memory_mb=128, cpus=1, accel=accel,
                            paused=False)
    fds = qemu.ChannelFds(*(theirs.fileno() for _, theirs in ends))
    command = [*qemu.build_command(spec, fds), "-no-reboot"]
    started = time.monotonic()
    process = subprocess.Popen(
        command, pass_fds=fds.__dict__.values(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    for _, theirs in ends:
        theirs.close()
    try:
        return _watch_probe(process, ends[1][0], started)
    finally:
        process.kill()
        process.wait()
        for ours, _ in ends:
            ours.close()


def _watch_probe(
    process: subprocess.Popen[bytes], console: socket.socket, started: float
) -> tuple[bool, str]:
    assert process.stderr is not None
    seen = b""
    errors = b""
    deadline = started + PROBE_TIMEOUT_S
    stderr_fd = process.stderr.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([console.fileno(), stderr_fd], [], [], 0.2)
        if console.fileno() in ready:
            seen += console.recv(65536)
            if READY_LINE.encode() in seen:
                return True, f"{time.monotonic() - started:.1f} s"
        if stderr_fd in ready:
            errors += os.read(stderr_fd, 65536)
            match = KVM_ERROR_PATTERN.search(errors.decode(errors="replace"))
            if match:
                return False, f"QEMU said: {match.group(0)}"
        if process.poll() is not None:
            tail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["nothing"]
            return False, f"QEMU exited with code {process.returncode} before init ran: {tail[0]}"
    return False, f"the guest did not reach its init within {PROBE_TIMEOUT_S:g} s"


def _verdict_path() -> Path:
    return paths.cache_dir() / "accelerator.json"


def _verdict_key() -> dict[str, str]:
    boot_id = hostinfo.read_text_or_empty("/proc/sys/kernel/random/boot_id").strip()
    return {"boot_id": boot_id, "qemu": qemu_version()}


def _read_cached_verdict() -> Accelerator | None:
    try:
        data = json.loads(_verdict_path().read_text())
        if data["key"] != _verdict_key():
            return None
        return Accelerator(**data["verdict"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cached_verdict(verdict: Accelerator) -> None:
    if verdict.kvm == "untested":
        return
    payload = {"key": _verdict_key(), "verdict": asdict(verdict)}
    tmp = _verdict_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(_verdict_path())
