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
import inspect
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from . import msg, topics
from .bus import Gone, Participant, Publisher, ServiceServer, Subscription
from .config import RuntimeConfig, load_config, node_params
from .exceptions import ConfigError, SustainMLError, TaskCancelled
from .metrics import start_exporter
from .peers import Peers
from .task_inputs import Outcome, TaskInputs
from .topics import RepT, ReqT, ServiceSpec, TopicSpec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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
    declare publishers, subscriptions, services, timers and threads, and lifecycle hooks.

    Lifecycle, as a ROS 2 lifecycle node's: the constructor joins the bus and announces
    NODE_STARTING, runs ``on_configure`` (read parameters, load data, declare entities) to its end,
    then ``on_activate`` (start serving), then announces NODE_IDLE "ready" -- the launcher counts a
    node as up from that announcement. ``shutdown()`` (SIGINT, SIGTERM, SIGHUP in ``run_node``)
    announces NODE_STOPPING, stops and joins the node's timers and threads, then runs
    ``on_shutdown`` (release resources) and leaves the bus. A constructor that fails releases what
    it holds (the participant included) before the error propagates."""

    #: The node's name: a class default that an instance may override (``name=``, ``unique_per_host``).
    name: str = "node"
    #: What the node does; defaults to ``name``. Instances of one kind on several hosts need
    #: distinct names (NodeStatus is keyed by name): see ``unique_per_host``.
    kind: str = ""
    unique_per_host: ClassVar[bool] = False
    Params: ClassVar[type["DataclassInstance"]] = NoParams
    heartbeat_period_s: ClassVar[float] = 1.0
    #: How long shutdown waits for the node's threads (a task's work) to stop before it gives up on
    #: them (Units: s). Shorter than the launcher's grace period, so a clean exit still comes first.
    stop_timeout_s: ClassVar[float] = 5.0

    def __init__(self, *, config: RuntimeConfig | None = None, params: Any = None,
                 name: str | None = None) -> None:
        self.kind = self.kind or self.name
        name = name or os.environ.get("SUSTAINML_NODE_NAME") or None
        self.config = config or load_config()
        # An instance of the subclass's Params dataclass; Any, so that a node reads its own fields.
        self.params: Any = params if params is not None else node_params(
            self.Params, self.config.node_params.get(self.name, {}), node=self.name)
        self.log = logging.getLogger(f"sustainml.{self.name}")
        self._stop = threading.Event()
        self._configured = False
        self._threads: list[threading.Thread] = []
        self._services: list[ServiceServer[Any, Any]] = []
        self._subs: list[Subscription[Any]] = []
        self.bus = Participant(self.config, identity=name or self.name)
        try:
            self._start(name)
        except BaseException as e:
            self._release_after_failed_start(e)
            raise

    def _start(self, name: str | None) -> None:
        self.host = self.bus.host
        if name:
            self.name = name
        elif self.unique_per_host:
            self.name = f"{self.kind}@{self.host}"
        self._state = msg.NodeState.NODE_STARTING
        self._state_task = msg.TaskId()
        self._progress = 0.0
        self._message = ""
        self._status_lock = threading.Lock()
        self._started_unix_s = time.time()
        # Prometheus metrics, served when SUSTAINML_METRICS_PORT names a port (sustainml.metrics).
        self.metrics = start_exporter(self.name, self.kind)
        self._status = self.bus.publisher(topics.NODE_STATUS)
        # Who is who on the bus (sustainml.peers): the other nodes' heartbeats, bound to the
        # participants they come from; inputs are believed only from the nodes that produce them.
        self.peers = Peers(own=self.bus.guid, own_kind=self.kind, log=self.log)
        self._rivals: dict[str, msg.NodeStatus] = {}
        self.bus.subscribe(topics.NODE_STATUS, self._on_peer_status, on_gone=self._on_peer_gone,
                           with_sender=True)
        self.publish_status(msg.NodeState.NODE_STARTING, message="configuring")
        self._setup()
        self.on_configure()
        self._configured = True
        self._refuse_a_taken_name()
        self.on_activate()
        self._activate()
        self.create_timer(self.heartbeat_period_s, self._heartbeat)
        self.set_state(msg.NodeState.NODE_IDLE, message="ready")
        self.metrics.started()
        self.log.info("%s ready on %s (domain %d)", self.name, self.host, self.config.domain_id)

    def _release_after_failed_start(self, error: BaseException) -> None:
        """Leave the bus after a failed start: stop what was started, release what was configured."""
        self.log.debug("%s failed to start: %s", self.name, error)
        try:
            if hasattr(self, "_status"):
                self.publish_status(msg.NodeState.NODE_STOPPING, message=f"failed to start: {error}"[:500])
        except SustainMLError:
            pass
        self._stop.set()
        try:
            self._stop_threads()
            if self._configured:
                self.on_shutdown()
        except Exception:  # noqa: BLE001 - the start-up error is the one the caller must see
            self.log.exception("releasing %s after its failed start failed too", self.name)
        finally:
            for server in self._services:
                server.close()
            if hasattr(self, "metrics"):
                self.metrics.stopped()
            self.bus.close()

    def _setup(self) -> None:
        """Runtime wiring of subclasses of Node in this package, before the user's hooks."""

    # ---------------------------------------------------------------- the other nodes
    def _on_peer_status(self, status: msg.NodeStatus, sender: str) -> None:
        if status.node == self.name and sender and sender != self.bus.guid:
            # Another participant announces this node's name: one that was there first makes this
            # one refuse to start; once this one serves, it keeps serving and says so.
            first = status.node not in self._rivals
            self._rivals[status.node] = status
            if first and self._configured:
                self.log.error("another participant (%s) announces itself as node %s (pid %d on %s): "
                               "its messages are refused; stop it, or give one of them another name",
                               sender, status.node, status.pid, status.host)
        believed = self.peers.on_status(status, sender)
        # Held messages expire only here, just after a status was read (heartbeats come every second):
        # a dispatcher busy with a backlog must not refuse them for want of a status not read yet.
        self.peers.expire()
        # The hooks run once the node is configured (what they use exists then); heartbeats repeat.
        if believed and self._configured:
            self.on_peer_status(status)

    def _on_peer_gone(self, gone: Gone) -> None:
        self.peers.forget(gone.key.node)
        self._rivals.pop(gone.key.node, None)
        if self._configured:
            self.on_peer_gone(gone.key.node)

    def _refuse_a_taken_name(self) -> None:
        """Refuse to start when a live node of the same name was on the bus before this one (two
        launches of one pipeline, or a node started twice): it would double every task."""
        rival = self._rivals.get(self.name)
        if rival is not None and rival.started_unix_s <= self._started_unix_s:
            raise ConfigError(f"another node named {self.name!r} already serves on this bus (pid "
                              f"{rival.pid} on {rival.host}, started {time.ctime(rival.started_unix_s)}); "
                              "stop it first, or give this one another name (--name, or 'name' in the "
                              "launch file)")

    def on_peer_status(self, status: msg.NodeStatus) -> None:
        """A believed heartbeat of a node (this one included); see ``sustainml.peers``."""

    def on_peer_gone(self, name: str) -> None:
        """A node left the bus (its liveliness lapsed)."""

    def _activate(self) -> None:
        """Runtime activation of subclasses of Node in this package, after ``on_activate``."""

    def _deactivate(self) -> None:
        """Runtime deactivation of subclasses of Node in this package: take no more input."""

    # ---------------------------------------------------------------- lifecycle hooks
    def on_configure(self) -> None:
        """Load data, open stores, declare publishers and subscriptions."""

    def on_activate(self) -> None:
        """Start serving (publish transient state such as an inventory)."""

    def on_shutdown(self) -> None:
        """Release resources. Called once, from ``shutdown``, after the node's timers and threads
        (``create_timer``, ``create_thread``, a task node's worker) stopped."""

    # ---------------------------------------------------------------- ROS-style verbs
    def create_publisher(self, spec: TopicSpec[T]) -> Publisher[T]:
        return self.bus.publisher(spec)

    def create_subscription(self, spec: TopicSpec[T], callback: Callable[..., None], *,
                            on_gone: Callable[[Gone], None] | None = None,
                            with_sender: bool = False) -> Subscription[T]:
        """``with_sender``: ``callback(message, sender)``, the sender's participant GUID."""
        sub = self.bus.subscribe(spec, callback, on_gone=on_gone, with_sender=with_sender)
        self._subs.append(sub)
        return sub

    def create_service(self, spec: ServiceSpec[ReqT, RepT], handler: Callable[..., RepT],
                       **options: Any) -> ServiceServer[ReqT, RepT]:
        """Answer ``spec``'s requests with ``handler`` on worker threads; ``options`` go to ServiceServer
        (``workers``; ``remember``: how many replies are kept for clients that re-send;
        ``with_sender``: the handler also gets the requester's participant GUID)."""
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

        return self.create_thread(loop, name=f"{self.name}-timer")

    def create_thread(self, target: Callable[..., None], *args: Any, name: str = "") -> threading.Thread:
        """Start ``target(*args)`` on a thread the node owns: shutdown joins it before ``on_shutdown``
        releases what it may use. ``target`` must return soon after ``self.stopping`` turns true."""
        thread = threading.Thread(target=target, args=args, name=name or f"{self.name}-thread", daemon=True)
        thread.start()
        self._threads.append(thread)
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
        self.metrics.sync_refusals(self.peers.refused)
        with self._status_lock:
            state, task, progress, message = self._state, self._state_task, self._progress, self._message
        self.publish_status(state, task_id=task, progress=progress, message=message)

    # ---------------------------------------------------------------- running
    def spin(self) -> None:
        """Serve until ``shutdown()`` (SIGINT/SIGTERM/SIGHUP call it in ``run_node``)."""
        self._stop.wait()

    def shutdown(self) -> None:
        """Stop serving and release everything, in this order: announce NODE_STOPPING, take no more
        input, stop and join the node's threads, ``on_shutdown``, leave the bus. Idempotent."""
        if self._stop.is_set():
            return
        self.log.info("%s shutting down", self.name)
        try:
            self.publish_status(msg.NodeState.NODE_STOPPING, message="shutting down")
        except SustainMLError:
            pass
        self._stop.set()
        try:
            self._deactivate()
            for server in self._services:
                server.close()
            if self._stop_threads():
                self.on_shutdown()
            else:
                # Closing a store under a thread that still writes to it is worse than leaving it to
                # the process's exit (SQLite keeps what was committed either way).
                self.log.warning("%s: a thread was still working %g s after the stop; on_shutdown skipped "
                                 "so that nothing is closed under it", self.name, self.stop_timeout_s)
        finally:
            self.metrics.stopped()
            self.bus.close()

    def _stop_threads(self) -> bool:
        """Join the node's threads (``_stop`` is set); whether they all ended within ``stop_timeout_s``."""
        deadline = time.monotonic() + self.stop_timeout_s
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads if t is not current)

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


