"""A small cloud of the kit's own, in EC2's words, with real guests underneath.

Why this module: the curriculum says virtual machines changed computing by
letting one physical machine host many independent servers, rented by the
hour.  That is easiest to believe when the learner *is* the cloud provider
for a moment: this host becomes a tiny region, each instance is a real QEMU
guest, and the vocabulary is Amazon EC2's (instance types, run / describe /
stop / terminate, instance metadata, "insufficient capacity").

    cloud = kit.labs.cloud.Cloud()
    web = cloud.run_instances(type="t.micro", count=3, name_prefix="web")
    cloud.describe_instances()           # what the console's instance table shows
    cloud.deploy_app()                   # one web application on every instance
    LoadBalancer(web).spread(30)         # requests spread over them, round robin
    cloud.terminate_instances([i.id for i in web])

Metadata, the EC2 way as far as is practical here: the hypervisor hands each
instance its id, type and launch time on the kernel command line
(``kit.meta.instance-id=i-0001``); once it boots, the kit has the guest
publish them under ``/www/latest/meta-data/`` and answer on the link-local
address 169.254.169.254, so inside the guest
``wget -qO- http://169.254.169.254/latest/meta-data/instance-id`` works as
on EC2.  (On EC2 that address is served outside the instance; here the
guest's own web server answers, with what its hypervisor told it.)
"""

from __future__ import annotations

import base64
import http.client
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kit.core import validate
from kit.core.errors import HostLimit, InvalidInput
from kit.guestos import images
from kit.hypervisor import fleet, registry
from kit.hypervisor.guest import Guest
from kit.infrastructure import limits, net

log = logging.getLogger(__name__)

METADATA_ADDRESS = "169.254.169.254"
METADATA_DIR = "/www/latest/meta-data"
PRIVATE_IP = "10.0.2.15"  # QEMU user networking gives every guest this address, each on its own LAN
APP_PATH = "/cgi-bin/app"
VCPUS_PER_HOST_CPU = 8  # how far the kit lets virtual CPUs outnumber real ones
REQUEST_TIMEOUT_S = 3.0

_ids = itertools.count(1)
_ids_lock = threading.Lock()


class InsufficientInstanceCapacity(HostLimit):
    """EC2's name for "this launch does not fit the host": nothing was started."""


@dataclass(frozen=True)
class InstanceType:
    """A size of server a customer can rent: memory and virtual CPUs."""

    name: str
    memory_mb: int
    vcpus: int


def instance_types() -> dict[str, InstanceType]:
    """The kit's instance types; the smallest never goes below what the image needs."""
    image = images.find_image()
    floor = image.min_memory_mb if image else 64
    table = [
        InstanceType("t.nano", max(64, floor), 1),
        InstanceType("t.micro", max(128, floor), 1),
        InstanceType("t.small", max(256, floor), 2),
        InstanceType("m.large", max(2048, floor), 2),
    ]
    return {t.name: t for t in table}


def instance_type(name: object) -> InstanceType:
    types = instance_types()
    validate.check_choice("type", name, list(types))
    assert isinstance(name, str)
    return types[name]


