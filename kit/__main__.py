"""``python -m kit``: the kit's few commands for the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kit.core.errors import KitError
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
    lessons = commands.add_parser("lessons", help="copy the lesson notebooks you do not have "
                                  "yet into a folder of your own, to work in")
    lessons.add_argument("folder", nargs="?", default=None,
                         help="where (default: $KIT_LESSONS_DIR, else ~/kit-lessons); copies "
                              "you already have are never overwritten")
    lessons.add_argument("--reset", metavar="LESSON", default=None,
                         help="give you a fresh copy of one lesson (e.g. 02); your old copy "
                              "is kept beside it")
    _add_hub_commands(commands)
    guide = commands.add_parser("guide", help="print the instructor guide's answer key, "
                                "written from the lessons")
    guide.add_argument("--write", metavar="FILE", nargs="?", const="docs/instructor-guide.md",
                       help="rewrite the key inside FILE (default: docs/instructor-guide.md)")
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
        _publish_for_everyone(image.kernel.parent)
        return 0
    if args.command == "lessons":
        return _copy_lessons(Path(args.folder) if args.folder else None, args.reset)
    if args.command == "hub":
        return _hub(args)
    if args.command == "guide":
        return _guide(args.write)
    if args.command == "doctor":
        from kit.hypervisor import doctor

        return doctor.main()

    print(json.dumps(accelerator.host().as_dict(), indent=2))
    return 0


def _add_hub_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = commands.add_parser("hub", help="serve a class: a JupyterHub whose learners each run "
                              "the lessons as a user of their own (as root)")
    verbs = hub.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="check, make the accounts, start the hub (Ctrl-C "
                             "stops it, and every learner's server and guests)")
    serve.add_argument("class_file", metavar="CLASSFILE", type=Path)
    serve.add_argument("--detach", action="store_true",
                       help="return once the hub is ready; stop it with: hub stop CLASSFILE")
    for verb, what in (("stop", "stop a hub started with serve --detach"),
                       ("check", "every check of serve, changing nothing")):
        verbs.add_parser(verb, help=what).add_argument("class_file", metavar="CLASSFILE",
                                                       type=Path)
    verbs.add_parser("example", help="print a class file to start from")


def _hub(args: argparse.Namespace) -> int:
    """The class hub's commands (kit.hub): its files are in $KIT_HUB_DIR, else /var/lib/kit-hub."""
    from kit.hub import classfile, server

    if args.verb == "example":
        print(classfile.EXAMPLE, end="")
        return 0
    if args.verb == "serve":
        return server.serve(args.class_file, detach=args.detach)
    if args.verb == "stop":
        return server.stop(args.class_file)
    return server.check(args.class_file)


def _publish_for_everyone(folder: Path) -> None:
    """Run as root: the image goes into the system-wide cache, built once for every user."""
    from kit.guestos import system_cache

    if not system_cache.may_publish() or folder.parent == system_cache.images_dir():
        return
    published = system_cache.publish(folder)
    print(f"published for every user of this machine (read-only): {published}")


def _guide(write: str | None) -> int:
    """The answer key, printed, or written into the guide between its markers."""
    from kit.lesson import guide

    if write is None:
        print(guide.answer_key())
        return 0
    changed = guide.write(Path(write))
    print(f"{write}: the answer key is {'rewritten' if changed else 'already up to date'}")
    return 0


def _copy_lessons(folder: Path | None, reset: str | None) -> int:
    """The learner's copies of the lessons: made if missing, one of them fresh if asked."""
    from kit.lesson import workspace

    target = folder or workspace.learner_folder()
    if reset is not None:
        backup = workspace.reset(reset, target)
        print(f"a fresh copy of lesson {reset} is in {target}; your old one is {backup.name}")
        return 0
    made = workspace.copy_missing(target)
    print(f"{len(made)} new lesson copies in {target} (yours are never overwritten); open "
          f"them with: jupyter lab {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
