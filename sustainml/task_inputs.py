"""The input-joining logic of a task node, as a plain class that knows nothing of DDS.

A task node consumes several inputs per task (e.g. the encoded task and the model candidates) that
arrive one by one, in any order, possibly repeated (the orchestrator re-sends them to a node that
restarted). ``TaskInputs`` holds the partial inputs of each task id until every one is there, queues
the complete set as one piece of work, remembers which tasks ended (cancelled, failed, done) so that
their late inputs are dropped, and remembers each firing's outcome so that a repeated input is answered
again instead of being processed twice. ``sustainml.node.TaskNode`` wires it to the bus and holds the
lock; this class is not thread-safe by itself.
"""

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TaskKey", "Work", "Outcome", "TaskInputs"]

TaskKey = tuple[str, int]
"""A task's identity: (problem id, iteration)."""


@dataclass(frozen=True)
class Outcome:
    """What a firing produced: the output message (None: nothing to publish), or an error line."""

    output: Any = None
    error: str = ""


@dataclass
class Work:
    """One complete set of inputs, ready for ``process``. ``fire`` identifies the firing."""

    key: TaskKey
    task_id: Any
    inputs: dict[str, Any]
    fire: Hashable


@dataclass
class _Held:
    created_s: float
    inputs: dict[str, Any] = field(default_factory=dict)


_IN_WORK = object()   # the outcome slot of a firing whose work is queued or running


class TaskInputs:
    """Joins the inputs of each task by task id.

    ``inputs`` maps each input's name to whether it is kept for the task's lifetime (``keep``: several
    messages of the other inputs, e.g. one measurement per host, each fire with it). ``fire_key(task_id,
    inputs)`` says what identifies one firing (default: the task). Partial inputs expire after
    ``ttl_s`` (Units: s, on the caller's monotonic clock); at most ``max_pending`` tasks are held, and
    ``remember_finished`` ended tasks and ``remember_outcomes`` outcomes are kept (oldest forgotten)."""

    def __init__(self, inputs: Mapping[str, bool], *,
                 fire_key: Callable[[Any, dict[str, Any]], Hashable] | None = None,
                 ttl_s: float = 900.0, max_pending: int = 512, remember_finished: int = 8192,
                 remember_outcomes: int = 1024, log: logging.Logger | None = None) -> None:
        self.keep = dict(inputs)
        self.fire_key = fire_key or (lambda task_id, _inputs: task_id)
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self.remember_finished = remember_finished
        self.remember_outcomes = remember_outcomes
        self.log = log or logging.getLogger("sustainml.task_inputs")
        self._held: OrderedDict[TaskKey, _Held] = OrderedDict()
        self._finished: OrderedDict[TaskKey, str] = OrderedDict()   # key -> why (cancelled, done, failed)
        self._outcomes: OrderedDict[Hashable, Any] = OrderedDict()  # fire -> _IN_WORK or Outcome
        self._fires: dict[TaskKey, list[Hashable]] = {}   # the firings of each task with an outcome slot
        self._queue: list[Work] = []

    # ---------------------------------------------------------------- what arrives
    def offer(self, name: str, key: TaskKey, task_id: Any, message: Any, now_s: float) -> Outcome | None:
        """Take one input message of task ``key``. Returns the remembered outcome to answer again when
        it completes a firing already done; None otherwise (held, queued, still in work or dropped)."""
        if name not in self.keep:
            raise ValueError(f"unknown input {name!r}; this node's inputs: {', '.join(self.keep)}")
        label = f"{key[0]}/{key[1]}"
        if key in self._finished:
            self.log.info("dropped %s for %s: task %s", name, label, self._finished[key])
            return None
        self._expire(now_s)
        held = self._held.get(key)
        if held is None:
            while len(self._held) >= self.max_pending:
                old, _ = self._held.popitem(last=False)
                self.log.warning("dropped partial inputs of %s/%d: more than %d tasks held",
                                 old[0], old[1], self.max_pending)
            held = self._held[key] = _Held(now_s)
        held.inputs[name] = message
        if len(held.inputs) < len(self.keep):
            return None
        ready = dict(held.inputs)
        fire = self.fire_key(task_id, ready)
        for input_name, keep in self.keep.items():
            if not keep:
                held.inputs.pop(input_name, None)
        if not held.inputs:
            del self._held[key]
        if fire in self._outcomes:
            outcome = self._outcomes[fire]
            if outcome is _IN_WORK:
                self.log.info("repeated %s for %s: still in work", name, label)
                return None
            self.log.info("repeated %s for %s: answering again (%s)", name, label,
                          "error" if outcome.error else "output")
            return outcome
        self._outcomes[fire] = _IN_WORK
        self._fires.setdefault(key, []).append(fire)
        while len(self._outcomes) > self.remember_outcomes:
            self._outcomes.popitem(last=False)
        if len(self._fires) > self.remember_outcomes:   # tasks that never ended: forget the oldest
            for old in list(self._fires)[: len(self._fires) - self.remember_outcomes]:
                del self._fires[old]
        self._queue.append(Work(key, task_id, ready, fire))
        return None

    def _expire(self, now_s: float) -> None:
        for old in [k for k, held in self._held.items() if now_s - held.created_s > self.ttl_s]:
            self.log.warning("expired partial inputs of %s/%d after %.0f s", old[0], old[1], self.ttl_s)
            del self._held[old]

    # ---------------------------------------------------------------- tasks that end
    def finish(self, key: TaskKey, why: str) -> None:
        """The task ended (``why``: cancelled, failed, done): drop what is held or queued for it."""
        self._finished[key] = why
        self._finished.move_to_end(key)
        while len(self._finished) > self.remember_finished:
            self._finished.popitem(last=False)
        if self._held.pop(key, None) is not None:
            self.log.info("dropped held inputs of %s/%d: task %s", key[0], key[1], why)
        # An ended task's inputs are dropped from now on (``offer``), so its outcomes would never be
        # answered again: keeping them (an output each, 50-80 KB for a carbon footprint) only grew memory.
        for fire in self._fires.pop(key, []):
            self._outcomes.pop(fire, None)
        dropped = [work for work in self._queue if work.key == key]
        if dropped:
            self._queue = [work for work in self._queue if work.key != key]
            for work in dropped:
                self._outcomes.pop(work.fire, None)
            self.log.info("dropped queued work of %s/%d: task %s", key[0], key[1], why)

    def ended(self, key: TaskKey) -> str:
        """How the task ended ("cancelled", "failed", "done"), or "" while it runs."""
        return self._finished.get(key, "")

    # ---------------------------------------------------------------- the work
    def next_work(self) -> Work | None:
        """The oldest complete set of inputs, taken off the queue; None when there is none."""
        return self._queue.pop(0) if self._queue else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def held_tasks(self) -> list[TaskKey]:
        """The tasks with partial inputs held, oldest first."""
        return list(self._held)

    def done(self, work: Work, outcome: Outcome | None) -> None:
        """Record how ``work`` went. ``outcome`` None forgets the firing, so that a re-sent input is
        processed again (for failures that are not the input's fault, and work that was stopped)."""
        if work.fire not in self._outcomes:
            return
        if outcome is None:
            del self._outcomes[work.fire]
        else:
            self._outcomes[work.fire] = outcome
