"""The host view: the infrastructure layer, the real machine every guest runs on."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from kit.hypervisor import accelerator
from kit.infrastructure.hostinfo import Accelerator, HostInfo
from kit.view.markup import escape, pre
from kit.widgets.base import KitWidget

FLAG_MEANINGS = {
    "vmx": "Intel VT-x: the CPU can run guests with hardware help",
    "svm": "AMD-V: the CPU can run guests with hardware help",
    "hypervisor": "this host is itself a virtual machine",
}

KVM_WORDS = {
    "usable": "works: a test guest booted under it",
    "broken": "present but broken here: a test guest failed under it",
    "absent": "not available on this machine",
    "no-access": "present, but this user may not open /dev/kvm",
    "untested": "not tried yet",
    "forced": "chosen by the KIT_ACCEL setting, not tested",
}


# The accelerator in plain words: what the learner's guests use here, and what that means.
ACCELERATOR_SAYS = {
    "usable": ("✔ KVM", "KVM works here: the processor runs guest code itself, with hardware "
               "help, so guests are fast."),
    "broken": ("⚠ TCG, slower", "KVM is present on this machine but does not work here: a "
               "test guest failed under it. Guests use TCG instead: QEMU translates their "
               "code in software, slower but correct, and every lesson works the same."),
    "absent": ("✔ TCG, slower", "This machine offers no KVM, so guests use TCG: QEMU "
               "translates their code in software, slower but correct."),
    "no-access": ("⚠ TCG, slower", "/dev/kvm exists but you may not use it, so guests use "
                  "TCG (software), slower but correct. Joining the 'kvm' group would make "
                  "them faster."),
    "forced": ("✔ as set", "The KIT_ACCEL setting chose the accelerator; it was not tested."),
    "untested": ("○ not tried yet", "KVM has not been tried yet: the kit tries it once the "
                 "guest image exists."),
}


def accelerator_mark(accel: Accelerator) -> str:
    """A short verdict for a table's first column: never a bare "ok" over a broken KVM."""
    return ACCELERATOR_SAYS.get(accel.kvm, ("✔ " + accel.name.upper(), ""))[0]


def accelerator_words(accel: Accelerator) -> str:
    """What the accelerator means for the learner's guests, in plain words."""
    return ACCELERATOR_SAYS.get(accel.kvm, ("", accel.reason))[1] or accel.reason


def accelerator_html(accel: Accelerator) -> str:
    """The plain words, with QEMU's own words one click away when a KVM test guest failed.

    A failed probe's reason carries QEMU's raw message (an assertion in its
    KVM code, say): evidence for whoever wants it, not the first thing a
    learner reads.
    """
    words = escape(accelerator_words(accel))
    if accel.kvm != "broken":
        return words
    return (f"{words}<details><summary>what QEMU said when the kit tried KVM</summary>"
            f"{pre(accel.reason, '8em')}</details>")


def flags_text(flags: tuple[str, ...]) -> str:
    if not flags:
        return "none: this CPU offers no hardware virtualization to us"
    return "; ".join(f"{flag} ({FLAG_MEANINGS.get(flag, flag)})" for flag in flags)


def facts(info: HostInfo) -> list[tuple[str, str]]:
    """The facts worth showing, as (name, value in plain words)."""
    accel = info.accelerator
    return [
        ("host", f"{info.hostname}: {info.os}, Linux {info.kernel} ({info.machine})"),
        ("CPU", info.cpu_model),
        ("CPUs", f"{info.cpus} (a guest's vCPUs are threads sharing these)"),
        ("memory", f"{info.memory_total_mb} MiB in all, {info.memory_available_mb} MiB "
                   "available now"),
        ("virtualization flags", flags_text(info.virtualization_flags)),
        ("/dev/kvm", ("exists" if info.kvm_device else "does not exist")
         + f"; KVM {KVM_WORDS.get(accel.kvm, accel.kvm)}"),
        ("QEMU", f"version {info.qemu_version}"),
        ("accelerator", accel.label),
        ("why", accel.reason),
    ]


def facts_html(info: HostInfo) -> str:
    cells = {"why": accelerator_html(info.accelerator)}
    rows = "".join(
        f'<tr><th style="text-align:left;padding:1px 12px 1px 0;vertical-align:top">'
        f"{escape(name)}</th><td style=\"text-align:left\">"
        f"{cells.get(name, escape(value))}</td></tr>"
        for name, value in facts(info))
    return f"<table>{rows}</table>"


class HostView(KitWidget):
    """CPU, memory, virtualization support, QEMU and the accelerator, with a refresh button.

    ``kit.host()`` may boot a short KVM test guest the first time (its verdict
    is then cached), so the first view can take a few seconds.
    """

    def __init__(self, read: Callable[[], HostInfo] = accelerator.host) -> None:
        super().__init__("host view")
        self._read = read
        self.info: HostInfo | None = None
        self.table = widgets.HTML()
        self.refresh_button = widgets.Button(description="refresh", icon="refresh",
                                             layout=widgets.Layout(width="8em"))
        self.refresh_button.on_click(self._callback("reading the host's facts", self.refresh))
        self._set_body(
            widgets.HBox([widgets.HTML("<b>The host: the infrastructure layer</b>"),
                          self.refresh_button], layout=widgets.Layout(align_items="center",
                                                                      grid_gap="8px")),
            self.table,
        )
        self._callback("reading the host's facts", self.refresh)()

    def refresh(self) -> None:
        """Read the host's facts again (free memory changes as guests come and go)."""
        self.info = self._read()
        self.table.value = facts_html(self.info)
