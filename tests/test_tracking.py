"""The stage tracker as a user meets it: stages of their own pipeline metered with this machine's real
energy source, the gCO2e arithmetic, failures and too-short stages, the local run store, the
bus (a real orchestrator and a real subscriber), and the example pipeline run as a program."""

from __future__ import annotations

import io
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sustainml import Client, msg, topics
from sustainml.bus import Participant
from sustainml.exceptions import InvalidProblem, RequestTimeout, UnknownRegion
from sustainml.report import describe_dominance
from sustainml.tracking import RunStore, Tracker, TrackingError, visible_devices
from sustainml.carbon.intensity import resolve_region
from sustainml.energy_fake import PowerTraceSource

from conftest import ROOT, FakeClock

J_PER_KWH = 3.6e6   # written out here on purpose: the test checks the arithmetic, not reuses it


@pytest.fixture
def run_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every tracker of the test keeps its records in the test's folder, never in the user's."""
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("SUSTAINML_RUN_STORE", str(path))
    return path


def _busy(seconds: float) -> None:
    """Real CPU work for about ``seconds``."""
    end = time.perf_counter() + seconds
    a = np.random.default_rng(0).random((120, 120))
    while time.perf_counter() < end:
        a = np.tanh(a @ a.T / 120)


# ---------------------------------------------------------------------------------- real source


def test_a_stage_on_this_machines_real_cpu_source(run_store):
    tracker = Tracker(region="Germany", pue=1.2, devices="cpu")
    before = time.time()
    with tracker.stage("featurize", run="RF") as handle:
        entered = time.time()
        _busy(0.3)
    record = handle.record
    assert record is tracker.records[0]
    assert (record.run, record.stage, record.devices, record.host) == ("RF", "featurize", "cpu", socket.gethostname())
    assert before <= record.started_unix_s <= entered and record.duration_s >= 0.3
    assert record.energy_method in ("rapl", "estimate")
    assert record.energy_j > 0 and record.energy_uncertainty_j > 0
    if record.energy_method == "estimate":   # no RAPL here: the declared estimate, ±30 % and said so
        assert "not a measurement" in record.assumptions
        assert record.energy_uncertainty_j >= 0.3 * record.energy_j
    germany = resolve_region("DEU")
    assert (record.region, record.intensity_g_per_kwh, record.pue) == ("DEU", germany.intensity_g_per_kwh, 1.2)
    assert record.co2_g == pytest.approx(record.energy_j / J_PER_KWH * 1.2 * germany.intensity_g_per_kwh)
    assert record.co2_uncertainty_g == pytest.approx(
        record.energy_uncertainty_j / J_PER_KWH * 1.2 * germany.intensity_g_per_kwh)
    tracker.close()
    assert RunStore(run_store).stages(run="RF") == [record]


def test_a_stage_far_shorter_than_the_counter_update_is_still_recorded(run_store):
    tracker = Tracker(region="FRA", devices="cpu")
    with tracker.stage("split", run="DT") as handle:
        pass
    r, source = handle.record, tracker.sources[0]
    # One update's energy: at the mean power since the tracker was made if that spans an update,
    # else (made a moment ago) at the window's own power.
    power_w = tracker._meters[0].mean_power_w() or r.energy_j / r.duration_s
    one_update_j = power_w * source.counter_resolution_s
    assert r.duration_s < source.counter_resolution_s and one_update_j > r.energy_j
    assert r.energy_uncertainty_j == pytest.approx(math.hypot(source.relative_uncertainty * r.energy_j, one_update_j))
    assert "shorter than" in r.assumptions


# ---------------------------------------------------------------------------------- fakes


def test_two_devices_add_up_and_co2_is_energy_times_pue_times_intensity():
    # Fake counters on a fake clock (no RAPL, no NVML): 10 W on "cpu", ±10 %; 200 W on "cuda:0",
    # ±5 %. A 10 s stage: 100 J + 2000 J = 2100 J; uncertainty sqrt(10² + 100²) = 100.50 J.
    clock = FakeClock()
    cpu = PowerTraceSource(10.0, method="fake-cpu", relative_uncertainty=0.10, clock=clock)
    gpu = PowerTraceSource(200.0, device="cuda:0", method="fake-gpu", relative_uncertainty=0.05, clock=clock)
    tracker = Tracker(region="FRA", pue=1.5, sources=[cpu, gpu], store=":memory:", clock=clock,
                      wall_clock=lambda: 1_700_000_000.0 + clock())
    with tracker.stage("train", run="CNN") as handle:
        clock.now_s += 10.0
    record = handle.record
    intensity = resolve_region("FRA").intensity_g_per_kwh
    assert record.devices == "cpu+cuda:0" and record.energy_method == "fake-cpu+fake-gpu"
    assert record.energy_j == pytest.approx(2100.0)
    assert record.energy_uncertainty_j == pytest.approx(100.499, abs=1e-3)
    assert record.duration_s == pytest.approx(10.0) and record.started_unix_s == 1_700_000_000.0
    assert record.co2_g == pytest.approx(2100.0 / J_PER_KWH * 1.5 * intensity)
    assert record.co2_uncertainty_g == pytest.approx(100.499 / J_PER_KWH * 1.5 * intensity, rel=1e-5)


def test_short_stage_uncertainty_is_one_update_at_the_mean_power():
    # A fake counter that moves every 0.1 s (like NVML's), 50 W; stages of 20 ms.
    clock = FakeClock()
    source = PowerTraceSource(50.0, update_period_s=0.1, clock=clock)
    tracker = Tracker(region="DEU", sources=[source], store=":memory:", clock=clock)
    with tracker.stage("load", run="A"):
        clock.now_s = 1.05
    with tracker.stage("split", run="A") as still:
        clock.now_s = 1.07
    # The counter read 50 J at 1.05 s and still 50 J at 1.07 s: 0 J, but one 0.1 s update may
    # have been missed; at the mean power over the meter's life, 50 J / 1.07 s, that is 4.67 J.
    assert still.record.energy_j == 0.0
    assert still.record.energy_uncertainty_j == pytest.approx(50 / 1.07 * 0.1)
    assert "shorter than the fake counter's update period (100 ms)" in still.record.assumptions
    with tracker.stage("featurize", run="A"):
        clock.now_s = 1.19
    with tracker.stage("scale", run="A") as moved:
        clock.now_s = 1.21
    # 55 J at 1.19 s, 60 J at 1.21 s: one update, 5 J in 20 ms; the counter may have moved once or
    # not at all inside it, so the uncertainty is one update at the mean power: 60 J / 1.21 s x 0.1 s.
    assert moved.record.energy_j == pytest.approx(5.0)
    assert moved.record.energy_uncertainty_j == pytest.approx(60 / 1.21 * 0.1, rel=1e-6)


def test_a_failing_stage_raises_and_is_recorded_as_failed():
    clock = FakeClock()
    tracker = Tracker(region="DEU", sources=[PowerTraceSource(20.0, clock=clock)], store=":memory:", clock=clock)
    with pytest.raises(ZeroDivisionError):
        with tracker.stage("featurize", run="GB"):
            clock.now_s += 2.0
            1 / 0
    (record,) = tracker.records
    assert record.error == "ZeroDivisionError: division by zero"
    assert record.energy_j == pytest.approx(40.0)
    console = Console(record=True, width=200, file=io.StringIO())
    tracker.print_table(console)
    text = console.export_text()
    assert "4.23 mg!" in text and "raised an exception" in text   # 40 J x 380.95 g/kWh / 3.6e6 J/kWh


def test_stages_do_not_nest():
    clock = FakeClock()
    tracker = Tracker(region="DEU", sources=[PowerTraceSource(20.0, clock=clock)], store=":memory:", clock=clock)
    with tracker.stage("train", run="A"):
        with pytest.raises(TrackingError, match="do not nest"):
            with tracker.stage("evaluate", run="A"):
                pass
        clock.now_s += 1
    assert [r.stage for r in tracker.records] == ["train"]


def test_table_has_a_row_per_run_a_column_per_stage_and_the_dominant_stage():
    clock = FakeClock()
    tracker = Tracker(region="DEU", sources=[PowerTraceSource(100.0, clock=clock)], store=":memory:", clock=clock)
    for run, seconds in (("DT", {"clean": 1, "train": 1}), ("RF", {"clean": 1, "train": 8, "explain": 3})):
        for stage, s in seconds.items():
            with tracker.stage(stage, run=run):
                clock.now_s += s
    dt, rf = tracker.summaries()
    assert (dt.run, list(dt.co2_g_by_stage)) == ("DT", ["clean", "train"])
    assert (rf.dominant_stage, rf.dominant_share) == ("train", pytest.approx(8 / 12))
    assert rf.energy_j_total == pytest.approx(1200.0)
    console = Console(record=True, width=200, file=io.StringIO())
    tracker.print_table(console, extra_columns={"R²": {"DT": "0.81", "RF": "0.93"}})
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "run" in line)
    assert header.split() == ["run", "clean", "train", "explain", "total", "dominant", "R²"]
    rf_row = next(line for line in lines if line.split()[:1] == ["RF"])
    assert "train 67%" in rf_row and rf_row.split()[-1] == "0.93"
    assert "RF: train dominates (67%" in describe_dominance(tracker.records)


# ---------------------------------------------------------------------------------- edges


def test_unknown_region_says_what_would_be_right(run_store):
    with pytest.raises(UnknownRegion, match="Germany"):
        Tracker(region="Germny", devices="cpu")
    with pytest.raises(InvalidProblem, match="region is needed"):
        Tracker(devices="cpu")
    with pytest.raises(ValueError, match="1.0 or more"):
        Tracker(region="DEU", pue=0.8, devices="cpu")
    with pytest.raises(ValueError, match="cuda:N"):
        Tracker(region="DEU", devices="tpu")


def test_auto_devices_start_with_the_cpu():
    devices = visible_devices()
    assert devices[0] == "cpu" and all(d.startswith("cuda:") for d in devices[1:])


# ---------------------------------------------------------------------------------- the store


def test_run_store_round_trips_and_filters(tmp_path, monkeypatch):
    monkeypatch.setenv("SUSTAINML_RUN_STORE", str(tmp_path / "x" / "named.sqlite"))
    assert RunStore.default_path() == tmp_path / "x" / "named.sqlite"
    monkeypatch.delenv("SUSTAINML_RUN_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert RunStore.default_path() == tmp_path / "data" / "sustainml" / "runs.sqlite"

    def record(problem_id: str, run: str, stage: str, started: float) -> msg.StageRecord:
        return msg.StageRecord(task_id=msg.TaskId(problem_id=problem_id, iteration=2), run=run, stage=stage,
                               host="h", devices="cpu", started_unix_s=started, duration_s=1.5, energy_j=12.5,
                               energy_uncertainty_j=3.75, energy_method="codecarbon", assumptions="imported",
                               region="FRA", intensity_g_per_kwh=56.0, pue=1.1, co2_g=0.000214,
                               co2_uncertainty_g=0.0000642)

    records = [record("p1", "RF", "train", 2.0), record("p1", "RF", "clean", 1.0), record("p2", "GB", "train", 3.0)]
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        assert store.add(records) == 3
        store.add_forecast(msg.TrainingForecast(task_id=msg.TaskId(problem_id="p1", iteration=2), run="MLP",
                                                epochs_done=3, epochs_planned=10, predicted_energy_j=40.0))
    with RunStore(path) as again:   # a new connection: what was written is on disk
        assert again.stages() == [records[1], records[0], records[2]]
        assert again.stages(problem_id="p1") == [records[1], records[0]]
        assert again.stages(run="GB") == [records[2]]
        assert again.stages(problem_id="p2", run="RF") == []
        (forecast,) = again.forecasts(run="MLP")
        assert (forecast.epochs_done, forecast.predicted_energy_j) == (3, 40.0)
    with pytest.raises(TypeError, match="StageRecord"):
        RunStore(":memory:").add([{"stage": "train"}])


# ---------------------------------------------------------------------------------- the bus


@pytest.fixture
def orchestrator(dds: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The real orchestrator node alone, in its own process on the test's private domain."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "sustainml.cli", "node", "orchestrator"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **dds})
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if " ready on " in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(30), "orchestrator not ready:\n" + "".join(lines)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_published_records_reach_a_subscriber_for_a_task_the_orchestrator_knows(orchestrator, run_store):
    # One client submits and, later, cancels: the orchestrator cancels a task only for its submitter.
    submitter = Client()
    task = submitter.submit({"text": "predict tool wear", "task_type": "tabular_regression",
                             "dataset": {"num_samples": 2000, "num_features": 8}, "train_region": "DEU"})
    problem_id = task.task_id.problem_id

    received: list[msg.StageRecord] = []
    forecasts: list[msg.TrainingForecast] = []
    got_all, got_forecast = threading.Event(), threading.Event()
    listener = Participant()
    try:
        def on_record(record: msg.StageRecord) -> None:
            received.append(record)
            if len(received) == 2:
                got_all.set()

        def on_forecast(forecast: msg.TrainingForecast) -> None:
            forecasts.append(forecast)
            got_forecast.set()

        listener.subscribe(topics.STAGE_RECORD, on_record)
        listener.subscribe(topics.TRAINING_FORECAST, on_forecast)

        with pytest.raises(InvalidProblem, match="knows no task 'nope'|knows no task nope"):
            Tracker(region="DEU", devices="cpu", task_id="nope", publish=True, timeout_s=5)
        with pytest.raises(InvalidProblem, match="no result yet"):
            Tracker(devices="cpu", task_id=problem_id, publish=True, timeout_s=5)   # no region, none to take

        with Tracker(region="DEU", devices="cpu", task_id=problem_id, publish=True, timeout_s=5) as tracker:
            assert tracker.task_id == msg.TaskId(problem_id=problem_id, iteration=1)   # the latest iteration
            with tracker.stage("clean", run="RF"):
                _busy(0.05)
            with tracker.training(run="RF", planned_epochs=4) as training:
                for _ in range(3):
                    with training.epoch():
                        _busy(0.03)
            sent = tracker.records
            assert got_all.wait(10), f"received {len(received)} of 2 stage records"
            assert got_forecast.wait(5), "no training forecast received"
    finally:
        listener.close()
    assert received == sent
    assert all(r.task_id == msg.TaskId(problem_id=problem_id, iteration=1) for r in received)
    assert forecasts and forecasts[-1].epochs_done == 3 and forecasts[-1].run == "RF"
    assert RunStore(run_store).stages(problem_id=problem_id) == sent

    # The orchestrator keeps them with the task: in its result when the task ends (here cancelled,
    # since no other node runs), and a stage tracked after that is added to the stored result.
    with submitter as client:
        client.cancel(task.task_id)
        ended = _wait_for(lambda: _latest(client, problem_id), lambda r: r.state == msg.TaskState.TASK_CANCELLED)
        assert ended.stages == sent and ended.forecasts[-1].epochs_done == 3
        with Tracker(region="DEU", devices="cpu", task_id=problem_id, publish=True, timeout_s=5) as tracker:
            with tracker.stage("explain", run="RF"):
                _busy(0.05)
        later = _wait_for(lambda: _latest(client, problem_id), lambda r: len(r.stages) == 3)
    assert [r.stage for r in later.stages] == ["clean", "train", "explain"]
    assert later.stages_summary.startswith("RF: ") and " dominates (" in later.stages_summary


def _latest(client: Client, problem_id: str) -> msg.TaskResult:
    return client.history(problem_id)[0]


def _wait_for(get, ok, timeout_s: float = 10.0):
    """Poll ``get()`` until ``ok(value)``, at most ``timeout_s``; the last value either way."""
    deadline = time.monotonic() + timeout_s
    value = get()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = get()
    assert ok(value), f"not reached within {timeout_s} s: {value}"
    return value


def test_publishing_without_an_orchestrator_is_one_clear_error(dds, run_store):
    with pytest.raises(RequestTimeout, match="cannot check task abc with the orchestrator"):
        Tracker(region="DEU", devices="cpu", task_id="abc", publish=True, timeout_s=1)


# ---------------------------------------------------------------------------------- the example


@pytest.mark.slow
def test_the_example_pipeline_prints_a_row_per_model(run_store):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "stage_tracking.py"), "--region", "FRA",
                           "--epochs", "12"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = out.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["run"])
    assert header.split() == ["run", "profile", "clean", "featurize", "split", "scale", "train", "evaluate",
                              "explain", "total", "dominant", "R²"]
    rows = {line.split()[0]: line for line in lines if line.split()[:1] in (["DT"], ["RF"], ["GB"], ["MLP"])}
    assert set(rows) == {"DT", "RF", "GB", "MLP"}
    for row in rows.values():
        r2 = float(row.split()[-1])
        assert 0.5 < r2 <= 1.0    # the models learn the (synthetic) wear, or the stages were not real work
    (method,) = re.findall(r"energy method: ([\w+-]+)", out)
    assert "FRA" in out and method in ("rapl", "estimate")
    assert ("cpu: estimate, not a measurement" in out) == (method == "estimate")
    stored = RunStore(run_store).stages()
    assert {r.run for r in stored} == {"DT", "RF", "GB", "MLP"} and len(stored) == 4 * 8


def test_the_example_refuses_an_unknown_region_in_one_line(run_store):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "stage_tracking.py"), "--region", "Atlantis"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("stage_tracking: ") and len(done.stderr.strip().splitlines()) == 1


def test_used_as_a_context_manager_it_prints_its_table_once_at_the_end(run_store, capsys):
    with Tracker(region="DEU", devices="cpu") as tracker:
        with tracker.stage("featurize", run="DT"):
            _busy(0.02)
    first = capsys.readouterr().out
    assert "featurize" in first and "DT" in first and "dominant" in first
    with Tracker(region="DEU", devices="cpu") as tracker:
        with tracker.stage("featurize", run="DT"):
            _busy(0.02)
        tracker.print_table()
    assert capsys.readouterr().out.count("dominant") == 1   # one table: one "dominant" column header
    with Tracker(region="DEU", devices="cpu", print_at_exit=False) as tracker:
        with tracker.stage("featurize", run="DT"):
            _busy(0.02)
    assert capsys.readouterr().out == ""
