"""Lesson 5, Why it changed computing: the cloud: exercises, predictions, widgets and quiz.

The notebook ``lessons/05-cloud.ipynb`` shows these; the tests import them
and check each exercise both ways.  The lesson's cloud is one
:class:`kit.labs.cloud.Cloud` per notebook kernel (:func:`cloud`); every
check asks it, and the real guests under it, for the live state.

The exercises are the learner's own work, against their own cloud:

1. launch **their order** (a type and a count drawn for this learner) with
   ``cloud.run_instances``; checked by QMP (each guest's memory) and HTTP;
2. read, from **inside** an instance with ``instance.guest.run(...)``, the
   user data this learner's instances were handed (words of their own);
3. ask for more instances of a type than this host can hold and get the
   refusal back (``try_launch``); checked on the cloud's own record;
4. terminate one instance; the check sends requests through a load balancer
   that still lists it, and no client may see an error.

Two predictions come before measurements: how many private addresses the
instances report from inside, and how many more of a type fit this host.
The widgets here (:class:`CloudConsole`, :class:`MetadataView`,
:class:`BalancerDemo`) are lesson 6's too.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import ipywidgets as widgets
import psutil

from kit.core.errors import KitError
from kit.core.state import GuestState
from kit.hypervisor import registry
from kit.hypervisor.guest import Guest
from kit.infrastructure import net
from kit.labs import cloud as kcloud
from kit.lesson import personal
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.compare import hypervisor_memory_mb
from kit.lesson.lesson import Lesson
from kit.lesson.prediction import Prediction
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget, set_button_style

PREFIX = "web"
SPARE = "spare"  # the instance the lesson starts itself when the learner has none yet
ORDER_TYPES = ("t.nano", "t.micro")
ORDER_COUNTS = (2, 3)
REFUSAL_TYPES = ("t.small", "m.large")
USER_DATA_PATH = "/www/latest/user-data"
USER_DATA_URL = f"http://{kcloud.METADATA_ADDRESS}/latest/user-data"
COLUMNS = ["instance id", "name", "type", "state", "private ip", "host port", "launch time",
           "boot s", "qemu pid"]
InsufficientInstanceCapacity = kcloud.InsufficientInstanceCapacity

log = logging.getLogger(__name__)

_cloud: kcloud.Cloud | None = None
_last_spread: tuple[kcloud.SpreadReport, str | None] | None = None


def cloud() -> kcloud.Cloud:
    """This notebook's cloud (one per kernel, so every cell and check sees the same)."""
    global _cloud
    if _cloud is None:
        _cloud = kcloud.Cloud()
    return _cloud


def reset() -> None:
    """Forget the cloud and the last spread (the tests start each case afresh)."""
    global _cloud, _last_spread
    if _cloud is not None:
        _cloud.terminate_all()
    _cloud, _last_spread = None, None


# -- this learner's own values --------------------------------------------------------------


def order_type() -> str:
    """The instance type this learner's order asks for."""
    return ORDER_TYPES[personal.number("l5-order-type", 0, len(ORDER_TYPES) - 1)]


def order_count() -> int:
    """How many instances this learner's order asks for."""
    return ORDER_COUNTS[personal.number("l5-order-count", 0, len(ORDER_COUNTS) - 1)]


def your_order() -> str:
    return (f"Your order: {order_count()} instances of type {order_type()} "
            f"({kcloud.instance_type(order_type()).memory_mb} MiB each).")


def refusal_type() -> str:
    """The type this learner asks too many of, in exercise 3."""
    return REFUSAL_TYPES[personal.number("l5-refusal-type", 0, len(REFUSAL_TYPES) - 1)]


def user_data() -> str:
    """The words this learner's instances are handed as user data."""
    return personal.secret("l5-user-data")


def _plant_user_data(guest: Guest) -> None:
    text = user_data()
    result = guest.run(["/bin/sh", "-c", f"mkdir -p /www/latest && printf '%s\\n' '{text}' "
                        f"> {USER_DATA_PATH}"], timeout=10)
    if not result.ok:
        raise KitError(f"writing the user data in {guest.name} failed: {result}")


