"""The orchestrator: accepts problems, follows each task through the nodes, and publishes the ranked
result. The task logic is in ``tasks.py``, ranking in ``ranking.py``, persistence in ``store.py``;
this file is the DDS wiring.

Every event (a message, a node's death, a timer tick, a submission) is handled by one thread, in
arrival order, so the task book needs no locks. DDS callbacks only enqueue: a callback that took a
lock and published could deadlock against the local delivery of its own message.
"""

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sustainml import msg, topics
from sustainml.exceptions import InvalidProblem
from sustainml.node import TERMINAL, Node, run_node, task_key
from sustainml.peers import ORCHESTRATOR, Peer

from .store import TaskStore
from .tasks import Action, TaskBook


@dataclass
class OrchestratorParams:
    store: str = ""                 # SQLite file; "" = STORE_DIR/orchestrator.sqlite3
    stage_timeout_s: float = 600.0  # the longest a task waits on one node
    node_down_grace_s: float = 60.0 # how long a task waits for a node that died to come back
    keep_published: int = 256       # results and statuses kept for late-joining subscribers


class Orchestrator(Node):
    name = "orchestrator"
    Params = OrchestratorParams

    def on_configure(self) -> None:
        path = self.params.store or str(Path(self.config.store_dir) / "orchestrator.sqlite3")
        self.store = TaskStore(path, holder=self.name)   # one orchestrator per store
        self.book = TaskBook(self.store, stage_timeout_s=self.params.stage_timeout_s,
                             node_down_grace_s=self.params.node_down_grace_s, log=self.log)
        # (handler, its arguments, the future of a _call): a posted handler returns its actions, a called
        # one (value, actions).
        self._events: queue.Queue[tuple[Callable[..., list[Action] | tuple[Any, list[Action]]], tuple[Any, ...],
                                        Future[Any] | None]] = queue.Queue()
        self._published: list[msg.TaskId] = []
        # What the orchestrator publishes: lifecycle and results, and the stage inputs it re-sends
        # to a node that restarted mid-task.
        self._publishers = {spec.type: self.create_publisher(spec) for spec in (
            topics.USER_INPUT, topics.ENCODED_TASK, topics.MODEL_CANDIDATES, topics.HARDWARE_MEASUREMENT,
            topics.TASK_STATUS, topics.TASK_RESULT)}
        self.pub_result = self._publishers[msg.TaskResult]
        self.pub_status = self._publishers[msg.TaskStatus]
        # Joined by shutdown before on_shutdown closes the store the event handlers write.
        self.create_thread(self._event_loop, name="orchestrator-events")
        # Each node's output is believed only from a node of the kind that produces it (sustainml.peers):
        # identity from the bus, not from a name in the message.
        self._believe(topics.ENCODED_TASK, lambda m, _node: self.book.on_encoded(m))
        self._believe(topics.MODEL_CANDIDATES, lambda m, _node: self.book.on_candidates(m))
        self._believe(topics.HARDWARE_MEASUREMENT, self._on_measurement)
        self._believe(topics.CARBON_FOOTPRINT, lambda m, node: self.book.on_footprint(m, node=node.name if node else ""))
        self.create_subscription(topics.STAGE_RECORD, lambda m: self._post(self.book.on_stage_record, m))
        self.create_subscription(topics.TRAINING_FORECAST, lambda m: self._post(self.book.on_forecast, m))
        self.create_subscription(topics.NODE_CONTROL, self._on_control, with_sender=True)
        self.create_service(topics.SUBMIT, self._submit, with_sender=True)
        # Replies kept for clients that re-send: a results page or an evidence reply is up to ~1 MB.
        self.create_service(topics.RESULTS, self._results, remember=32)
        self.create_service(topics.EVIDENCE, self._evidence, remember=32)
        self.create_service(topics.NOTE, self._note)
        self.create_timer(1.0, lambda: self._post(self.book.on_tick, time.monotonic()))

    def on_activate(self) -> None:
        for task_id, problem in self.store.unfinished():
            self.log.info("resuming task %s/%d after a restart", task_id.problem_id, task_id.iteration)
            self._post(self.book.resume, task_id, problem)

    # ---------------------------------------------------------------- the event thread
    def _post(self, handler: Callable[..., list[Action]], *args: Any) -> None:
        self._events.put((handler, args, None))

    def _call(self, handler: Callable[..., tuple[Any, list[Action]]], *args: Any) -> Any:
        """Run ``handler`` on the event thread and return what it returns (or raise what it raised)."""
        done: Future[Any] = Future()
        self._events.put((handler, args, done))
        return done.result(timeout=60)

    def _event_loop(self) -> None:
        while not self.stopping:
            try:
                handler, args, done = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                value = handler(*args)
                actions = value[1] if isinstance(value, tuple) else value
                self._apply(actions or [])
                if done is not None:
                    done.set_result(value)
            except Exception as e:  # noqa: BLE001 - one bad event must not stop the orchestrator
                if done is not None:
                    done.set_exception(e)
                else:
                    self.log.exception("handling %s failed", getattr(handler, "__name__", handler))

    def on_shutdown(self) -> None:
        self.store.close()

    # ---------------------------------------------------------------- inputs
    def _believe(self, spec: topics.TopicSpec[Any], handler: Callable[[Any, Peer | None], list[Action]]) -> None:
        """Subscribe to ``spec``; ``handler(message, node)`` runs on the event thread for the messages
        of nodes that may write it (``node``: which one; None for the orchestrator's own re-sends)."""
        def receive(message: Any, sender: str) -> None:
            self.peers.admit_message(spec.name, sender,
                                     lambda: self._post(handler, message, self.peers.node_of(sender)),
                                     message=message)
        self.create_subscription(spec, receive, with_sender=True)

    def _on_measurement(self, measurement: msg.HardwareMeasurement, node: Peer | None) -> list[Action]:
        """A hardware node speaks for its own host only (the orchestrator's re-sends excepted)."""
        if node is not None and node.kind != ORCHESTRATOR and node.host != measurement.host:
            self.log.warning("refused a hardware measurement for host %s from node %s, which runs on %s",
                             measurement.host, node.name, node.host)
            return []
        return self.book.on_measurement(measurement, node=node.name if node else "")

    def _submit(self, request: msg.SubmitRequest, sender: str) -> msg.SubmitReply:
        try:
            task_id, _ = self._call(self.book.submit, request.problem, sender)
        except InvalidProblem as e:
            self.metrics.input_rejected("invalid problem")
            return msg.SubmitReply(request_id=request.request_id, accepted=False, error=str(e))
        return msg.SubmitReply(request_id=request.request_id, accepted=True, task_id=task_id)

    def _results(self, request: msg.ResultRequest) -> msg.ResultReply:
        """One page of past results, read on the service's worker (the store is safe from any thread)."""
        page = self.store.result_page(request.problem_id, int(request.iteration), int(request.limit),
                                      float(request.before_unix_s))
        if request.problem_id and not page.results and not request.before_unix_s:
            raise InvalidProblem(f"no task with problem id {request.problem_id!r}")
        return msg.ResultReply(request_id=request.request_id, results=page.results,
                               next_before_unix_s=page.next_before_unix_s)

    # The store is safe from any thread; these read and write it on the service's workers.
    def _evidence(self, request: msg.EvidenceRequest) -> msg.EvidenceReply:
        found = self.store.evidence(request.task_type, request.device, request.model, request.host,
                                    problem_id=request.problem_id, iteration=int(request.iteration),
                                    limit=int(request.limit))
        return msg.EvidenceReply(request_id=request.request_id, records=found.records, notes=found.notes)

    def _note(self, request: msg.NoteRequest) -> msg.NoteReply:
        note = self.store.add_note(request.note)
        self.log.info("note %d on %s/%d %s on %s at %s", note.note_id, note.task_id.problem_id,
                      note.task_id.iteration, note.model, note.device, note.host)
        return msg.NoteReply(request_id=request.request_id, accepted=True, note=note)

    # Heartbeats of admitted nodes from the participants that hold their names (Node, sustainml.peers):
    # a node that is not admitted, or a second participant using a node's name, never reaches the book.
    def on_peer_status(self, status: msg.NodeStatus) -> None:
        self._post(self.book.on_node_status, status, time.monotonic())

    def on_peer_gone(self, name: str) -> None:
        self._post(self.book.on_node_gone, name, time.monotonic())

    def _on_control(self, control: msg.NodeControl, sender: str) -> None:
        if control.command == msg.ControlCommand.CONTROL_CANCEL_TASK and control.target_node in ("", self.name):
            self._post(self.book.cancel, control.task_id, control.reason, sender)

    # ---------------------------------------------------------------- outputs
    def _apply(self, actions: list[Action]) -> None:
        """Carry out what the task book decided: publish messages, lifecycle and results."""
        for action in actions:
            message = action.message
            self._publishers[type(message)].publish(message)
            if isinstance(message, msg.TaskResult):
                self._bound_history(message.task_id)
                if message.state in TERMINAL:
                    outcome = {msg.TaskState.TASK_DONE: "done", msg.TaskState.TASK_CANCELLED: "cancelled"}
                    self.metrics.task_finished(outcome.get(message.state, "error"),
                                               max(0.0, message.finished_unix_s - message.submitted_unix_s))

    def _bound_history(self, task_id: msg.TaskId) -> None:
        """Transient-local writers keep every instance; forget the oldest finished tasks. A task counts
        once however many revisions of its result were published."""
        self._published = [t for t in self._published if task_key(t) != task_key(task_id)]
        self._published.append(task_id)
        while len(self._published) > self.params.keep_published:
            old = self._published.pop(0)
            self.pub_result.unregister(msg.TaskResult(task_id=old))
            self.pub_status.unregister(msg.TaskStatus(task_id=old))


def main(argv: list[str] | None = None) -> int:
    return run_node(Orchestrator, argv)


if __name__ == "__main__":
    raise SystemExit(main())
