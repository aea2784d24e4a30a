"""The orchestrator's task book: where each task stands, which node it waits on, what to do when a
node answers, fails, dies or comes back. Plain logic that returns the messages to publish, so it is
tested without DDS (the wiring is in ``node.py``).

A task goes encoder -> model provider -> hardware node(s) -> carbon tracker. The hardware stage fans
out: every live hardware node answers the candidates on its host in several messages (its estimates
at once, each measurement as it lands, its final figures last), and the carbon tracker answers each.
Once every host has given its first answer, the task publishes a ranked result (revision 1, state
RUNNING), and a new revision with each footprint that follows; the result is final (DONE) when every
host's last message is answered. A host that fails or vanishes is marked missing with the reason; the
task completes with the others, and fails only when no host is left. A host that has answered but
stops refining (silent for ``stage_timeout_s``, or past its measurement budget with a margin) is cut
short: its latest figures stand, and the task ends ``done`` with them.
"""

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sustainml import msg
from sustainml.exceptions import InvalidProblem
from sustainml.node import task_key
from sustainml.plausibility import footprint_problems, measurement_problems
from sustainml.report import describe_dominance

from . import ranking
from .ranking import ESTIMATED
from .stages import merge_forecast, merge_stage
from .store import TaskStore

ENCODER, PROVIDER, HARDWARE, CARBON = "task_encoder", "model_provider", "hw_constraints", "carbon_tracker"
STAGES = (ENCODER, PROVIDER, HARDWARE, CARBON)
#: Share of the overall progress at which each stage starts, for the progress display.
_STAGE_START = {ENCODER: 0.0, PROVIDER: 10.0, HARDWARE: 20.0, CARBON: 90.0}
_STAGE_SPAN = {ENCODER: 10.0, PROVIDER: 10.0, HARDWARE: 70.0, CARBON: 10.0}

# Per host, in the hardware stage: no final message yet; final message in, its footprint awaited;
# complete; given up on.
MEASURING, FOOTPRINT, DONE, MISSING = "measuring", "footprint", "done", "missing"
#: A host still refining this long past its measurement budget (× BUDGET_MARGIN) is cut short, Units: s.
BUDGET_SLACK_S = 10.0
BUDGET_MARGIN = 1.1


@dataclass
class Action:
    """A message the orchestrator must publish."""

    message: Any


@dataclass
class NodeInfo:
    name: str
    kind: str
    host: str
    pid: int
    started_unix_s: float
    alive: bool = True
    down_since: float = 0.0   # monotonic seconds, while not alive
    needs_resend: bool = False  # restarted or back: re-send pending inputs once it serves


@dataclass
class HostAnswer:
    """What one hardware node answered for a task so far: each job's latest figures."""

    latest: msg.HardwareMeasurement   # its last message (excluded, budget, plan note, spending)
    figures: dict[tuple[str, str], msg.JobMeasurement] = field(default_factory=dict)   # (model, device) -> latest
    final_sequence: int = -1          # of its plan_done message; -1 = not yet
    sequences: set[int] = field(default_factory=set)   # message_index of every message in so far

    def add(self, message: msg.HardwareMeasurement) -> None:
        self.sequences.add(int(message.message_index))
        if message.message_index >= self.latest.message_index or message.plan_done:
            self.latest = message
        for m in message.measurements:
            self.figures[(m.model, m.device)] = m
        if message.plan_done:
            self.final_sequence = int(message.message_index)
            kept = {(m.model, m.device) for m in message.measurements}
            self.figures = {k: v for k, v in self.figures.items() if k in kept}

    def message(self) -> msg.HardwareMeasurement:
        combined = copy.copy(self.latest)
        combined.measurements = list(self.figures.values())
        return combined