# -- capacity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """What this host can still take, measured now, and the kit's own caps."""

    free_memory_mb: int  # available on the host, minus what the host keeps for itself
    user_memory_cap_mb: int
    user_memory_used_mb: int
    user_guest_cap: int
    user_guests: int
    vcpu_budget: int
    vcpus_used: int

    def room_for(self, itype: InstanceType) -> int:
        """How many more instances of ``itype`` fit, by the tightest of the limits."""
        by_memory = min(self.free_memory_mb,
                        self.user_memory_cap_mb - self.user_memory_used_mb) // itype.memory_mb
        by_count = self.user_guest_cap - self.user_guests
        by_vcpus = (self.vcpu_budget - self.vcpus_used) // itype.vcpus
        return max(0, min(by_memory, by_count, by_vcpus))

    def shortfalls(self, itype: InstanceType, count: int) -> list[str]:
        """Each limit the launch would break, in numbers; empty when it fits."""
        memory = itype.memory_mb * count
        vcpus = itype.vcpus * count
        found = []
        if memory > self.free_memory_mb:
            found.append(f"it needs {memory} MiB of memory and the host has about "
                         f"{self.free_memory_mb} MiB free for guests")
        if self.user_memory_used_mb + memory > self.user_memory_cap_mb:
            found.append(f"your guests would hold {self.user_memory_used_mb + memory} MiB; "
                         f"the per-user cap is {self.user_memory_cap_mb} MiB")
        if self.user_guests + count > self.user_guest_cap:
            found.append(f"you would run {self.user_guests + count} guests; the per-user cap "
                         f"is {self.user_guest_cap}")
        if self.vcpus_used + vcpus > self.vcpu_budget:
            found.append(f"it needs {vcpus} vCPUs and {self.vcpu_budget - self.vcpus_used} "
                         f"of the host's {self.vcpu_budget} are left "
                         f"({os.cpu_count() or 1} real CPUs x {VCPUS_PER_HOST_CPU})")
        return found


def capacity() -> Capacity:
    """This host's room for guests, right now."""
    records = limits.live_records()
    return Capacity(
        free_memory_mb=max(0, validate.available_memory_mb() - validate.HOST_MEMORY_RESERVE_MB),
        user_memory_cap_mb=limits.max_guest_memory_mb(),
        user_memory_used_mb=sum(r.memory_mb for r in records),
        user_guest_cap=limits.max_guests(),
        user_guests=len(records),
        vcpu_budget=(os.cpu_count() or 1) * VCPUS_PER_HOST_CPU,
        vcpus_used=sum(g.cpus for g in registry.guests()),
    )


def check_capacity(itype: InstanceType, count: int) -> Capacity:
    """Refuse, before anything starts, a launch this host cannot hold."""
    room = capacity()
    problems = room.shortfalls(itype, count)
    if problems:
        raise InsufficientInstanceCapacity(
            f"InsufficientInstanceCapacity: {count} x {itype.name} ({itype.memory_mb} MiB, "
            f"{itype.vcpus} vCPU) do not fit on this host: " + "; ".join(problems) + ". "
            "Nothing was started.",
            hint=f"This host has room for {room.room_for(itype)} more {itype.name}: ask for "
            "fewer or smaller instances, or terminate some first.",
        )
    return room


# -- instances -------------------------------------------------------------------------------


@dataclass
class Instance:
    """One rented server: an EC2-style record around a real guest."""

    id: str
    type: InstanceType
    guest: Guest
    host_port: int
    launch_time: str
    boot_seconds: float | None = None
    terminated: bool = False

    @property
    def name(self) -> str:
        return self.guest.name

    @property
    def state(self) -> str:
        """EC2's words: pending, running, stopping, stopped, shutting-down, terminated."""
        guest_state = self.guest.state
        if self.terminated:
            return "shutting-down" if guest_state == "stopping" else "terminated"
        return {"created": "pending", "booting": "pending", "stopping": "stopping",
                "stopped": "stopped"}.get(guest_state, "running")

    @property
    def private_ip(self) -> str:
        return PRIVATE_IP

    @property
    def url(self) -> str:
        return f"http://{net.LOOPBACK}:{self.host_port}/"

    def row(self) -> dict[str, object]:
        """What the instance table shows for it."""
        return {"instance id": self.id, "name": self.name, "type": self.type.name,
                "state": self.state, "private ip": self.private_ip,
                "host port": self.host_port, "launch time": self.launch_time,
                "boot s": None if self.boot_seconds is None else round(self.boot_seconds, 2),
                "qemu pid": self.guest.pid if self.state == "running" else None}

    def metadata(self) -> dict[str, str]:
        """What the instance metadata service tells this instance about itself."""
        return {"instance-id": self.id, "instance-type": self.type.name,
                "launch-time": self.launch_time, "local-ipv4": PRIVATE_IP,
                "hostname": self.name}

    def read_own_metadata(self, key: str = "instance-id") -> str:
        """Ask from *inside* the guest, as software on an EC2 instance does."""
        validate.check_choice("key", key, list(self.metadata()))
        result = self.guest.run(
            ["wget", "-qO-", f"http://{METADATA_ADDRESS}/latest/meta-data/{key}"], timeout=10)
        return result.stdout.strip()


