"""Host facts, read without booting anything."""

from __future__ import annotations

from kit.infrastructure import hostinfo


def test_virtualization_flags_are_the_ones_that_matter() -> None:
    assert set(hostinfo.virtualization_flags()) <= {"vmx", "svm", "hypervisor"}


def test_cpu_model_and_os_name_are_words() -> None:
    assert hostinfo.cpu_model()
    assert hostinfo.os_name()


def test_a_missing_file_reads_as_empty() -> None:
    assert hostinfo.read_text_or_empty("/no/such/file") == ""
