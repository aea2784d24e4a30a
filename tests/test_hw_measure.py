"""measure(): a real tiny torch model on the CPU, metered by the estimate or by fake counters of known power."""

from __future__ import annotations

import time

import pytest
import torch

from sustainml.exceptions import MeasurementError, TaskCancelled
from sustainml.msg import JobMeasurement
from sustainml.energy_estimate import EstimateEnergySource
from sustainml.energy_fake import PowerTraceSource
from sustainml_nodes.hw_constraints.measure import MIN_REPETITIONS, measure
from sustainml.models.workload import Workload


def tiny_workload(in_features: int = 32, classes: int = 10) -> Workload:
    """A small MLP classifier with deterministic synthetic data."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(in_features, 128), torch.nn.ReLU(), torch.nn.Linear(128, classes)
    )
    return Workload(
        name="tiny-mlp",
        module=module,
        inputs=lambda n: torch.randn(n, in_features, generator=torch.Generator().manual_seed(n)),
        targets=lambda n: torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(n)),
        loss=torch.nn.functional.cross_entropy,
    )


def run(workload: Workload | None = None, **kwargs: object) -> JobMeasurement:
    options: dict[str, object] = {"model_name": "tiny-mlp", "host": "test-host", "window_s": 0.3}
    options.update(kwargs)
    return measure(workload or tiny_workload(), "cpu", **options)  # type: ignore[arg-type]


class Stalling(PowerTraceSource):
    """A counter that freezes for ``stall_s`` once ``stall()`` is called, then catches up."""

    stall_s = 0.4
    _frozen_until = 0.0
    _frozen_mj = 0.0

    def stall(self) -> None:
        self._frozen_mj = super().read_energy_mj()
        self._frozen_until = time.perf_counter() + self.stall_s

    def read_energy_mj(self) -> float:
        if time.perf_counter() < self._frozen_until:
            return self._frozen_mj
        return super().read_energy_mj()


def test_a_tiny_model_on_the_cpu_with_the_declared_estimate() -> None:
    result = run(source=EstimateEnergySource(), batch_size=4, train_batch_size=8)
    assert (result.model, result.device, result.host, result.precision) == ("tiny-mlp", "cpu", "test-host", "fp32")
    assert result.energy_method == "estimate"
    assert result.assumptions and "estimate" in result.assumptions
    assert result.energy_per_inference_j > 0
    assert result.total_energy_per_inference_j >= result.energy_per_inference_j
    assert result.energy_per_inference_uncertainty_j > 0
    assert result.latency_p95_ms >= result.latency_p50_ms > 0
    assert result.window_s >= 0.3
    assert result.repetitions >= MIN_REPETITIONS
    assert result.throughput_per_s == pytest.approx(result.repetitions * 4 / result.window_s)
    assert result.train_batch_size == 8 and result.train_step_ms > 0
    assert result.energy_per_train_sample_j > 0 and result.energy_per_train_sample_uncertainty_j > 0
    assert result.idle_power_w > 0 and result.active_power_w > 0
    assert result.peak_memory_mb > 0
    assert not result.cached


def test_a_50_watt_counter_gives_power_times_window_per_sample() -> None:
    # A counter that moves every 100 ms like NVML's: the window is stretched to 10 updates.
    result = run(source=PowerTraceSource(50.0, update_period_s=0.1), window_s=0.2, batch_size=2, train_batch_size=0)
    samples = result.repetitions * 2
    assert result.window_s >= 1.0
    # A window's edges are uncertain by one update: at most 50 W × 0.1 s over the window.
    one_update_j = 50.0 * 0.1 * 1.01
    assert result.total_energy_per_inference_j * samples == pytest.approx(50.0 * result.window_s, abs=one_update_j)
    assert result.idle_power_w == pytest.approx(50.0, abs=one_update_j / 0.5)  # idle window ≥ 5 updates
    # Constant power: the workload adds nothing above idle, within the stated uncertainty.
    assert result.energy_per_inference_j <= 3 * result.energy_per_inference_uncertainty_j
    assert result.energy_method == "fake" and result.assumptions == ""
    assert result.train_step_ms == 0 and result.energy_per_train_sample_j == 0


def test_idle_and_active_energy_are_attributed_separately() -> None:
    # 20 W idle; 50 W from the first warm-up on: the workload's share is 30 W.
    source = PowerTraceSource(20.0)

    def progress(pct: float, message: str) -> None:
        if "warm-up" in message:
            source.set_power_w(50.0)

    result = run(source=source, progress=progress, train_batch_size=4)
    samples = result.repetitions
    assert result.idle_power_w == pytest.approx(20.0, rel=0.02)
    assert result.active_power_w == pytest.approx(30.0, rel=0.02)
    assert result.energy_per_inference_j == pytest.approx(30.0 * result.window_s / samples, rel=0.03)
    assert result.total_energy_per_inference_j == pytest.approx(50.0 * result.window_s / samples, rel=0.03)
    # Training: 30 W over steps of train_step_ms (the mean step time) for 4 samples each.
    assert result.energy_per_train_sample_j == pytest.approx(30.0 * result.train_step_ms / 1000.0 / 4, rel=0.03)


def test_a_stalling_counter_shows_up_as_uncertainty_not_as_a_wrong_mean() -> None:
    steady = run(source=PowerTraceSource(50.0), window_s=1.0, train_batch_size=0)
    stalling = Stalling(50.0)
    stalled = run(
        source=stalling,
        window_s=1.0,
        train_batch_size=0,
        progress=lambda pct, message: stalling.stall() if "inference window" in message else None,
    )
    for result in (steady, stalled):
        assert result.total_energy_per_inference_j == pytest.approx(50.0 * result.window_s / result.repetitions, rel=0.03)
    assert stalled.energy_per_inference_uncertainty_j > 5 * steady.energy_per_inference_uncertainty_j


def test_progress_is_reported_between_phases_and_can_cancel() -> None:
    workload = tiny_workload()
    workload.module.train()
    seen: list[tuple[float, str]] = []

    def progress(pct: float, message: str) -> None:
        seen.append((pct, message))
        if "training window" in message:
            raise TaskCancelled("cancelled by the user")

    with pytest.raises(TaskCancelled):
        run(workload, source=PowerTraceSource(10.0), progress=progress)
    percents = [pct for pct, _ in seen]
    assert percents == sorted(percents) and percents[0] == 0.0
    assert all(message.startswith("tiny-mlp on cpu: ") for _, message in seen)
    assert workload.module.training  # the caller's module is left as it was


def test_any_exception_from_progress_propagates_unchanged() -> None:
    def progress(pct: float, message: str) -> None:
        if "inference window" in message:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="^stop here$") as caught:
        run(source=PowerTraceSource(10.0), progress=progress)
    assert not isinstance(caught.value, MeasurementError)


def test_training_runs_on_a_copy() -> None:
    workload = tiny_workload()
    before = {name: tensor.clone() for name, tensor in workload.module.state_dict().items()}
    run(workload, source=PowerTraceSource(10.0), window_s=0.1)
    after = workload.module.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_a_model_that_fails_to_run_is_a_measurement_error_naming_it() -> None:
    workload = tiny_workload()
    broken = Workload("broken", workload.module, lambda n: torch.randn(n, 7), workload.targets, workload.loss)
    with pytest.raises(MeasurementError, match="tiny-mlp failed on cpu during inference at batch size 1"):
        run(broken, source=PowerTraceSource(10.0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_a_gpu_that_is_not_there_is_refused() -> None:
    with pytest.raises(MeasurementError, match="sees no CUDA GPU"):
        measure(tiny_workload(), "cuda:0", model_name="tiny-mlp", host="test-host", source=PowerTraceSource(1.0))


@pytest.mark.parametrize(
    ("option", "value"), [("batch_size", 0), ("train_batch_size", -1), ("window_s", 0.0), ("warmup", -1), ("idle_s", 0)]
)
def test_arguments_are_checked_before_anything_runs(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        run(source=PowerTraceSource(1.0), **{option: value})


class _SlowPass(torch.nn.Module):
    """A model whose one pass takes longer than the window: a real forward, then 80 ms of busy work
    (not a sleep: the CPU estimate meters this process's CPU time, so a sleeping pass would have an
    energy of about nothing, whose relative spread is the machine's noise)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        busy_until = time.perf_counter() + 0.08
        while time.perf_counter() < busy_until:
            torch.mm(self.layer.weight, self.layer.weight.T)
        return self.layer(x)


def test_a_model_slower_than_the_window_is_measured_with_fewer_passes_and_a_wider_uncertainty() -> None:
    workload = tiny_workload()
    workload.module = _SlowPass()
    checks: list[float] = []
    few = run(workload, source=EstimateEnergySource(), window_s=0.05, warmup=1, min_repetitions=1,
              train_batch_size=0, check=lambda: checks.append(time.perf_counter()))
    assert few.repetitions < MIN_REPETITIONS
    assert "a slow model: measured with" in few.assumptions
    assert few.latency_p50_uncertainty_ms > 0 and few.measuring_s >= 0.08 * (1 + few.repetitions)
    assert len(checks) == 1 + few.repetitions   # before every pass, the warm-up's included: a stop waits one pass
    usual = run(workload, source=EstimateEnergySource(), window_s=0.05, warmup=1, train_batch_size=0)
    assert usual.repetitions >= MIN_REPETITIONS and "slow model" not in usual.assumptions
    # The spread of few passes widens the energy's relative uncertainty beyond the usual window's.
    assert (few.energy_per_inference_uncertainty_j / few.energy_per_inference_j
            > usual.energy_per_inference_uncertainty_j / usual.energy_per_inference_j)
