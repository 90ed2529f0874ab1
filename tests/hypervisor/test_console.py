"""The console buffer: bounded, complete at the start, honest about what it dropped."""

from __future__ import annotations

import asyncio

from kit.hypervisor.console import Console


def feed(console: Console, *chunks: bytes) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        await console.pump(reader, None)

    asyncio.run(run())


def test_keeps_everything_when_small() -> None:
    console = Console()
    feed(console, b"Linux version 6.1\r\n", b"\x1b[1mhello\x1b[0m\n")
    assert console.text() == "Linux version 6.1\nhello\n"


def test_flood_stays_bounded_and_keeps_the_boot_log() -> None:
    console = Console(head_bytes=1000, tail_bytes=2000)
    feed(console, b"boot line\n", *(b"x" * 999 + b"\n" for _ in range(1000)))
    text = console.text()
    assert text.startswith("boot line\n")
    assert "bytes not kept" in text
    assert len(text) < 3100
    assert console.bytes_received == 10 + 1000 * 1000


def test_counts_marker_lines_split_across_chunks() -> None:
    console = Console()
    feed(console, b"kit-init: ready\nKIT-RE", b"ADY\r\nmore\nKIT-READY\n")
    assert console.count("KIT-READY") == 2
    assert console.count("more") == 0


def test_listener_sees_new_text() -> None:
    console = Console()
    seen: list[str] = []
    console.subscribe(seen.append)
    feed(console, b"abc\n", b"def\n")
    assert "".join(seen) == "abc\ndef\n"
