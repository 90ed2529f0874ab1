"""Errors that happened where nobody was waiting for them.

A widget callback or a background task has no caller to raise to: in
JupyterLab its exception is printed somewhere easy to miss, and in a notebook
executed headless (the tests) it is printed and forgotten.  So the kit records
them here, shows them in the widget in plain words, and offers
:func:`raise_recorded`, which lesson notebooks call in their last cell so a
run in the tests fails when a button would have failed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_incidents: list[Incident] = []
MAX_KEPT = 100


@dataclass(frozen=True)
class Incident:
    where: str
    error: BaseException
    when: float
    traceback: str


class RecordedErrors(Exception):
    """Raised by :func:`raise_recorded`: errors happened in callbacks or background tasks."""


def record(error: BaseException, where: str) -> Incident:
    incident = Incident(where, error, time.time(),
                        "".join(traceback.format_exception(error)))
    with _lock:
        _incidents.append(incident)
        del _incidents[:-MAX_KEPT]
    log.warning("error in %s: %s", where, error, exc_info=error)
    return incident


def recorded() -> list[Incident]:
    with _lock:
        return list(_incidents)


def clear() -> None:
    with _lock:
        _incidents.clear()


def raise_recorded() -> None:
    """Raise if any error was recorded since the last :func:`clear`; then clear."""
    with _lock:
        found = list(_incidents)
        _incidents.clear()
    if found:
        summary = "\n".join(f"- in {i.where}: {type(i.error).__name__}: {i.error}" for i in found)
        raise RecordedErrors(
            f"{len(found)} error(s) happened in widgets or background tasks:\n{summary}"
        ) from found[0].error


def guarded(where: str, on_error: Callable[[BaseException], None] | None = None
            ) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Wrap a callback so its errors are recorded (and shown via ``on_error``), not lost."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R | None]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                record(error, where)
                if on_error is not None:
                    try:
                        on_error(error)
                    except Exception as display_error:
                        record(display_error, f"showing an error in {where}")
                return None

        return inner

    return wrap
