"""Doors: the only places where data crosses between a guest and the world.

A guest is sealed off: it sees its own disk-less memory, its own kernel and a
network that reaches the host only through doors a person opens.  The kit has
three kinds, each opened and closed while the guest runs:

* a **port forward**: host ``127.0.0.1:HOST`` reaches guest port ``GUEST``
  (QEMU's user network, changed live with the monitor's ``hostfwd_add`` and
  ``hostfwd_remove``); never bound to another interface;
* a **shared folder**: one host folder, declared before the start (a
  ``microvm`` has no hotplug), mounted in the guest at ``/mnt/share`` over 9p
  when the door opens; read-only unless asked otherwise, on both sides;
* a **link**: a second network card (eth1) in each of two guests, cabled
  together by UDP datagrams on 127.0.0.1; QMP ``set_link`` plugs the cable in
  and out.  A link starts unplugged: a door is closed until someone opens it.

Every change is announced through :mod:`kit.registry`, so diagrams redraw.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit import qemu, registry, validate
from kit.errors import GuestError, InvalidInput, QMPError

if TYPE_CHECKING:
    from kit import snapshot
    from kit.guest import Guest

SHARE_TAG = "share"
SHARE_MOUNT = "/mnt/share"
LINK_SUBNET = "10.0.3"
LINK_PREFIX = 24
LINK_NETDEV = "link0"
LIVE_STATES = ("booting", "running", "paused")  # QEMU is up and answers QMP
# Folders whose content belongs to the system, never to a lesson: they (and
# anything inside them) cannot be shared.  /var/tmp is a scratch folder like /tmp.
SYSTEM_FOLDERS = tuple(Path(p) for p in (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
    "/root/.ssh", "/run", "/sbin", "/srv", "/sys", "/usr", "/var"))
SCRATCH_FOLDERS = (Path("/var/tmp"),)


# -- checks ------------------------------------------------------------------------


def check_shared_folder(folder: object) -> Path:
    """The folder to share, symlinks resolved; refused if sharing it would expose too much.

    The guest gets the folder and everything below it, so the folder must be
    a real directory that holds no system files and not the whole home.
    """
    if not isinstance(folder, str | os.PathLike) or not str(folder):
        raise InvalidInput(f"shared_folder={folder!r} is not a folder path.",
                           hint="Give a folder as text, e.g. shared_folder='lesson-files'.")
    given = Path(folder).expanduser()
    try:
        resolved = given.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput(f"the folder {str(given)!r} does not exist.",
                           hint="Create it first (os.makedirs), or check the spelling.") from None
    if not resolved.is_dir():
        raise InvalidInput(f"{str(resolved)!r} is a file, not a folder.",
                           hint="Share the folder that holds it instead.")
    _refuse_too_wide(resolved)
    if "\n" in str(resolved):
        raise InvalidInput("a shared folder's path cannot contain a line break.",
                           hint="Rename the folder.")
    return resolved


def _refuse_too_wide(folder: Path) -> None:
    home = Path.home().resolve()
    if folder == Path("/") or home.is_relative_to(folder):
        raise InvalidInput(
            f"sharing {str(folder)!r} would give the guest your whole home folder "
            "(or the whole disk).",
            hint="Make a folder just for the guest, e.g. os.makedirs('share'), and share that.")
    if folder.parent == home and folder.name.startswith("."):
        raise InvalidInput(
            f"{str(folder)!r} is a hidden settings folder of your home: it may hold keys "
            "and passwords.",
            hint="Make a folder just for the guest and copy into it what it should see.")
    system = next((s for s in SYSTEM_FOLDERS if folder.is_relative_to(s)), None)
    if system is not None and not any(folder.is_relative_to(s) for s in SCRATCH_FOLDERS):
        raise InvalidInput(
            f"{str(folder)!r} is a system folder (inside {system}): a guest may not see it.",
            hint="Share a folder of your own, e.g. one in your home or in /tmp.")


def check_flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be True or False, not {value!r}.",
                           hint=f"For example {what}=True.")
    return value


def check_forward(host_port: object, guest_port: object) -> tuple[int, int]:
    """One forward's ports, with the same rules as ``kit.Guest(forwards=...)``."""
    checked = validate.check_forwards({host_port: guest_port})
    return next(iter(checked.items()))


# -- one guest's doors -------------------------------------------------------------


