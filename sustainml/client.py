"""The Python API for clients: submit a problem, follow it, get the ranked result.

    from sustainml import Client

    with Client() as client:
        task = client.submit("examples/tool_wear_tabular.yaml")   # a problem file of the project's examples/
        first = task.first_result(timeout_s=60)      # ranked at once, from estimates and stored measurements
        for result in task.revisions():              # refined as measurements land; the last one is final
            print(result.revision, result.state, sum(o.basis != "estimated" for o in result.options))
        result = task.result(timeout_s=600)
        for option in result.options:
            print(option.rank, option.model, option.device, option.total_co2_g)

A client is a DDS participant like the nodes (it joins the domain of ``SUSTAINML_DOMAIN_ID``), but
publishes no status: it is not a node.
"""

import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import msg, topics
from .bus import Gone, Participant, ServiceClient
from .config import RuntimeConfig, load_config
from .exceptions import InvalidProblem, RequestTimeout, TaskFailed
from .limits import check_message
from .node import TERMINAL, TaskKey, task_key
from .peers import ENCODER, HARDWARE, ORCHESTRATOR, PROVIDER, Peers
from .problem import load_problem, problem_from_dict
from .report import status_name
from .topics import RepT, ReqT

__all__ = ["Client", "TaskHandle"]


#: How long ``cancel`` waits for the nodes to be discovered before it sends (control is volatile).
CONTROL_MATCH_S = 3.0
#: Tasks whose latest result a client keeps: a long-lived client (the web UI) hears every task of the
#: deployment, so past this many the least recently updated one that nobody waits on is forgotten.
MAX_KEPT_RESULTS = 1000
#: The most results the orchestrator sends in one reply (ResultRequest.limit, idl/sustainml.idl).
MAX_RESULTS_PER_PAGE = 200


class _KeptResults:
    """The latest result of each task a client heard of, bounded by ``limit`` tasks: a new result
    forgets the least recently updated task that nobody waits on (``hold``), so a waiter never loses
    its task's result however many others arrive. Not thread-safe: the client holds its lock."""

    def __init__(self, limit: int = MAX_KEPT_RESULTS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 task, got {limit}")
        self.limit = limit
        self._results: OrderedDict[TaskKey, msg.TaskResult] = OrderedDict()
        self._held: Counter[TaskKey] = Counter()

    def __len__(self) -> int:
        return len(self._results)

    def get(self, key: TaskKey) -> msg.TaskResult | None:
        return self._results.get(key)

    def values(self) -> list[msg.TaskResult]:
        return list(self._results.values())

    def put(self, key: TaskKey, result: msg.TaskResult) -> None:
        self._results[key] = result
        self._results.move_to_end(key)
        if len(self._results) > self.limit:
            for old in [k for k in self._results if k not in self._held][: len(self._results) - self.limit]:
                del self._results[old]

    def hold(self, key: TaskKey) -> None:
        """Keep ``key``'s result until as many ``release`` calls: someone waits for it."""
        self._held[key] += 1

    def release(self, key: TaskKey) -> None:
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]


class TaskHandle:
    """A submitted task: wait for its result, follow its progress, cancel it."""

    def __init__(self, client: "Client", task_id: msg.TaskId) -> None:
        self.client = client
        self.task_id = task_id

    def result(self, timeout_s: float | None = 600.0, *, raise_on_failure: bool = True) -> msg.TaskResult:
        """The task's result. Raises TaskFailed when it failed or was cancelled (unless
        ``raise_on_failure`` is false), RequestTimeout when nothing came within ``timeout_s``."""
        result = self.client.wait_result(self.task_id, timeout_s)
        if raise_on_failure and result.state != msg.TaskState.TASK_DONE:
            where = f" (node {result.failed_node})" if result.failed_node else ""
            raise TaskFailed(f"task {status_name(result.state)}{where}: {result.error}", result)
        return result

    def first_result(self, timeout_s: float | None = 60.0, *, raise_on_failure: bool = True) -> msg.TaskResult:
        """The first ranked answer (revision 1: every option, from estimates and stored measurements), or
        the final result if the task ended first. Raises like ``result``."""
        for result in self.revisions(timeout_s):
            if raise_on_failure and result.state in TERMINAL and result.state != msg.TaskState.TASK_DONE:
                self.result(timeout_s=0, raise_on_failure=True)
            return result
        raise RequestTimeout(f"task {self.task_id.problem_id}/{self.task_id.iteration} gave no answer")

    def revisions(self, timeout_s: float | None = 600.0) -> Iterator[msg.TaskResult]:
        """Each revision of the task's result as it is published, ranked and complete each time: the
        first from estimates, each later one with more figures measured; the last one is final (state
        DONE, FAILED or CANCELLED). A revision published while the previous one was still being read
        may be skipped (the result topic keeps the latest); the final one never is."""
        yield from self.client.revisions(self.task_id, timeout_s)

    def progress(self, timeout_s: float | None = 600.0) -> Iterator[msg.TaskStatus]:
        """Each lifecycle update of the task until it ends (the last one is terminal)."""
        yield from self.client.statuses(self.task_id, timeout_s)

    def cancel(self, reason: str = "cancelled by the user") -> None:
        self.client.cancel(self.task_id, reason)


