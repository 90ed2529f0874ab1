"""Lesson 5, Why it changed computing: the cloud: widgets, checkpoints and quiz.

The notebook ``lessons/05-cloud.ipynb`` shows these; the tests import them.
The lesson's cloud is one :class:`kit.labs.cloud.Cloud` per notebook kernel
(:func:`cloud`); every check asks it, and the real guests under it, for the
live state.  The widgets here (:class:`CloudConsole`, :class:`MetadataView`,
:class:`BalancerDemo`) are lesson 6's too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ipywidgets as widgets

from kit.core.errors import KitError
from kit.infrastructure import net
from kit.labs import cloud as kcloud
from kit.lesson.checkpoint import Checkpoint, Verdict
from kit.lesson.lesson import Lesson
from kit.lesson.quiz import Choice, Question, Quiz
from kit.view import markup
from kit.view.markup import escape
from kit.widgets.base import KitWidget

TASK_TYPE = "t.nano"
TASK_COUNT = 2
PREFIX = "web"
COLUMNS = ["instance id", "name", "type", "state", "private ip", "host port", "launch time",
           "boot s", "qemu pid"]

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


# -- the demonstrations --------------------------------------------------------------------


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
        self.type = widgets.Dropdown(options=names, value=TASK_TYPE, description="type",
                                     layout=widgets.Layout(width="12em"))
        self.count = widgets.BoundedIntText(value=TASK_COUNT, min=1, max=999,
                                            description="count",
                                            layout=widgets.Layout(width="10em"))
        self.launch_button = widgets.Button(description="Launch instances", icon="rocket")
        self.ids = widgets.SelectMultiple(options=[], description="instances",
                                          layout=widgets.Layout(width="18em", height="6em"))
        self.stop_button = widgets.Button(description="Stop selected")
        self.start_button = widgets.Button(description="Start selected")
        self.terminate_button = widgets.Button(description="Terminate selected",
                                               button_style="warning")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.room = widgets.HTML()
        self.launch_button.on_click(self._callback("launching", self.launch))
        self.stop_button.on_click(self._callback("stopping", lambda: self._act("stop")))
        self.start_button.on_click(self._callback("starting", lambda: self._act("start")))
        self.terminate_button.on_click(self._callback("terminating",
                                                      lambda: self._act("terminate")))
        self.type.observe(self._guarded("room", lambda *_: self.refresh()), names="value")
        self._set_body(
            widgets.HBox([self.type, self.count, self.launch_button]), self.room,
            widgets.HBox([self.ids, widgets.VBox([self.stop_button, self.start_button,
                                                  self.terminate_button])]),
            self.status, self.table)
        self.refresh()

    def launch(self) -> None:
        """What the Launch button does: a background launch, refused at once if too big."""
        itype = kcloud.instance_type(self.type.value)
        count = int(self.count.value)
        self.cloud.check_launch(itype.name, count)  # refused here, shown in the banner
        self.status.value = f"<i>launching {count} x {escape(itype.name)}…</i>"
        self._background("launch", lambda: self.cloud.run_instances(
            type=itype.name, count=count, name_prefix=PREFIX))

    def _act(self, action: str) -> None:
        ids = list(self.ids.value)
        if not ids:
            raise KitError("no instance is selected.",
                           hint="Click an instance id in the list (Ctrl-click for several).")
        run = {"stop": self.cloud.stop_instances, "start": self.cloud.start_instances,
               "terminate": self.cloud.terminate_instances}[action]
        self.status.value = f"<i>{action} {escape(', '.join(ids))}…</i>"
        self._background(action, lambda: run(ids))

    def _background(self, what: str, job: Callable[[], object]) -> None:
        def run() -> None:
            try:
                job()
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
        found = {key: self.instance.read_own_metadata(key) for key in self.instance.metadata()}
        rows = [[f"<code>wget -qO- http://{kcloud.METADATA_ADDRESS}/latest/meta-data/"
                 f"{escape(k)}</code>", f"<b>{escape(v)}</b>"] for k, v in found.items()]
        self.output.value = (f"<p>Inside instance <b>{escape(self.instance.id)}</b> "
                             f"(guest {escape(self.instance.name)}):</p>"
                             + markup.table(["command run in the guest", "answer"], rows))
        return found


def spread_html(report: kcloud.SpreadReport, stopped: str | None) -> str:
    most = max(report.answered.values(), default=1) or 1
    rows = []
    for instance_id, count in report.rows():
        bar = "█" * max(0, round(24 * count / most))
        mark = " (stopped mid-way)" if instance_id == stopped else ""
        rows.append([escape(instance_id + mark), str(count),
                     f'<span style="color:#0072B2">{bar}</span>'])
    summary = (f"{report.requests} requests in {report.seconds:.1f} s; errors seen by the "
               f"client: <b>{report.client_errors}</b>; retried on another instance: "
               f"{report.failovers}; taken out of rotation: "
               f"{escape(', '.join(report.marked_down) or 'none')}")
    table = markup.table(["instance", "requests served", ""], rows)
    return markup.text(table + f"<p>{summary}</p>")


def spread(requests: int = 30, stop_one: bool = False) -> kcloud.SpreadReport:
    """Deploy the app, spread requests over the running instances, maybe stop one mid-way."""
    global _last_spread
    the_cloud = cloud()
    targets = the_cloud.running()
    the_cloud.deploy_app(targets)
    balancer = kcloud.LoadBalancer(targets)
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
        self.send = widgets.Button(description="Send requests", icon="exchange")
        self.output = widgets.HTML()
        self.send.on_click(self._callback("sending requests", self.run))
        self._set_body(widgets.HBox([self.requests, self.stop_one, self.send]), self.output)

    def run(self) -> kcloud.SpreadReport:
        report = spread(int(self.requests.value), bool(self.stop_one.value))
        self.output.value = spread_html(report, _last_spread[1] if _last_spread else None)
        return report


# -- the checks ------------------------------------------------------------------------------


def _serving(instance: kcloud.Instance) -> bool:
    try:
        net.http_get(instance.host_port, "/", timeout=3)
    except OSError:
        return False
    return True


def check_launch() -> Verdict:
    running = [i for i in cloud().running() if i.type.name == TASK_TYPE]
    if len(running) < TASK_COUNT:
        return Verdict.fail(f"{len(running)} {TASK_TYPE} instance(s) are running; the task "
                            f"asks for {TASK_COUNT}.",
                            hint=f"In the console choose type {TASK_TYPE}, count "
                            f"{TASK_COUNT - len(running)}, and press Launch instances.")
    serving = [i for i in running if _serving(i)]
    evidence = [f"{i.id}: QEMU pid {i.guest.pid}, HTTP on 127.0.0.1:{i.host_port} "
                f"{'answers' if i in serving else 'does not answer'}" for i in running]
    if len(serving) < TASK_COUNT:
        return Verdict.fail("some instances do not answer HTTP yet.", *evidence,
                            hint="Wait a second for their boot to finish, then check again.")
    pids = {i.guest.pid for i in running}
    return Verdict.ok(f"{len(running)} independent servers run on this one host, each its "
                      f"own QEMU process ({len(pids)} different pids).", *evidence)


def check_metadata(answer: str) -> Verdict:
    running = cloud().running()
    if not running:
        return Verdict.fail("no instance is running.",
                            hint="Launch an instance first (the console above).")
    first = running[0]
    inside = first.read_own_metadata("instance-id")
    evidence = (f"inside {first.name}: wget http://{kcloud.METADATA_ADDRESS}/latest/meta-data/"
                f"instance-id -> {inside}",)
    if not answer:
        return Verdict.fail("type the instance id first.", *evidence)
    if answer == first.name:
        return Verdict.fail(f"{answer} is the guest's host name; EC2-style ids start with i-.",
                            *evidence, hint="Read the answer to the instance-id question.")
    if answer != inside:
        return Verdict.fail(f"instance {first.name} does not call itself {answer!r}.", *evidence)
    return Verdict.ok(f"the instance knows itself as {inside}: its hypervisor told it.",
                      *evidence, f"the cloud's record: {first.id}")


def check_refused() -> Verdict:
    refusal = cloud().last_refusal
    if refusal is None:
        return Verdict.fail("the cloud has not refused a launch yet.",
                            hint="Set the count above the 'room for' figure and press Launch.")
    names = {i.name for i in cloud().instances()}
    return Verdict.ok("the host refused a launch it could not hold, before starting anything.",
                      refusal.message, f"instances in the cloud: {len(names)} (none added)")


def check_failover() -> Verdict:
    if _last_spread is None:
        return Verdict.fail("no requests have been spread yet.",
                            hint="Tick 'stop one instance mid-way' and press Send requests.")
    report, stopped = _last_spread
    evidence = [f"{k}: {v} requests" for k, v in report.rows()]
    evidence.append(f"client errors {report.client_errors}, fail-overs {report.failovers}")
    served = [k for k, v in report.answered.items() if v > 0]
    if len(served) < 2:
        return Verdict.fail("only one instance served requests: nothing was spread.", *evidence,
                            hint=f"Run at least {TASK_COUNT} instances, then send again.")
    if stopped is None:
        return Verdict.fail("the requests were spread, but no instance was stopped mid-way.",
                            *evidence, hint="Tick 'stop one instance mid-way', send again.")
    state = cloud().get(stopped).state
    if report.client_errors or state != "stopped":
        return Verdict.fail(f"the service was not kept up ({report.client_errors} errors; "
                            f"{stopped} is {state}).", *evidence)
    return Verdict.ok(f"{stopped} was stopped mid-way and no client saw an error: the others "
                      "took its requests.", *evidence)


# -- the lesson ---------------------------------------------------------------------------------

launch = Checkpoint(
    "l5-launch", "Rent two servers",
    f"Launch **{TASK_COUNT} instances of type {TASK_TYPE}** with the cloud console.",
    check_launch,
    hint=f"Type {TASK_TYPE}, count {TASK_COUNT}, then Launch instances; wait for 'running'.",
    solution="Choose the type and count, press Launch; or run the line below.",
    code=f'lesson5.cloud().run_instances(type="{TASK_TYPE}", count={TASK_COUNT}, '
    f'name_prefix="{PREFIX}")',
)
metadata = Checkpoint(
    "l5-metadata", "Who am I?",
    "Type the instance id that the **first running instance** reads about itself from its "
    "metadata service.",
    check_metadata, answer_label="instance id:",
    hint="The metadata table shows the answer to instance-id; it starts with i-.",
    solution="Ask the instance itself, as in the line below.",
    code='lesson5.metadata.verify(lesson5.cloud().running()[0].read_own_metadata("instance-id"))',
)
refused = Checkpoint(
    "l5-refused", "A full host says so",
    "Ask the cloud for **more instances than this host can hold**, and read why it refuses.",
    check_refused,
    hint="The console shows 'room for N more'; ask for N + 1.",
    solution="Ask for one more than there is room for; the refusal is caught and kept.",
    code="lesson5.try_too_many()",
)
failover = Checkpoint(
    "l5-failover", "Stay up while a server goes down",
    "Spread requests over your instances and **stop one of them mid-way**; the client must "
    "see no error.",
    check_failover,
    hint="Tick 'stop one instance mid-way' in the load balancer box and press Send requests.",
    solution="Run the line below: it spreads 30 requests and stops the last instance halfway.",
    code="lesson5.spread(30, stop_one=True)",
)


def try_too_many(type: str = TASK_TYPE) -> str:
    """Ask for one instance more than there is room for; returns the refusal's words."""
    itype = kcloud.instance_type(type)
    try:
        cloud().run_instances(type=itype.name, count=kcloud.capacity().room_for(itype) + 1,
                              name_prefix=PREFIX)
    except kcloud.InsufficientInstanceCapacity as refusal:
        return str(refusal)
    raise KitError("the launch was not refused, which the capacity figures said it would be.",
                   hint="Terminate what was launched: lesson5.cloud().terminate_all().")


