"""The QEMU command line, built as a list of words.

Pure: no process is started here, so the command can be tested without QEMU
and shown to learners exactly as it will run (:func:`show`).  The one thing
read from the host is its TSC rate (:mod:`kit.infrastructure.hostclock`), for guests on
``microvm`` under TCG, and (asked once) whether QEMU has its seccomp
sandbox.  The three
channels to the guest (QMP, the serial console, the guest agent) are sockets
the kit has already connected, handed to QEMU as inherited file descriptors:
nothing listens on a path, so nothing can race or eavesdrop, and no byte of
boot output is lost before the kit is reading.
"""

from __future__ import annotations

import functools
import platform
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kit.guestos.images import AGENT_PORT_NAME
from kit.infrastructure import hostclock

# Named, so that QEMU reports VSERPORT_CHANGE when the agent starts or dies.
AGENT_DEVICE_ID = "agent-port"


class BootableImage(Protocol):
    """What the command needs of a guest image (see :class:`kit.guestos.images.GuestImage`).

    An image may also say which ``machine`` it is built for ("q35" or
    "microvm"); one that does not is booted on q35, like the first images.
    """

    @property
    def kernel(self) -> Path: ...
    @property
    def initramfs(self) -> Path: ...
    @property
    def kernel_cmdline(self) -> str: ...
    @property
    def qemu_binary(self) -> str: ...


@dataclass(frozen=True)
class ChannelFds:
    """File descriptors (QEMU's ends of socket pairs) for the three channels."""

    qmp: int
    console: int
    agent: int


@dataclass(frozen=True)
class ShareSpec:
    """A host folder the guest may mount over 9p; read-only unless ``writable``."""

    host_path: Path
    writable: bool = False
    tag: str = "share"


@dataclass(frozen=True)
class LinkNic:
    """A further network card, cabled to another guest's by unix datagram sockets."""

    id: str
    local_path: Path  # this side's socket, in the user's owner-only runtime folder
    remote_path: Path  # the other side's
    mac: str


@dataclass(frozen=True)
class OutboundNic:
    """The card of the internet door: an unrestricted user network, its cable pulled at first."""

    id: str
    mac: str
    subnet: str

    @property
    def nic_id(self) -> str:
        """The card's QEMU id, which QMP ``set_link`` names."""
        return f"{self.id}-nic"


@dataclass(frozen=True)
class RamFile:
    """Guest RAM in a file QEMU maps, instead of a memfd of its own (see _guest_ram_args).

    ``shared``: the file *is* the RAM (a live migration's destination maps
    its source's memory); not shared: the RAM starts as the file's content
    and the guest's writes stay private, copy-on-write (guests started from
    one snapshot share its memory until they change it).
    """

    path: str  # e.g. /proc/self/fd/N, a memfd the kit hands QEMU
    shared: bool


@dataclass(frozen=True)
class MachineSpec:
    """Everything that decides one guest's QEMU command line."""

    name: str
    image: BootableImage
    memory_mb: int
    cpus: int
    accel: str  # "kvm" or "tcg"
    forwards: Mapping[int, int] = field(default_factory=dict)  # host port -> guest port
    pidfile: Path | None = None
    kernel_args: tuple[str, ...] = ()
    # The host's TSC rate, for microvm guests under TCG; measured (and cached)
    # unless given.
    tsc_khz: int | None = field(default_factory=hostclock.tsc_khz)
    # QEMU's seccomp sandbox (:data:`SANDBOX`); None: on when the binary has it.
    sandbox: bool | None = None
    # Doors (:mod:`kit.hypervisor.doors`): a host folder for the guest, cables to other guests.
    share: ShareSpec | None = None
    links: tuple[LinkNic, ...] = ()
    outbound: OutboundNic | None = None
    # Start paused (-S) until the kit has set every door and sent "cont"; a
    # machine nobody will continue (the KVM probe, a plain-QEMU benchmark) runs at once.
    paused: bool = True
    # The guest's own copy-on-write file over the image's root disk (qcow2, see
    # kit.hypervisor.disks); None: QEMU's unnamed temporary one (snapshot=on).
    root_overlay: Path | None = None
    # An inherited descriptor to read a saved or migrating machine from: QEMU
    # waits (-incoming defer) until the kit has set the migration's capabilities
    # and sends migrate-incoming fd:N, then loads the machine instead of booting.
    incoming_fd: int | None = None
    # Guest RAM in a file (machines whose profile keeps RAM in a memfd only).
    ram_file: RamFile | None = None


