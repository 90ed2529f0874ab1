"""Two kernels side by side: a guest can ask for Debian's kernel beside the kit's own."""

from __future__ import annotations

import pytest

import kit
from kit.core.errors import ImageError, InvalidInput
from kit.guestos import images


@pytest.mark.guest
@pytest.mark.slow
def test_guests_of_two_kernels_run_at_once(image: images.GuestImage, guest_name: str) -> None:
    debian = images.ensure_image(kernel="debian")
    # Two different kernels, unless KIT_KERNEL=debian chose Debian's for both on
    # purpose: a kit kernel that failed to build must not pass as "two kernels".
    two = images.kernel_choice() != "debian"
    assert (image.kernel_source == "kit") == two, image.kernel_summary()
    with kit.Guest(f"{guest_name}-own") as own, kit.Guest(f"{guest_name}-deb", kernel="debian",
                                                          memory_mb=debian.min_memory_mb) as deb:
        releases = [g.run(["uname", "-r"]).stdout.strip() for g in (own, deb)]
        assert releases == [image.kernel_version, debian.kernel_version]
        assert (releases[0] != releases[1]) == two
        assert deb.image is not None and deb.image.kernel_source == "debian"


def test_an_unknown_kernel_choice_is_refused_before_anything_starts() -> None:
    with pytest.raises((ImageError, InvalidInput), match="debian"):
        kit.Guest("t-kernel", kernel="windows")