class TaskNode(Node, abc.ABC):
    """A node that turns the inputs of a task into one output message.

    ``process`` runs once the node holds every declared input for the same task id, in the node's
    own worker thread, one task at a time. An exception becomes an error status for that task id
    (state NODE_ERROR, with one readable line) and the node goes on serving. Inputs of cancelled or
    finished tasks are dropped with a log line; partial inputs expire after ``pending_ttl_s`` and
    at most ``max_pending`` tasks are held (the joining itself is ``sustainml.task_inputs``).

    The input subscriptions exist from before ``on_configure``, so that nothing a writer sends while
    the node configures is lost, but their messages are only held then: they are joined and processed
    once the node is active (after ``on_activate``), in the order they came."""

    inputs: ClassVar[dict[str, Input[Any]]] = {}
    output: ClassVar[TopicSpec[Any] | None] = None
    pending_ttl_s: ClassVar[float] = 900.0
    max_pending: ClassVar[int] = 512
    remember_finished: ClassVar[int] = 8192
    remember_outputs: ClassVar[int] = 1024
    #: Most input messages held while the node configures (the oldest are dropped beyond it).
    max_held_while_configuring: ClassVar[int] = 4096
    #: How long activation waits for the input subscriptions to meet a writer (Units: s).
    match_timeout_s: ClassVar[float] = 5.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_process_takes_inputs(cls)

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        self._work_ready = threading.Condition(self._lock)
        self._active = False
        self._held_while_configuring: list[tuple[str, Any]] = []
        self._book = TaskInputs({name: spec.keep for name, spec in self.inputs.items()},
                                fire_key=self.fire_key, ttl_s=self.pending_ttl_s, max_pending=self.max_pending,
                                remember_finished=self.remember_finished,
                                remember_outcomes=self.remember_outputs,
                                log=logging.getLogger(f"sustainml.{self.name}"))
        super().__init__(**kwargs)

    def _setup(self) -> None:
        self._publisher = self.create_publisher(self.output) if self.output else None
        believed_control = self._believed(topics.NODE_CONTROL, self._on_control)
        self.create_subscription(
            topics.NODE_CONTROL, lambda control, sender: believed_control(control, sender)
            if control.target_node in ("", self.name) else None, with_sender=True)
        self.create_subscription(topics.TASK_STATUS, self._believed(topics.TASK_STATUS, self._on_task_status),
                                 with_sender=True)
        self._subscribed_at = time.monotonic()
        self._input_subs = [self.create_subscription(
                                spec.topic, self._believed(spec.topic, partial(self._on_input, input_name)),
                                with_sender=True)
                            for input_name, spec in self.inputs.items()]

    def _believed(self, spec: TopicSpec[T], callback: Callable[[T], None]) -> Callable[[T, str], None]:
        """A subscription callback that passes on only messages from nodes that may write ``spec``."""
        def receive(message: T, sender: str) -> None:
            self.peers.admit_message(spec.name, sender, partial(callback, message), message=message)
        return receive

    def publish_output(self, message: Any) -> None:
        """Publish on the output topic before ``process`` returns (e.g. partial results of a long task)."""
        if self._publisher is None:
            raise TypeError(f"{type(self).__name__} declares no output topic to publish on")
        self._publisher.publish(message)
        self.metrics.output(message)

    def _activate(self) -> None:
        # Announce "ready" only once the inputs are connected (to the orchestrator's writers at
        # least), so that inputs the orchestrator re-sends to a restarted node are not lost.
        deadline = self._subscribed_at + self.match_timeout_s
        for sub in self._input_subs:
            sub.wait_matched(max(0.0, deadline - time.monotonic()))
        self.create_thread(self._work_loop, name=f"{self.name}-worker")
        with self._lock:
            self._active = True
            held, self._held_while_configuring = self._held_while_configuring, []
            if held:
                self.log.info("taking %d input message(s) that came while configuring", len(held))
            # Under the lock, so that they are joined before any message that comes after them.
            replays = [(message.task_id, self._offer(name, message)) for name, message in held]
        for task_id, replay in replays:
            self._answer_again(task_id, replay)

    def _deactivate(self) -> None:
        with self._lock:
            self._active = False
            self._work_ready.notify_all()

    def fire_key(self, task_id: msg.TaskId, inputs: dict[str, Any]) -> Any:
        """What identifies one firing, so that re-sent inputs are not processed twice. One per task;
        a node that fires once per message of an input (e.g. per host) returns a finer key. Called
        only once the node is configured."""
        return task_key(task_id)

    @abc.abstractmethod
    def process(self, ctx: TaskContext, *_: Any, **inputs: Any) -> Any:
        """Turn one task's inputs into the output message (or None to publish nothing). Every task
        node implements it; one that does not fails when it is constructed, before it joins the bus.

        The inputs come by name, one keyword argument per entry of ``inputs``; a subclass names them
        with their message types (``task: msg.EncodedTask``), which a type checker accepts as an
        override of this ``(ctx, *args: Any, **kwargs: Any)`` form. The names are checked against
        ``inputs`` when the class is defined."""

    # ---------------------------------------------------------------- bookkeeping
    def is_cancelled(self, task_id: msg.TaskId) -> bool:
        """Whether the task ended (cancelled, failed or done): a node's work for it is of no use any more."""
        return bool(self.task_ended(task_id))

    def task_ended(self, task_id: msg.TaskId) -> str:
        """How the task ended ("was cancelled", "failed", "is done"), or "" while it runs; "the node is
        shutting down" once it is."""
        with self._lock:
            why = self._book.ended(task_key(task_id))
        if not why and self.stopping:
            return "was interrupted: the node is shutting down"
        return {"cancelled": "was cancelled", "failed": "failed", "done": "is done"}.get(why, why)

    def _on_control(self, control: msg.NodeControl) -> None:
        if control.target_node not in ("", self.name):
            return
        if control.command == msg.ControlCommand.CONTROL_CANCEL_TASK:
            with self._lock:
                self._book.finish(task_key(control.task_id), "cancelled")
            self.log.info("cancel %s/%d: %s", control.task_id.problem_id, control.task_id.iteration,
                          control.reason or "requested")

    def _on_task_status(self, status: msg.TaskStatus) -> None:
        if status.state in TERMINAL:
            why = "cancelled" if status.state == msg.TaskState.TASK_CANCELLED else status.state.name[5:].lower()
            with self._lock:
                self._book.finish(task_key(status.task_id), why)

    def _on_input(self, name: str, message: Any) -> None:
        task_id: msg.TaskId = message.task_id
        if not task_id.problem_id:
            self.log.warning("dropped a %s without a task id", type(message).__name__)
            self.metrics.input_rejected("no task id")
            return
        with self._lock:
            if not self._active:
                if self.stopping:
                    return
                # Configuring: hold it (fire_key and process may need what on_configure sets up).
                held = self._held_while_configuring
                held.append((name, message))
                if len(held) > self.max_held_while_configuring:
                    held.pop(0)
                    self.log.warning("dropped an input that came while configuring: more than %d held",
                                     self.max_held_while_configuring)
                return
            replay = self._offer(name, message)
        self._answer_again(task_id, replay)

    def _offer(self, name: str, message: Any) -> Outcome | None:
        """Caller holds the lock."""
        replay = self._book.offer(name, task_key(message.task_id), message.task_id, message, time.monotonic())
        if self._book.queued:
            self._work_ready.notify()
        return replay

    def _answer_again(self, task_id: msg.TaskId, replay: Outcome | None) -> None:
        """Answer a repeated input with what its first processing gave."""
        if replay is None:
            return
        if replay.error:
            self.set_state(msg.NodeState.NODE_ERROR, task_id=task_id, message=replay.error)
        elif replay.output is not None and self._publisher is not None:
            self._publisher.publish(replay.output)

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                while not self.stopping and not self._book.queued:
                    self._work_ready.wait(timeout=0.5)
                if self.stopping:
                    return
                work = self._book.next_work()
            assert work is not None
            outcome = self._run(work.task_id, work.inputs)
            with self._lock:
                self._book.done(work, outcome)

    def _run(self, task_id: msg.TaskId, ready: dict[str, Any]) -> Outcome | None:
        """Process one task; returns what to answer a repeat of its inputs with (None: process a
        repeat again -- the work was stopped, or failed for a reason that is not the input's)."""
        ctx = TaskContext(self, task_id)
        label = f"{task_id.problem_id}/{task_id.iteration}"
        started = time.monotonic()
        try:
            ctx.progress(0.0, "started")
            output = self.process(ctx, **ready)
            ctx.check_cancelled()
            if output is not None and self._publisher is not None:
                self._publisher.publish(output)
                self.metrics.output(output)
            self.set_state(msg.NodeState.NODE_IDLE, task_id=task_id, progress=100.0, message="done")
            self.log.info("task %s done", label)
            self.metrics.task_finished("done", time.monotonic() - started)
            return Outcome(output=output)
        except TaskCancelled as e:
            self.log.info("%s", e)
            self.metrics.task_finished("cancelled", time.monotonic() - started)
            if not self.stopping:
                self.set_state(msg.NodeState.NODE_IDLE, task_id=task_id, message=f"stopped: {e}")
            return None
        except SustainMLError as e:   # the input's fault: the same input gets the same answer
            self.log.warning("task %s rejected: %s", label, e)
            self.metrics.task_finished("rejected", time.monotonic() - started)
            self.set_state(msg.NodeState.NODE_ERROR, task_id=task_id, message=str(e))
            return Outcome(error=str(e))
        except Exception as e:  # noqa: BLE001 - any bug becomes an error status, the node serves on
            self.metrics.task_finished("error", time.monotonic() - started)
            self.log.error("task %s failed:\n%s", label, traceback.format_exc())
            self.set_state(msg.NodeState.NODE_ERROR, task_id=task_id,
                           message=f"internal error in {self.name}: {type(e).__name__}: {e}")
            return None