def _hand_over_user_data(guest: Guest, state: str) -> None:
    """Each time one of this cloud's instances boots, hand it the learner's user data."""
    if state != GuestState.RUNNING or _cloud is None:
        return
    if not any(i.guest is guest for i in _cloud.instances()):
        return

    def write() -> None:
        try:
            _plant_user_data(guest)
        except Exception as error:  # the check plants it again if it is missing
            log.warning("could not hand user data to %s: %s", guest.name, error)

    threading.Thread(target=write, daemon=True, name=f"kit-user-data-{guest.name}").start()


registry.subscribe(_hand_over_user_data)


def read_user_data(instance: kcloud.Instance) -> str:
    """Ask the metadata address from inside the instance (handing the data over if missing)."""
    reply = instance.guest.run(["wget", "-qO-", USER_DATA_URL], timeout=10)
    if not reply.ok:
        _plant_user_data(instance.guest)
        reply = instance.guest.run(["wget", "-qO-", USER_DATA_URL], timeout=10)
    return reply.stdout.strip()


# -- the demonstrations --------------------------------------------------------------------


def first_instance() -> kcloud.Instance:
    """The first running instance; if there is none, one spare t.nano is launched for the lesson.

    The spare lets the rest of the lesson go on; it does not do exercise 1,
    whose check counts only instances of the learner's own order.
    """
    running = cloud().running()
    if running:
        return running[0]
    return cloud().run_instances(type="t.nano", count=1, name_prefix=SPARE)[0]


