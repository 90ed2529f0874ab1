"""A guest's serial console: everything it printed, and a way to type on it.

The console is read on the kit loop from the first byte QEMU writes (the kit
holds its end of the socket before QEMU starts).  A guest can print without
end, so the text is kept bounded: the first ``head_bytes`` (the boot log,
which lessons show) and the last ``tail_bytes``, with a note of what was
dropped in between.  Listeners (console widgets) are told of new text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable

from kit.core import incidents, kitloop

log = logging.getLogger(__name__)

Listener = Callable[[str], None]

MARKER_PREFIX = "KIT-"  # the guest's init announces itself with lines like KIT-READY

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class Console:
    """The serial console of one guest (``g.console``)."""

    def __init__(self, head_bytes: int = 256 * 1024, tail_bytes: int = 512 * 1024) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self._head_limit = head_bytes
        self._tail_limit = tail_bytes
        self._dropped = 0
        self._total = 0
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._lines_seen: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._partial = b""

    # -- reading --------------------------------------------------------

    def text(self) -> str:
        """All the console kept, from its first byte, ANSI codes and CRs removed."""
        with self._lock:
            raw = bytes(self._head)
            if self._dropped:
                raw += f"\n[... {self._dropped} bytes not kept ...]\n".encode()
            raw += bytes(self._tail)
        return _ANSI.sub("", raw.decode("utf-8", "replace"))

    def tail(self, lines: int = 20) -> str:
        """The last lines, for error messages."""
        return "\n".join(self.text().rstrip().splitlines()[-lines:])

    @property
    def bytes_received(self) -> int:
        return self._total

    def count(self, line: str) -> int:
        """How many times the marker line ``line`` (``KIT-...``) has been printed."""
        return self._lines_seen.get(line, 0)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(new_text)`` on the kit loop as text arrives; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- writing --------------------------------------------------------

    def write(self, text: str) -> None:
        """Type ``text`` on the console (add ``\\n`` to press Enter)."""
        data = text.encode()
        kitloop.call_soon(lambda: self._writer.write(data) if self._writer else None)

    # -- on the kit loop --------------------------------------------------

    async def attach(self, sock: socket.socket) -> None:
        """Own the kit's end of the console socket: read it from now until :meth:`close`."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self._pump = asyncio.create_task(self.pump(reader, writer))

    async def close(self) -> None:
        """Close the stream through its writer, which closes the socket under it.

        Never close the socket itself: its transport would stay registered
        with the loop, and the next descriptor given the same number would be
        refused ("File descriptor N is used by transport").
        """
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None
    ) -> None:
        """Read until the guest's end closes; runs as a task on the kit loop.

        Whichever way it ends (the guest hung up, or :meth:`close` cancelled
        it), the writer is closed here: a stream whose peer hung up stays open
        on Python 3.11.2 until its writer closes it.
        """
        self._writer = writer
        try:
            await self._read_all(reader)
        finally:
            self._writer = None
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _read_all(self, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            self._store(chunk)
            self._note_lines(chunk)
            text = _ANSI.sub("", chunk.decode("utf-8", "replace"))
            for listener in list(self._listeners):
                try:
                    listener(text)
                except Exception as error:  # a broken view must not stop the console
                    incidents.record(error, "a console listener")
            async with self._changed:
                self._changed.notify_all()

    async def wait_for_line(self, line: str, count: int, timeout: float) -> bool:
        """Wait until ``line`` has been printed ``count`` times; False on timeout."""
        async def seen() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.count(line) >= count)

        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            return False
        return True

    def _store(self, chunk: bytes) -> None:
        with self._lock:
            self._total += len(chunk)
            room = self._head_limit - len(self._head)
            if room > 0:
                self._head += chunk[:room]
                chunk = chunk[room:]
            self._tail += chunk
            excess = len(self._tail) - self._tail_limit
            if excess > 0:
                del self._tail[:excess]
                self._dropped += excess

    def _note_lines(self, chunk: bytes) -> None:
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > 4096:  # a line without end: keep memory bounded
            self._partial = b""
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if line.startswith(MARKER_PREFIX) and (
                line in self._lines_seen or len(self._lines_seen) < 64
            ):  # only marker lines are counted, and few of them: bounded
                self._lines_seen[line] = self._lines_seen.get(line, 0) + 1