def _new_id() -> str:
    with _ids_lock:
        return f"i-{next(_ids):04x}"


def _metadata_args(instance_id: str, itype: InstanceType, launch_time: str) -> list[str]:
    return [f"kit.meta.instance-id={instance_id}", f"kit.meta.instance-type={itype.name}",
            f"kit.meta.launch-time={launch_time}"]


# Run in the guest through its agent: publish what the hypervisor put on the
# kernel command line, and answer on EC2's metadata address.
_PUBLISH_METADATA = f"""
mkdir -p {METADATA_DIR}
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    case "$arg" in
        kit.meta.*=*) kv="${{arg#kit.meta.}}"; echo "${{kv#*=}}" > "{METADATA_DIR}/${{kv%%=*}}" ;;
    esac
done
echo {PRIVATE_IP} > {METADATA_DIR}/local-ipv4
hostname > {METADATA_DIR}/hostname
ls {METADATA_DIR} > /www/latest/meta-data.txt
ip addr add {METADATA_ADDRESS}/32 dev lo 2>/dev/null
true
"""

# The application every instance serves: it says who answered, and counts its own hits.
APP_SCRIPT = """#!/bin/sh
read -r id < /www/latest/meta-data/instance-id
hits=$(cat /tmp/app-hits 2>/dev/null || echo 0)
hits=$((hits + 1))
echo "$hits" > /tmp/app-hits
printf 'Content-Type: text/plain\\r\\nCache-Control: no-store\\r\\n\\r\\n'
echo "hello from $id ($(hostname)), request number $hits on this instance"
"""


def write_guest_file(guest: Guest, path: str, text: str) -> None:
    """Write a file inside the guest through its agent (guest-file-open/write/close)."""
    handle = guest.agent("guest-file-open", path=path, mode="w")
    try:
        guest.agent("guest-file-write",
                    {"handle": handle, "buf-b64": base64.b64encode(text.encode()).decode()})
    finally:
        guest.agent("guest-file-close", handle=handle)