@dataclass
class HostFootprints:
    """The carbon tracker's answers for one host: each option's latest footprint."""

    host: str
    footprints: dict[tuple[str, str, str], msg.FootprintDetail] = field(default_factory=dict)
    sequences: set[int] = field(default_factory=set)
    measuring_co2_g: float = 0.0
    _last_sequence: int = -1

    def add(self, message: msg.CarbonFootprint, *, final: bool) -> None:
        if final:
            self.footprints = {}
        for f in message.footprints:
            self.footprints[(f.model, f.device, f.region)] = f
        self.sequences.add(int(message.message_index))
        if message.message_index >= self._last_sequence:
            self._last_sequence = int(message.message_index)
            self.measuring_co2_g = message.measuring_co2_g

    def message(self) -> msg.CarbonFootprint:
        return msg.CarbonFootprint(host=self.host, footprints=list(self.footprints.values()))


@dataclass
class Task:
    task_id: msg.TaskId
    problem: msg.UserInput
    submitted_unix_s: float
    stage: str = ENCODER
    deadline: float = 0.0
    encoded: msg.EncodedTask | None = None
    candidates: msg.ModelCandidates | None = None
    hosts: dict[str, str] = field(default_factory=dict)          # host -> MEASURING/FOOTPRINT/DONE/MISSING
    missing: dict[str, str] = field(default_factory=dict)        # host -> why
    cut_short: dict[str, str] = field(default_factory=dict)      # host -> why its refining was not awaited
    measurements: dict[str, "HostAnswer"] = field(default_factory=dict)   # host -> what it answered so far
    footprints: dict[str, "HostFootprints"] = field(default_factory=dict)
    # Footprints that came before the hardware message they answer (another writer, another path:
    # the carbon tracker can answer a measurement before the orchestrator has read it).
    early_footprints: list[msg.CarbonFootprint] = field(default_factory=list)
    host_deadline: dict[str, float] = field(default_factory=dict)   # monotonic s: its budget with a margin
    revision: int = 0                                            # of the last result published
    last_progress: dict[str, tuple[float, str]] = field(default_factory=dict)  # node -> (progress, message)
    submitter: str = ""          # the participant (GUID) that submitted it: it alone may cancel it
    refused_cancels: set[str] = field(default_factory=set)   # participants refused, logged once each
    stages: list[msg.StageRecord] = field(default_factory=list)           # tracked while it runs
    forecasts: list[msg.TrainingForecast] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.task_id.problem_id}/{self.task_id.iteration}"


