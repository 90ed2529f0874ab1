"""The host view: the infrastructure layer's facts, in plain words."""

from __future__ import annotations

import os

import pytest

import kit
from kit.core import incidents
from kit.core.errors import SetupError
from kit.infrastructure.hostinfo import Accelerator, HostInfo
from kit.widgets import HostView
from kit.widgets.host_view import (
    accelerator_html,
    accelerator_mark,
    accelerator_words,
    facts,
    flags_text,
)


def made_up_host(**changes: object) -> HostInfo:
    values: dict[str, object] = dict(
        hostname="lab1", os="Debian GNU/Linux 12", kernel="6.1.0", machine="x86_64",
        cpu_model="Some CPU <fast>", cpus=2, memory_total_mb=8000, memory_available_mb=6000,
        virtualization_flags=("hypervisor", "vmx"), kvm_device=True, qemu_version="7.2.22",
        accelerator=Accelerator("tcg", "broken", "a probe guest failed under KVM."),
    )
    values.update(changes)
    return HostInfo(**values)  # type: ignore[arg-type]


def test_facts_say_what_flags_and_kvm_mean() -> None:
    shown = dict(facts(made_up_host()))
    assert "Intel VT-x" in shown["virtualization flags"]
    assert "itself a virtual machine" in shown["virtualization flags"]
    assert shown["/dev/kvm"] == "exists; KVM present but broken here: a test guest failed under it"
    assert shown["accelerator"] == "TCG (software emulation)"
    assert shown["why"] == "a probe guest failed under KVM."
    assert "6000 MiB available" in shown["memory"]
    assert flags_text(()).startswith("none")


RAW = ("QEMU exited with code -6 before init ran: qemu-system-x86_64: "
       "../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == "
       "cpu->kvm_msr_buf->nmsrs' failed.")


def test_a_broken_kvm_is_said_in_plain_words_with_qemus_line_one_click_away() -> None:
    broken = Accelerator("tcg", "broken", f"/dev/kvm exists but a probe guest failed under KVM "
                                          f"({RAW}); using software emulation (TCG) instead.")
    assert accelerator_mark(broken) == "⚠ TCG, slower"  # not "✔ ok"
    words = accelerator_words(broken)
    assert "present on this machine but does not work here" in words
    assert "slower but correct" in words and "kvm_buf_set_msrs" not in words
    html = accelerator_html(broken)
    plain, details = html.split("<details>")
    assert "kvm_buf_set_msrs" not in plain
    assert "<summary>" in details and "kvm_buf_set_msrs: Assertion `ret ==" in details
    view = HostView(read=lambda: made_up_host(accelerator=broken))
    try:
        why = view.table.value.split("why</th>")[1]
        assert why.index("does not work here") < why.index("<details>") < why.index("Assertion")
    finally:
        view.close()


def test_a_working_kvm_needs_no_details() -> None:
    usable = Accelerator("kvm", "usable", "a probe guest booted under KVM in 0.8 s.")
    assert accelerator_mark(usable) == "✔ KVM"
    assert "<details>" not in accelerator_html(usable) and "works here" in accelerator_html(usable)


def test_view_shows_the_facts_escaped_and_refreshes() -> None:
    hosts = iter([made_up_host(), made_up_host(memory_available_mb=1234)])
    view = HostView(read=lambda: next(hosts))
    try:
        assert "Some CPU &lt;fast&gt;" in view.table.value
        view.refresh_button.click()
        assert "1234 MiB available" in view.table.value
    finally:
        view.close()


def test_a_failing_read_is_shown_and_recorded() -> None:
    def broken() -> HostInfo:
        raise SetupError("qemu-system-x86_64 is not installed.", hint="Run ./setup.sh")

    view = HostView(read=broken)
    try:
        assert "not installed" in view.banner.text and "Run ./setup.sh" in view.banner.text
        with pytest.raises(incidents.RecordedErrors):
            kit.raise_recorded_errors()
    finally:
        view.close()


def test_view_of_this_real_host() -> None:
    view = HostView()
    try:
        assert view.info is not None
        assert view.info.cpus == os.cpu_count()
        assert view.info.accelerator.label in view.table.value
        assert "QEMU" in view.table.value
    finally:
        view.close()
