"""What the hardware node measures beyond a plain torch model: int8 dynamic quantisation (real torch
kernels on the CPU) and scikit-learn estimators run by their own library, through the same meter.
The power comes from a fake source (this machine has no RAPL) so that the energy arithmetic is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from sustainml import msg
from sustainml.exceptions import MeasurementError
from sustainml.energy_fake import PowerTraceSource
from sustainml_nodes.hw_constraints.measure import (INT8_DYNAMIC, measure, measure_estimator,
                                                    quantize_dynamic_int8, with_training_of)
from sustainml_nodes.hw_constraints.answer import MeasuringSettings, TaskMeasuring
from sustainml.models.workload import EstimatorWorkload

from test_hw_measure import tiny_workload

POWER_W = 20.0
IDLE_W = 5.0


def idle_then_busy() -> tuple[PowerTraceSource, object]:
    """A fake counter at IDLE_W during the idle baseline and POWER_W from the first workload phase on."""
    source = PowerTraceSource(IDLE_W)
    return source, lambda pct, text: source.set_power_w(POWER_W) if pct >= 10 else None


def test_int8_dynamic_quantises_every_linear_layer_and_keeps_the_callers_model():
    workload = tiny_workload()
    quantised = quantize_dynamic_int8(workload.module, "tiny-mlp")
    int8 = [m for m in quantised.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    fp32 = [m for m in workload.module.modules() if isinstance(m, torch.nn.Linear)]
    assert len(int8) == len(fp32) == 2
    assert not any(isinstance(m, torch.nn.Linear) for m in quantised.modules())
    x = workload.inputs(4)
    error = (quantised(x) - workload.module.eval()(x)).abs().max().item()
    assert 0 < error < 0.05  # int8 weights: close to fp32, not identical


def test_an_int8_dynamic_measurement_runs_the_quantised_model_and_trains_in_fp32():
    m = measure(tiny_workload(), "cpu", model_name="tiny-mlp", host="h", window_s=0.3, variant=INT8_DYNAMIC,
                source=PowerTraceSource(POWER_W))
    assert m.precision == INT8_DYNAMIC
    assert m.energy_method == "fake" and m.repetitions >= 5
    assert "training measured in fp32" in m.assumptions
    assert m.energy_per_train_sample_j > 0 and m.train_step_ms > 0
    # A constant 20 W counter: total energy per inference is 20 W x the time per sample.
    assert m.total_energy_per_inference_j == pytest.approx(POWER_W * m.window_s / (m.repetitions * m.batch_size),
                                                           rel=0.02)


def test_int8_dynamic_is_refused_where_it_cannot_run():
    conv_only = tiny_workload()
    conv_only.module = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3))
    with pytest.raises(MeasurementError, match="no Linear layers"):
        measure(conv_only, "cpu", model_name="convs", host="h", window_s=0.1, variant=INT8_DYNAMIC)
    with pytest.raises(MeasurementError, match="int8-dynamic runs on the CPU from fp32 weights"):
        measure(tiny_workload(), "cpu", model_name="tiny-mlp", host="h", window_s=0.1, precision="bf16",
                variant=INT8_DYNAMIC)
    with pytest.raises(ValueError, match="unknown measurement variant 'int4'"):
        measure(tiny_workload(), "cpu", model_name="tiny-mlp", host="h", window_s=0.1, variant="int4")


def synthetic(n: int, classes: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) if classes else x @ np.arange(8.0)
    return x, y


@pytest.mark.parametrize("estimator, classes", [
    (RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1), True),
    (Ridge(), False),
], ids=["random_forest", "ridge"])
def test_a_scikit_learn_estimator_is_fitted_and_predicts_under_the_meter(estimator, classes: bool):
    workload = EstimatorWorkload(name="est", estimator=estimator, data=lambda n: synthetic(n, classes))
    source, progress = idle_then_busy()
    m = measure_estimator(workload, "cpu", model_name="est", host="h", batch_size=16, train_samples=512,
                          window_s=0.3, source=source, progress=progress)
    assert (m.batch_size, m.train_batch_size, m.precision, m.energy_method) == (16, 512, "fp32", "fake")
    assert m.latency_p50_ms > 0 and m.train_step_ms > 0 and m.repetitions >= 5
    # Per training row: the 15 W above idle x the mean fit time / the rows of one fit.
    active_w = POWER_W - IDLE_W
    assert m.energy_per_train_sample_j == pytest.approx(active_w * m.train_step_ms / 1000 / 512, rel=0.02)
    assert m.idle_power_w == pytest.approx(IDLE_W, rel=0.01)
    assert "scikit-learn fit timed on 512 synthetic rows" in m.assumptions
    assert not hasattr(estimator, "n_features_in_"), "the caller's estimator must stay unfitted"


def test_a_scikit_learn_estimator_runs_on_the_cpu_only():
    workload = EstimatorWorkload(name="est", estimator=Ridge(), data=lambda n: synthetic(n, False))
    with pytest.raises(MeasurementError, match="scikit-learn model and runs on the CPU only"):
        measure_estimator(workload, "cuda:0", model_name="est", host="h", window_s=0.1)


def test_a_variant_takes_its_models_training_figures_instead_of_measuring_them_again():
    source = PowerTraceSource(POWER_W)
    base = measure(tiny_workload(), "cpu", model_name="tiny-mlp", host="h", window_s=0.3, source=source)
    variant = measure(tiny_workload(), "cpu", model_name="tiny-mlp", host="h", window_s=0.3, source=source,
                      variant=INT8_DYNAMIC, train_batch_size=0)
    assert variant.energy_per_train_sample_j == 0 and variant.train_step_ms == 0   # not measured twice
    merged = with_training_of(variant, base)
    assert (merged.train_batch_size, merged.train_step_ms, merged.energy_per_train_sample_j) == (
        base.train_batch_size, base.train_step_ms, base.energy_per_train_sample_j)
    assert merged.energy_per_inference_j == variant.energy_per_inference_j
    assert "the fp32 measurement's training figures" in merged.assumptions


@pytest.mark.parametrize(("precision", "jobs"), [("fp32", ["", INT8_DYNAMIC]), ("bf16", [""])])
def test_the_int8_variant_is_planned_only_for_an_fp32_node(precision, jobs):
    answer = SimpleNamespace(settings=MeasuringSettings(window_s=1.0, train_batch_size=8, precision=precision))
    candidate = msg.ModelCandidate(name="tiny-mlp", library="torch",
                                   variants=[msg.GreenerVariant(name=INT8_DYNAMIC)])
    model = SimpleNamespace(library="torch", fingerprint="0123456789abcdef")   # what its builder builds
    planned = TaskMeasuring._jobs(answer, candidate, model, "cpu")
    assert [job.variant for job in planned] == jobs
    assert all(job.model is model for job in planned)   # a variant keys its stored figures on its model's builder
    assert [job.variant for job in TaskMeasuring._jobs(answer, candidate, model, "cuda:0")] == [""]