@dataclass(frozen=True)
class Profile:
    """How one kind of image is booted: the machine type and its device names.

    ``q35`` is a full PC (firmware, PCI bus, ACPI): what Debian's kernel, with
    its drivers as modules, expects.  ``microvm`` has no PCI bus and almost no
    firmware; its virtio devices sit on MMIO, which the kit's own kernel has
    built in.  Measured under TCG with the kit's kernel (3 boots each), the
    guest agent answered about 0.2 s sooner on microvm (0.85-0.98 s) than
    on q35 (1.04-1.23 s).
    """

    name: str
    machine: str
    virtio_suffix: str  # virtio-net-pci on PCI, virtio-net-device on MMIO
    pvpanic: str
    tb_size_mb: int
    free_page_reporting: bool
    cpu: str = ""  # the CPU model under TCG; "" for QEMU's default (or max on microvm)
    ram_in_memfd: bool = False  # guest RAM in a memfd (see _machine_args)
    arch: str = "x86_64"  # the guest's architecture: KVM only where the host's is the same


# tb-size is TCG's translation cache.  The kit kernel's boot fills about 16 MB
# of it: 16 MB costs nothing measurable, 8 MB made the boot 0.6 s slower
# (retranslation), 32 MB only adds 16 MB of RSS.
PROFILES = {
    "q35": Profile("q35", "q35", "pci", "pvpanic-pci", 64, False),
    "microvm": Profile("microvm", "microvm,acpi=on,rtc=on", "device", "pvpanic", 16, True,
                       ram_in_memfd=True),
    # A 64-bit ARM board for aarch64 guests, always emulated on an x86 host.
    # cortex-a57 rather than max: max has pointer authentication, which TCG
    # emulates slowly.  No pvpanic: Debian's cloud arm64 kernel has no driver.
    "virt": Profile("virt", "virt", "pci", "", 64, False, cpu="cortex-a57", arch="aarch64"),
}


def uses_kvm(spec: MachineSpec, chosen: Profile) -> bool:
    """KVM only when asked for and the guest's architecture is the host's own."""
    return spec.accel == "kvm" and chosen.arch == platform.machine()


def profile(spec: MachineSpec) -> Profile:
    """The image's machine type, or q35 where microvm cannot keep time.

    Under TCG a microvm guest needs the host's TSC rate on its command line
    (see :mod:`kit.infrastructure.hostclock`); where it cannot be read, the kit's kernel
    boots on q35 instead, which has timers to calibrate against.
    """
    wanted = str(getattr(spec.image, "machine", "q35"))
    if wanted == "microvm" and spec.accel != "kvm" and spec.tsc_khz is None:
        wanted = "q35"
    return PROFILES.get(wanted, PROFILES["q35"])


def build_command(spec: MachineSpec, fds: ChannelFds) -> list[str]:
    """The full command, wrapped so that QEMU dies with the process that started it."""
    return [*parent_death_wrapper(), *qemu_command(spec, fds)]


# glibc raises its mmap threshold each time a large block is freed, so that
# later blocks of that size come from the heap, which it seldom gives back;
# a fixed threshold keeps them in their own mappings, returned when freed.
# Measured with the kit's kernel under TCG, 64 MB guest: QEMU's settled RSS
# -0.3 MB, boot time unchanged.
MALLOC_TUNABLE = "glibc.malloc.mmap_threshold=131072"


def environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """The environment QEMU runs in: the kit's own, plus :data:`MALLOC_TUNABLE`.

    A learner's own ``GLIBC_TUNABLES`` is kept, and wins if it sets the
    threshold itself.
    """
    env = dict(inherited)
    own = env.get("GLIBC_TUNABLES", "")
    name = MALLOC_TUNABLE.split("=", 1)[0]
    if name + "=" not in own:
        env["GLIBC_TUNABLES"] = f"{own}:{MALLOC_TUNABLE}" if own else MALLOC_TUNABLE
    return env


def parent_death_wrapper() -> list[str]:
    """``setpriv --pdeathsig KILL``: the kernel kills QEMU when its parent dies.

    This is what makes "no guest outlives its notebook" hold even when the
    notebook kernel is SIGKILLed and no Python cleanup code runs.
    """
    return ["setpriv", "--pdeathsig", "KILL", "--"]


def qemu_command(spec: MachineSpec, fds: ChannelFds) -> list[str]:
    """The QEMU part alone: what a learner would type to boot this guest by hand."""
    chosen = profile(spec)
    return [
        spec.image.qemu_binary,
        *_machine_args(spec, chosen),
        *_boot_args(spec, chosen),
        *_channel_args(fds, chosen),
        *_network_args(spec.forwards, chosen),
        *_share_args(spec.share, chosen),
        *_link_args(spec.links, chosen),
        *_outbound_args(spec.outbound, chosen),
        *_crash_args(chosen),
        *_memory_args(chosen),
        *_sandbox_args(spec),
        *(["-pidfile", str(spec.pidfile)] if spec.pidfile else []),
        *(["-incoming", "defer"] if spec.incoming_fd is not None else []),
        # Paused until the kit has set every door (a card's cable, say) and sent
        # "cont": no instruction of the guest runs with a door in the wrong state.
        *(["-S"] if spec.paused else []),
    ]


# QEMU's seccomp filter: no obsolete system calls, no setuid/setgid, no new
# processes or programs, no changing priorities or CPU affinity.  QEMU runs as
# the learner; a guest that escaped into it could then do even less.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def _sandbox_args(spec: MachineSpec) -> list[str]:
    wanted = spec.sandbox
    if wanted is None:
        wanted = sandbox_supported(spec.image.qemu_binary)
    return ["-sandbox", SANDBOX] if wanted else []