class Doors:
    """The doors of one guest: what it was declared with, and what is open now.

    :class:`kit.Guest` owns one and delegates to it; the state lives here so
    that the guest module stays about the machine itself.
    """

    def __init__(self, guest: Guest, shared_folder: object, shared_writable: object) -> None:
        self._guest = guest
        self.folder = None if shared_folder is None else check_shared_folder(shared_folder)
        self.writable = check_flag("shared_writable", shared_writable)
        self.share_open = False
        self.links: list[Link] = []

    # -- what QEMU is started with ---------------------------------------------------

    def check_before_start(self) -> None:
        """Check the folder again: since it was declared it may have gone, or become a symlink."""
        if self.folder is not None:
            self.folder = check_shared_folder(self.folder)

    def share_spec(self) -> qemu.ShareSpec | None:
        if self.folder is None:
            return None
        return qemu.ShareSpec(self.folder, self.writable, SHARE_TAG)

    def link_nics(self) -> tuple[qemu.LinkNic, ...]:
        return tuple(link.nic_for(self._guest) for link in self.links)

    def kernel_args(self) -> tuple[str, ...]:
        return tuple(f"kit.link_ip={link.address(self._guest)}/{LINK_PREFIX}"
                     for link in self.links)

    def after_launch(self) -> None:
        """Give a freshly started NIC its link's state (QEMU starts every NIC plugged in)."""
        for link in self.links:
            link.apply(self._guest)

    def on_state(self, state: str) -> None:
        """A reboot or a stop unmounts everything: the share is closed again."""
        if state in ("booting", "crashed", "stopping", "stopped"):
            self.share_open = False

    # -- port forwards -------------------------------------------------------------

    def open_forward(self, host_port: object, guest_port: object) -> None:
        host, guest = check_forward(host_port, guest_port)
        self._require_live("open a port forward to")
        if host in self._guest.forwards:
            raise InvalidInput(
                f"host port {host} already forwards to guest port "
                f"{self._guest.forwards[host]} of {self._guest.name}.",
                hint=f"Close it first with g.close_forward({host}), or choose another host port.")
        validate.check_host_ports_free([host])
        self._monitor(f"hostfwd_add net0 tcp:127.0.0.1:{host}-:{guest}",
                      f"open the forward 127.0.0.1:{host} → guest port {guest}",
                      "The host port may have been taken meanwhile: choose another one.")
        self._guest.forwards[host] = guest
        self._announce()

    def close_forward(self, host_port: object) -> None:
        if host_port not in self._guest.forwards:
            open_now = ", ".join(str(p) for p in sorted(self._guest.forwards)) or "none"
            raise InvalidInput(
                f"no forward from host port {host_port!r} is open on {self._guest.name}.",
                hint=f"Open forwards (host ports): {open_now}.")
        assert isinstance(host_port, int)
        self._require_live("close a port forward of")
        self._monitor(f"hostfwd_remove net0 tcp:127.0.0.1:{host_port}",
                      f"close the forward from 127.0.0.1:{host_port}",
                      "Look at g.qmp('human-monitor-command', "
                      "{'command-line': 'info usernet'}) for what is open.",
                      success="removed")
        del self._guest.forwards[host_port]
        self._announce()

    def _monitor(self, command_line: str, doing: str, hint: str, success: str = "") -> None:
        """One human-monitor command.  HMP answers in sentences, not errors: ``hostfwd_add``
        says nothing when it worked, ``hostfwd_remove`` says "... removed" (or "not found")."""
        reply = self._guest.qmp("human-monitor-command", {"command-line": command_line})
        text = str(reply or "").strip()
        failed = not text.endswith(success) if success else bool(text)
        if failed:
            raise QMPError(f"QEMU could not {doing}: {text}", hint=hint)

    # -- the shared folder ---------------------------------------------------------

    def open_share(self) -> None:
        if self.folder is None:
            raise GuestError(
                f"guest {self._guest.name} has no shared folder.",
                hint=f"Declare it before the start: kit.Guest({self._guest.name!r}, "
                "shared_folder='some-folder'), then start the guest again.")
        self._guest._require_state("open the shared folder of", "running")
        if self.share_open:
            return
        options = "trans=virtio,version=9p2000.L" + ("" if self.writable else ",ro")
        try:
            self._in_guest(f"mkdir -p {SHARE_MOUNT} && "
                           f"mount -t 9p -o {options} {SHARE_TAG} {SHARE_MOUNT}",
                           "mount the shared folder", "Look at g.run('dmesg | tail') for why.")
        except GuestError as error:
            if "No such device" not in error.message:
                raise
            raise GuestError(
                f"the kernel of guest {self._guest.name} cannot read shared folders: it has "
                "no 9p file system (Debian's cloud kernel, used when the kit's own kernel "
                "could not be built, leaves it out).",
                hint="Build the kit's own kernel (python -m kit image, with KIT_KERNEL unset), "
                "which has 9p built in; or copy files in with g.agent('guest-file-write').",
            ) from None
        self.share_open = True
        self._announce()

    def close_share(self) -> None:
        if not self.share_open:
            return
        self._guest._require_state("close the shared folder of", "running")
        self._in_guest(f"umount {SHARE_MOUNT}", "unmount the shared folder",
                       f"A program in the guest may be using it (its working folder or an "
                       f"open file in {SHARE_MOUNT}): end it, then try again.")
        self.share_open = False
        self._announce()

    def shared_folders(self) -> tuple[snapshot.SharedFolder, ...]:
        from kit.snapshot import SharedFolder

        if not self.share_open or self.folder is None:
            return ()
        return (SharedFolder(str(self.folder), SHARE_MOUNT, self.writable),)

    def _in_guest(self, line: str, doing: str, hint: str) -> None:
        result = self._guest.run(line, timeout=10)
        if not result.ok:
            raise GuestError(f"the guest could not {doing}: {str(result).strip()}",
                             hint=hint, command=result.command)

    # -- helpers -------------------------------------------------------------------

    def _require_live(self, action: str) -> None:
        self._guest._require_state(f"{action} guest", *LIVE_STATES)

    def _announce(self) -> None:
        registry.announce(self._guest, self._guest.state)