# -------------------------------------------------------------------- entry point
def _check_process_takes_inputs(cls: type[TaskNode]) -> None:
    """Raise TypeError when the class is defined if its ``process`` cannot take its ``inputs`` by name,
    which would otherwise fail each task at run time, from the first message on."""
    if getattr(cls.process, "__isabstractmethod__", False):
        return  # said when the class is constructed
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(cls.process).parameters.values())[2:]  # after self, ctx
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return  # takes any name
    takes = [p.name for p in params if p.kind in kinds]
    needs = {p.name for p in params if p.default is inspect.Parameter.empty
             and p.kind is not inspect.Parameter.VAR_POSITIONAL}
    unknown = sorted(set(cls.inputs) - set(takes))
    unfed = sorted(needs - set(cls.inputs))
    if unknown or unfed:
        problems = ([f"it takes no parameter for the input(s) {unknown}"] if unknown else []) + \
                   ([f"it needs {unfed}, which no input declares"] if unfed else [])
        raise TypeError(f"{cls.__qualname__}.process(ctx, {', '.join(takes)}) does not match "
                        f"inputs = {sorted(cls.inputs)}: {'; '.join(problems)}. Name one keyword "
                        "parameter of process after each key of inputs.")


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
    """Init, spin, shut down: the whole ``main`` of a node. SIGINT, SIGTERM and SIGHUP stop it cleanly."""
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

    # Before the node exists: a signal during start-up still ends in a clean shutdown (once the
    # node is configured). SIGHUP too: a closed terminal or a launcher's stop must not leave it running.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    node = node_type(config=config, params=params)
    while not stop.wait(0.2) and not node.stopping:
        pass
    node.shutdown()
    return 0