quiz = Quiz([
    Question("l5-q1", "What made it possible for one physical server to be rented to many "
             "customers at once?", [
        Choice("Each customer gets a virtual machine of their own on the shared server", True,
               "Each instance you launched was a separate guest with its own kernel, on one "
               "host: that is what a cloud sells."),
        Choice("Each customer gets a user account on one shared operating system", False,
               "Then every customer would share one OS and one kernel; a cloud instance has "
               "its own, as your instances did."),
        Choice("The server is cut into physical pieces", False,
               "Nothing physical was divided: the instances were processes sharing the "
               "host's CPUs and memory."),
    ]),
    Question("l5-q2", "What is an instance type such as t.micro?", [
        Choice("A version of the operating system", False,
               "Every type here boots the same kernel; the type only sizes the machine."),
        Choice("A size: how much memory and how many vCPUs the virtual machine gets", True,
               "The type became QEMU's -m and -smp for that guest."),
        Choice("The data centre where it runs", False,
               "That would be a region or zone; here every instance runs on this one host."),
    ]),
    Question("l5-q3", "How did each instance learn its own instance id?", [
        Choice("It guessed from its host name", False,
               "Its host name is web-..., not its id; it read the id from its metadata."),
        Choice("Its hypervisor handed it over, and it read it from the metadata address", True,
               "QEMU put it on the guest's kernel command line; the guest reads it at "
               "169.254.169.254, the same address EC2 instances use."),
        Choice("The load balancer told it", False,
               "The load balancer only forwards requests; it tells the instances nothing."),
    ]),
    Question("l5-q4", "The cloud refused a launch. When did it do so?", [
        Choice("After starting as many as fitted", False,
               "Nothing was started: the request was checked against the host's free memory, "
               "vCPUs and caps first."),
        Choice("Before starting anything, giving the numbers that did not fit", True,
               "A half-done launch would leave the customer with servers they did not ask "
               "for; the check comes first."),
        Choice("Never: a cloud has unlimited capacity", False,
               "Every host has limits; a large cloud just has many hosts to place you on."),
    ]),
    Question("l5-q5", "An instance stopped while requests were flowing, yet the client saw no "
             "error. Why?", [
        Choice("The stopped instance kept answering", False,
               "It was stopped: its QEMU process was gone, and its request failed."),
        Choice("The load balancer retried the failed request on another instance", True,
               "It took the stopped instance out of the rotation; the others carried on. "
               "Services such as Netflix's run many instances for this reason."),
        Choice("The requests were cached on the host", False,
               "Each answer came live from an instance, which its body names."),
    ]),
])

lesson = Lesson(5, [launch, metadata, refused, failover], quiz)