# -- links between guests -----------------------------------------------------------

_link_numbers = itertools.count(1)
_ports_lock = threading.Lock()


class Link:
    """A network cable between two guests: ``kit.Link(a, b)`` before either starts.

    Each guest gets a second network card, eth1, with the address
    ``10.0.3.1`` (``a``) or ``10.0.3.2`` (``b``).  The cable is UDP datagrams
    between two ports of 127.0.0.1, one per side, so either guest may start
    first.  It starts unplugged: :meth:`up` plugs it in.
    """

    def __init__(self, a: Guest, b: Guest) -> None:
        _check_pair(a, b)
        self.a, self.b = a, b
        self.number = next(_link_numbers)
        self.ports = _free_udp_ports(2)
        self._up = False
        for guest in (a, b):
            guest._doors.links.append(self)
            registry.announce(guest, guest.state)

    def __repr__(self) -> str:
        return f"<Link {self.a.name} ↔ {self.b.name} {'up' if self._up else 'down'}>"

    @property
    def is_up(self) -> bool:
        return self._up

    def address(self, guest: Guest) -> str:
        """The link address of ``guest`` (one of this link's two ends)."""
        return f"{LINK_SUBNET}.{self._side(guest) + 1}"

    def up(self) -> None:
        """Plug the cable in: both cards see a carrier and pass frames."""
        self._set(True)

    def down(self) -> None:
        """Pull the cable out: the cards lose the carrier; nothing passes."""
        self._set(False)

    def snapshot(self) -> snapshot.Link:
        from kit.snapshot import Link as LinkPicture

        return LinkPicture(self.a.name, self.b.name, self._up)

    def nic_for(self, guest: Guest) -> qemu.LinkNic:
        side = self._side(guest)
        return qemu.LinkNic(
            id=LINK_NETDEV, local_port=self.ports[side], remote_port=self.ports[1 - side],
            mac=f"52:54:00:4c:{self.number % 256:02x}:{side + 1:02x}")

    def apply(self, guest: Guest) -> None:
        """Tell ``guest``'s QEMU the cable's state (QMP ``set_link``).

        Named by its netdev (the host end), not by the card: QEMU then drops
        the card's carrier too, and the guest sees NO-CARRIER all the same.
        Measured on QEMU 7.2 (microvm, TCG): after ``set_link`` named by the
        *card* had once put its link down, the next reset hung the guest in
        early boot; named by the netdev, every reboot came back.
        """
        guest.qmp("set_link", {"name": LINK_NETDEV, "up": self._up})

    def _set(self, up: bool) -> None:
        for guest in (self.a, self.b):
            guest._require_state(f"{'plug in' if up else 'pull out'} the link of guest",
                                 *LIVE_STATES)
        self._up = up
        for guest in (self.a, self.b):
            self.apply(guest)
        for guest in (self.a, self.b):
            registry.announce(guest, guest.state)

    def _side(self, guest: Guest) -> int:
        if guest is self.a:
            return 0
        if guest is self.b:
            return 1
        raise InvalidInput(f"guest {guest.name} is not an end of {self!r}.",
                           hint=f"Ask about {self.a.name} or {self.b.name}.")


def links_of(guest: Guest) -> tuple[snapshot.Link, ...]:
    return tuple(link.snapshot() for link in guest._doors.links)


def _check_pair(a: Any, b: Any) -> None:
    from kit.guest import Guest

    if not isinstance(a, Guest) or not isinstance(b, Guest):
        raise InvalidInput(f"kit.Link needs two guests, not {a!r} and {b!r}.",
                           hint="For example: a, b = kit.Guest('a'), kit.Guest('b'); "
                           "kit.Link(a, b).")
    if a is b or a.name == b.name:
        raise InvalidInput(f"a link from guest {a.name} to itself carries nothing.",
                           hint="Link two different guests: kit.Link(a, b).")
    for guest in (a, b):
        if guest.state not in ("created", "stopped"):
            raise GuestError(
                f"guest {guest.name} is already {guest.state}: a network card can only be "
                "added before the start (this machine type has no hotplug).",
                hint="Stop it (g.stop()), make the link, then start it again.")
        if guest._doors.links:
            raise InvalidInput(
                f"guest {guest.name} already has a link: in this kit a guest has one.",
                hint="Make another guest for another link.")


def _free_udp_ports(count: int) -> tuple[int, int]:
    """Ports nothing uses now on 127.0.0.1, chosen by the kernel (held together, so distinct)."""
    with _ports_lock:
        probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
        try:
            for probe in probes:
                probe.bind(("127.0.0.1", 0))
            first, second = (int(p.getsockname()[1]) for p in probes)
        finally:
            for probe in probes:
                probe.close()
    return first, second
