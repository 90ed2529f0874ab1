"""The doors panel: open and close, by hand, each place where data crosses a guest's walls.

One toggle per door (a port forward, the shared folder, a link to another
guest, the internet door: the guest's one way out).  A toggle always shows
the door as it *is*, not as it was clicked: after each click, and after each
announcement from the registry (a lesson cell may open a door too, or a
reboot may close the share), the panel reads the guest again.  A click
that fails puts the toggle back and says why in the banner.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from kit.core.state import GuestState
from kit.hypervisor import doors
from kit.hypervisor.guest import Guest
from kit.view.markup import escape
from kit.widgets.base import KitWidget, resolve_guest, set_button_style

DEFAULT_HOST_PORT = 8080
DEFAULT_GUEST_PORT = 80
OPEN, CLOSED = "🔓 open", "🔒 closed"


def forward_words(forwards: dict[int, int]) -> str:
    """Every open forward in words, e.g. '127.0.0.1:8080 → guest port 80'."""
    if not forwards:
        return "no port of this host leads into the guest"
    return "; ".join(f"127.0.0.1:{host} → guest port {guest}"
                     for host, guest in sorted(forwards.items()))


def share_words(guest: Guest) -> str:
    folder = guest.shared_folder
    if folder is None:
        return "no shared folder was declared (kit.Guest(..., shared_folder='DIR'))"
    mode = "writable" if guest.shared_writable else "read-only"
    where = f"host {folder} → guest {doors.SHARE_MOUNT} ({mode})"
    return f"mounted: {where}" if guest.share_open else f"not mounted: {where}"


def internet_words(guest: Guest) -> str:
    return guest.doors.internet.openings()[0].words


def link_words(link: doors.Link) -> str:
    ends = (f"{link.a.name} {link.address(link.a)} ↔ {link.b.name} {link.address(link.b)}"
            " on eth1")
    return f"cable plugged in: {ends}" if link.is_up else f"cable pulled out: {ends}"


class DoorsPanel(KitWidget):
    """Toggles for the doors of ``guest`` (and of ``link``, a :class:`kit.Link`, if given)."""

    def __init__(self, guest: Guest | str, link: doors.Link | None = None) -> None:
        super().__init__("doors panel")
        self.guest = resolve_guest(guest)
        self.link = link
        self._build()
        for watched in self._watched_guests():
            self._follow_guest(watched, lambda _state: self.refresh())
        self.refresh()

    # -- building ------------------------------------------------------------------

    def _build(self) -> None:
        self.heading = widgets.HTML(f"<b>Doors of guest {escape(self.guest.name)}</b>")
        self.note = widgets.HTML()
        self.host_port = widgets.BoundedIntText(
            value=DEFAULT_HOST_PORT, min=1, max=65535, description="host port",
            layout=widgets.Layout(width="12em"))
        self.guest_port = widgets.BoundedIntText(
            value=DEFAULT_GUEST_PORT, min=1, max=65535, description="guest port",
            layout=widgets.Layout(width="12em"))
        self.forward = self._toggle("port forward", "QMP human-monitor-command: "
                                    "hostfwd_add / hostfwd_remove (127.0.0.1 only)",
                                    self._forward_is_open, self._forward_changed)
        self.share = self._toggle("shared folder", "guest agent: mount -t 9p ... "
                                  f"{doors.SHARE_MOUNT} / umount",
                                  lambda: self.guest.share_open, self._share_changed)
        self.link_toggle = self._toggle("link", "QMP set_link on both network cards",
                                        lambda: self.link is not None and self.link.is_up,
                                        self._link_changed)
        self.internet = self._toggle("internet", "QMP set_link on the internet door's card "
                                     "(outbound NAT through the host)",
                                     lambda: self.guest.internet_open, self._internet_changed)
        self.forward_state, self.share_state, self.link_state, self.internet_state = (
            widgets.HTML() for _ in range(4))
        self.host_port.observe(lambda _: self.refresh(), names="value")
        rows = [
            widgets.HBox([self.forward, self.host_port, self.guest_port, self.forward_state],
                         layout=widgets.Layout(align_items="center", grid_gap="6px")),
            widgets.HBox([self.share, self.share_state],
                         layout=widgets.Layout(align_items="center", grid_gap="6px")),
            widgets.HBox([self.internet, self.internet_state],
                         layout=widgets.Layout(align_items="center", grid_gap="6px")),
        ]
        if self.link is not None:
            rows.append(widgets.HBox([self.link_toggle, self.link_state],
                                     layout=widgets.Layout(align_items="center",
                                                           grid_gap="6px")))
        self._set_body(self.heading, self.note, *rows)

    def _toggle(self, label: str, tooltip: str, is_open: Callable[[], bool],
                changed: Callable[[bool], None]) -> widgets.ToggleButton:
        toggle = widgets.ToggleButton(description=label, tooltip=tooltip, icon="lock",
                                      layout=widgets.Layout(width="19em"))
        guarded = self._guarded(f"the {label} door", changed)

        def on_change(change: dict[str, object]) -> None:
            if bool(change["new"]) == is_open():
                return  # a refresh showing the door as it is: nothing to do
            self.banner.clear()
            try:
                guarded(bool(change["new"]))
            finally:
                self.refresh()  # shows the door as it is, whether the click worked or not

        toggle.observe(on_change, names="value")
        return toggle

    def _watched_guests(self) -> list[Guest]:
        if self.link is None:
            return [self.guest]
        return [self.guest, *(g for g in (self.link.a, self.link.b) if g is not self.guest)]

    # -- what a click does ---------------------------------------------------------

    def _forward_is_open(self) -> bool:
        return self.host_port.value in self.guest.forwards

    def _forward_changed(self, wanted: bool) -> None:
        host = self.host_port.value
        if wanted:
            self.guest.open_forward(host, self.guest_port.value)
        else:
            self.guest.close_forward(host)

    def _share_changed(self, wanted: bool) -> None:
        if wanted:
            self.guest.open_share()
        else:
            self.guest.close_share()

    def _internet_changed(self, wanted: bool) -> None:
        if wanted:
            self.guest.open_internet()
        else:
            self.guest.close_internet()

    def _link_changed(self, wanted: bool) -> None:
        if self.link is None:
            return
        if wanted:
            self.link.up()
        else:
            self.link.down()

    # -- showing ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Show each door as it is now."""
        g = self.guest
        live = g.state.hypervisor_answers
        self.note.value = "" if live else (
            f"<i>The guest is {escape(g.state)}: start it to open its doors.</i>")
        self._show(self.forward, self._forward_is_open(), not live)
        self.forward_state.value = escape(forward_words(g.forwards))
        self._show(self.share, g.share_open,
                   g.state != GuestState.RUNNING or g.shared_folder is None)
        self.share_state.value = escape(share_words(g))
        self._show(self.internet, g.internet_open, False)
        self.internet_state.value = escape(internet_words(g))
        if self.link is not None:
            both_live = all(x.state.hypervisor_answers for x in (self.link.a, self.link.b))
            self._show(self.link_toggle, self.link.is_up, not both_live)
            self.link_state.value = escape(link_words(self.link))

    @staticmethod
    def _show(toggle: widgets.ToggleButton, is_open: bool, disabled: bool) -> None:
        toggle.value = is_open
        toggle.icon = "unlock" if is_open else "lock"
        set_button_style(toggle, "warning" if is_open else "")
        toggle.disabled = disabled
        name = toggle.description.split(":")[0]
        toggle.description = f"{name}: {OPEN if is_open else CLOSED}"
