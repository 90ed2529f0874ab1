"""The kit's logging: one logger per module, and a trace of what it says to QEMU and the guest.

Every module logs through ``logging.getLogger(__name__)``, so its records sit
under the ``kit`` logger and can be switched on by name (``kit.hypervisor``,
say).  The kit, being a library, configures no handler of its own except
when asked: :func:`trace` shows every QMP and guest-agent message as it goes
by, which is what an instructor wants on a projector when asking "what did
that button just do?".

Traffic is logged at DEBUG on ``kit.trace.<guest name>``, one record per
message, written as ``-> qemu {...}`` (sent to the hypervisor), ``<- qemu``
(its answer or event), ``-> agent`` and ``<- agent`` (the guest OS's side).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

TRACE = "kit.trace"
_FORMAT = "%(asctime)s.%(msecs)03d %(name)s %(message)s"
_handlers: dict[str, logging.Handler] = {}


def traffic_logger(guest_name: str) -> logging.Logger:
    """The logger a guest's QMP and agent messages go to."""
    return logging.getLogger(f"{TRACE}.{guest_name}")


def log_message(logger: logging.Logger, arrow: str, layer: str, message: object) -> None:
    """One message of one guest's traffic (cheap when nobody traces)."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s %s", arrow, layer, json.dumps(message, default=str)[:2000])


def trace(guest: str | None = None, *, on: bool = True, stream: TextIO | None = None) -> None:
    """Show every QMP and guest-agent message of ``guest`` (default: all guests).

    ``kit.trace()`` switches it on for every guest, ``kit.trace("web1")`` for
    one, ``kit.trace(on=False)`` (or ``kit.trace("web1", on=False)``) off.
    Messages go to ``stream`` (default: standard error, which Jupyter shows
    under the cell that made them).
    """
    name = TRACE if guest is None else f"{TRACE}.{guest}"
    logger = logging.getLogger(name)
    old = _handlers.pop(name, None)
    if old is not None:
        logger.removeHandler(old)
    if not on:
        logger.setLevel(logging.NOTSET)
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    _handlers[name] = handler
