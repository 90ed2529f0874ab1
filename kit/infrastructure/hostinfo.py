"""The infrastructure layer: facts about this host (CPUs, memory, flags, QEMU).

Whether KVM really works is a fact about the host too, but finding it out
means booting a guest, so that verdict is reached one layer up, in
:mod:`kit.hypervisor.accelerator`; :class:`Accelerator` only holds it.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from kit.core.errors import SetupError


@dataclass(frozen=True)
class Accelerator:
    """Which accelerator guests use, and why, in words a learner can read."""

    name: str  # "kvm" or "tcg"
    kvm: str  # "usable", "broken", "absent", "no-access", "untested" or "forced"
    reason: str

    @property
    def label(self) -> str:
        return "KVM (hardware-assisted)" if self.name == "kvm" else "TCG (software emulation)"


@dataclass(frozen=True)
class HostInfo:
    """A snapshot of the infrastructure layer."""

    hostname: str
    os: str
    kernel: str
    machine: str
    cpu_model: str
    cpus: int
    memory_total_mb: int
    memory_available_mb: int
    virtualization_flags: tuple[str, ...]
    kvm_device: bool
    qemu_version: str
    accelerator: Accelerator

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def virtualization_flags() -> tuple[str, ...]:
    """CPU flags that matter here: vmx (Intel VT-x), svm (AMD-V), hypervisor (we are a guest)."""
    flags: set[str] = set()
    for line in read_text_or_empty("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    return tuple(sorted(flags & {"vmx", "svm", "hypervisor"}))


def qemu_binary(name: str = "qemu-system-x86_64") -> str:
    found = shutil.which(name)
    if found is None:
        raise SetupError(
            f"{name} is not installed.",
            hint="Run ./setup.sh, or: sudo apt-get install qemu-system-x86",
        )
    return found


@cache
def qemu_version(name: str = "qemu-system-x86_64") -> str:
    try:
        out = subprocess.run(
            [qemu_binary(name), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except SetupError:
        return "not installed"
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else out.strip()


def cpu_model() -> str:
    for line in read_text_or_empty("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def os_name() -> str:
    for line in read_text_or_empty("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def read_text_or_empty(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