@functools.cache
def sandbox_supported(binary: str) -> bool:
    """Whether ``binary`` was built with seccomp (Debian's is); asked once per binary.

    The one process this module starts: ``-sandbox`` is parsed before
    ``-version`` exits, so a QEMU without seccomp (or one that does not know a
    flag of :data:`SANDBOX`) fails here instead of at a guest's start.
    """
    try:
        done = subprocess.run([binary, "-sandbox", SANDBOX, "-version"],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def show(command: list[str]) -> str:
    """The command as one shell-quoted line, for people to read or copy."""
    return shlex.join(command)


def _machine_args(spec: MachineSpec, chosen: Profile) -> list[str]:
    accel = "kvm" if uses_kvm(spec, chosen) else f"tcg,tb-size={chosen.tb_size_mb}"
    return [
        "-name", f"{spec.name},process=qemu-{spec.name},debug-threads=on",
        "-machine", chosen.machine + (f",memory-backend={GUEST_RAM_ID}"
                                      if chosen.ram_in_memfd else ""),
        *_guest_ram_args(spec, chosen),
        "-accel", accel,
        *_cpu_args(spec, chosen),
        "-m", str(spec.memory_mb),
        "-smp", str(spec.cpus),
        "-nodefaults", "-no-user-config",
        "-display", "none",
    ]


GUEST_RAM_ID = "guest-ram"


def _guest_ram_args(spec: MachineSpec, chosen: Profile) -> list[str]:
    """Guest RAM in a memfd, counted by the host in 4 KiB pages, not 2 MiB ones.

    QEMU asks for transparent huge pages on anonymous guest RAM, so a guest
    that touches one byte of a 2 MiB stretch costs the host all of it.  A
    memfd is shared memory, which Debian gives no huge pages by default.
    Measured with the kit's kernel under TCG, 64 MB guest: QEMU's RSS, once
    the guest has handed back freed memory, 82 -> 80 MB; boot time unchanged.
    A memfd can also be reached from outside QEMU (/proc/PID/fd), which is how
    snapshots and migrations take the memory without copying it through QEMU
    (:mod:`kit.hypervisor.guest_ram`).
    """
    if not chosen.ram_in_memfd:
        return []
    if spec.ram_file is not None:
        share = "on" if spec.ram_file.shared else "off"
        return ["-object", f"memory-backend-file,id={GUEST_RAM_ID},mem-path="
                f"{_escape(Path(spec.ram_file.path))},share={share},size={spec.memory_mb}M"]
    return ["-object", f"memory-backend-memfd,id={GUEST_RAM_ID},size={spec.memory_mb}M"]


def _cpu_args(spec: MachineSpec, chosen: Profile) -> list[str]:
    """The host's CPU under KVM; under TCG on microvm, every feature TCG emulates.

    Measured with the kit's kernel: KIT-READY about 0.25 s sooner with ``max``
    than with the default qemu64 model (the kernel and the C library choose
    other code, such as string instructions, for a CPU with more features).
    """
    if uses_kvm(spec, chosen):
        return ["-cpu", "host"]
    if chosen.cpu:
        return ["-cpu", chosen.cpu]
    return ["-cpu", "max"] if chosen.name == "microvm" else []


def _boot_args(spec: MachineSpec, chosen: Profile) -> list[str]:
    clock = []
    if chosen.name == "microvm" and spec.accel != "kvm" and spec.tsc_khz:
        clock = [f"tsc_early_khz={spec.tsc_khz}"]
    disk = getattr(spec.image, "root_disk", None)
    root = ROOT_DISK_CMDLINE if disk is not None else []
    cmdline = " ".join(
        [spec.image.kernel_cmdline, *root, *clock, f"kit.name={spec.name}", *spec.kernel_args])
    files = (_root_disk_args(disk, chosen, spec.root_overlay) if disk is not None
             else ["-initrd", str(spec.image.initramfs)])
    return ["-kernel", str(spec.image.kernel), *files, "-append", cmdline]


# The whole disk is the file system (no partitions); the kernel runs /init
# from it, like the initramfs's.
ROOT_DISK_CMDLINE = ["root=/dev/vda", "rw", "rootfstype=ext2", "init=/init"]


def _root_disk_args(disk: Path, chosen: Profile, overlay: Path | None = None) -> list[str]:
    """The image's root disk on virtio-blk, under a copy-on-write file.

    Either way QEMU opens the cached image read-only (any number of guests
    share it), and the guest's writes go to a copy-on-write file.  With an
    ``overlay`` it is the guest's own qcow2 file (whose backing file is the
    image), which a snapshot can copy and a migration's new QEMU can reopen
    (:mod:`kit.hypervisor.disks`).  Without one, ``snapshot=on``: a temporary
    file QEMU deletes as soon as it has opened it.
    """
    if overlay is not None:
        drive = f"file={_escape(overlay)},format=qcow2,if=none,id=rootdisk"
    else:
        drive = f"file={_escape(disk)},format=raw,if=none,id=rootdisk,snapshot=on"
    return [
        "-drive", drive,
        "-device", f"virtio-blk-{chosen.virtio_suffix},drive=rootdisk",
    ]


def _escape(path: Path) -> str:
    """A path as QEMU's option syntax wants it: a comma is doubled."""
    return str(path).replace(",", ",,")


def _channel_args(fds: ChannelFds, chosen: Profile) -> list[str]:
    # On MMIO the guest fills every queue to the size QEMU offers (1024
    # buffers): two ports (the agent's, and the reserved port 0) instead of
    # the default 31 saves the rings of 58 queues the kit never uses.
    serial = (f"virtio-serial-{chosen.virtio_suffix},id=virtio-serial"
              + (",max_ports=2" if chosen.virtio_suffix == "device" else ""))
    return [
        "-chardev", f"socket,id=qmp,fd={fds.qmp}",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", f"socket,id=console,fd={fds.console}",
        "-serial", "chardev:console",
        "-device", serial,
        "-chardev", f"socket,id=agent,fd={fds.agent}",
        "-device", f"virtserialport,chardev=agent,name={AGENT_PORT_NAME},id={AGENT_DEVICE_ID}",
    ]


def _network_args(forwards: Mapping[int, int], chosen: Profile) -> list[str]:
    # Every forward listens on 127.0.0.1 only: a guest is never reachable
    # from another machine on the network.  restrict=on: QEMU drops every
    # packet the guest sends to the host or beyond (the forwards still work);
    # the way out is the internet door's card (_outbound_args).
    rules = "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in sorted(forwards.items())
    )
    return [
        "-netdev", f"user,id=net0,restrict=on{rules}",
        "-device", f"virtio-net-{chosen.virtio_suffix},netdev=net0,id=nic0",
    ]


