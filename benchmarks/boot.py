"""How long a guest takes to become usable, and what it costs the host.

For each of several runs, the same image is booted twice: by the kit
(``kit.Guest(...).start()``) and by a plain ``qemu-system-x86_64`` command
with the same machine and devices, its agent reached over a unix socket.
Measured from launch: the guest agent answering a ping (agent-ready) and the
web server answering through the port forward (HTTP-ready); then QEMU's
resident memory (RSS).  Prints a table of medians and writes JSON.

    .venv/bin/python benchmarks/boot.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from qemu.qmp import QMPClient, QMPError

import kit
from kit.guestos import images
from kit.hypervisor import accelerator
from kit.infrastructure import hostinfo
from kit.infrastructure.net import free_port, wait_http

RESULTS = Path(__file__).parent / "results"


def measure_kit(memory_mb: int) -> dict[str, float]:
    port = free_port()
    guest = kit.Guest("bench", memory_mb=memory_mb, forwards={port: 80})
    launched = time.monotonic()
    guest.start()
    agent_ready = time.monotonic()
    http_ready = wait_http(port, launched + 60)
    rss = psutil.Process(guest.pid).memory_info().rss
    guest.stop()
    return {"agent_ready_s": agent_ready - launched, "http_ready_s": http_ready - launched,
            "rss_mb": rss / 2**20}


def plain_command(image: images.GuestImage, memory_mb: int, accel: str, port: int,
                  agent_socket: Path, console_log: Path) -> list[str]:
    return [
        image.qemu_binary, "-machine", "q35",
        "-accel", "kvm" if accel == "kvm" else "tcg,tb-size=64",
        "-m", str(memory_mb), "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
        "-append", f"{image.kernel_cmdline} kit.name=plain",
        "-serial", f"file:{console_log}",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=agent,path={agent_socket},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=org.qemu.guest_agent.0",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:80",
        "-device", "virtio-net-pci,netdev=net0",
        "-device", "pvpanic-pci", "-action", "panic=pause",
    ]


async def ping_agent(agent_socket: Path, deadline: float) -> float:
    while time.monotonic() < deadline:
        client = QMPClient("plain-agent")
        client.await_greeting = False
        client.negotiate = False
        try:
            await client.connect(str(agent_socket))
            await asyncio.wait_for(client.execute("guest-ping"), 0.5)
            return time.monotonic()
        except (OSError, TimeoutError, EOFError, QMPError):
            await asyncio.sleep(0.01)
        finally:
            await client.disconnect()
    raise TimeoutError("the guest agent never answered")


def measure_plain(image: images.GuestImage, memory_mb: int, accel: str) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        agent_socket = Path(folder) / "agent.sock"
        command = plain_command(image, memory_mb, accel, port, agent_socket,
                                Path(folder) / "console.log")
        launched = time.monotonic()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            agent_ready = asyncio.run(ping_agent(agent_socket, launched + 60))
            http_ready = wait_http(port, launched + 60)
            rss = psutil.Process(process.pid).memory_info().rss
        finally:
            process.kill()
            process.wait()
    return {"agent_ready_s": agent_ready - launched, "http_ready_s": http_ready - launched,
            "rss_mb": rss / 2**20}


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mb", type=int, default=128)
    parser.add_argument("--json", type=Path, default=RESULTS / "boot.json")
    args = parser.parse_args()
    image = images.ensure_image()
    accel = accelerator.accelerator()
    kit_runs, plain_runs = [], []
    for run in range(args.runs):
        kit_runs.append(measure_kit(args.memory_mb))
        plain_runs.append(measure_plain(image, args.memory_mb, accel.name))
        print(f"run {run + 1}/{args.runs}: kit {kit_runs[-1]['agent_ready_s']:.2f} s, "
              f"plain {plain_runs[-1]['agent_ready_s']:.2f} s", file=sys.stderr)
    kit_median, plain_median = medians(kit_runs), medians(plain_runs)
    ratio = {key: kit_median[key] / plain_median[key] for key in kit_median}
    print_table(kit_median, plain_median, ratio, accel, args)
    report = {
        "command": " ".join(["benchmarks/boot.py", *sys.argv[1:]]),
        "accelerator": accel.name, "accelerator_reason": accel.reason,
        "kernel": image.kernel_version, "memory_mb": args.memory_mb, "runs": args.runs,
        "cpus": os.cpu_count(), "kit": kit_runs, "plain": plain_runs,
        "median": {"kit": kit_median, "plain": plain_median}, "ratio_kit_over_plain": ratio,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nwritten: {args.json}")
    return 0


def print_table(kit_median: dict[str, float], plain_median: dict[str, float],
                ratio: dict[str, float], accel: hostinfo.Accelerator,
                args: argparse.Namespace) -> None:
    print(f"\nboot of the kit's guest image, {args.memory_mb} MiB, {accel.label}, "
          f"median of {args.runs} runs")
    print(f"{'measure':<28}{'kit':>10}{'plain qemu':>12}{'kit/plain':>11}")
    labels = {"agent_ready_s": "launch to agent-ready (s)",
              "http_ready_s": "launch to HTTP-ready (s)", "rss_mb": "QEMU RSS (MiB)"}
    for key, label in labels.items():
        print(f"{label:<28}{kit_median[key]:>10.2f}{plain_median[key]:>12.2f}{ratio[key]:>11.3f}")


if __name__ == "__main__":
    sys.exit(main())
