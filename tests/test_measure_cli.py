"""``sustainml measure``, run as a user runs it: a subprocess, its output and its exit code; and the
precision it passes to measure(), on real models.

On this CPU-only machine the energy is the declared CPU estimate; the models are real torch models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sustainml.exceptions import MeasurementError
from sustainml.msg import JobMeasurement
from sustainml.energy_estimate import EstimateEnergySource
from sustainml_nodes.hw_constraints.measure import measure
from sustainml.models.workload import Workload

ROOT = Path(__file__).resolve().parent.parent
SUSTAINML = [sys.executable, "-m", "sustainml.cli"]

pytestmark = pytest.mark.slow   # each test runs a real measurement or the CLI that loads torch


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SUSTAINML_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("SUSTAINML_CONFIG", raising=False)
    return tmp_path / "store"


def sustainml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SUSTAINML, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=os.environ)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    return lines[0]


def test_measure_prints_the_measurement_as_json(store: Path) -> None:
    done = sustainml("measure", "tabular_mlp", "--json", "--window", "0.2", "--batch", "4", "--train")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures) == {f for f in JobMeasurement.__dataclass_fields__}
    assert (figures["model"], figures["device"], figures["precision"]) == ("tabular_mlp", "cpu", "fp32")
    assert figures["batch_size"] == 4 and figures["train_batch_size"] == 4
    assert figures["energy_method"] == "estimate" and "estimate" in figures["assumptions"]
    assert figures["energy_per_inference_j"] > 0 and figures["energy_per_inference_uncertainty_j"] > 0
    assert figures["energy_per_train_sample_j"] > 0 and figures["energy_per_train_sample_uncertainty_j"] > 0
    assert figures["latency_p95_ms"] >= figures["latency_p50_ms"] > 0
    assert not figures["cached"]
    assert (store / "measurements.sqlite3").is_file()

    again = sustainml("measure", "tabular_mlp", "--json", "--window", "0.2", "--batch", "4", "--train")
    assert again.returncode == 0, again.stderr
    cached = json.loads(again.stdout)
    assert cached["cached"] and cached["latency_p50_ms"] == figures["latency_p50_ms"]


def test_estimate_only_gives_the_pre_run_estimate_and_a_training_run(store: Path) -> None:
    done = sustainml("measure", "tabular_mlp", "--estimate-only", "--train", "--batch", "32", "--samples", "1000",
                     "--epochs", "2", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == {"estimate"}  # nothing was measured
    estimate = document["estimate"]
    assert estimate["calibration"]["energy_method"] == "estimate" and estimate["calibration"]["flop_per_s"] > 0
    assert estimate["inference"]["method"] == "estimate-flops" and estimate["inference"]["latency_ms"] > 0
    assert estimate["training"]["energy_j_per_sample"] > estimate["inference"]["energy_j_per_sample"]
    run = estimate["training_run"]
    assert run["steps"] == 2 * 32  # 2 epochs × ceil(1000 / 32)
    assert run["energy_j"] == pytest.approx(run["steps"] * estimate["training"]["energy_j"])

    table = sustainml("measure", "tabular_mlp", "--estimate", "--window", "0.2")
    assert table.returncode == 0, table.stderr
    assert "pre-run estimate (estimate-flops), not a measurement" in table.stdout
    assert "difference" in table.stdout and "energy method: estimate" in table.stdout


def test_measure_prints_a_table_with_method_and_uncertainty(store: Path) -> None:
    done = sustainml("measure", "tabular_mlp", "--window", "0.2", "--precision", "bf16")
    assert done.returncode == 0, done.stderr
    assert "tabular_mlp on cpu" in done.stdout and "bf16" in done.stdout
    assert "energy per inference" in done.stdout and "±" in done.stdout
    assert "energy method: estimate" in done.stdout and "assumptions:" in done.stdout
    assert "training step" not in done.stdout  # no --train


def test_an_unknown_model_is_one_line_listing_the_known_ones(store: Path) -> None:
    done = sustainml("measure", "resnet19", "--json")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "unknown model 'resnet19'" in line and "resnet18" in line and "tabular_mlp" in line
    assert done.stdout == ""


def test_a_gpu_this_machine_lacks_is_one_readable_line(store: Path) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # cuda:0 here, where there is no GPU
    done = sustainml("measure", "tabular_mlp", "--device", missing)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert missing in line and ("no CUDA GPU" in line or "does not exist" in line)


def test_a_malformed_option_is_a_usage_error(store: Path) -> None:
    assert sustainml("measure", "tabular_mlp", "--device", "tpu").returncode == 2
    assert sustainml("measure", "tabular_mlp", "--batch", "0").returncode == 2
    assert sustainml("measure", "tabular_mlp", "--precision", "int3").returncode == 2


class DeterminantHead(torch.nn.Module):
    """A real model whose last operator (a 2×2 determinant, LU on the CPU) has no fp16 CPU kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.det(self.linear(x).reshape(-1, 2, 2)).unsqueeze(1)


def determinant_workload() -> Workload:
    torch.manual_seed(0)
    return Workload(name="det-head", module=DeterminantHead(), inputs=lambda n: torch.randn(n, 8),
                    targets=lambda n: torch.randn(n, 1), loss=torch.nn.functional.mse_loss)


def test_the_precision_is_applied_to_a_copy_of_the_weights_and_to_the_inputs() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    workload = Workload(name="mlp", module=module, inputs=lambda n: torch.randn(n, 8),
                        targets=lambda n: torch.randn(n, 1), loss=torch.nn.functional.mse_loss)
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    module.register_forward_pre_hook(lambda m, args: seen.append((args[0].dtype, m[0].weight.dtype)))
    result = measure(workload, "cpu", model_name="mlp", host="h", precision="bf16", window_s=0.1,
                     train_batch_size=2, source=EstimateEnergySource())
    assert result.precision == "bf16" and result.energy_per_inference_j > 0 and result.train_step_ms > 0
    assert set(seen) == {(torch.bfloat16, torch.bfloat16)}  # inputs and weights, inference and training
    assert module[0].weight.dtype == torch.float32  # the caller's module is untouched


def test_a_precision_without_kernels_is_a_clear_measurement_error() -> None:
    with pytest.raises(MeasurementError) as raised:
        measure(determinant_workload(), "cpu", model_name="det-head", host="h", precision="fp16", window_s=0.1,
                train_batch_size=0, source=EstimateEnergySource())
    text = str(raised.value)
    assert "det-head" in text and "fp16" in text and "try fp32" in text
    assert "\n" not in text
    with pytest.raises(ValueError, match="expected one of fp32, bf16, fp16"):
        measure(determinant_workload(), "cpu", model_name="det-head", host="h", precision="int8")
