"""The measurement cache: a second measurement of the same key runs no kernels, a changed key does, and a
restart (a new cache on the same file, a new hardware node on the same store) still finds it.

The workloads are real torch models on the CPU, metered by the declared CPU estimate; no fakes."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import torch

from sustainml import msg, topics
from sustainml.bus import Participant
from sustainml.peers import announce
from sustainml_nodes.hw_constraints.cache import CACHE_FILE, SCHEMA_VERSION, MeasurementCache, MeasurementKey
from sustainml.energy_estimate import EstimateEnergySource
from sustainml_nodes.hw_constraints.measure import measure
from sustainml_nodes.hw_constraints.node import HardwareNode, HwParams
from sustainml.models.catalogue import find, load_catalogue, to_candidate
from sustainml.models.workload import Workload

IN_FEATURES = 16


class CountedMLP(torch.nn.Module):
    """A real tiny MLP that counts its forward passes in a class attribute, so copies count too."""

    calls = 0

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(IN_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return self.net(x)


def counted_workload() -> Workload:
    torch.manual_seed(0)
    return Workload(
        name="counted-mlp",
        module=CountedMLP(),
        inputs=lambda n: torch.randn(n, IN_FEATURES, generator=torch.Generator().manual_seed(1)),
        targets=lambda n: torch.randn(n, 1, generator=torch.Generator().manual_seed(2)),
        loss=torch.nn.functional.mse_loss,
    )


def key(**changes: object) -> MeasurementKey:
    values: dict[str, object] = dict(
        model="counted-mlp", builder="0123456789abcdef", input_shape=(IN_FEATURES,), batch_size=2, train_batch_size=4, precision="fp32",
        device="cpu", energy_method="estimate", window_s=0.15,
    )
    values.update(changes)
    return MeasurementKey.here(**values)  # type: ignore[arg-type]


def measure_for(k: MeasurementKey) -> msg.JobMeasurement:
    return measure(counted_workload(), k.device, model_name=k.model, host="test-host", batch_size=k.batch_size,
                   train_batch_size=k.train_batch_size, precision=k.precision, window_s=k.window_s,
                   source=EstimateEnergySource())


@pytest.fixture(autouse=True)
def reset_counter() -> None:
    CountedMLP.calls = 0


def test_the_same_key_is_measured_once_and_answered_from_the_cache(tmp_path: Path) -> None:
    with MeasurementCache(tmp_path / CACHE_FILE) as cache:
        k = key()
        first = cache.get_or_measure(k, lambda: measure_for(k))
        calls = CountedMLP.calls
        assert calls > 0 and not first.cached
        second = cache.get_or_measure(k, lambda: measure_for(k))
        assert CountedMLP.calls == calls, "a cached key ran the model again"
        assert second.cached and second.basis == "reused" and second.measuring_s == 0.0
        assert dataclasses.replace(second, cached=False, basis=first.basis, measuring_s=first.measuring_s,
                                   measuring_energy_j=first.measuring_energy_j) == first
        assert len(cache) == 1


@pytest.mark.parametrize(
    "change",
    [{"batch_size": 3}, {"train_batch_size": 0}, {"precision": "bf16"}, {"window_s": 0.2},
     {"device_name": "another CPU"}, {"input_shape": (IN_FEATURES + 1,)}, {"builder": "fedcba9876543210"}],
    ids=lambda change: next(iter(change)),
)
def test_a_changed_key_measures_again(tmp_path: Path, change: dict[str, object]) -> None:
    with MeasurementCache(tmp_path / CACHE_FILE) as cache:
        k = key()
        cache.put(k, measure_for(k))
        calls = CountedMLP.calls
        other = key(**change)
        assert cache.get(other) is None
        k2 = dataclasses.replace(other, input_shape=k.input_shape)  # the counted model takes 16 features
        result = cache.get_or_measure(other, lambda: measure_for(k2))
        assert CountedMLP.calls > calls and not result.cached


def test_software_versions_are_part_of_the_key(tmp_path: Path) -> None:
    with MeasurementCache(tmp_path / CACHE_FILE) as cache:
        k = key()
        cache.put(k, measure_for(k))
        assert cache.get(dataclasses.replace(k, torch_version="0.0.1")) is None
        assert cache.get(dataclasses.replace(k, python_version="2.7.18")) is None
        assert cache.get(dataclasses.replace(k, energy_method="rapl")) is None
        assert cache.get(k) is not None


def test_a_new_cache_on_the_same_file_still_hits(tmp_path: Path) -> None:
    k = key()
    with MeasurementCache(tmp_path / CACHE_FILE) as cache:
        first = cache.get_or_measure(k, lambda: measure_for(k))
    calls = CountedMLP.calls
    with MeasurementCache(tmp_path / CACHE_FILE) as reopened:
        again = reopened.get_or_measure(k, lambda: measure_for(k))
    assert CountedMLP.calls == calls
    assert again.cached and again.latency_p50_ms == first.latency_p50_ms


def test_threads_share_one_cache(tmp_path: Path) -> None:
    k = key()
    with MeasurementCache(tmp_path / CACHE_FILE) as cache:
        cache.put(k, measure_for(k))
        found: list[bool] = []
        threads = [threading.Thread(target=lambda: found.append(cache.get(k) is not None)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert found == [True] * 8


def _tabular_task(iteration: int) -> tuple[msg.EncodedTask, msg.ModelCandidates]:
    task_id = msg.TaskId(problem_id="cache-test", iteration=iteration)
    task = msg.EncodedTask(task_id=task_id, task_type="tabular_regression", allowed_hardware=["cpu"],
                           usage=msg.UsageProfile(batch_size=1))
    candidate = to_candidate(find(load_catalogue(), "tabular_mlp"), "test")
    return task, msg.ModelCandidates(task_id=task_id, candidates=[candidate])


class Orchestrator:
    """Publishes a task's inputs as the orchestrator would and waits for the hardware node's answer."""

    def __init__(self, bus: Participant) -> None:
        self.answers: dict[int, msg.HardwareMeasurement] = {}
        self.got = threading.Condition()
        # Writers first: a starting node waits (up to 5 s) until its inputs are matched. Announced as
        # the orchestrator: nodes believe stage inputs only from nodes that produce them.
        self.announcement = announce(bus, "orchestrator", "orchestrator")
        self.pub_task = bus.publisher(topics.ENCODED_TASK)
        self.pub_candidates = bus.publisher(topics.MODEL_CANDIDATES)
        self.sub = bus.subscribe(topics.HARDWARE_MEASUREMENT, self._on_answer)

    def _on_answer(self, m: msg.HardwareMeasurement) -> None:
        if not m.plan_done:
            return   # the estimates and each measurement as it lands; the last message holds them all
        with self.got:
            self.answers[m.task_id.iteration] = m
            self.got.notify_all()

    def ask(self, iteration: int, timeout_s: float = 15.0) -> msg.HardwareMeasurement:
        deadline = time.monotonic() + timeout_s
        while not (self.sub.matched() and self.pub_task.matched() and self.pub_candidates.matched()):
            assert time.monotonic() < deadline, "the hardware node never matched our topics"
            time.sleep(0.02)  # discovery has no event to wait on here; poll with a deadline
        task, candidates = _tabular_task(iteration)
        self.pub_task.publish(task)
        self.pub_candidates.publish(candidates)
        with self.got:
            answered = self.got.wait_for(lambda: iteration in self.answers, timeout=deadline - time.monotonic())
        assert answered, f"no hardware measurement for iteration {iteration} within {timeout_s} s"
        return self.answers[iteration]


@pytest.mark.slow
class PatientHardwareNode(HardwareNode):
    """The hardware node, waiting at shutdown for its ahead-of-time profiling (a model at a time: long on
    a loaded machine) so that it closes its store and releases the store's lock before the next one
    opens it in this same process (a real restart is a new process: its lock dies with the old one)."""

    stop_timeout_s = 120.0


def test_a_restarted_hardware_node_answers_from_its_store(dds: dict[str, str]) -> None:
    bus = Participant()
    try:
        orchestrator = Orchestrator(bus)
        params = HwParams(window_s=0.15, train_batch_size=4)
        node = PatientHardwareNode(params=params)
        try:
            first = orchestrator.ask(1)
        finally:
            node.shutdown()
        assert [m.cached for m in first.measurements] == [False]
        assert (Path(dds["SUSTAINML_STORE_DIR"]) / CACHE_FILE).is_file()

        node = PatientHardwareNode(params=params)
        try:
            second = orchestrator.ask(2)
        finally:
            node.shutdown()
        [before], [after] = first.measurements, second.measurements
        assert after.cached and after.basis == "reused" and before.basis == "measured"
        assert dataclasses.replace(after, cached=False, basis=before.basis, measuring_s=before.measuring_s,
                                   measuring_energy_j=before.measuring_energy_j) == before
    finally:
        bus.close()


def _old_file(path: Path, version: int) -> None:
    """A cache file as the schema ``version`` made it, each table holding one row of the time."""
    from sustainml_nodes.hw_constraints import cache as cache_module

    with sqlite3.connect(path) as db:
        for v in range(version):
            for statement in cache_module._MIGRATIONS[v]:
                db.execute(statement)
        db.execute("INSERT INTO measurements VALUES ('tabular_mlp', '8', 1, 8, 'fp32', 'cpu', 'a CPU', 'estimate', "
                   "'2.5', '3.11', 1.0, x'00010203', 0)")   # CDR of the @appendable JobMeasurement
        if version >= 2:
            db.execute("INSERT INTO calibrations VALUES ('cpu', 'a CPU', 'fp32', 'estimate', '2.5', '3.11', 1e10, "
                       "1e-10, 10, 5, 1e9, 1e-6, 3e-6, 0.1, 512, 1.0, '', 0)")
        if version >= 3:
            db.execute("INSERT INTO observations VALUES ('cpu', 'a CPU', 'fp32', 'estimate', '2.5', '3.11', "
                       "'tabular_mlp', 'MLP (tabular)', 'torch/tabular', 'inference', 2.0, 3.0, 0)")
            db.execute("INSERT INTO profiles VALUES ('tabular_mlp', '8', '2.5', 1e5, 1e4, 4e5, 12)")
        db.execute(f"PRAGMA user_version = {version}")


@pytest.mark.parametrize("version", [1, 3])
def test_an_old_file_is_migrated_dropping_what_was_keyed_by_name_alone(
        tmp_path: Path, version: int, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / CACHE_FILE
    _old_file(path, version)
    with caplog.at_level("WARNING"), MeasurementCache(path) as migrated:
        k = key()
        migrated.put(k, measure_for(k))   # the new schema works
        assert migrated.get(k) is not None and len(migrated) == 1
        kept = migrated.observations(dataclasses.replace(_calibration_key(), torch_version="2.5",
                                                         python_version="3.11"))
    profiles = 1 if version >= 3 else 0
    assert f"dropped 1 stored measurements and {profiles} model profiles" in caplog.text
    assert "keyed by model name alone" in caplog.text and "@appendable" in caplog.text
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM profiles").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM calibrations").fetchone()[0] == (1 if version >= 2 else 0)
    if version >= 3:   # the estimator's observations stay, their builder unknown
        [observation] = kept
        assert (observation.model, observation.builder, observation.latency_ratio) == ("tabular_mlp", "", 2.0)


def test_a_new_file_logs_no_migration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"), MeasurementCache(tmp_path / CACHE_FILE):
        pass
    assert "dropped" not in caplog.text


def _calibration_key():
    from sustainml_nodes.hw_constraints.cache import CalibrationKey

    return CalibrationKey.here(device="cpu", device_name="a CPU", precision="fp32", energy_method="estimate")
