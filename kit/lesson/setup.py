"""Lesson 0's setup check: is this machine ready, in plain words, and the first boot.

It runs the kit's doctor (:func:`kit.hypervisor.doctor.checks`) and says, for each
finding, what the thing is for and what to do; it builds the guest image
when there is none, with a progress bar fed by
:func:`kit.guestos.images.ensure_image`; and it boots a first guest in one click.

Slow work (a build takes minutes, a boot seconds) runs in a background
thread so the page stays alive; :meth:`SetupCheck.wait` lets a notebook run
headless (or a test) wait for it after ``button.click()``.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

from kit.core.state import GuestState
from kit.guestos import images
from kit.hypervisor import accelerator, doctor
from kit.hypervisor.guest import Guest
from kit.lesson.lesson import ensure_running
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget, set_button_style

WHAT_FOR = {
    "QEMU": "the hypervisor: the program that builds each virtual machine",
    "setpriv": "makes sure no guest outlives this notebook",
    "Graphviz": "draws the layer diagrams",
    "guest image": "the guests' own Linux kernel (the kit's, built from Debian's kernel "
                   "source) and tiny set of programs, built once",
    "accelerator": "how guest code runs on this CPU",
    "free memory": "each guest takes memory of its own from this host",
    "runtime folder": "where the kit keeps each guest's control sockets and logs, "
                      "private to you",
    "containers": "lesson 8 compares a virtual machine with a container, which needs the "
                  "host kernel's namespaces; every other lesson runs without them",
}
ACCELERATOR_WORDS = {
    "usable": "KVM works here: guest code runs on the real CPU with hardware help, so "
              "guests are fast.",
    "broken": "/dev/kvm exists, but a test guest failed under KVM, so the kit uses TCG: QEMU "
              "translates every guest instruction in software. Slower (a boot takes a few "
              "seconds), but every lesson works the same.",
    "absent": "This machine offers no KVM, so the kit uses TCG: QEMU translates every guest "
              "instruction in software. Slower, but every lesson works the same.",
    "no-access": "/dev/kvm exists but you may not use it, so the kit uses TCG (software). "
                 "Joining the 'kvm' group would make guests faster.",
    "forced": "The KIT_ACCEL setting chose the accelerator; it was not tested.",
    "untested": "KVM has not been tried yet: it is tried once the guest image exists.",
}


def explain(check: doctor.Check) -> str:
    """What a finding means for the learner, in a sentence."""
    if check.name == "accelerator":
        kvm = accelerator.accelerator().kvm
        return ACCELERATOR_WORDS.get(kvm, check.detail)
    return WHAT_FOR.get(check.name, "")


def mark(check: doctor.Check) -> str:
    if check.ok:
        return "✔ ok"
    return "✖ must be fixed" if check.required else "- optional"


class SetupCheck(KitWidget):
    """The machine's readiness, the image build (with progress), and a first boot."""

    def __init__(self, guest: Guest) -> None:
        super().__init__("setup check")
        self.guest = guest
        self.checks: list[doctor.Check] = []
        self._jobs: list[threading.Thread] = []
        self.table = widgets.HTML()
        self.verdict = widgets.HTML()
        self.again_button = widgets.Button(description="Check again", icon="refresh")
        self.build_button = widgets.Button(description="Build the guest image",
                                           icon="wrench", layout=widgets.Layout(width="auto"))
        set_button_style(self.build_button, "warning")
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, description="image",
                                              layout=widgets.Layout(width="24em"))
        self.progress_label = widgets.Label()
        self.boot_button = widgets.Button(description="Boot my first guest", icon="play",
                                          layout=widgets.Layout(width="auto"))
        set_button_style(self.boot_button, "success")
        self.boot_status = widgets.HTML()
        self.again_button.on_click(self._callback("checking the machine", self.refresh))
        self.build_button.on_click(self._callback("building the image", lambda: self._later(
            "building the guest image", self.build_image)))
        self.boot_button.on_click(self._callback("booting", lambda: self._later(
            "booting the first guest", self.boot)))
        self._set_body(
            widgets.HTML("<b>Is this machine ready?</b>"), self.table, self.verdict,
            widgets.HBox([self.again_button, self.build_button]),
            widgets.HBox([self.progress, self.progress_label]),
            widgets.HBox([self.boot_button, self.boot_status],
                         layout=widgets.Layout(align_items="center", grid_gap="8px")))
        self._callback("checking the machine", self.refresh)()

    @property
    def ready(self) -> bool:
        """Every required check passes."""
        return bool(self.checks) and all(c.ok for c in self.checks if c.required)

    def refresh(self) -> list[doctor.Check]:
        """Run every check again and show the findings."""
        self.checks = doctor.checks()
        rows = [[f'<span style="white-space:nowrap">{escape(mark(c))}</span>',
                 f'<b style="white-space:nowrap">{escape(c.name)}</b>', escape(explain(c)),
                 escape(c.detail) + (f"<br><b>fix:</b> <code>{escape(c.fix)}</code>"
                                     if c.fix and not c.ok else "")]
                for c in self.checks]
        self.table.value = markup.table(["", "what", "what it is for", "found here"], rows)
        broken = [c.name for c in self.checks if c.required and not c.ok]
        self.verdict.value = (
            markup.box("passed", "this machine can run the kit's guests.") if not broken
            else markup.box("failed", "fix these first: " + escape(", ".join(broken))
                           + ". The guest image can be built with the button below."))
        image_missing = any(c.name == "guest image" and not c.ok for c in self.checks)
        self.build_button.layout.display = "flex" if image_missing else "none"
        self.progress.layout.visibility = "visible" if image_missing else "hidden"
        self.boot_button.disabled = bool(broken)
        return self.checks

    def build_image(self) -> images.GuestImage:
        """Build the guest image if missing (minutes the first time), showing progress."""
        self.progress.layout.visibility = "visible"
        self.build_button.disabled = True
        try:
            image = images.ensure_image(progress=self._on_progress)
        finally:
            self.build_button.disabled = False
        self.refresh()
        return image

    def boot(self) -> Guest:
        """Start the first guest (a no-op if it already runs)."""
        if self.guest.state == GuestState.RUNNING:
            self.boot_status.value = f"guest <b>{escape(self.guest.name)}</b> is already running."
            return self.guest
        self.boot_status.value = f"booting <b>{escape(self.guest.name)}</b>…"
        started = time.monotonic()
        try:
            ensure_running(self.guest)
        except Exception:
            self.boot_status.value = "✖ the boot failed: the message above says why."
            raise
        self.boot_status.value = (f"✔ guest <b>{escape(self.guest.name)}</b> is running; it "
                                  f"booted in {time.monotonic() - started:.1f} s.")
        return self.guest

    def wait(self, timeout: float = 900.0) -> bool:
        """Wait for a build or boot started by a button; False if one still runs."""
        deadline = time.monotonic() + timeout
        for job in list(self._jobs):
            job.join(max(0.0, deadline - time.monotonic()))
        return not any(job.is_alive() for job in self._jobs)

    def _later(self, what: str, work: object) -> None:
        assert callable(work)
        self._jobs = [job for job in self._jobs if job.is_alive()]
        if self._jobs:
            return  # one slow job at a time: a double click does nothing
        self._jobs.append(self._in_background(what, work))

    def _on_progress(self, step: str, fraction: float) -> None:
        self.progress.value = max(0.0, min(1.0, fraction))
        self.progress_label.value = step
