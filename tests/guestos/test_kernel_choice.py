"""Two kernels side by side: a guest can ask for Debian's kernel beside the kit's own."""

from __future__ import annotations

import pytest

import kit
from kit.core.errors import ImageError, InvalidInput
from kit.guestos import images

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_guests_of_two_kernels_run_at_once(image: images.GuestImage, guest_name: str) -> None:
    debian = images.ensure_image(kernel="debian")
    with kit.Guest(f"{guest_name}-own") as own, kit.Guest(f"{guest_name}-deb", kernel="debian",
                                                          memory_mb=debian.min_memory_mb) as deb:
        releases = {g.run(["uname", "-r"]).stdout.strip() for g in (own, deb)}
        assert releases == {image.kernel_version, debian.kernel_version}
        assert deb.image is not None and deb.image.kernel_source == "debian"


def test_an_unknown_kernel_choice_is_refused_before_anything_starts() -> None:
    with pytest.raises((ImageError, InvalidInput), match="debian"):
        kit.Guest("t-kernel", kernel="windows")
