"""The node runtime. A node is a small class: it declares what it consumes and produces and
implements ``process``, which receives one task's inputs and returns its output. The base class owns
the DDS participant, topics and QoS, threading, status heartbeats, cancellation and shutdown.

A minimal node (README has the full partner guide)::

    class Echo(TaskNode):
        name = "echo"
        inputs = {"task": Input(topics.ENCODED_TASK)}
        output = topics.MODEL_CANDIDATES

        def process(self, ctx: TaskContext, task: msg.EncodedTask) -> msg.ModelCandidates:
            return msg.ModelCandidates(task_id=task.task_id)

    if __name__ == "__main__":
        run_node(Echo)
"""

import abc
import argparse
import logging
import os
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from . import msg, topics
from .bus import Gone, Participant, Publisher, ServiceServer, Subscription
from .config import RuntimeConfig, load_config, node_params
from .exceptions import ConfigError, SustainMLError, TaskCancelled
from .topics import ServiceSpec, TopicSpec

__all__ = ["Node", "TaskNode", "Input", "TaskContext", "run_node", "task_key", "TaskKey",
           "NoParams"]

T = TypeVar("T")
P = TypeVar("P")
TaskKey = tuple[str, int]

TERMINAL = (msg.TaskState.TASK_DONE, msg.TaskState.TASK_FAILED, msg.TaskState.TASK_CANCELLED)


def task_key(task_id: msg.TaskId) -> TaskKey:
    return (task_id.problem_id, int(task_id.iteration))


@dataclass
class NoParams:
    """For nodes without parameters."""


class Node:
    """A process on the bus with a name, a status heartbeat and liveliness, ROS-style verbs to
    declare publishers, subscriptions, services and timers, and lifecycle hooks.

    Lifecycle: ``on_configure`` (read parameters, load data) then ``on_activate`` (start serving)
    at start-up; ``on_shutdown`` on SIGINT/SIGTERM or ``shutdown()``."""

    name: ClassVar[str] = "node"
    #: What the node does; defaults to ``name``. Instances of one kind on several hosts need
    #: distinct names (NodeStatus is keyed by name): see ``unique_per_host``.
    kind: ClassVar[str] = ""
    unique_per_host: ClassVar[bool] = False
    Params: ClassVar[type] = NoParams
    heartbeat_period_s: ClassVar[float] = 1.0

    def __init__(self, *, config: RuntimeConfig | None = None, params: Any = None,
                 name: str | None = None) -> None:
        self.kind = self.kind or self.name
        name = name or os.environ.get("SUSTAINML_NODE_NAME") or None
        self.config = config or load_config()
        self.params = params if params is not None else node_params(
            self.Params, self.config.node_params.get(self.name, {}), node=self.name)
        self.log = logging.getLogger(f"sustainml.{self.name}")
        self.bus = Participant(self.config)
        self.host = self.bus.host
        if name:
            self.name = name
        elif self.unique_per_host:
            self.name = f"{self.kind}@{self.host}"
        self._stop = threading.Event()
        self._timers: list[threading.Thread] = []
        self._services: list[ServiceServer] = []
        self._subs: list[Subscription] = []
        self._state = msg.NodeState.NODE_STARTING
        self._state_task = msg.TaskId()
        self._progress = 0.0
        self._message = ""
        self._status_lock = threading.Lock()
        self._started_unix_s = time.time()
        self._status = self.bus.publisher(topics.NODE_STATUS)
        self.publish_status(msg.NodeState.NODE_STARTING, message="starting")
        self._setup()
        self.on_configure()
        self.on_activate()
        self.create_timer(self.heartbeat_period_s, self._heartbeat)
        self.set_state(msg.NodeState.NODE_IDLE, message="ready")
        self.log.info("%s ready on %s (domain %d)", self.name, self.host, self.config.domain_id)

    def _setup(self) -> None:
        """Runtime wiring of subclasses of Node in this package, before the user's hooks."""

    # ---------------------------------------------------------------- lifecycle hooks
    def on_configure(self) -> None:
        """Load data, open stores, declare publishers and subscriptions."""

    def on_activate(self) -> None:
        """Start serving (publish transient state such as an inventory)."""

    def on_shutdown(self) -> None:
        """Release resources. Called once, from ``shutdown``."""

    # ---------------------------------------------------------------- ROS-style verbs
    def create_publisher(self, spec: TopicSpec[T]) -> Publisher[T]:
        return self.bus.publisher(spec)

    def create_subscription(self, spec: TopicSpec[T], callback: Callable[[T], None], *,
                            on_gone: Callable[[Gone], None] | None = None) -> Subscription[T]:
        sub = self.bus.subscribe(spec, callback, on_gone=on_gone)
        self._subs.append(sub)
        return sub

    def create_service(self, spec: ServiceSpec, handler: Callable[[Any], Any], **options: Any) -> ServiceServer:
        """Answer ``spec``'s requests with ``handler`` on worker threads; ``options`` go to ServiceServer
        (``workers``, and ``remember``: how many replies are kept for clients that re-send)."""
        server = ServiceServer(self.bus, spec, handler, **options)
        self._services.append(server)
        return server

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(period_s):
                try:
                    callback()
                except Exception:
                    self.log.exception("timer callback failed")

        thread = threading.Thread(target=loop, name=f"{self.name}-timer", daemon=True)
        thread.start()
        self._timers.append(thread)
        return thread

    # ---------------------------------------------------------------- status
    def publish_status(self, state: msg.NodeState, *, task_id: msg.TaskId | None = None,
                       progress: float = 0.0, message: str = "") -> None:
        self._status.publish(msg.NodeStatus(
            node=self.name, kind=self.kind, host=self.host, pid=os.getpid(), state=state,
            task_id=task_id or msg.TaskId(), progress=float(progress), message=message[:500],
            heartbeat_unix_s=time.time(), started_unix_s=self._started_unix_s))

    def set_state(self, state: msg.NodeState, *, task_id: msg.TaskId | None = None,
                  progress: float = 0.0, message: str = "") -> None:
        """Change the state the heartbeat repeats, and publish it now."""
        with self._status_lock:
            self._state, self._state_task = state, task_id or msg.TaskId()
            self._progress, self._message = progress, message
        self.publish_status(state, task_id=task_id, progress=progress, message=message)

    def _heartbeat(self) -> None:
        with self._status_lock:
            state, task, progress, message = self._state, self._state_task, self._progress, self._message
        self.publish_status(state, task_id=task, progress=progress, message=message)

    # ---------------------------------------------------------------- running
    def spin(self) -> None:
        """Serve until ``shutdown()`` (SIGINT/SIGTERM call it in ``run_node``)."""
        self._stop.wait()

    def shutdown(self) -> None:
        if self._stop.is_set():
            return
        self.log.info("%s shutting down", self.name)
        try:
            self.publish_status(msg.NodeState.NODE_STOPPING, message="shutting down")
        except SustainMLError:
            pass
        self._stop.set()
        try:
            self.on_shutdown()
        finally:
            for server in self._services:
                server.close()
            self.bus.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