def _share_args(share: ShareSpec | None, chosen: Profile) -> list[str]:
    """A 9p file server inside QEMU for one host folder (``readonly=on`` unless writable).

    ``security_model=none``: files keep the learner's own owner and modes.  A
    comma in the path is doubled, as QEMU's option syntax wants.
    """
    if share is None:
        return []
    path = str(share.host_path).replace(",", ",,")
    readonly = "" if share.writable else ",readonly=on"
    return [
        "-fsdev", f"local,id=fs0,path={path},security_model=none{readonly}",
        "-device", f"virtio-9p-{chosen.virtio_suffix},fsdev=fs0,mount_tag={share.tag}",
    ]


def _link_args(links: tuple[LinkNic, ...], chosen: Profile) -> list[str]:
    """One card per link, after the user-network card, so that card stays eth0.

    Each side sends its frames as datagrams to the other side's unix socket:
    no side listens for the other, so the two guests may start in any order,
    and both sockets are in the user's owner-only runtime folder, so no other
    user of the host can send a frame into the cable (UDP on 127.0.0.1, used
    before, was open to every local user).
    """
    args: list[str] = []
    for nic in links:
        local, remote = (str(p).replace(",", ",,") for p in (nic.local_path, nic.remote_path))
        args += [
            "-netdev", f"dgram,id={nic.id},local.type=unix,local.path={local},"
            f"remote.type=unix,remote.path={remote}",
            "-device", f"virtio-net-{chosen.virtio_suffix},netdev={nic.id},id={nic.id}-nic,"
            f"mac={nic.mac}",
        ]
    return args


def _outbound_args(card: OutboundNic | None, chosen: Profile) -> list[str]:
    """The internet door's card: last, so the other cards keep their names (eth0, eth1)."""
    if card is None:
        return []
    return [
        "-netdev", f"user,id={card.id},net={card.subnet}",
        "-device", f"virtio-net-{chosen.virtio_suffix},netdev={card.id},id={card.nic_id},"
        f"mac={card.mac}",
    ]


def _crash_args(chosen: Profile) -> list[str]:
    # With a pvpanic device the guest kernel tells the hypervisor it crashed;
    # QEMU then pauses it and reports GUEST_PANICKED instead of rebooting.
    if not chosen.pvpanic:
        return []
    return ["-device", chosen.pvpanic, "-action", "panic=pause"]


def _memory_args(chosen: Profile) -> list[str]:
    """A balloon that takes back the memory the guest frees (free page reporting).

    The guest's /init lowers the reporting granularity; measured, QEMU's RSS
    then falls by about 17 MB a few seconds after boot.
    """
    if not chosen.free_page_reporting:
        return []
    return ["-device", f"virtio-balloon-{chosen.virtio_suffix},id=balloon,"
            "free-page-reporting=on"]