class Cloud:
    """One host as a tiny cloud region: launches, lists, stops and ends instances."""

    def __init__(self) -> None:
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()
        self.last_refusal: InsufficientInstanceCapacity | None = None

    def __repr__(self) -> str:
        states = [i.state for i in self.instances()]
        return f"<Cloud: {states.count('running')} running of {len(states)} instances>"

    # -- launching -------------------------------------------------------------------

    def run_instances(self, type: str = "t.nano", count: int = 1,
                      name_prefix: str = "web") -> list[Instance]:
        """Launch ``count`` instances of ``type`` in parallel; returns when all run.

        The whole launch is refused first (nothing starts) if the host cannot
        hold it; a guest that fails to boot stops the ones launched with it.
        """
        itype = instance_type(type)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidInput(f"count={count!r} is not a number of instances.",
                               hint="Ask for a whole number, 1 or more: count=2.")
        validate.check_name(f"{name_prefix}-1")
        self.check_launch(itype.name, count)
        made = [self._make(itype, name_prefix) for _ in range(count)]
        log.info("run_instances: %d x %s (%s)", count, itype.name, ", ".join(i.id for i in made))
        self._start_all(made)
        return made

    def check_launch(self, type: str, count: int) -> Capacity:
        """Refuse (and remember the refusal) a launch this host cannot hold."""
        try:
            return check_capacity(instance_type(type), count)
        except InsufficientInstanceCapacity as refusal:
            self.last_refusal = refusal
            raise

    def start_instances(self, ids: Iterable[str]) -> list[Instance]:
        """Boot stopped instances again: same id and metadata, a new QEMU process."""
        chosen = [i for i in self._pick(ids) if i.state == "stopped"]
        for instance in chosen:
            check_capacity(instance.type, 1)
        self._start_all(chosen)
        return chosen

    def _make(self, itype: InstanceType, prefix: str) -> Instance:
        instance_id = _new_id()
        launch_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        port = net.free_port()
        guest = Guest(f"{prefix}-{instance_id[2:]}", memory_mb=itype.memory_mb,
                      cpus=min(itype.vcpus, os.cpu_count() or 1), forwards={port: 80},
                      kernel_args=_metadata_args(instance_id, itype, launch_time))
        instance = Instance(instance_id, itype, guest, port, launch_time)
        with self._lock:
            self._instances[instance_id] = instance
        return instance

    def _start_all(self, instances: Sequence[Instance]) -> None:
        if not instances:
            return
        failures = [error for error in fleet.each(instances, _boot) if error is not None]
        if failures:
            for instance in instances:
                instance.terminated = True
                instance.guest.kill()
            raise failures[0]

    # -- the API ---------------------------------------------------------------------

    def instances(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    def describe_instances(self, ids: Iterable[str] | None = None) -> list[dict[str, object]]:
        """One row per instance (terminated ones included, as EC2 shows them for a while)."""
        chosen = self.instances() if ids is None else self._pick(ids)
        return [i.row() for i in chosen]

    def running(self) -> list[Instance]:
        return [i for i in self.instances() if i.state == "running"]

    def get(self, instance_id: str) -> Instance:
        with self._lock:
            found = self._instances.get(instance_id)
        if found is None:
            raise InvalidInput(f"there is no instance {instance_id!r} in this cloud.",
                               hint=f"Its instances are {sorted(self._instances) or 'none'}.")
        return found

    def stop_instances(self, ids: Iterable[str]) -> list[Instance]:
        """Shut instances down; they keep their id and can be started again."""
        chosen = self._pick(ids)
        fleet.stop([i.guest for i in chosen])
        return chosen

    def terminate_instances(self, ids: Iterable[str]) -> list[Instance]:
        """End instances for good: their machines are shut down and gone."""
        chosen = self._pick(ids)
        for instance in chosen:
            instance.terminated = True
        log.info("terminate_instances: %s", ", ".join(i.id for i in chosen))
        fleet.stop([i.guest for i in chosen])
        return chosen

    def terminate_all(self) -> list[Instance]:
        return self.terminate_instances([i.id for i in self.instances() if not i.terminated])

    def deploy_app(self, instances: Iterable[Instance] | None = None) -> list[Instance]:
        """Install the same small web application on every running instance."""
        chosen = list(instances) if instances is not None else self.running()
        for instance in chosen:
            write_guest_file(instance.guest, f"/www{APP_PATH}", APP_SCRIPT)
            instance.guest.run(["chmod", "755", f"/www{APP_PATH}"])
        return chosen

    def _pick(self, ids: Iterable[str]) -> list[Instance]:
        """The instances named by one id or a list of ids; anything else is refused in words."""
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, Iterable) or isinstance(ids, bytes | Mapping):
            raise InvalidInput(
                f"{ids!r} is not an instance id or a list of them.",
                hint="Give ids as the table shows them, e.g. 'i-0001' or ['i-0001', 'i-0002'] "
                "(cloud.describe_instances() lists them).")
        chosen = list(ids)
        for instance_id in chosen:
            if not isinstance(instance_id, str):
                raise InvalidInput(f"{instance_id!r} is not an instance id.",
                                   hint="Instance ids are text, e.g. 'i-0001'.")
        return [self.get(i) for i in chosen]


