"""What an instructor decides for a class: demo mode, and whether solutions may be shown.

* **Demo mode** (``KIT_DEMO=1`` in the environment, or the control room's
  toggle): every exercise runs its own solution when it is checked, so an
  instructor can present a lesson with Run All.  Passes made this way are
  recorded as *demo*, never as the learner's.
* **Solutions** (on unless ``KIT_SOLUTIONS=0``, or the control room's toggle):
  whether a learner who is stuck may press "show the solution" after a try.

The environment wins, so a class server can fix both for everyone; the
toggles write a small file beside the learner's progress file, which every
lesson kernel of that user reads at each check (the control room runs in a
kernel of its own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kit.lesson import progress

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def settings_file() -> Path:
    return Path(os.environ.get("KIT_CLASSROOM_FILE")
                or progress.progress_file().with_name("classroom.json"))


def demo_mode() -> bool:
    """Whether exercises solve themselves when checked (the instructor presents)."""
    return _setting("KIT_DEMO", "demo", default=False)


def solutions_allowed() -> bool:
    """Whether a stuck learner may see an exercise's solution."""
    return _setting("KIT_SOLUTIONS", "solutions", default=True)


def set_demo_mode(on: bool) -> None:
    _write("demo", on)


def set_solutions_allowed(on: bool) -> None:
    _write("solutions", on)


def fixed_by_environment(name: str) -> bool:
    """True when KIT_DEMO or KIT_SOLUTIONS decides, so a toggle would change nothing."""
    return os.environ.get(name, "").strip().lower() in TRUE + FALSE


def _setting(env: str, key: str, *, default: bool) -> bool:
    value = os.environ.get(env, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    return bool(_read().get(key, default))


def _read() -> dict[str, object]:
    try:
        data = json.loads(settings_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(key: str, on: bool) -> None:
    data = _read()
    data[key] = bool(on)
    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    partial.replace(path)
