"""``python -m kit``: the kit's few commands for the shell."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from kit.core import paths
from kit.core.errors import InvalidInput, KitError
from kit.guestos.build import common
from kit.hypervisor import accelerator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the guest image if it is not cached")
    image.add_argument("--arch", default="x86_64")
    image.add_argument("--rebuild", action="store_true", help="build even if cached")
    image.add_argument("--kernel", choices=("auto", "debian"), default=None,
                       help="auto: the kit's own kernel where it can be built (default); "
                            "debian: Debian's ready-made kernel")
    lessons = commands.add_parser("lessons", help="copy the lesson notebooks into a folder "
                                  "of your own, to work in")
    lessons.add_argument("folder", nargs="?", default="kit-lessons",
                         help="where to put them (default: ./kit-lessons); must not exist yet")
    commands.add_parser("doctor", help="check that this machine can run the kit")
    commands.add_parser("host", help="print the host's facts as JSON")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KitError as error:
        print(f"kit: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "image":
        from kit.guestos import images

        build = images.build_image if args.rebuild else images.ensure_image
        image = build(args.arch, progress=common.print_progress, kernel=args.kernel)
        print(f"guest image ready: {image.kernel.parent} ({image.size_bytes / 2**20:.1f} MiB)")
        print(f"guests boot {image.kernel_summary()}")
        return 0
    if args.command == "lessons":
        return _copy_lessons(Path(args.folder))
    if args.command == "doctor":
        from kit.hypervisor import doctor

        return doctor.main()

    print(json.dumps(accelerator.host().as_dict(), indent=2))
    return 0


def _copy_lessons(folder: Path) -> int:
    """Copy the shipped notebooks out; the copies are the learner's to edit and run."""
    if folder.exists():
        raise InvalidInput(f"{folder} already exists: the lessons are copied into a new folder, "
                           "so that nothing of yours is overwritten.",
                           hint="Name a folder that does not exist yet: python -m kit lessons "
                           "my-lessons")
    shutil.copytree(paths.lessons_dir(), folder,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    count = len(list(folder.glob("*.ipynb")))
    print(f"copied {count} notebooks to {folder}; open them with: jupyter lab {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
