"""Operations: a node serves Prometheus metrics on the port SUSTAINML_METRICS_PORT names, and they move
with what the node does: a real node on this test's domain, a real task through it, the endpoint
read over HTTP as Prometheus would."""

import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sustainml import msg, qos
from sustainml.bus import Participant
from sustainml.config import load_config
from sustainml.exceptions import ConfigError, InvalidProblem
from sustainml.metrics import MAX_REASONS, METRICS_PORT_ENV, NodeMetrics, start_exporter
from sustainml.node import Input, TaskContext, TaskNode
from sustainml.topics import TopicSpec

# Test-only topics (no node kind is their producer, so any participant may write them).
ASK = TopicSpec("sustainml/test/metrics/ask", msg.ModelCandidates, qos.EVENT, "test: to the node")
ANSWER = TopicSpec("sustainml/test/metrics/answer", msg.ModelCandidates, qos.EVENT, "test: from the node")


class Doubler(TaskNode):
    """Answers each task with its candidates twice over; refuses a task without candidates."""

    name = "doubler"
    inputs = {"ask": Input(ASK)}
    output = ANSWER

    def process(self, ctx: TaskContext, ask: msg.ModelCandidates) -> msg.ModelCandidates:
        if not ask.candidates:
            raise InvalidProblem("no candidates to double")
        return msg.ModelCandidates(task_id=ask.task_id, candidates=ask.candidates * 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, by (name, sorted labels other than node and kind)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("node", "kind")))
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Asker:
    """Writes tasks to the node and waits for its answers."""

    def __init__(self) -> None:
        self.bus = Participant(load_config(), identity="metrics-test")
        self.ask = self.bus.publisher(ASK)
        self.answers: list[msg.ModelCandidates] = []
        self.came = threading.Condition()
        self.bus.subscribe(ANSWER, self._on_answer)

    def _on_answer(self, answer: msg.ModelCandidates) -> None:
        with self.came:
            self.answers.append(answer)
            self.came.notify_all()

    def wait_answers(self, n: int, timeout_s: float = 30.0) -> None:
        with self.came:
            assert self.came.wait_for(lambda: len(self.answers) >= n, timeout=timeout_s), self.answers


@pytest.fixture
def doubler(dds, monkeypatch):
    port = free_port()
    monkeypatch.setenv(METRICS_PORT_ENV, str(port))
    node = Doubler(config=load_config())
    asker = Asker()
    asker.ask.wait_matched(10.0)
    try:
        yield node, asker, port
    finally:
        asker.bus.close()
        node.shutdown()


def test_the_counters_move_with_real_tasks(doubler):
    node, asker, port = doubler
    before = scrape(port)
    assert value(before, "sustainml_node_up") == 1
    assert value(before, "sustainml_tasks_processed_total") == 0
    assert value(before, "process_resident_memory_bytes") > 0

    candidates = [msg.ModelCandidate(name="resnet18")]
    for i in (1, 2):
        asker.ask.publish(msg.ModelCandidates(task_id=msg.TaskId(problem_id="metrics", iteration=i),
                                              candidates=candidates))
    asker.wait_answers(2)
    asker.ask.publish(msg.ModelCandidates(task_id=msg.TaskId(problem_id="metrics", iteration=3)))   # refused
    asker.ask.publish(msg.ModelCandidates())   # no task id: dropped before any work
    after = {}
    for _ in range(100):   # the refusals land after the answers; wait for them, not for a time
        after = scrape(port)
        if value(after, "sustainml_rejected_inputs_total", reason="no task id") and \
                value(after, "sustainml_tasks_failed_total", reason="rejected"):
            break
        threading.Event().wait(0.1)

    assert value(after, "sustainml_tasks_processed_total") == 2
    assert value(after, "sustainml_tasks_failed_total", reason="rejected") == 1
    assert value(after, "sustainml_rejected_inputs_total", reason="no task id") == 1
    assert value(after, "sustainml_stage_latency_seconds_count") == 3
    assert value(after, "sustainml_stage_latency_seconds_bucket", le="+Inf") == 3


def test_the_endpoint_speaks_openmetrics_and_closes_with_the_node(dds, monkeypatch):
    port = free_port()
    monkeypatch.setenv(METRICS_PORT_ENV, str(port))
    node = Doubler(config=load_config())
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
        assert reply.read().decode().rstrip().endswith("# EOF")
    node.shutdown()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_no_port_no_endpoint_but_the_figures_are_kept(monkeypatch):
    monkeypatch.delenv(METRICS_PORT_ENV, raising=False)
    metrics = start_exporter("encoder", "task_encoder")
    metrics.task_finished("done", 0.5)
    assert metrics.port == 0
    assert metrics.registry.get_sample_value("sustainml_tasks_processed_total",
                                             {"node": "encoder", "kind": "task_encoder"}) == 1


@pytest.mark.parametrize("text", ["http", "-1", "70000", "9400.5"])
def test_a_port_that_is_no_port_is_refused_in_one_line(monkeypatch, text):
    monkeypatch.setenv(METRICS_PORT_ENV, text)
    with pytest.raises(ConfigError, match=f"{METRICS_PORT_ENV}=.*a port number"):
        start_exporter("x")


def test_a_taken_port_leaves_the_node_serving_without_metrics(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics = NodeMetrics("x")
        assert not metrics.serve(taken.getsockname()[1])
    assert metrics.port == 0 and "metrics not served" in caplog.text


def test_hostile_reasons_cannot_grow_the_series_without_bound():
    metrics = NodeMetrics("x")
    for i in range(MAX_REASONS * 3):
        metrics.input_rejected(f"reason {i}")
    reasons = {s.labels["reason"] for f in metrics.registry.collect() if f.name == "sustainml_rejected_inputs"
               for s in f.samples if s.name.endswith("_total")}
    assert len(reasons) == MAX_REASONS + 1 and "other" in reasons
    assert metrics.registry.get_sample_value("sustainml_rejected_inputs_total",
                                             {"node": "x", "kind": "x", "reason": "other"}) == MAX_REASONS * 2


def test_refusals_of_untrusted_senders_are_counted_once_each():
    metrics = NodeMetrics("x")
    metrics.sync_refusals({"name taken": 2})
    metrics.sync_refusals({"name taken": 5, "sustainml/v3/carbon_footprint": 1})
    get = metrics.registry.get_sample_value
    assert get("sustainml_rejected_inputs_total", {"node": "x", "kind": "x", "reason": "untrusted: name taken"}) == 5
    assert get("sustainml_rejected_inputs_total",
               {"node": "x", "kind": "x", "reason": "untrusted: sustainml/v3/carbon_footprint"}) == 1


def test_a_hardware_nodes_final_message_adds_the_energy_it_spent_measuring():
    metrics = NodeMetrics("hw_constraints@vm", "hw_constraints")
    jobs = [msg.JobMeasurement(model="m", device="cpu", basis="measured"),
            msg.JobMeasurement(model="n", device="cpu", basis="estimated")]
    metrics.output(msg.HardwareMeasurement(message_index=0, measuring_energy_j=1.0, measurements=jobs))
    metrics.output(msg.HardwareMeasurement(message_index=1, plan_done=True, measuring_energy_j=42.5,
                                           measuring_s=3.0, measurements=jobs))
    labels = {"node": "hw_constraints@vm", "kind": "hw_constraints"}
    get = metrics.registry.get_sample_value
    assert get("sustainml_measurement_energy_joules_total", labels) == 42.5
    assert get("sustainml_measurement_device_seconds_total", labels) == 3.0
    assert get("sustainml_measurements_total", {**labels, "basis": "estimated"}) == 1