#: The kind of node that answers each service: replies from any other participant are dropped.
_SERVED_BY = {topics.SUBMIT.name: ORCHESTRATOR, topics.RESULTS.name: ORCHESTRATOR,
              topics.EVIDENCE.name: ORCHESTRATOR, topics.NOTE.name: ORCHESTRATOR,
              topics.ENCODE.name: ENCODER, topics.CATALOGUE.name: PROVIDER,
              topics.EXPORT_ONNX.name: PROVIDER, topics.INVENTORY.name: HARDWARE}


class Client:
    """A connection to the pipeline. Use as a context manager, or call ``close()``."""

    def __init__(self, config: RuntimeConfig | None = None, *, domain_id: int | None = None) -> None:
        self.bus = Participant(config or load_config(domain_id=domain_id))
        self._born = time.monotonic()
        self._lock = threading.Condition()
        self._results = _KeptResults()
        self._status_queues: dict[TaskKey, list[queue.Queue[msg.TaskStatus]]] = {}
        self._result_queues: dict[TaskKey, list[queue.Queue[msg.TaskResult]]] = {}
        self._nodes: dict[str, msg.NodeStatus] = {}
        self._result_callbacks: list[Callable[[msg.TaskResult], None]] = []
        self._status_callbacks: list[Callable[[msg.TaskStatus], None]] = []
        self._node_callbacks: list[Callable[[msg.NodeStatus | Gone], None]] = []
        self._services: dict[str, ServiceClient[Any, Any]] = {}
        self._services_lock = threading.Lock()   # two threads asking at once still make one client per service
        self._control = self.bus.publisher(topics.NODE_CONTROL)
        # Results, statuses and replies are believed only from the nodes that produce them: identity
        # from the bus (sustainml.peers), not from what a message says.
        self.peers = Peers(own=self.bus.guid)
        self._subs = [
            self.bus.subscribe(topics.TASK_RESULT, self._believed(topics.TASK_RESULT, self._on_result),
                               with_sender=True),
            self.bus.subscribe(topics.TASK_STATUS, self._believed(topics.TASK_STATUS, self._on_status),
                               with_sender=True),
            self.bus.subscribe(topics.NODE_STATUS, self._on_node_status, on_gone=self._on_node_gone,
                               with_sender=True),
        ]

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.bus.close()

    # ---------------------------------------------------------------- subscriptions
    def _believed(self, spec: topics.TopicSpec[Any], callback: Callable[[Any], None]) -> Callable[[Any, str], None]:
        def receive(message: Any, sender: str) -> None:
            self.peers.admit_message(spec.name, sender, lambda: callback(message))
        return receive

    def _on_node_status(self, status: msg.NodeStatus, sender: str) -> None:
        believed = self.peers.on_status(status, sender)
        # Held messages expire only here, just after statuses were read: a dispatcher busy with a
        # backlog of results must not refuse them for want of a status it has not read yet.
        self.peers.expire()
        if believed:
            self._on_node(status)

    def _on_result(self, result: msg.TaskResult) -> None:
        with self._lock:
            key = task_key(result.task_id)
            self._results.put(key, result)
            for q in self._result_queues.get(key, []):
                q.put(result)
            callbacks = list(self._result_callbacks)
            self._lock.notify_all()
        for callback in callbacks:
            callback(result)

    def _on_status(self, status: msg.TaskStatus) -> None:
        with self._lock:
            for q in self._status_queues.get(task_key(status.task_id), []):
                q.put(status)
            callbacks = list(self._status_callbacks)
        for callback in callbacks:
            callback(status)

    def _on_node(self, status: msg.NodeStatus) -> None:
        with self._lock:
            self._nodes[status.node] = status
            callbacks = list(self._node_callbacks)
        for callback in callbacks:
            callback(status)

    def _on_node_gone(self, gone: Gone) -> None:
        self.peers.forget(gone.key.node)
        with self._lock:
            self._nodes.pop(gone.key.node, None)
            callbacks = list(self._node_callbacks)
        for callback in callbacks:
            callback(gone)

    def _service(self, spec: topics.ServiceSpec[ReqT, RepT]) -> ServiceClient[ReqT, RepT]:
        with self._services_lock:
            if spec.name not in self._services:
                kind = _SERVED_BY.get(spec.name, "")
                self._services[spec.name] = ServiceClient(
                    self.bus, spec, accept=(lambda sender: self.peers.kind_of(sender) == kind) if kind else None)
            return self._services[spec.name]

    # ---------------------------------------------------------------- tasks
    def submit(self, problem: msg.UserInput | Mapping[str, Any] | str | Path, *,
               problem_id: str = "", timeout_s: float = 30.0) -> TaskHandle:
        """Start a task. ``problem`` is a UserInput, a mapping of problem-file keys, or the path of
        a YAML problem file. ``problem_id`` makes it a new iteration of an earlier problem.
        Raises InvalidProblem when the orchestrator refuses it, RequestTimeout when none answers."""
        if isinstance(problem, (str, Path)):
            problem = load_problem(problem)
        elif isinstance(problem, Mapping):
            problem = problem_from_dict(problem)
        if problem_id:
            problem.task_id = msg.TaskId(problem_id=problem_id)
        _check_sendable(problem)
        reply = self._service(topics.SUBMIT).call(msg.SubmitRequest(problem=problem), timeout_s=timeout_s)
        if not reply.accepted:
            raise InvalidProblem(reply.error)
        return TaskHandle(self, reply.task_id)

    def wait_result(self, task_id: msg.TaskId, timeout_s: float | None = 600.0) -> msg.TaskResult:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        key = task_key(task_id)
        with self._lock:
            self._results.hold(key)
            try:
                while True:
                    result = self._results.get(key)
                    if result is not None and result.state in TERMINAL:
                        return result
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise RequestTimeout(f"task {key[0]}/{key[1]} gave no result within {timeout_s:g} s")
                    self._lock.wait(timeout=0.5 if left is None else min(left, 0.5))
            finally:
                self._results.release(key)

    def revisions(self, task_id: msg.TaskId, timeout_s: float | None = 600.0) -> Iterator[msg.TaskResult]:
        """See ``TaskHandle.revisions``. Raises RequestTimeout when the task has not ended in ``timeout_s``."""
        key = task_key(task_id)
        q: queue.Queue[msg.TaskResult] = queue.Queue()
        with self._lock:
            self._result_queues.setdefault(key, []).append(q)
            known = self._results.get(key)
        if known is not None:
            q.put(known)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = -1
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise RequestTimeout(f"task {key[0]}/{key[1]} did not end within {timeout_s:g} s")
                try:
                    result = q.get(timeout=0.2 if left is None else min(left, 0.2))
                except queue.Empty:
                    continue
                final = result.state in TERMINAL
                if int(result.revision) > last or final:
                    last = int(result.revision)
                    yield result
                if final:
                    return
        finally:
            with self._lock:
                self._result_queues[key].remove(q)
                if not self._result_queues[key]:
                    del self._result_queues[key]

    def statuses(self, task_id: msg.TaskId, timeout_s: float | None = 600.0) -> Iterator[msg.TaskStatus]:
        key = task_key(task_id)
        q: queue.Queue[msg.TaskStatus] = queue.Queue()
        with self._lock:
            self._status_queues.setdefault(key, []).append(q)
            self._results.hold(key)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                with self._lock:
                    result = self._results.get(key)
                if result is not None and result.state in TERMINAL:
                    yield msg.TaskStatus(task_id=task_id, state=result.state, progress=100.0,
                                         message=result.error or status_name(result.state),
                                         updated_unix_s=result.finished_unix_s)
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise RequestTimeout(f"task {key[0]}/{key[1]} did not end within {timeout_s:g} s")
                try:
                    status = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if status.state not in TERMINAL:
                    yield status
        finally:
            with self._lock:
                self._status_queues[key].remove(q)
                if not self._status_queues[key]:
                    del self._status_queues[key]
                self._results.release(key)

    def on_result(self, callback: Callable[[msg.TaskResult], None]) -> None:
        """Call ``callback(result)`` for every result published from now on (and the recent ones
        the orchestrator still holds, delivered at subscription: the latest of up to
        ``MAX_KEPT_RESULTS`` tasks)."""
        with self._lock:
            self._result_callbacks.append(callback)
            known = self._results.values()
        for result in known:
            callback(result)

    def on_status(self, callback: Callable[[msg.TaskStatus], None]) -> None:
        """Call ``callback(status)`` for every task's lifecycle update from now on (a front end's live view)."""
        with self._lock:
            self._status_callbacks.append(callback)

    def on_node(self, callback: Callable[[msg.NodeStatus | Gone], None]) -> None:
        """Call ``callback`` with every node's status from now on, and with a ``Gone`` (``.key.node``) when
        a node's process dies or leaves; ``nodes()`` has the live ones at any time."""
        with self._lock:
            self._node_callbacks.append(callback)

    def cancel(self, task_id: msg.TaskId, reason: str = "cancelled by the user") -> None:
        """Ask the orchestrator to cancel the task: it does when this client submitted it (identity
        from the bus), reports it cancelled, and every node stops its work on it."""
        self._control.wait_matched(CONTROL_MATCH_S)   # a client just made has not found the nodes yet
        self._control.publish(msg.NodeControl(command=msg.ControlCommand.CONTROL_CANCEL_TASK,
                                              target_node=ORCHESTRATOR, task_id=task_id, reason=reason))

    def history(self, problem_id: str = "", iteration: int = 0, limit: int = 20, timeout_s: float = 10.0, *,
                before_unix_s: float = 0.0) -> list[msg.TaskResult]:
        """Past results from the orchestrator's store, newest first: at most ``limit`` (0 = 20; more than
        MAX_RESULTS_PER_PAGE are asked for page by page), of one problem and iteration or of all
        ("" and 0), submitted before ``before_unix_s`` (0 = the newest). ``timeout_s`` is per page.
        Raises InvalidProblem when the orchestrator refuses the request (an unknown problem id),
        RequestTimeout when none answers."""
        if limit < 0:
            raise InvalidProblem(f"limit must be 0 (= 20) or more, got {limit}")
        wanted = limit or 20
        results: list[msg.TaskResult] = []
        for page in self.history_pages(problem_id, iteration, page_size=min(wanted, MAX_RESULTS_PER_PAGE),
                                       before_unix_s=before_unix_s, timeout_s=timeout_s):
            results += page.results[: wanted - len(results)]
            if len(results) >= wanted:
                break
        return results

    def history_page(self, problem_id: str = "", iteration: int = 0, page_size: int = 20, *,
                     before_unix_s: float = 0.0, timeout_s: float = 10.0) -> msg.ResultReply:
        """One page of past results, newest first: ``results`` submitted before ``before_unix_s`` (0 = the
        newest), and ``next_before_unix_s``, the ``before_unix_s`` of the next (older) page, 0 when there
        is none. A page holds at most ``page_size`` results (0 = 20, at most MAX_RESULTS_PER_PAGE), fewer
        when they would pass about 1 MB (a result with its options is tens of KB; the orchestrator's
        store.MAX_PAGE_BYTES), more only when tasks submitted at one instant would be split. Raises like
        ``history``."""
        request = msg.ResultRequest(problem_id=problem_id, iteration=iteration, limit=page_size,
                                    before_unix_s=before_unix_s)
        reply = self._service(topics.RESULTS).call(request, timeout_s=timeout_s)
        if reply.error:
            raise InvalidProblem(reply.error)
        return reply

    def history_pages(self, problem_id: str = "", iteration: int = 0, page_size: int = 20, *,
                      before_unix_s: float = 0.0, timeout_s: float = 10.0) -> Iterator[msg.ResultReply]:
        """Every page of past results, newest first, from ``before_unix_s`` (0 = the newest) back to the
        first task: each asked for when the previous one has been used (see ``history_page``)."""
        while True:
            page = self.history_page(problem_id, iteration, page_size, before_unix_s=before_unix_s,
                                     timeout_s=timeout_s)
            yield page
            if not page.next_before_unix_s:
                return
            before_unix_s = page.next_before_unix_s

    # ---------------------------------------------------------------- shared evidence
    def evidence(self, task_type: str = "", device: str = "", model: str = "", host: str = "", limit: int = 0,
                 timeout_s: float = 10.0, *, problem_id: str = "", iteration: int = 0) -> msg.EvidenceReply:
        """Every measurement the orchestrator keeps, from all hosts and all users, newest first, that
        matches each filter given ("" and 0 = any; ``device`` "cuda" matches "cuda:0", "cuda:1", ...),
        at most ``limit`` (0 = 500, at most 5000); with the notes on the options they measured.
        Raises InvalidProblem for a limit out of range, RequestTimeout when no orchestrator answers."""
        request = msg.EvidenceRequest(task_type=task_type, device=device, model=model, host=host,
                                      problem_id=problem_id, iteration=iteration, limit=limit)
        reply = self._service(topics.EVIDENCE).call(request, timeout_s=timeout_s)
        if reply.error:
            raise InvalidProblem(reply.error)
        return reply

    def add_note(self, task_id: msg.TaskId, *, model: str, device: str, host: str, text: str, region: str = "",
                 author: str = "", timeout_s: float = 10.0) -> msg.OptionNote:
        """Attach ``text`` to the option (model, device, host; region "" = every region) of the task's
        result, for everyone to see in ``evidence()``; returns the note as stored, with its id and time.
        Raises InvalidProblem when the orchestrator refuses it (empty or over 2000 characters, author
        over 100, no such task or option: the message says which), RequestTimeout when none answers."""
        note = msg.OptionNote(task_id=task_id, model=model, device=device, host=host, region=region,
                              author=author, text=text)
        reply = self._service(topics.NOTE).call(msg.NoteRequest(note=note), timeout_s=timeout_s)
        if not reply.accepted:
            raise InvalidProblem(reply.error)
        return reply.note

    # ---------------------------------------------------------------- direct queries
    def nodes(self, wait_s: float = 1.5) -> list[msg.NodeStatus]:
        """The live nodes and their last status (waits ``wait_s`` for discovery on a fresh client)."""
        time.sleep(max(0.0, wait_s - self._age()))
        with self._lock:
            return sorted(self._nodes.values(), key=lambda s: s.node)

    def _age(self) -> float:
        return time.monotonic() - self._born

    def catalogue(self, task_type: str = "", timeout_s: float = 10.0) -> list[msg.ModelCandidate]:
        reply = self._service(topics.CATALOGUE).call(msg.CatalogueRequest(task_type=task_type),
                                                     timeout_s=timeout_s)
        if reply.error:
            raise InvalidProblem(reply.error)
        return list(reply.models)

    def inventory(self, timeout_s: float = 3.0) -> list[msg.HardwareInventory]:
        """Every hardware node's inventory (one per host that answers within ``timeout_s``)."""
        replies = self._service(topics.INVENTORY).gather(msg.InventoryRequest(), timeout_s=timeout_s)
        return [r.inventory for r in replies if not r.error]

    def export_onnx(self, model: str, *, input_shape: Sequence[int] = (), batch_size: int = 0,
                    timeout_s: float = 300.0) -> bytes:
        """The catalogue model ``model`` as a serialised ONNX graph (seeded, untrained weights), from the
        model provider; ``batch_size`` 0 = a dynamic batch dimension."""
        request = msg.OnnxRequest(model=model, input_shape=[int(d) for d in input_shape], batch_size=batch_size)
        reply = self._service(topics.EXPORT_ONNX).call(request, timeout_s=timeout_s)
        if reply.error:
            raise InvalidProblem(reply.error)
        return bytes(reply.onnx)

    def encode(self, problem: msg.UserInput | Mapping[str, Any], timeout_s: float = 10.0) -> msg.EncodedTask:
        """The task encoder's reading of a problem, without starting a task."""
        if isinstance(problem, Mapping):
            problem = problem_from_dict(problem)
        _check_sendable(problem)
        reply = self._service(topics.ENCODE).call(msg.EncodeRequest(problem=problem), timeout_s=timeout_s)
        if reply.error:
            raise InvalidProblem(reply.error)
        return reply.task


def _check_sendable(problem: msg.UserInput) -> None:
    """Refuse, in one line, a problem beyond ``sustainml.limits`` or one DDS cannot carry (a NaN, a
    lone surrogate), before it is sent: the nodes would refuse it anyway."""
    refusal = check_message(problem)
    if refusal:
        raise InvalidProblem(refusal)