def _boot(instance: Instance) -> None:
    """Start one instance and publish its metadata."""
    started = time.monotonic()
    instance.guest.start()
    instance.boot_seconds = time.monotonic() - started
    instance.guest.run(["/bin/sh", "-c", _PUBLISH_METADATA], timeout=15)


# -- the load balancer --------------------------------------------------------------------


@dataclass
class SpreadReport:
    """What a run of requests through the load balancer found."""

    requests: int = 0
    answered: dict[str, int] = field(default_factory=dict)  # instance id -> requests it served
    client_errors: int = 0  # requests no instance answered: what a user would have seen
    failovers: int = 0  # requests retried on another instance after one failed
    marked_down: list[str] = field(default_factory=list)
    mismatched: int = 0  # answers whose body named another instance than the one asked
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, int]]:
        return sorted(self.answered.items())


class LoadBalancer:
    """Spreads HTTP requests round-robin over instances, skipping any that fail.

    Like a cloud's load balancer it does not ask the cloud which instances
    are stopped: it finds out when a request to one fails, takes it out of
    the rotation and sends that request to the next instance instead, so
    the client never sees the failure.
    """

    def __init__(self, instances: Iterable[Instance], path: str = APP_PATH) -> None:
        if isinstance(instances, str | bytes) or not isinstance(instances, Iterable):
            raise InvalidInput(
                f"a load balancer spreads requests over instances, not {instances!r}.",
                hint="Give it the instances themselves: LoadBalancer(cloud.running()).")
        self.targets = list(instances)
        strangers = [t for t in self.targets if not isinstance(t, Instance)]
        if strangers:
            raise InvalidInput(
                f"{strangers[0]!r} is not an instance of this cloud.",
                hint="Give it the instances themselves: LoadBalancer(cloud.running()).")
        if not self.targets:
            raise InvalidInput("a load balancer needs at least one instance behind it.",
                               hint="Launch some first: cloud.run_instances(count=2).")
        self.path = path
        self.healthy = [True] * len(self.targets)
        self._next = 0

    def request(self, report: SpreadReport) -> str | None:
        """Send one request to the next healthy instance; returns the body, None if all fail."""
        report.requests += 1
        for _ in range(len(self.targets)):
            index = self._pick()
            if index is None:
                break
            target = self.targets[index]
            try:
                body = net.http_get(target.host_port, self.path, timeout=REQUEST_TIMEOUT_S)
            except (OSError, http.client.HTTPException):
                self.healthy[index] = False
                report.marked_down.append(target.id)
                report.failovers += 1
                continue
            report.answered[target.id] = report.answered.get(target.id, 0) + 1
            if target.id not in body:
                report.mismatched += 1
            return body
        report.client_errors += 1
        return None

    def spread(self, requests: int = 30, *, stop: Instance | None = None,
               stop_after: int | None = None,
               stopper: Callable[[Instance], object] | None = None) -> SpreadReport:
        """Send ``requests`` requests; with ``stop``, that instance is stopped mid-way.

        The stop runs in the background while requests keep flowing, and the
        run goes on until the stop is complete and every instance has been
        tried again, so the fail-over is always exercised.
        """
        report = SpreadReport(answered={t.id: 0 for t in self.targets})
        started = time.monotonic()
        halfway = requests // 2 if stop_after is None else stop_after
        job: threading.Thread | None = None
        sent = 0
        while sent < requests or (job is not None and job.is_alive()):
            if stop is not None and job is None and sent >= halfway:
                job = threading.Thread(target=stopper or (lambda i: i.guest.stop()),
                                       args=(stop,), daemon=True)
                job.start()
            self.request(report)
            sent += 1
        for _ in range(len(self.targets)):  # one more round: the stopped one is tried too
            self.request(report)
        report.seconds = time.monotonic() - started
        return report

    def _pick(self) -> int | None:
        for _ in range(len(self.targets)):
            index = self._next % len(self.targets)
            self._next += 1
            if self.healthy[index]:
                return index
        return None
