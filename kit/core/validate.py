"""Checks on what a learner asks for, made before anything starts.

Each check raises :class:`kit.core.errors.InvalidInput` saying what was wrong and
what is allowed, so a typo in a lesson cell teaches instead of hanging.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Mapping, Sequence

import psutil

from kit.core.errors import HostLimit, InvalidInput

KERNEL_ARG_PATTERN = re.compile(r"^[A-Za-z0-9_.,:/=+-]{1,200}$")
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
LOWEST_HOST_PORT = 1024  # below this a port needs root; the kit never asks for one
HOST_MEMORY_RESERVE_MB = 256  # left for the host itself and QEMU's own overhead


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"{name!r} cannot be a guest name.",
            hint="Use 1 to 32 characters: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, e.g. 'web1'.",
        )
    return name


def check_memory(memory_mb: object, minimum_mb: int) -> int:
    if not isinstance(memory_mb, int) or isinstance(memory_mb, bool):
        raise InvalidInput(
            f"memory_mb must be a whole number of MiB, not {memory_mb!r}.",
            hint="For example memory_mb=128.",
        )
    if memory_mb < minimum_mb:
        raise InvalidInput(
            f"{memory_mb} MiB is too little: this guest's kernel needs at least {minimum_mb} MiB.",
            hint=f"Ask for memory_mb={minimum_mb} or more.",
        )
    free_mb = available_memory_mb() - HOST_MEMORY_RESERVE_MB
    if memory_mb > free_mb:
        raise HostLimit(
            f"{memory_mb} MiB is more than this host can give: about {max(free_mb, 0)} MiB "
            "is free for guests right now.",
            hint="Ask for less memory, or stop other guests first (kit.stop_all()).",
        )
    return memory_mb


def check_cpus(cpus: object) -> int:
    host_cpus = os.cpu_count() or 1
    if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= host_cpus:
        raise InvalidInput(
            f"cpus={cpus!r} is not possible here.",
            hint=f"A guest has from 1 to {host_cpus} virtual CPUs on this host "
            f"(it has {host_cpus}).",
        )
    return cpus


def check_choice(what: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(
            f"{what}={value!r} is not available.",
            hint=f"Choose one of: {', '.join(allowed)}.",
        )
    return value


def check_kernel_args(args: object) -> tuple[str, ...]:
    """Extra words for the guest kernel's command line, one word each, no quoting tricks."""
    if isinstance(args, str) or not isinstance(args, Sequence):
        raise InvalidInput(
            f"kernel_args must be a list of words, not {args!r}.",
            hint="For example kernel_args=['loglevel=4'].",
        )
    for word in args:
        if not isinstance(word, str) or not KERNEL_ARG_PATTERN.match(word):
            raise InvalidInput(
                f"{word!r} cannot go on the kernel command line.",
                hint="Each word is letters, digits and _ . , : / = + - only, with no spaces.",
            )
    return tuple(args)


MAX_TIMEOUT_S = 24 * 3600


def check_timeout(timeout: object) -> float:
    if (not isinstance(timeout, int | float) or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_TIMEOUT_S):
        raise InvalidInput(
            f"timeout={timeout!r} is not a usable number of seconds.",
            hint="Give a positive number of seconds, e.g. timeout=30.",
        )
    return float(timeout)


def check_forwards(forwards: object) -> dict[int, int]:
    """``{host_port: guest_port}``: host ports free and unprivileged, guest ports valid."""
    if forwards is None:
        return {}
    if not isinstance(forwards, Mapping):
        raise InvalidInput(
            f"forwards must be a dict of host port to guest port, not {forwards!r}.",
            hint="For example forwards={8080: 80}.",
        )
    checked: dict[int, int] = {}
    for host_port, guest_port in forwards.items():
        _check_port(host_port, LOWEST_HOST_PORT, "host")
        _check_port(guest_port, 1, "guest")
        checked[host_port] = guest_port
    return checked


def check_host_ports_free(ports: list[int]) -> None:
    for port in ports:
        if not port_is_free(port):
            raise InvalidInput(
                f"port {port} on 127.0.0.1 is already taken by another program or guest.",
                hint="Choose another host port, or stop the guest using it.",
            )


def port_is_free(port: int) -> bool:
    """Whether QEMU could listen on 127.0.0.1:``port`` now.

    QEMU's forwards bind with SO_REUSEADDR, so a port whose last connection
    is still closing (TIME-WAIT, up to a minute after a guest stopped) is
    free for them; the probe binds the same way, or a guest restarted at
    once would be refused its own port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def available_memory_mb() -> int:
    return int(psutil.virtual_memory().available // (1024 * 1024))


def _check_port(port: object, lowest: int, side: str) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not lowest <= port <= 65535:
        raise InvalidInput(
            f"{port!r} is not a usable {side} port.",
            hint=f"A {side} port is a whole number from {lowest} to 65535"
            + (" (ports below 1024 need root, and the kit never asks for them)."
               if side == "host" else "."),
        )
