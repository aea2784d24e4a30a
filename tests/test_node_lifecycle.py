"""A node's lifecycle, as ROS 2's: configure to its end, then activate; no input is taken before;
shutdown stops the node's work before its resources close; a failed start leaves nothing on the bus.
Real nodes in this process over real DDS; the test plays the orchestrator with its own participant."""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sustainml import msg, topics
from sustainml.bus import Gone, Participant
from sustainml.exceptions import ConfigError, InvalidProblem
from sustainml.node import Input, TaskContext, TaskNode
from sustainml.peers import announce

TIMEOUT_S = 30.0


def next_matching(q: "queue.Queue[Any]", accept: Callable[[Any], bool], what: str,
                  timeout_s: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = q.get(timeout=left)
        except queue.Empty:
            break
        if accept(message):
            return message
    raise AssertionError(f"no {what} within {timeout_s:g} s")


class Bench:
    """The test's side of the bus: publishes encoded tasks, collects candidates and node statuses."""

    def __init__(self) -> None:
        self.bus = Participant()
        self.outputs: queue.Queue[msg.ModelCandidates] = queue.Queue()
        self.statuses: queue.Queue[msg.NodeStatus] = queue.Queue()
        self.seen: list[msg.NodeStatus] = []
        self.gone: queue.Queue[Gone] = queue.Queue()
        # The test stands in for the orchestrator: nodes believe stage inputs only from nodes that
        # produce them (sustainml.peers).
        self.announcement = announce(self.bus, "orchestrator", "orchestrator")
        self.tasks = self.bus.publisher(topics.ENCODED_TASK)
        self.bus.subscribe(topics.MODEL_CANDIDATES, self.outputs.put)
        self.bus.subscribe(topics.NODE_STATUS, self._on_status, on_gone=self.gone.put)

    def _on_status(self, status: msg.NodeStatus) -> None:
        self.seen.append(status)
        self.statuses.put(status)

    def status(self, node: str, state: msg.NodeState) -> msg.NodeStatus:
        return next_matching(self.statuses, lambda s: s.node == node and s.state == state,
                             f"{state.name} status from {node}")

    def output_for(self, problem_id: str) -> msg.ModelCandidates:
        return next_matching(self.outputs, lambda m: m.task_id.problem_id == problem_id,
                             f"candidates for {problem_id}")


@pytest.fixture
def bench(dds: dict[str, str]) -> Iterator[Bench]:
    bench = Bench()
    yield bench
    bench.bus.close()


class SlowToConfigure(TaskNode):
    """Like the real model provider: its catalogue takes a while to load, and process needs it."""

    name = "slow_provider"
    inputs = {"task": Input(topics.ENCODED_TASK)}
    output = topics.MODEL_CANDIDATES
    match_timeout_s = 0.0   # the bench's writer exists before the node; nothing to wait for
    configure_may_end = threading.Event()

    def on_configure(self) -> None:
        self.configure_may_end.wait(TIMEOUT_S)
        self.entries = ["resnet18"]

    def process(self, ctx: TaskContext, task: msg.EncodedTask) -> msg.ModelCandidates:
        if task.task_type == "nonsense":
            raise InvalidProblem("no model for task type 'nonsense'")
        return msg.ModelCandidates(task_id=task.task_id,
                                   candidates=[msg.ModelCandidate(name=n) for n in self.entries])


def start_in_background(make: Callable[[], TaskNode]) -> tuple[threading.Thread, list]:
    built: list = []
    thread = threading.Thread(target=lambda: built.append(make()), daemon=True)
    thread.start()
    return thread, built


def test_an_input_sent_while_the_node_configures_is_processed_once_configured(bench: Bench):
    SlowToConfigure.configure_may_end.clear()
    thread, built = start_in_background(SlowToConfigure)
    try:
        bench.status("slow_provider", msg.NodeState.NODE_STARTING)
        assert bench.tasks.wait_matched(TIMEOUT_S)        # its input reader exists already
        bench.tasks.publish(msg.EncodedTask(task_id=msg.TaskId("early", 1)))
        bench.tasks.publish(msg.EncodedTask(task_id=msg.TaskId("wrong", 1), task_type="nonsense"))
        SlowToConfigure.configure_may_end.set()
        thread.join(TIMEOUT_S)
        (node,) = built
        assert [c.name for c in bench.output_for("early").candidates] == ["resnet18"]
        error = bench.status("slow_provider", msg.NodeState.NODE_ERROR)
        assert error.task_id.problem_id == "wrong" and "no model for task type" in error.message
        # Only the input's own fault is an error: nothing failed for coming early.
        assert [s.task_id.problem_id for s in bench.seen if s.state == msg.NodeState.NODE_ERROR] == ["wrong"]
        # It announced "ready" only after configuring, and a re-sent input gets the same answer.
        states = [s.state for s in bench.seen if s.node == "slow_provider"]
        assert states.index(msg.NodeState.NODE_STARTING) < states.index(msg.NodeState.NODE_IDLE)
        bench.tasks.publish(msg.EncodedTask(task_id=msg.TaskId("early", 1)))
        assert [c.name for c in bench.output_for("early").candidates] == ["resnet18"]
    finally:
        SlowToConfigure.configure_may_end.set()
        thread.join(TIMEOUT_S)
        for node in built:
            node.shutdown()


class UsesItsStoreUntilStopped(TaskNode):
    """process() works with a resource until the task or the node stops; on_shutdown closes it."""

    name = "store_user"
    inputs = {"task": Input(topics.ENCODED_TASK)}
    output = topics.MODEL_CANDIDATES
    match_timeout_s = 0.0

    def on_configure(self) -> None:
        self.store_open = True
        self.working = threading.Event()
        self.events: list[str] = []

    def process(self, ctx: TaskContext, task: msg.EncodedTask) -> msg.ModelCandidates:
        self.working.set()
        while not ctx.cancelled:
            assert self.store_open, "the store was closed under process()"
            time.sleep(0.01)   # a measurement pass
        self.events.append("process returned")
        ctx.check_cancelled()
        return msg.ModelCandidates(task_id=task.task_id)

    def on_shutdown(self) -> None:
        self.events.append("on_shutdown")
        self.store_open = False


def test_shutdown_stops_and_joins_the_worker_before_on_shutdown(bench: Bench):
    node = UsesItsStoreUntilStopped()
    try:
        bench.status("store_user", msg.NodeState.NODE_IDLE)
        assert bench.tasks.wait_matched(TIMEOUT_S)
        bench.tasks.publish(msg.EncodedTask(task_id=msg.TaskId("long", 1)))
        assert node.working.wait(TIMEOUT_S), "process() never started"
    finally:
        node.shutdown()
    assert node.events == ["process returned", "on_shutdown"]
    assert not [t for t in threading.enumerate() if t.name == "store_user-worker"]
    bench.status("store_user", msg.NodeState.NODE_STOPPING)
    next_matching(bench.gone, lambda g: g.key.node == "store_user", "the node leaving the bus")


class FailsToConfigure(TaskNode):
    name = "broken_config"
    inputs = {"task": Input(topics.ENCODED_TASK)}

    def on_configure(self) -> None:
        self.create_timer(0.05, lambda: None)
        raise ConfigError("node broken_config: parameter catalogue: no such file 'nope.yaml'")

    def on_shutdown(self) -> None:
        raise AssertionError("on_shutdown runs only for a node that was configured")

    def process(self, ctx: TaskContext, task: msg.EncodedTask) -> None:
        return None


class FailsToActivate(TaskNode):
    name = "broken_activate"
    inputs = {"task": Input(topics.ENCODED_TASK)}
    released: list[str] = []

    def on_activate(self) -> None:
        raise ConfigError("node broken_activate: no device")

    def on_shutdown(self) -> None:
        self.released.append("on_shutdown")

    def process(self, ctx: TaskContext, task: msg.EncodedTask) -> None:
        return None


@pytest.mark.parametrize("node_type, words", [(FailsToConfigure, "no such file 'nope.yaml'"),
                                              (FailsToActivate, "no device")])
def test_a_node_that_fails_to_start_leaves_the_bus(bench: Bench, node_type: type[TaskNode], words: str):
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ConfigError, match=words):
        node_type()
    # Its participant was deleted: the status it announced lost its writer, and its input reader
    # no longer matches the bench's writer.
    next_matching(bench.gone, lambda g: g.key.node == node_type.name, f"{node_type.name} leaving the bus")
    deadline = time.monotonic() + TIMEOUT_S
    while bench.tasks.matched() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bench.tasks.matched() == 0
    # Its threads (the timer, the DDS dispatcher) ended; what it configured was released.
    assert not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()
                and (t.name.startswith(node_type.name) or t.name == "dds-dispatch")]
    if node_type is FailsToActivate:
        assert FailsToActivate.released == ["on_shutdown"]
