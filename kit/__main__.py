"""``python -m kit``: the kit's few commands for the shell."""

from __future__ import annotations

import argparse
import json
import sys

from kit.errors import KitError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    image = commands.add_parser("image", help="build the guest image if it is not cached")
    image.add_argument("--arch", default="x86_64")
    image.add_argument("--rebuild", action="store_true", help="build even if cached")
    image.add_argument("--kernel", choices=("auto", "debian"), default=None,
                       help="auto: the kit's own kernel where it can be built (default); "
                            "debian: Debian's ready-made kernel")
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
        from kit import images

        build = images.build_image if args.rebuild else images.ensure_image
        image = build(args.arch, progress=images.print_progress, kernel=args.kernel)
        print(f"guest image ready: {image.kernel.parent} ({image.size_bytes / 2**20:.1f} MiB)")
        print(f"guests boot {image.kernel_summary()}")
        return 0
    if args.command == "doctor":
        from kit import doctor

        return doctor.main()
    from kit import infrastructure

    print(json.dumps(infrastructure.host().as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