@dataclass(frozen=True)
class Input(Generic[T]):
    """One input of a task node. ``keep=True`` keeps the message for the task's lifetime so that
    several messages of the other inputs (e.g. one measurement per host) each fire with it."""

    topic: TopicSpec[T]
    keep: bool = False


class TaskContext:
    """What ``process`` gets besides its inputs: the task id, progress reporting and cancellation."""

    def __init__(self, node: "TaskNode", task_id: msg.TaskId) -> None:
        self.node = node
        self.task_id = task_id
        self.log = node.log

    @property
    def cancelled(self) -> bool:
        """True once the task ended, however (cancelled, failed, done): stop working on it."""
        return self.node.is_cancelled(self.task_id)

    def check_cancelled(self) -> None:
        """Raise TaskCancelled when the task ended (cancelled, failed, or finished without this node's
        work): the work stops there."""
        why = self.node.task_ended(self.task_id)
        if why:
            raise TaskCancelled(f"task {self.task_id.problem_id}/{self.task_id.iteration} {why}; work stopped")

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0-100) on the node status topic; raises TaskCancelled if cancelled."""
        self.check_cancelled()
        self.node.set_state(msg.NodeState.NODE_BUSY, task_id=self.task_id,
                            progress=max(0.0, min(100.0, percent)), message=message)


@dataclass
class _Pending:
    created: float
    inputs: dict[str, Any] = field(default_factory=dict)


class TaskNode(Node, abc.ABC):
    """A node that turns the inputs of a task into one output message.

    ``process`` runs once the node holds every declared input for the same task id, in the node's
    own worker thread, one task at a time. An exception becomes an error status for that task id
    (state NODE_ERROR, with one readable line) and the node goes on serving. Inputs of cancelled or
    finished tasks are dropped with a log line; partial inputs expire after ``pending_ttl_s`` and
    at most ``max_pending`` tasks are held."""

    inputs: ClassVar[dict[str, Input]] = {}
    output: ClassVar[TopicSpec | None] = None
    pending_ttl_s: ClassVar[float] = 900.0
    max_pending: ClassVar[int] = 512
    remember_finished: ClassVar[int] = 8192
    remember_outputs: ClassVar[int] = 1024

    def __init__(self, **kwargs: Any) -> None:
        self._pending: OrderedDict[TaskKey, _Pending] = OrderedDict()
        self._finished: OrderedDict[TaskKey, str] = OrderedDict()  # key -> why (cancelled, done..)
        self._lock = threading.Lock()
        self._work: list[tuple[msg.TaskId, dict[str, Any], Any]] = []
        self._work_ready = threading.Condition(self._lock)
        # fire key -> None while in work, then ("output", message) or ("error", text): a repeated
        # input (the orchestrator re-sends after a restart) is answered again, not re-processed.
        self._processed: OrderedDict[Any, tuple[str, Any] | None] = OrderedDict()
        super().__init__(**kwargs)

    def _setup(self) -> None:
        self._publisher = self.create_publisher(self.output) if self.output else None
        self.create_subscription(topics.NODE_CONTROL, self._on_control)
        self.create_subscription(topics.TASK_STATUS, self._on_task_status)
        subs = [self.create_subscription(spec.topic, lambda m, n=input_name: self._on_input(n, m))
                for input_name, spec in self.inputs.items()]
        self._worker = threading.Thread(target=self._work_loop, name=f"{self.name}-worker", daemon=True)
        self._worker.start()
        # Announce "ready" only once the inputs are connected (to the orchestrator's writers at
        # least), so that inputs the orchestrator re-sends to a restarted node are not lost.
        deadline = time.monotonic() + 5.0
        for sub in subs:
            sub.wait_matched(max(0.0, deadline - time.monotonic()))

    def fire_key(self, task_id: msg.TaskId, inputs: dict[str, Any]) -> Any:
        """What identifies one firing, so that re-sent inputs are not processed twice. One per task;
        a node that fires once per message of an input (e.g. per host) returns a finer key."""
        return task_key(task_id)

    @abc.abstractmethod
    def process(self, ctx: TaskContext, **inputs: Any) -> Any:
        """Turn one task's inputs into the output message (or None to publish nothing). Every task
        node implements it; one that does not fails when it is constructed, before it joins the bus."""

    # ---------------------------------------------------------------- bookkeeping
    def is_cancelled(self, task_id: msg.TaskId) -> bool:
        """Whether the task ended (cancelled, failed or done): a node's work for it is of no use any more."""
        return bool(self.task_ended(task_id))

    def task_ended(self, task_id: msg.TaskId) -> str:
        """How the task ended ("was cancelled", "failed", "is done"), or "" while it runs."""
        with self._lock:
            why = self._finished.get(task_key(task_id), "")
        return {"cancelled": "was cancelled", "failed": "failed", "done": "is done"}.get(why, why)

    def _finish(self, key: TaskKey, why: str) -> None:
        """Caller holds the lock."""
        self._finished[key] = why
        self._finished.move_to_end(key)
        while len(self._finished) > self.remember_finished:
            self._finished.popitem(last=False)
        if self._pending.pop(key, None) is not None:
            self.log.info("dropped held inputs of %s/%d: task %s", key[0], key[1], why)
        before = len(self._work)
        self._work = [work for work in self._work if task_key(work[0]) != key]
        if len(self._work) != before:
            self.log.info("dropped queued work of %s/%d: task %s", key[0], key[1], why)

    def _on_control(self, control: msg.NodeControl) -> None:
        if control.target_node not in ("", self.name):
            return
        if control.command == msg.ControlCommand.CONTROL_CANCEL_TASK:
            with self._lock:
                self._finish(task_key(control.task_id), "cancelled")
            self.log.info("cancel %s/%d: %s", control.task_id.problem_id, control.task_id.iteration,
                          control.reason or "requested")

    def _on_task_status(self, status: msg.TaskStatus) -> None:
        if status.state in TERMINAL:
            why = "cancelled" if status.state == msg.TaskState.TASK_CANCELLED else status.state.name[5:].lower()
            with self._lock:
                self._finish(task_key(status.task_id), why)

    def _on_input(self, name: str, message: Any) -> None:
        task_id: msg.TaskId = message.task_id
        if not task_id.problem_id:
            self.log.warning("dropped a %s without a task id", type(message).__name__)
            return
        key = task_key(task_id)
        now = time.monotonic()
        replay: tuple[str, Any] | None = None
        with self._lock:
            if key in self._finished:
                self.log.info("dropped %s for %s/%d: task %s", name, key[0], key[1], self._finished[key])
                return
            for old in [k for k, p in self._pending.items() if now - p.created > self.pending_ttl_s]:
                self.log.warning("expired partial inputs of %s/%d after %.0f s", old[0], old[1],
                                 self.pending_ttl_s)
                del self._pending[old]
            pending = self._pending.get(key)
            if pending is None:
                while len(self._pending) >= self.max_pending:
                    old, _ = self._pending.popitem(last=False)
                    self.log.warning("dropped partial inputs of %s/%d: more than %d tasks held",
                                     old[0], old[1], self.max_pending)
                pending = self._pending[key] = _Pending(now)
            pending.inputs[name] = message
            if len(pending.inputs) < len(self.inputs):
                return
            ready = dict(pending.inputs)
            fire = self.fire_key(task_id, ready)
            for input_name, spec in self.inputs.items():
                if not spec.keep:
                    pending.inputs.pop(input_name, None)
            if not pending.inputs:
                del self._pending[key]
            if fire in self._processed:
                replay = self._processed[fire]
                self.log.info("repeated %s for %s/%d: %s", name, key[0], key[1],
                              "still in work" if replay is None else f"answering again ({replay[0]})")
            else:
                self._processed[fire] = None
                while len(self._processed) > self.remember_outputs:
                    self._processed.popitem(last=False)
                self._work.append((task_id, ready, fire))
                self._work_ready.notify()
        if replay is not None:
            kind, value = replay
            if kind == "output" and self._publisher is not None:
                self._publisher.publish(value)
            elif kind == "error":
                self.set_state(msg.NodeState.NODE_ERROR, task_id=task_id, message=value)

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                while not self._work and not self._stop.is_set():
                    self._work_ready.wait(timeout=0.5)
                if self._stop.is_set():
                    return
                task_id, ready, fire = self._work.pop(0)
            outcome = self._run(task_id, ready)
            with self._lock:
                if fire in self._processed:
                    self._processed[fire] = outcome

    def _run(self, task_id: msg.TaskId, ready: dict[str, Any]) -> tuple[str, Any] | None:
        """Process one task; returns what to answer a repeat of its inputs with."""
        ctx = TaskContext(self, task_id)
        label = f"{task_id.problem_id}/{task_id.iteration}"
        try:
            ctx.progress(0.0, "started")
            output = self.process(ctx, **ready)
            ctx.check_cancelled()
            if output is not None and self._publisher is not None:
                self._publisher.publish(output)
            self.set_state(msg.NodeState.NODE_IDLE, task_id=task_id, progress=100.0, message="done")
            self.log.info("task %s done", label)
            return ("output", output) if output is not None else None
        except TaskCancelled as e:
            self.log.info("%s", e)
            self.set_state(msg.NodeState.NODE_IDLE, task_id=task_id, message=f"stopped: {e}")
            return None
        except SustainMLError as e:
            self.log.warning("task %s rejected: %s", label, e)
            error = str(e)
        except Exception as e:  # noqa: BLE001 - any bug becomes an error status, the node serves on
            self.log.error("task %s failed:\n%s", label, traceback.format_exc())
            error = f"internal error in {self.name}: {type(e).__name__}: {e}"
        self.set_state(msg.NodeState.NODE_ERROR, task_id=task_id, message=error)
        return ("error", error)

    def shutdown(self) -> None:
        with self._lock:
            self._work_ready.notify_all()
        super().shutdown()


# -------------------------------------------------------------------- entry point
def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE")
        values[name] = value
    return values


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (also SUSTAINML_CONFIG)")
    parser.add_argument("--domain", type=int, help="DDS domain id (also SUSTAINML_DOMAIN_ID)")
    parser.add_argument("--dds-config", help="Cyclone DDS XML file (also SUSTAINML_DDS_CONFIG)")


def run_node(node_type: type[Node], argv: Sequence[str] | None = None) -> int:
    """Init, spin, shut down: the whole ``main`` of a node. SIGINT and SIGTERM stop it cleanly."""
    parser = argparse.ArgumentParser(prog=f"sustainml node {node_type.name}")
    add_runtime_arguments(parser)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="node parameter, overrides the config file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SUSTAINML_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    config = load_config(args.config, domain_id=args.domain, dds_config=args.dds_config)
    values = dict(config.node_params.get(node_type.name, {}))
    values.update(_parse_params(args.param))
    params = node_params(node_type.Params, values, node=node_type.name)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    # Before the node exists: a signal during start-up still ends in a clean shutdown.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node = node_type(config=config, params=params)
    while not stop.wait(0.2) and not node.stopping:
        pass
    node.shutdown()
    return 0
