"""``python -m kit doctor``: can this machine run the kit, and if not, why.

Each check says what it found and, when something is wrong, the command that
fixes it.  The exit code is non-zero when a required check fails, so setup
scripts and CI can rely on it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from kit.core import paths
from kit.core.errors import KitError
from kit.guestos import images
from kit.hypervisor import accelerator
from kit.infrastructure import hostinfo, namespaces

APT_FIX = "sudo apt-get install -y --no-install-recommends {}   (or run ./setup.sh)"
MIN_FREE_MEMORY_MB = 512


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def checks() -> list[Check]:
    """Every check, in the order a person would fix them."""
    steps: list[Callable[[], Check]] = [
        _check_qemu, _check_setpriv, _check_graphviz, _check_image,
        _check_accelerator, _check_memory, _check_runtime_dir, _check_containers,
    ]
    return [step() for step in steps]


def main() -> int:
    results = checks()
    for check in results:
        mark = "ok " if check.ok else ("!! " if check.required else "-- ")
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}")
    broken = [c for c in results if c.required and not c.ok]
    print()
    print("The kit cannot run yet: fix the lines marked !! above." if broken
          else "All set: the kit can run guests on this machine.")
    return 1 if broken else 0


def _check_qemu() -> Check:
    found = shutil.which("qemu-system-x86_64")
    if not found:
        return Check("QEMU", False, "qemu-system-x86_64 not found",
                     APT_FIX.format("qemu-system-x86"))
    return Check("QEMU", True, f"{found}, version {hostinfo.qemu_version()}")


def _check_setpriv() -> Check:
    found = shutil.which("setpriv")
    if not found:
        return Check("setpriv", False, "not found (it makes guests die with their notebook)",
                     APT_FIX.format("util-linux"))
    return Check("setpriv", True, found)


def _check_graphviz() -> Check:
    found = shutil.which("dot")
    if not found:
        return Check("Graphviz", False, "the dot program was not found (it draws the diagrams)",
                     APT_FIX.format("graphviz"))
    return Check("Graphviz", True, found)


def _check_image() -> Check:
    try:
        image = images.find_image()
    except KitError as error:
        return Check("guest image", False, error.message, error.hint or "")
    if image is None:
        return Check("guest image", False, "not built yet", "python -m kit image")
    problem = image.root_disk_problem
    boots_from = ("its root disk" if image.root_disk is not None
                  else f"its initramfs ({problem})" if problem else "its initramfs")
    return Check("guest image", True,
                 f"{image.kernel_summary()}, booting from {boots_from}, "
                 f"{image.size_bytes / 2**20:.1f} MiB, in {image.kernel.parent}")


def _check_accelerator() -> Check:
    try:
        accel = accelerator.accelerator()
    except KitError as error:
        return Check("accelerator", False, str(error), error.hint or "")
    return Check("accelerator", True, f"{accel.label}: {accel.reason}", required=False)


def _check_memory() -> Check:
    free = accelerator.host(probe=False).memory_available_mb
    ok = free >= MIN_FREE_MEMORY_MB
    return Check("free memory", ok, f"{free} MiB available",
                 "" if ok else f"close programs: the kit needs {MIN_FREE_MEMORY_MB} MiB or more")


def _check_containers() -> Check:
    """Lesson 8's containers: the same answer the lesson gives, from the same probe.

    Not required: every other lesson runs without them.
    """
    found = namespaces.refusal()
    if found is not None:
        return Check("containers", False, f"refused: {found.why} (lesson 8 shows what still "
                     "works)", found.what_to_do, required=False)
    how = ("as root, without a user namespace" if not namespaces.needs_user_namespace()
           else "in a user namespace of your own")
    return Check("containers", True, f"lesson 8's containers can run here ({how})",
                 required=False)


def _check_runtime_dir() -> Check:
    try:
        folder = paths.runtime_dir()
    except KitError as error:
        return Check("runtime folder", False, error.message, error.hint or "")
    writable = os.access(folder, os.W_OK)
    return Check("runtime folder", writable, f"{folder} (owner-only)",
                 "" if writable else "set KIT_RUNTIME_DIR to a folder you can write")