def instances_html(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "<p><i>No instances yet.</i></p>"
    cells = [[escape("" if row.get(c) is None else row.get(c)) for c in COLUMNS] for row in rows]
    return markup.table([escape(c) for c in COLUMNS], cells)


def describe() -> widgets.HTML:
    """The cloud's DescribeInstances, as a table."""
    return widgets.HTML(markup.text(instances_html(cloud().describe_instances())))


def types_view() -> widgets.HTML:
    return widgets.HTML(markup.text(types_html()))


def types_html() -> str:
    rows = [[escape(t.name), f"{t.memory_mb} MiB", str(t.vcpus)]
            for t in kcloud.instance_types().values()]
    return markup.table(["type", "memory", "vCPUs"], rows)


def capacity_html(itype: kcloud.InstanceType) -> str:
    room = kcloud.capacity()
    return markup.text(
        f"Measured now: about <b>{room.free_memory_mb} MiB</b> free for guests; your caps "
        f"{room.user_guests}/{room.user_guest_cap} guests and {room.user_memory_used_mb}/"
        f"{room.user_memory_cap_mb} MiB; vCPUs {room.vcpus_used}/{room.vcpu_budget}. Room for "
        f"<b>{room.room_for(itype)}</b> more {escape(itype.name)}.")


class CloudConsole(KitWidget):
    """The cloud's console: choose a type and a count, launch; stop or terminate by id."""

    def __init__(self, the_cloud: kcloud.Cloud | None = None) -> None:
        super().__init__("cloud console")
        self.cloud = the_cloud or cloud()
        self._jobs: list[threading.Thread] = []
        names = list(kcloud.instance_types())
        self.type = widgets.Dropdown(options=names, value="t.nano", description="type",
                                     layout=widgets.Layout(width="12em"))
        self.count = widgets.BoundedIntText(value=1, min=1, max=999, description="count",
                                            layout=widgets.Layout(width="10em"))
        self.launch_button = widgets.Button(description="Launch instances", icon="rocket",
                                            layout=widgets.Layout(width="auto", flex="none"))
        self.ids = widgets.SelectMultiple(options=[], description="instances",
                                          layout=widgets.Layout(width="18em", height="6em"))
        self.stop_button = widgets.Button(description="Stop selected")
        self.start_button = widgets.Button(description="Start selected")
        self.terminate_button = widgets.Button(description="Terminate selected",
                                               layout=widgets.Layout(width="auto",
                                                                     flex="none"))
        set_button_style(self.terminate_button, "warning")
        self.refresh_button = widgets.Button(description="Describe again", icon="refresh")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.room = widgets.HTML()
        self.launch_button.on_click(self._callback("launching", self.launch))
        self.stop_button.on_click(self._callback("stopping", lambda: self._act("stop")))
        self.start_button.on_click(self._callback("starting", lambda: self._act("start")))
        self.terminate_button.on_click(self._callback("terminating",
                                                      lambda: self._act("terminate")))
        self.refresh_button.on_click(self._callback("describing", self.refresh))
        self.type.observe(self._guarded("room", lambda *_: self.refresh()), names="value")
        self._set_body(
            widgets.HBox([self.type, self.count, self.launch_button]), self.room,
            widgets.HBox([self.ids, widgets.VBox([self.stop_button, self.start_button,
                                                  self.terminate_button,
                                                  self.refresh_button])]),
            self.status, self.table)
        self.refresh()

    def launch(self) -> None:
        """What the Launch button does: a background launch, refused at once if too big.

        A refusal is the cloud's answer, not a fault of the kit: it is shown
        in the console (and kept as the cloud's last refusal), not raised.
        """
        itype = kcloud.instance_type(self.type.value)
        count = int(self.count.value)
        try:
            self.cloud.check_launch(itype.name, count)
        except kcloud.InsufficientInstanceCapacity as refusal:
            self.status.value = markup.box(
                "wrong", escape(refusal.message) + "<br>" + escape(refusal.hint or ""),
                word="Refused")
            return
        self.status.value = f"<i>launching {count} x {escape(itype.name)}…</i>"
        self._background(f"launch of {count} x {itype.name}", lambda: self.cloud.run_instances(
            type=itype.name, count=count, name_prefix=PREFIX))

    def _act(self, action: str) -> None:
        ids = list(self.ids.value)
        if not ids:
            raise KitError("no instance is selected.",
                           hint="Click an instance id in the list (Ctrl-click for several).")
        run = {"stop": self.cloud.stop_instances, "start": self.cloud.start_instances,
               "terminate": self.cloud.terminate_instances}[action]
        self.status.value = f"<i>{action} {escape(', '.join(ids))}…</i>"
        self._background(f"{action} of {', '.join(ids)}", lambda: run(ids))

    def _background(self, what: str, job: Callable[[], object]) -> None:
        """Run ``job`` off the kernel's thread; the table follows the states while it runs."""
        def run() -> None:
            worker = self._in_background(what, job)
            started = time.monotonic()
            try:
                while worker.is_alive():
                    worker.join(0.5)
                    self.status.value = (f"<i>{escape(what)}: {time.monotonic() - started:.1f} s"
                                         "…</i>")
                    self.refresh()
            finally:
                self.status.value = ""
                self.refresh()

        self._jobs = [j for j in self._jobs if j.is_alive()]
        self._jobs.append(self._in_background(what, run))

    def wait(self, timeout: float = 120.0) -> bool:
        """Wait for the button's work (headless runs and tests call this after click())."""
        deadline = time.monotonic() + timeout
        for job in list(self._jobs):
            job.join(max(0.0, deadline - time.monotonic()))
        return not any(j.is_alive() for j in self._jobs)

    def refresh(self) -> None:
        self.table.value = instances_html(self.cloud.describe_instances())
        self.ids.options = [i.id for i in self.cloud.instances() if not i.terminated]
        self.room.value = capacity_html(kcloud.instance_type(self.type.value))


class MetadataView(KitWidget):
    """An instance asking its metadata service about itself, from inside the guest."""

    def __init__(self, instance: kcloud.Instance) -> None:
        super().__init__("metadata")
        self.instance = instance
        self.output = widgets.HTML()
        button = widgets.Button(description="Ask again", icon="refresh")
        button.on_click(self._callback("reading metadata", self.ask))
        self._set_body(button, self.output)
        self._guarded("reading metadata", self.ask)()

    def ask(self) -> dict[str, str]:
        self.output.value = (f"<p><i>asking from inside {escape(self.instance.name)}, one "
                             "question at a time…</i></p>")
        found = {key: self.instance.read_own_metadata(key) for key in self.instance.metadata()}
        rows = [[f"<code>wget -qO- http://{kcloud.METADATA_ADDRESS}/latest/meta-data/"
                 f"{escape(k)}</code>", f"<b>{escape(v)}</b>"] for k, v in found.items()]
        self.output.value = (f"<p>Inside instance <b>{escape(self.instance.id)}</b> "
                             f"(guest {escape(self.instance.name)}):</p>"
                             + markup.table(["command run in the guest", "answer"], rows))
        return found


def spread_html(report: kcloud.SpreadReport, stopped: str | None, *, done: bool = True) -> str:
    most = max(report.answered.values(), default=1) or 1
    rows = []
    for instance_id, count in report.rows():
        bar = "█" * max(0, round(24 * count / most))
        mark = " (stopped mid-way)" if instance_id == stopped else ""
        rows.append([escape(instance_id + mark), str(count),
                     f'<span style="color:var(--jp-brand-color1)">{bar}</span>'])
    summary = (f"{report.requests} requests in {report.seconds:.1f} s; errors seen by the "
               f"client: <b>{report.client_errors}</b>; retried on another instance: "
               f"{report.failovers}; taken out of rotation: "
               f"{escape(', '.join(report.marked_down) or 'none')}")
    if not done:
        summary = f"<i>sending… {report.requests} requests so far</i>"
    table = markup.table(["instance", "requests served", ""], rows)
    return markup.text(table + f"<p>{summary}</p>")


class _WatchedBalancer(kcloud.LoadBalancer):
    """The cloud's load balancer, telling a watcher after each request (for progress)."""

    def __init__(self, instances: list[kcloud.Instance],
                 on_request: Callable[[kcloud.SpreadReport], None]) -> None:
        super().__init__(instances)
        self._on_request = on_request

    def request(self, report: kcloud.SpreadReport) -> str | None:
        body = super().request(report)
        self._on_request(report)
        return body


def spread(requests: int = 30, stop_one: bool = False,
           on_request: Callable[[kcloud.SpreadReport], None] | None = None,
           ) -> kcloud.SpreadReport:
    """Deploy the app, spread requests over the running instances, maybe stop one mid-way."""
    global _last_spread
    the_cloud = cloud()
    targets = the_cloud.running()
    if not targets:
        raise KitError("no instance is running to send requests to.",
                       hint="Launch some first: cloud.run_instances(type='t.nano', count=2).")
    the_cloud.deploy_app(targets)
    balancer = _WatchedBalancer(targets, on_request or (lambda report: None))
    victim = targets[-1] if stop_one and len(targets) > 1 else None
    report = balancer.spread(requests, stop=victim,
                             stopper=lambda i: the_cloud.stop_instances([i.id]))
    _last_spread = (report, victim.id if victim else None)
    return report


class BalancerDemo(KitWidget):
    """Send requests through the load balancer; optionally stop an instance mid-way."""

    def __init__(self) -> None:
        super().__init__("load balancer")
        self.requests = widgets.BoundedIntText(value=30, min=2, max=500, description="requests",
                                               layout=widgets.Layout(width="11em"))
        self.stop_one = widgets.Checkbox(value=False, description="stop one instance mid-way")
        self.send = widgets.Button(description="Send requests", icon="exchange",
                                   layout=widgets.Layout(width="auto", flex="none"))
        self.output = widgets.HTML()
        self.send.on_click(self._callback("sending requests", self.run))
        self._set_body(widgets.HBox([self.requests, self.stop_one, self.send]), self.output)

    def run(self) -> kcloud.SpreadReport:
        """Send the requests; the table fills in as they go, then replaces the last run's."""
        shown = [0.0]
        stop_one = bool(self.stop_one.value)
        victim = cloud().running()[-1].id if stop_one and len(cloud().running()) > 1 else None
        self.output.value = markup.text("<p><i>installing the application on every running "
                                        "instance…</i></p>")

        def progress(report: kcloud.SpreadReport) -> None:
            if time.monotonic() - shown[0] > 0.25:
                shown[0] = time.monotonic()
                self.output.value = spread_html(report, victim, done=False)

        report = spread(int(self.requests.value), stop_one, on_request=progress)
        note = ""
        if stop_one and victim is None:
            note = markup.text("<p><i>Only one instance runs, so none was stopped: the "
                               "others would have nobody to take over.</i></p>")
        self.output.value = spread_html(report, _last_spread[1] if _last_spread else None) + note
        return report


# -- exercise 1: launch your order -----------------------------------------------------------


def _serving(instance: kcloud.Instance) -> bool:
    try:
        net.http_get(instance.host_port, "/", timeout=3)
    except OSError:
        return False
    return True


def _ordered(instance: kcloud.Instance) -> bool:
    return not instance.name.startswith(f"{SPARE}-")


def check_launch() -> Verdict:
    want_type, want_count = order_type(), order_count()
    running = [i for i in cloud().running() if _ordered(i)]
    mine = [i for i in running if i.type.name == want_type]
    others = sorted({i.type.name for i in running if i.type.name != want_type})
    if len(mine) < want_count:
        also = f" (running: {', '.join(others)}, not your type)" if others else ""
        return Verdict.fail(f"{len(mine)} instance(s) of type {want_type} run; your order is "
                            f"{want_count}{also}.",
                            hint=f"cloud.run_instances(type=\"{want_type}\", count="
                            f"{want_count - len(mine)}) launches what is missing.")
    given = {i.id: hypervisor_memory_mb(i.guest) for i in mine}
    serving = {i.id: _serving(i) for i in mine}
    evidence = [f"{i.id}: QEMU pid {i.guest.pid}; the hypervisor (QMP) gave it "
                f"{given[i.id]:.0f} MiB; HTTP on 127.0.0.1:{i.host_port} "
                f"{'answers' if serving[i.id] else 'does not answer'}" for i in mine]
    wrong = [k for k, v in given.items() if round(v) != mine[0].type.memory_mb]
    if wrong:
        return Verdict.fail(f"{', '.join(wrong)} do not have the memory of a {want_type}.",
                            *evidence, hint="Launch them again with the type of your order.")
    if not all(serving.values()):
        return Verdict.fail("some of your instances do not answer HTTP yet.", *evidence,
                            hint="Wait a second for their boot to finish, then check again.")
    extra = (f" (you run {len(mine)}; the extra ones hold memory: terminate them when you like)"
             if len(mine) > want_count else "")
    pids = {i.guest.pid for i in mine}
    return Verdict.ok(f"your order runs: {len(mine)} {want_type} servers on this one host, each "
                      f"its own QEMU process ({len(pids)} different pids){extra}.", *evidence)


def solve_launch() -> list[kcloud.Instance]:
    missing = order_count() - len([i for i in cloud().running()
                                   if _ordered(i) and i.type.name == order_type()])
    if missing > 0:
        cloud().run_instances(type=order_type(), count=missing, name_prefix=PREFIX)
    return [i for i in cloud().running() if _ordered(i) and i.type.name == order_type()]


# -- exercise 2: user data, read from inside ------------------------------------------------


def check_metadata(answer: str) -> Verdict:
    running = cloud().running()
    if not running:
        return Verdict.fail("no instance is running to ask.",
                            hint="Launch your order first (exercise 1).")
    served = {i.name: read_user_data(i) for i in running}
    evidence = [f"inside {name}: wget -qO- {USER_DATA_URL} -> {value or '(nothing)'}"
                for name, value in served.items()]
    evidence.append("QEMU put instance-id, instance-type and launch-time on each guest's "
                    "kernel command line; the lesson handed over the user data by the agent")
    wanted = user_data()
    if wanted in answer:
        return Verdict.ok("you asked the metadata address from inside your instance, as "
                          "software on an EC2 instance does, and read your own user data.",
                          *evidence)
    shown = answer.strip()[:70] or "nothing"
    if "404" in answer:
        return Verdict.fail(f"the guest's web server answered {shown!r}: that path is not "
                            "there.", *evidence,
                            hint="User data sits beside meta-data, not inside it: the path "
                            "is /latest/user-data.")
    return Verdict.fail(f"your cell gave {shown!r}, which is not your instances' user data.",
                        *evidence,
                        hint="Run wget inside the instance: first.guest.run(\"wget -qO- "
                        "http://169.254.169.254/latest/...\") with the user data's path.")


def solve_metadata() -> str:
    return first_instance().guest.run(["wget", "-qO-", USER_DATA_URL]).stdout


# -- exercise 3: a refused launch --------------------------------------------------------------


Launched = list[kcloud.Instance] | kcloud.InsufficientInstanceCapacity


def try_launch(type: str, count: int) -> Launched:
    """``cloud.run_instances``, with a refusal handed back instead of stopping the cell.

    Returns the instances when the launch fits (they run), or the
    ``InsufficientInstanceCapacity`` refusal when it does not (nothing starts).
    """
    try:
        return cloud().run_instances(type=type, count=count, name_prefix=PREFIX)
    except kcloud.InsufficientInstanceCapacity as refusal:
        return refusal


_REFUSED = re.compile(r"(\d+) x (\S+) \(")


def check_refused() -> Verdict:
    want = refusal_type()
    itype = kcloud.instance_type(want)
    refusal = cloud().last_refusal
    space = kcloud.capacity().room_for(itype)
    count = len([i for i in cloud().instances() if not i.terminated])
    evidence_room = (f"measured now: room for {space} more {want}; your cloud has {count} "
                     "instances")
    if refusal is None:
        return Verdict.fail("your cloud has not refused a launch yet.", evidence_room,
                            hint=f"Ask for more {want} than there is room for: "
                            f"lesson5.try_launch(type=\"{want}\", count=...) with a count above "
                            f"{space}.")
    found = _REFUSED.search(refusal.message)
    asked_count, asked_type = (int(found.group(1)), found.group(2)) if found else (0, "?")
    evidence = (refusal.message, evidence_room)
    if asked_type != want:
        return Verdict.fail(f"the refused launch asked for {asked_type}; your task is to ask "
                            f"for too many {want}.", *evidence,
                            hint=f"lesson5.try_launch(type=\"{want}\", count=...) with a count "
                            f"above {space}.")
    return Verdict.ok(f"the host refused {asked_count} x {want} before starting any: one "
                      "launch, all or nothing, with the numbers that did not fit.", *evidence)


def room_for(type: str) -> int:
    """How many more instances of ``type`` this host takes now (the console shows it too)."""
    return kcloud.capacity().room_for(kcloud.instance_type(type))


def solve_refused() -> Launched:
    return try_launch(refusal_type(), room_for(refusal_type()) + 1)


# -- exercise 4: terminate one, the service stays up ---------------------------------------


def _gone(instance: kcloud.Instance) -> bool:
    """Whether the instance's guest is stopped and its QEMU process no longer runs."""
    pid = instance.guest.pid
    try:
        alive = pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    return instance.guest.state == GuestState.STOPPED and not alive


def check_terminate() -> Verdict:
    everything = cloud().instances()
    ended = [i for i in everything if i.terminated]
    running = cloud().running()
    if not ended:
        return Verdict.fail("none of your instances is terminated yet.",
                            *(f"{i.id}: {i.state}" for i in everything),
                            hint="cloud.terminate_instances([\"i-...\"]) with the id of one "
                            "instance (cloud.describe_instances() lists them).")
    evidence = [f"{i.id}: {i.state}; its QEMU process (pid {i.guest.pid}) "
                f"{'is gone' if _gone(i) else 'still exists'}" for i in ended]
    if not all(_gone(i) for i in ended):
        return Verdict.fail("a terminated instance's QEMU process is still there.", *evidence,
                            hint="Wait a second for it to shut down, then check again.")
    if not running:
        return Verdict.fail("no instance is left running to serve the traffic.", *evidence,
                            hint="Launch one more (cloud.run_instances(type=\"t.nano\", "
                            "count=1)), then check again.")
    cloud().deploy_app(running)
    report = kcloud.LoadBalancer(everything).spread(2 * len(everything))
    evidence += [f"{k}: served {v} requests" for k, v in report.rows()]
    evidence.append(f"the balancer's {report.requests} requests: client errors "
                    f"{report.client_errors}, retried on another instance {report.failovers}")
    if report.client_errors:
        return Verdict.fail(f"{report.client_errors} requests reached no instance.", *evidence,
                            hint="Keep at least one instance running, then check again.")
    return Verdict.ok(f"{', '.join(i.id for i in ended)} is gone, yet every request through "
                      "the load balancer was answered: it took the dead instance out of the "
                      "rotation and the others served.", *evidence)


def solve_terminate() -> list[kcloud.Instance]:
    running = cloud().running()
    if len(running) < 2:
        cloud().run_instances(type="t.nano", count=2 - len(running), name_prefix=PREFIX)
        running = cloud().running()
    return cloud().terminate_instances([running[-1].id])


# -- predictions ---------------------------------------------------------------------------------


_INET = re.compile(r"inet (\d+\.\d+\.\d+\.\d+)/")


def measure_addresses() -> float:
    """How many different IPv4 addresses the running instances give their eth0, from inside."""
    running = cloud().running() or [first_instance()]
    found = set()
    for instance in running:
        shown = instance.guest.run(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
        found.update(_INET.findall(shown))
    return float(len(found))


def measure_room() -> float:
    return float(room_for(refusal_type()))


addresses = Prediction(
    "l5-p-addresses",
    "Each of your instances has a network card. Asked from **inside** (`ip addr`), how many "
    "**different** private IPv4 addresses will your running instances report between them?",
    measure_addresses, unit="addresses",
    explain=lambda guess, got: (
        "QEMU's user networking gives each guest a small network of its own, 10.0.2.0/24, with "
        "the guest always at 10.0.2.15: the same address in every instance, and the cloud "
        "tells them apart by their host ports. On EC2 the instances of one VPC share a network, "
        "so each gets an address of its own. Each network here is sealed, too: QEMU drops "
        "what an instance sends to the host or beyond, until its internet door opens."),
)
room = Prediction(
    "l5-p-room",
    "How many **more** instances of your refusal type (the cell above prints it) will this "
    "host take before the cloud refuses a launch?", measure_room, unit="instances",
    explain=lambda guess, got: (
        "The tightest of the limits decides: free memory, the per-user caps on memory and "
        "guests, and the vCPUs the kit hands out (8 per real CPU). The console's line under "
        "the type shows each one."),
)


# -- the lesson ---------------------------------------------------------------------------------

launch = Checkpoint(
    "l5-launch", "Launch your order",
    "Launch **your order** (the cell above prints its type and count) with "
    "`cloud.run_instances(type=..., count=...)`.",
    check_launch, solve=solve_launch,
    hint="cloud.run_instances(type=\"t.nano\", count=1) launches one t.nano; put your own type "
    "and count in its place.",
    solution="Ask the cloud for your type and count in one call:",
    code="web = cloud.run_instances(type=lesson5.order_type(), count=lesson5.order_count())",
)
metadata = Checkpoint(
    "l5-metadata", "Read your user data from inside",
    "Your instances were handed **user data** of your own. From **inside** `first`, ask the "
    "metadata address for it (`/latest/user-data`) with `first.guest.run(...)`.",
    check_metadata, takes_answer=True, solve=solve_metadata,
    hint="The metadata table shows the command for meta-data/instance-id; user data sits at "
    f"{USER_DATA_URL}.",
    solution="Run wget inside the instance, through its guest agent:",
    code=f'user_data = first.guest.run("wget -qO- {USER_DATA_URL}").stdout',
)
refused = Checkpoint(
    "l5-refused", "A full host says so",
    "Ask for **more instances of your refusal type than this host can hold**, with "
    "`lesson5.try_launch(type=..., count=...)`, and read why the cloud refuses.",
    check_refused, solve=solve_refused,
    hint="The console's line under the type says 'Room for N more' (pick your refusal type in "
    "its menu); lesson5.room_for(type) gives the same number. Ask for one more than that.",
    solution="Ask for one more than there is room for; the refusal comes back as the answer:",
    code="wanted = lesson5.refusal_type()\n"
    "refusal = lesson5.try_launch(type=wanted, count=lesson5.room_for(wanted) + 1)",
)
terminate = Checkpoint(
    "l5-terminate", "Terminate one, stay up",
    "Terminate **one** of your running instances with `cloud.terminate_instances([...])`. The "
    "kit then sends requests through a load balancer that still lists it: no client may see "
    "an error.",
    check_terminate, solve=solve_terminate,
    hint="cloud.running() lists the running instances; cloud.running()[-1].id is the id of the "
    "last one. terminate_instances takes a list of ids.",
    solution="Terminate the last running instance by its id:",
    code="ended = cloud.terminate_instances([cloud.running()[-1].id])",
)


quiz = Quiz([
    Question("l5-q1", "What made it possible for one physical server to be rented to many "
             "customers at once?", [
        Choice("A virtual machine per customer, each with its own kernel", True,
               "Each instance you launched was a separate guest with its own kernel, on one "
               "host: that is what a cloud sells."),
        Choice("One user account per customer on a shared OS", False,
               "Then every customer would share one OS and one kernel; a cloud instance has "
               "its own, as your instances did."),
        Choice("Cutting the server's hardware into physical pieces per customer", False,
               "Nothing physical was divided: the instances were processes sharing the "
               "host's CPUs and memory."),
    ]),
    Question("l5-q2", "What is an instance type such as t.micro?", [
        Choice("A version of the operating system the instance boots", False,
               "Every type here boots the same kernel; the type only sizes the machine."),
        Choice("A size: how much memory and how many vCPUs it gets", True,
               "The type became QEMU's -m and -smp for that guest; QMP reported the memory "
               "back in your first check."),
        Choice("The data centre where it runs", False,
               "That would be a region or zone; here every instance runs on this one host."),
    ]),
    Question("l5-q3", "In this kit, what answers at 169.254.169.254 inside an instance?", [
        Choice("The hypervisor, from outside the guest, as on EC2", False,
               "That is EC2's way (the metadata service sits outside the instance, and "
               "IMDSv2 asks for a token first). Here QEMU only puts the facts on the kernel "
               "command line; the guest then serves them itself."),
        Choice("The guest's own web server, on a loopback address", True,
               "The kit publishes what QEMU put on the kernel command line as files, adds the "
               "address to the guest's loopback, and the guest's busybox httpd answers."),
        Choice("The load balancer on the host", False,
               "The load balancer only forwards the host's requests to the instances; "
               "169.254.169.254 never leaves the guest here."),
    ]),
    Question("l5-q4", "On EC2 you call RunInstances with MinCount=2 and MaxCount=10, and only "
             "6 fit. What happens?", [
        Choice("Nothing starts: the whole request is refused", False,
               "That happens only when fewer than MinCount fit. This kit's run_instances takes "
               "one count, as if MinCount were MaxCount: all or nothing."),
        Choice("6 instances start", True,
               "RunInstances starts as many as fit between MinCount and MaxCount, and refuses "
               "(InsufficientInstanceCapacity) only when not even MinCount fit."),
        Choice("10 start; 4 of them wait in a queue", False,
               "A launch does not queue: what cannot be placed now is not started."),
    ]),
    Question("l5-q5", "You terminated an instance the load balancer still listed, yet the "
             "client saw no error. Why?", [
        Choice("The terminated instance kept answering for a while", False,
               "Its QEMU process was gone; the request sent to it failed."),
        Choice("The balancer retried that request on another instance", True,
               "It took the dead instance out of the rotation; the others carried on. "
               "Services such as Netflix's run many instances for this reason."),
        Choice("The host replayed a cached answer", False,
               "Each answer came live from an instance, which its body names."),
    ]),
    Question("l5-q6", "Since 2017, new EC2 instance types run on the Nitro system. What is it?", [
        Choice("Xen, the hypervisor EC2 began with, on faster servers", False,
               "EC2 began on Xen; Nitro replaced it for new instance types."),
        Choice("A KVM-based hypervisor plus offload cards", True,
               "A lightweight hypervisor built on KVM, with networking, storage and security "
               "moved to dedicated cards: the 'hardware' part of a hypervisor."),
        Choice("Containers instead of virtual machines", False,
               "Each EC2 instance is still a virtual machine with its own kernel (except "
               "bare-metal instances, which have no hypervisor at all)."),
    ]),
])

lesson = Lesson(5, [launch, metadata, refused, terminate], quiz, [addresses, room])
