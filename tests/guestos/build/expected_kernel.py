"""Whether the tests expect the kit's own kernel, and the image that boots it.

The kit's kernel is expected unless ``KIT_KERNEL=debian`` chose Debian's on
purpose; then its tests skip (README.md lists them).  When it is expected and
the image boots Debian's kernel instead (a build that failed falls back with
only a warning), its tests fail: the kit's kernel must not go untested while
the tests pass.
"""

from __future__ import annotations

import pytest

from kit.guestos import images


def expect_kit_kernel() -> None:
    """Skip when Debian's kernel was chosen on purpose (KIT_KERNEL=debian), and only then.

    Otherwise the kit's kernel is expected, and a missing one fails the test:
    a build that failed falls back to Debian's kernel with only a warning,
    which must not leave the kit's kernel untested while the tests pass.
    """
    if images.kernel_choice() == "debian":
        pytest.skip("KIT_KERNEL=debian: guests boot Debian's kernel, on purpose")


def kit_image() -> images.GuestImage:
    expect_kit_kernel()
    image = images.find_image()
    if image is None or image.kernel_source != "kit":
        pytest.fail("the guest image does not boot the kit's own kernel: "
                    + (image.kernel_summary() if image else "no image is built")
                    + ". Fix the kernel build (python -m kit image --rebuild tries again), "
                    "or choose Debian's kernel on purpose with KIT_KERNEL=debian.")
    return image
