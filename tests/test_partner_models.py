"""Models travel as data: a partner's model provider, written on the bus alone (no node runtime, no
catalogue: tests/partner_provider/partner_provider.py), replaces the project's in a real pipeline and
proposes a model that is in no catalogue, ``partner_mlp``; the hardware node builds it from
``ModelCandidate.builder`` and measures it, and the task ends done with its figures."""

import sys
from pathlib import Path

import pytest
import yaml

from sustainml import Client, msg
from sustainml.launch import load_launch
from sustainml.models.catalogue import default_catalogue

from conftest import ROOT, RunningPipeline

PARTNER = Path(__file__).resolve().parent / "partner_provider" / "partner_provider.py"

pytestmark = pytest.mark.pipeline


@pytest.fixture
def partner_pipeline(dds: dict[str, str], tmp_path: Path):
    """The pipeline of launch/pipeline.yaml with the partner's program in place of the model provider."""
    description = {
        "dds_config": "loopback",
        "nodes": [
            {"node": "orchestrator", "params": {"stage_timeout_s": 120}},
            {"node": "task_encoder"},
            {"cmd": [sys.executable, "-u", str(PARTNER), "partner_provider"], "name": "partner_provider"},
            {"node": "hw_constraints", "params": {"window_s": 0.2, "train_batch_size": 4}},
            {"node": "carbon_tracker"},
        ],
    }
    path = tmp_path / "partner_pipeline.yaml"
    path.write_text(yaml.safe_dump(description))
    running = RunningPipeline(load_launch(path)).start()
    yield running
    running.stop()


def test_a_partners_model_outside_the_catalogue_is_measured(partner_pipeline: RunningPipeline) -> None:
    assert "partner_mlp" not in {e.name for e in default_catalogue()}
    problem = yaml.safe_load((ROOT / "examples" / "tool_wear_tabular.yaml").read_text())
    problem["dataset"]["path"] = str(ROOT / problem["dataset"]["path"])
    with Client() as client:
        task = client.submit(problem)
        result = task.result(timeout_s=240)
    assert result.state == msg.TaskState.TASK_DONE, f"{result.error}\n" + partner_pipeline.log()
    assert [c.name for c in result.candidates] == ["partner_mlp"]
    options = [o for o in result.options if o.model == "partner_mlp"]
    assert options, f"no option for partner_mlp: {result.excluded}\n" + partner_pipeline.log()
    for option in options:
        assert option.basis == "measured", option.note    # real kernels, not an estimate
        assert option.energy_method in ("rapl", "estimate", "nvml")   # as this machine allows, declared
        assert option.energy_per_inference_j > 0 and option.latency_ms > 0
        assert option.train_energy_kwh > 0 and option.total_co2_g > 0
    assert "answered" in partner_pipeline.log("partner_provider")
    assert "unknown model" not in partner_pipeline.log("hw_constraints")
