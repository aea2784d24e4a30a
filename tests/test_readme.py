"""The README stays true: its partner-node example replaces the model provider in a real pipeline,
and its documented JSON keys are the ones `sustainml submit --json` prints."""

import re
import sys
from pathlib import Path

import pytest

from sustainml import Client
from sustainml.launch import NodeSpec

from conftest import ROOT, RunningPipeline, fast_pipeline

README = (ROOT / "README.md").read_text()


def readme_block(marker: str) -> str:
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if marker in block:
            return block
    raise AssertionError(f"no python block with {marker!r} in README.md")


@pytest.mark.pipeline
def test_partner_example_replaces_the_model_provider(dds, tmp_path: Path):
    node_file = tmp_path / "my_provider.py"
    node_file.write_text(readme_block("class MyProvider(TaskNode)"))
    description = fast_pipeline()
    description.nodes = [n for n in description.nodes if n.name != "model_provider"]
    description.nodes.append(NodeSpec("my_provider", [sys.executable, "-u", str(node_file)]))
    running = RunningPipeline(description).start()
    try:
        with Client() as client:
            result = client.submit({"text": "predict tool wear", "task_type": "tabular_regression",
                                    "dataset": {"num_samples": 1000}, "train_region": "DEU"}).result(timeout_s=120)
    finally:
        running.stop()
    assert [o.model for o in result.options] == ["tabular_mlp"]
    assert result.options[0].quality.value == 0.5


def test_documented_json_keys_are_printed():
    from sustainml import msg
    from sustainml.report import result_to_dict
    data = result_to_dict(msg.TaskResult(options=[msg.TaskOption()]))
    documented = set(re.findall(r"^\| `\.?([a-z_0-9]+)(?:\[\])?`", README, flags=re.M))
    for key in ("task_id", "status", "error", "explanation", "options"):
        assert key in data and key in documented
    for key in ("model", "device", "host", "region", "quality", "latency_ms", "energy_per_inference_j",
                "train_energy_kwh", "energy_method", "intensity_g_per_kwh", "pue", "co2_g", "pareto", "rank"):
        assert key in data["options"][0]
    assert set(data["options"][0]["co2_g"]) == {"experimentation", "training", "inference", "embodied", "total",
                                                "total_uncertainty"}
    for key in ("shares", "sci_g_per_request", "sci_uncertainty_g_per_request", "embodied_g_per_request",
                "pue_source", "intensity_source", "intensity_year", "alternatives", "equivalents"):
        assert key in data["options"][0] and re.search(rf"`\.{key}(\[\])?`", README), key
    for key in ("stages", "stages_summary", "forecasts"):
        assert key in data and re.search(rf"`{key}(\[\])?`", README), key