class TaskBook:
    """Follows every unfinished task. Each ``on_*`` method returns the Actions to carry out."""

    def __init__(self, store: TaskStore, *, stage_timeout_s: float = 600.0,
                 node_down_grace_s: float = 60.0, log: logging.Logger | None = None) -> None:
        self.store = store
        self.stage_timeout_s = stage_timeout_s
        self.node_down_grace_s = node_down_grace_s
        self.log = log or logging.getLogger("sustainml.orchestrator")
        self.tasks: dict[tuple[str, int], Task] = {}
        self.nodes: dict[str, NodeInfo] = {}

    # ---------------------------------------------------------------- task lifecycle
    def submit(self, problem: msg.UserInput, submitter: str = "") -> tuple[msg.TaskId, list[Action]]:
        """Register a new task (or a new iteration of ``problem.task_id.problem_id``) and start it.
        ``submitter``: the requesting participant, who alone may cancel it. Raises InvalidProblem
        for an unknown problem id."""
        task_id = self.store.new_task(problem)
        problem.task_id = task_id
        actions = self._start(task_id, problem, time.time())
        self.tasks[task_key(task_id)].submitter = submitter
        return task_id, actions

    def resume(self, task_id: msg.TaskId, problem: msg.UserInput) -> list[Action]:
        """Restart an unfinished task after an orchestrator restart, from its first stage (the
        hardware node's cache makes re-measuring cheap)."""
        problem.task_id = task_id
        return self._start(task_id, problem, time.time())

    def _start(self, task_id: msg.TaskId, problem: msg.UserInput, submitted: float) -> list[Action]:
        task = Task(task_id=task_id, problem=problem, submitted_unix_s=submitted)
        self.tasks[task_key(task_id)] = task
        self.store.set_state(task_id, msg.TaskState.TASK_RUNNING, ENCODER)
        return [self._enter(task, ENCODER), Action(self._to_encode(task))]

    def _to_encode(self, task: Task) -> msg.UserInput:
        """The problem as the pipeline works on it: an iteration that changed only what needs no new
        measurement (usage, regions, limits) answers from the measurements already made."""
        previous = self._previous_problem(task.task_id)
        if previous is None or task.problem.reuse_only or not _same_measuring(previous, task.problem):
            return task.problem
        sent = copy.deepcopy(task.problem)
        sent.reuse_only = True
        return sent

    def _previous_problem(self, task_id: msg.TaskId) -> msg.UserInput | None:
        if task_id.iteration <= 1:
            return None
        try:
            return self.store.get_input(msg.TaskId(problem_id=task_id.problem_id, iteration=task_id.iteration - 1))
        except InvalidProblem:
            return None

    def _enter(self, task: Task, stage: str, message: str = "") -> Action:
        task.stage = stage
        task.deadline = time.monotonic() + self.stage_timeout_s
        self.store.set_state(task.task_id, msg.TaskState.TASK_RUNNING, stage)
        return self._status(task, _STAGE_START[stage], message or f"waiting for {stage}")

    def _status(self, task: Task, progress: float, message: str,
                state: msg.TaskState = msg.TaskState.TASK_RUNNING) -> Action:
        return Action(msg.TaskStatus(task_id=task.task_id, state=state, stage=task.stage,
                                     progress=progress, message=message, updated_unix_s=time.time()))

    # Outputs are recorded whatever stage the task is at, then the task advances as far as what it
    # holds allows: after a restart, or across topics, an output may arrive before the one it
    # follows (a hardware node finishing a measurement while the orchestrator still waits for the
    # re-sent encoder output, say), and dropping it would leave the task waiting for ever.
    def on_encoded(self, encoded: msg.EncodedTask) -> list[Action]:
        task = self.tasks.get(task_key(encoded.task_id))
        if task is None:
            return []
        task.encoded = task.encoded or encoded
        return self._advance(task)

    def on_candidates(self, candidates: msg.ModelCandidates) -> list[Action]:
        task = self.tasks.get(task_key(candidates.task_id))
        if task is None:
            return []
        task.candidates = task.candidates or candidates
        return self._advance(task)

    def on_measurement(self, measurement: msg.HardwareMeasurement, node: str = "") -> list[Action]:
        """``node``: the hardware node that sent it, named in a refusal."""
        task = self.tasks.get(task_key(measurement.task_id))
        if task is None or task.hosts.get(measurement.host) in (DONE, FOOTPRINT):
            return []
        problems = measurement_problems(measurement)
        if problems:
            return self._impossible(task, measurement.host, node or f"the node of host {measurement.host}",
                                    "measurement", problems)
        answer = task.measurements.get(measurement.host)
        if answer is not None and answer.final_sequence >= 0:
            return []   # the host's last message is in: anything after it is a repeat
        if answer is None:
            answer = task.measurements[measurement.host] = HostAnswer(latest=measurement)
            # The host's budget (with a margin) bounds how long its refining is awaited.
            task.host_deadline[measurement.host] = (
                time.monotonic() + measurement.budget_s * BUDGET_MARGIN + BUDGET_SLACK_S)
        answer.add(measurement)
        task.missing.pop(measurement.host, None)   # a late answer from a host given up on still counts
        task.deadline = time.monotonic() + self.stage_timeout_s   # it is working
        # Shared evidence: every figure measured (not the estimates), kept for every user of the
        # deployment with the task's type (the problem's hint when it overtook the encoder's output).
        measured = answer.message()
        measured.measurements = [m for m in measured.measurements if m.basis != ESTIMATED]
        if measured.measurements:
            task_type = task.encoded.task_type if task.encoded is not None else task.problem.task_type_hint
            self.store.add_measurements(measured, task_type=task_type)
        actions = self._advance(task)
        # The footprints of this message that overtook it count now.
        overtook = [f for f in task.early_footprints
                    if f.host == measurement.host and int(f.message_index) in answer.sequences]
        if overtook:
            task.early_footprints = [f for f in task.early_footprints if not any(f is o for o in overtook)]
            for footprint in overtook:
                actions += self.on_footprint(footprint)
        return actions

    def on_footprint(self, footprint: msg.CarbonFootprint, node: str = "") -> list[Action]:
        task = self.tasks.get(task_key(footprint.task_id))
        answer = task.measurements.get(footprint.host) if task is not None else None
        if task is None or task.hosts.get(footprint.host) == DONE:
            return []
        problems = footprint_problems(footprint)
        if problems:
            return self._impossible(task, footprint.host, node or "the carbon tracker", "footprint", problems)
        if answer is None or int(footprint.message_index) not in answer.sequences:
            # It answers a hardware message not read yet: kept until that message comes, which tells
            # whether it is the host's last (dropping it would leave the task waiting for ever).
            task.early_footprints.append(footprint)
            return []
        final = footprint.message_index == answer.final_sequence
        known = task.footprints.setdefault(footprint.host, HostFootprints(footprint.host))
        known.add(footprint, final=final)
        task.deadline = time.monotonic() + self.stage_timeout_s
        actions = self._advance(task)
        if task_key(task.task_id) in self.tasks and self._answered(task):
            actions += self._revision(task)
        return actions

    # A user's own pipeline, tracked with sustainml.tracking, reports its stages under a task id:
    # while the task runs they wait in the task; after, they are added to its stored result, which
    # is published again so front ends see them.
    def on_stage_record(self, record: msg.StageRecord) -> list[Action]:
        return self._attach(record.task_id, lambda stages, _forecasts: merge_stage(stages, record), "stage record")

    def on_forecast(self, forecast: msg.TrainingForecast) -> list[Action]:
        return self._attach(forecast.task_id, lambda _stages, forecasts: merge_forecast(forecasts, forecast),
                            "training forecast")

    def _attach(self, task_id: msg.TaskId,
                merge: Callable[[list[msg.StageRecord], list[msg.TrainingForecast]], None], what: str) -> list[Action]:
        task = self.tasks.get(task_key(task_id))
        if task is not None:
            merge(task.stages, task.forecasts)
            return []
        result = self.store.get_result(task_id) if task_id.problem_id else None
        if result is None:
            self.log.warning("%s for unknown task %s/%d dropped", what, task_id.problem_id, task_id.iteration)
            return []
        merge(result.stages, result.forecasts)
        result.stages_summary = describe_dominance(result.stages)
        self.store.save_result(result)
        return [Action(result)]

    def _advance(self, task: Task) -> list[Action]:
        actions: list[Action] = []
        if task.stage == ENCODER and task.encoded is not None:
            actions.append(self._enter(task, PROVIDER))
        if task.stage == PROVIDER and task.candidates is not None:
            hosts = {n.host for n in self.nodes.values() if n.kind == HARDWARE and n.alive}
            task.hosts = {h: MEASURING for h in sorted(hosts | set(task.measurements))}
            waiting = (f"estimating and measuring on {', '.join(task.hosts)}" if task.hosts
                       else "waiting for a hardware node to join")
            actions.append(self._enter(task, HARDWARE, waiting))
        if task.stage not in (HARDWARE, CARBON):
            return actions
        for host, measured in task.measurements.items():
            if measured.final_sequence >= 0 and task.hosts.get(host) in (None, MEASURING, MISSING):
                task.hosts[host] = FOOTPRINT
        for host, known in task.footprints.items():
            answer = task.measurements.get(host)
            if answer is not None and answer.final_sequence in known.sequences:
                task.hosts[host] = DONE
        return actions + self._maybe_finish(task)

    def _answered(self, task: Task) -> bool:
        """Whether every host still in the task has a ranked first answer (footprints of its estimates)."""
        waiting = [h for h, state in task.hosts.items() if state != MISSING]
        return bool(waiting) and all(h in task.footprints for h in waiting)

    def _maybe_finish(self, task: Task) -> list[Action]:
        states = set(task.hosts.values())
        if not task.hosts or MEASURING in states:
            return []
        if FOOTPRINT in states:
            return [self._enter(task, CARBON)] if task.stage == HARDWARE else []
        if not any(task.footprints.get(h) is not None for h, state in task.hosts.items() if state == DONE):
            reasons = "; ".join(f"{h}: {why}" for h, why in sorted(task.missing.items()))
            nodes = ", ".join(sorted(f"{HARDWARE}@{h}" for h in task.missing)) or HARDWARE
            return self._fail(task, f"no hardware node returned measurements ({reasons})", nodes)
        return self._finish(task)

    def _ranked(self, task: Task, state: msg.TaskState) -> msg.TaskResult:
        """The result as far as the hosts have answered: ranked options, explanation, and what producing
        them cost (measuring, calibrating)."""
        assert task.encoded is not None and task.candidates is not None
        hosts = sorted(h for h, st in task.hosts.items() if st != MISSING and h in task.footprints)
        measurements = [task.measurements[h].message() for h in hosts]
        footprints = [task.footprints[h].message() for h in hosts]
        assessed = ranking.assess(task.encoded, task.candidates, measurements, footprints)
        options = [a.option for a in assessed]
        unmeetable = ranking.unmeetable_constraints(assessed)
        explanation = ranking.explain(task.encoded, options)
        extra = [f"Results from {h} are missing: {why}." for h, why in sorted(task.missing.items())]
        extra += [f"Refining on {h} was cut short: {why}; its latest figures are used." for h, why in
                  sorted(task.cut_short.items())]
        extra += [f"Not measured on {m.host}: {why}." for m in measurements for why in m.excluded]
        extra += [f"Note: {w.rstrip('.')}." for w in task.encoded.warnings]
        extra += [f"Contradiction: {f.message}." for f in unmeetable]
        task.revision += 1
        result = self._result(task, state, explanation=" ".join([explanation, *extra]).strip(), options=options,
                              revision=task.revision)
        result.measuring_s = sum(m.measuring_s for m in measurements)
        result.measuring_energy_j = sum(m.measuring_energy_j for m in measurements)
        result.measuring_co2_g = sum(task.footprints[h].measuring_co2_g for h in hosts)
        result.measuring_note = "; ".join(m.plan_note or f"{m.host}: still measuring" for m in measurements)
        result.findings.extend(unmeetable)
        return result

    def _revision(self, task: Task) -> list[Action]:
        """Publish the result so far as a new revision; the task goes on."""
        result = self._ranked(task, msg.TaskState.TASK_RUNNING)
        measured = sum(1 for o in result.options if o.basis != ESTIMATED)
        self.store.save_result(result)
        message = (f"revision {result.revision}: {len(result.options)} options, {measured} from measurements; "
                   f"refining")
        return [Action(result), self._status(task, _STAGE_START[HARDWARE] + _STAGE_SPAN[HARDWARE] / 2, message)]

    def _finish(self, task: Task) -> list[Action]:
        return self._close(task, self._ranked(task, msg.TaskState.TASK_DONE), "done")

    @staticmethod
    def _result(task: Task, state: msg.TaskState, **fields: Any) -> msg.TaskResult:
        """The result of ``task`` with what the encoder and the provider said, as far as they got."""
        encoded, candidates = task.encoded, task.candidates
        if encoded is not None:
            fields.update(
                task_type=encoded.task_type, metric=encoded.metric, modality=encoded.modality,
                confidence=encoded.confidence, findings=list(encoded.findings), readings=list(encoded.readings),
                dataset_profile=encoded.dataset_profile)
        if candidates is not None:
            fields.update(candidates=list(candidates.candidates), excluded=list(candidates.excluded))
        if task.stages or task.forecasts:
            fields.update(stages=list(task.stages), stages_summary=describe_dominance(task.stages),
                          forecasts=list(task.forecasts))
        return msg.TaskResult(task_id=task.task_id, state=state, submitted_unix_s=task.submitted_unix_s,
                              finished_unix_s=time.time(), problem=copy.deepcopy(task.problem), **fields)

    def _fail(self, task: Task, error: str, node: str,
              state: msg.TaskState = msg.TaskState.TASK_FAILED) -> list[Action]:
        self.log.warning("task %s %s: %s (%s)", task.label, state.name[5:].lower(), error, node)
        if task.revision and task.stage in (HARDWARE, CARBON) and self._answered(task):
            # Ranked answers were published: the result keeps the last figures, said to be unrefined.
            result = self._ranked(task, state)
            result.error, result.failed_node = error, node
            result.explanation = (f"Refinement stopped ({error}): the figures are those measured and estimated "
                                  "until then. " + result.explanation)
        else:
            result = self._result(task, state, error=error, failed_node=node)
        return self._close(task, result, error)

    def _close(self, task: Task, result: msg.TaskResult, message: str) -> list[Action]:
        self.tasks.pop(task_key(task.task_id), None)
        self.store.save_result(result)
        return [Action(result), self._status(task, 100.0, message, result.state)]

    def _impossible(self, task: Task, host: str, node: str, what: str, problems: list[str]) -> list[Action]:
        """Refuse a message whose figures make no physical sense: nothing of it is used or stored, and
        the task goes on without that host (instead of waiting for a figure that will not come)."""
        why = f"{node} sent an impossible {what} ({'; '.join(problems[:3])}): refused"
        self.log.warning("task %s: %s", task.label, why)
        if host in task.hosts and task.hosts[host] != DONE:
            return self._host_missing(task, host, why)
        return []

    def cancel(self, task_id: msg.TaskId, reason: str, sender: str = "") -> list[Action]:
        """Cancel a task at the request of participant ``sender``: only its submitter may ("" = the
        bus cannot tell senders apart, see sustainml._dds_compat)."""
        task = self.tasks.get(task_key(task_id))
        if task is None:
            return []
        if sender and sender != task.submitter:
            if sender not in task.refused_cancels:   # once per task and participant: a flood stays quiet
                task.refused_cancels.add(sender)
                self.log.warning("refused to cancel task %s: asked by participant %s, not by the one that "
                                 "submitted it%s", task.label, sender,
                                 "" if task.submitter else " (not known since the orchestrator restarted)")
            return []
        return self._fail(task, f"cancelled: {reason or 'by the user'}", "", msg.TaskState.TASK_CANCELLED)

    # ---------------------------------------------------------------- node health
    def on_node_status(self, status: msg.NodeStatus, now: float) -> list[Action]:
        actions: list[Action] = []
        known = self.nodes.get(status.node)
        restarted = known is not None and (known.pid, known.started_unix_s) != (status.pid, status.started_unix_s)
        came_back = known is not None and not known.alive
        info = NodeInfo(status.node, status.kind or status.node, status.host, status.pid,
                        status.started_unix_s, needs_resend=known is not None and known.needs_resend)
        self.nodes[status.node] = info
        if restarted:
            self.log.warning("node %s restarted (pid %d)", status.node, status.pid)
        elif came_back:
            self.log.info("node %s is back", status.node)
        # A restarted node lost the inputs it held; one that was cut off may have missed some; one seen
        # for the first time may have started after this orchestrator resumed its stored tasks (the whole
        # pipeline restarted: the resumed inputs went out before it listened). Either way, re-send them
        # once it serves (repeats are dropped by the node).
        info.needs_resend = info.needs_resend or restarted or came_back or known is None
        if info.needs_resend and status.state in (msg.NodeState.NODE_IDLE, msg.NodeState.NODE_BUSY):
            info.needs_resend = False
            actions += self._resend(info)
        task = self.tasks.get(task_key(status.task_id)) if status.task_id.problem_id else None
        if task is None:
            return actions
        if status.state == msg.NodeState.NODE_ERROR:
            if info.kind in (HARDWARE, CARBON) and status.host in task.hosts:
                actions += self._host_missing(task, status.host, f"{status.node}: {status.message}")
            elif info.kind == task.stage:
                actions += self._fail(task, status.message, status.node)
        elif status.state == msg.NodeState.NODE_BUSY:
            # A node reporting new progress on the task is working on it, however long it takes:
            # its silence, not its slowness, is what the stage timeout is for.
            seen = (status.progress, status.message)
            if task.last_progress.get(status.node) != seen:
                task.last_progress[status.node] = seen
                task.deadline = time.monotonic() + self.stage_timeout_s
            if info.kind == task.stage or (info.kind == HARDWARE and task.stage == CARBON):
                overall = _STAGE_START[task.stage] + _STAGE_SPAN[task.stage] * status.progress / 100.0
                actions.append(self._status(task, overall, f"{status.node}: {status.message}"))
        return actions

    def on_node_gone(self, name: str, now: float) -> list[Action]:
        info = self.nodes.get(name)
        if info is None or not info.alive:
            return []
        info.alive, info.down_since = False, now
        self.log.warning("node %s is down (liveliness lost)", name)
        actions = []
        for task in list(self.tasks.values()):
            if self._waits_on(task, info):
                actions.append(self._status(task, _STAGE_START[task.stage],
                                            f"{name} is down; waiting up to {self.node_down_grace_s:g} s "
                                            "for it to come back"))
        return actions

    def on_tick(self, now: float) -> list[Action]:
        """Enforce stage timeouts and the grace period of nodes that went down."""
        actions: list[Action] = []
        for task in list(self.tasks.values()):
            if task.stage in (HARDWARE, CARBON):
                for host, state in list(task.hosts.items()):
                    node = self._node_on(host, HARDWARE if state == MEASURING else CARBON)
                    if state in (MEASURING, FOOTPRINT) and node is not None and not node.alive \
                            and now - node.down_since > self.node_down_grace_s:
                        actions += self._host_missing(
                            task, host, f"{node.name} went down during the task and did not come back "
                                        f"within {self.node_down_grace_s:g} s")
                if task.stage == HARDWARE and not task.hosts:
                    hosts = sorted({n.host for n in self.nodes.values() if n.kind == HARDWARE and n.alive})
                    if hosts:
                        task.hosts = {h: MEASURING for h in hosts}
                        actions += [Action(task.encoded), Action(task.candidates)]
            if task_key(task.task_id) not in self.tasks:
                continue
            if task.stage in (HARDWARE, CARBON):
                for host, state in list(task.hosts.items()):
                    past_budget = now > task.host_deadline.get(host, float("inf"))
                    if state in (MEASURING, FOOTPRINT) and host in task.footprints and (past_budget or now > task.deadline):
                        why = (f"still measuring {BUDGET_MARGIN:g} × its {task.measurements[host].latest.budget_s:g} s "
                               f"budget + {BUDGET_SLACK_S:g} s after its first answer" if past_budget
                               else f"no news from it for {self.stage_timeout_s:g} s")
                        actions += self._cut_short(task, host, why)
                if task_key(task.task_id) not in self.tasks:
                    continue
            if now > task.deadline:
                waiting = [f"{HARDWARE}@{h}" if task.stage == HARDWARE else f"{CARBON} (for {h})"
                           for h, s in task.hosts.items() if s in (MEASURING, FOOTPRINT)]
                if task.stage in (HARDWARE, CARBON) and task.footprints:
                    for host, state in list(task.hosts.items()):
                        if state in (MEASURING, FOOTPRINT):
                            actions += self._host_missing(task, host, f"no answer within {self.stage_timeout_s:g} s")
                else:
                    silent = ", ".join(waiting) or task.stage
                    actions += self._fail(task, f"{silent} gave no answer within {self.stage_timeout_s:g} s",
                                          silent)
            elif task.stage in (ENCODER, PROVIDER):
                node = self._node_of_kind(task.stage)
                if node is not None and not node.alive and now - node.down_since > self.node_down_grace_s:
                    actions += self._fail(task, f"{node.name} went down during the task and did not come "
                                                f"back within {self.node_down_grace_s:g} s", node.name)
        return actions

    def _cut_short(self, task: Task, host: str, why: str) -> list[Action]:
        """Stop waiting for ``host`` to refine: its latest answered figures stand."""
        self.log.warning("task %s: refining on %s cut short: %s", task.label, host, why)
        task.cut_short[host] = why
        task.hosts[host] = DONE
        return self._maybe_finish(task)

    def _host_missing(self, task: Task, host: str, why: str) -> list[Action]:
        task.hosts[host] = MISSING
        task.missing[host] = why
        task.measurements.pop(host, None)
        task.footprints.pop(host, None)
        return self._maybe_finish(task)

    def _node_on(self, host: str, kind: str) -> NodeInfo | None:
        on_host = [n for n in self.nodes.values() if n.kind == kind and n.host == host]
        if kind == CARBON and not on_host:
            on_host = [n for n in self.nodes.values() if n.kind == kind]
        return next((n for n in on_host if n.alive), on_host[0] if on_host else None)

    def _node_of_kind(self, kind: str) -> NodeInfo | None:
        of_kind = [n for n in self.nodes.values() if n.kind == kind]
        return next((n for n in of_kind if n.alive), of_kind[0] if of_kind else None)

    def _waits_on(self, task: Task, node: NodeInfo) -> bool:
        if node.kind == HARDWARE:
            return task.hosts.get(node.host) == MEASURING
        if node.kind == CARBON:
            return any(s == FOOTPRINT for s in task.hosts.values())
        return task.stage == node.kind

    def _resend(self, node: NodeInfo) -> list[Action]:
        """The inputs a restarted node lost, for every task that waits on it."""
        actions: list[Action] = []
        for task in self.tasks.values():
            if not self._waits_on(task, node):
                continue
            self.log.warning("re-sending the inputs of task %s to %s", task.label, node.name)
            if node.kind == ENCODER:
                actions.append(Action(self._to_encode(task)))
            elif node.kind == PROVIDER:
                actions.append(Action(task.encoded))
            elif node.kind == HARDWARE:
                actions += [Action(task.encoded), Action(task.candidates)]
            elif node.kind == CARBON:
                actions += [Action(task.encoded), Action(task.candidates)]
                actions += [Action(task.measurements[h].latest) for h, s in task.hosts.items()
                            if s == FOOTPRINT and task.measurements[h].latest.plan_done]
        return actions

    def live_nodes(self) -> list[NodeInfo]:
        return [n for n in self.nodes.values() if n.alive]


#: What an iteration may change and still be answered from the measurements already made: how the
#: model is used, where, and the limits it is held to. Anything else (the goal, the data, the models,
#: the hardware, the batch, the measurement budget) may need new measurements.
_NO_NEW_MEASURING = ("usage.requests_per_day", "usage.horizon_days", "train_region", "inference_region",
                     "alternative_regions", "allowed_regions", "intensity_overrides", "pue", "experiment_runs",
                     "constraints.quality_target", "constraints.max_latency_ms", "constraints.max_train_hours",
                     "constraints.max_train_co2_g")


def _same_measuring(before: msg.UserInput, after: msg.UserInput) -> bool:
    """Whether two problems ask for the same measurements: equal once what needs none is blanked."""
    def blanked(problem: msg.UserInput) -> msg.UserInput:
        copied = copy.deepcopy(problem)
        copied.task_id = msg.TaskId()
        for path in _NO_NEW_MEASURING:
            owner_name, _, name = path.rpartition(".")
            owner = getattr(copied, owner_name) if owner_name else copied
            setattr(owner, name, type(getattr(owner, name))())
        return copied
    return blanked(before) == blanked(after)
