"""Refresh docs/screenshots/: run the browser tests with KIT_SCREENSHOTS=1.

    .venv/bin/python -m tests.browser.screenshots [pytest arguments...]

Each lesson's picture is taken at the moment its row in ``plans.py`` marks
with ``Screenshot(...)``, as a 1280x800 view saved as a small palette PNG.
Ordinary test runs never write these files.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.browser.notebook import SCREENSHOTS


def main(args: list[str]) -> int:
    os.environ["KIT_SCREENSHOTS"] = "1"
    code = int(pytest.main(["-m", "browser", "-p", "no:cacheprovider",
                            str(SCREENSHOTS.parents[1] / "tests" / "browser"), *args]))
    for path in sorted(SCREENSHOTS.glob("*.png")):
        print(f"{path.relative_to(SCREENSHOTS.parents[1])}: {path.stat().st_size // 1024} KiB")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
