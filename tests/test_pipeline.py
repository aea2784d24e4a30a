"""The whole pipeline as a user runs it: five node processes on real DDS (loopback, private domain),
problems submitted through the client API and the CLI."""

import json
import subprocess
import sys

import pytest

from sustainml import Client, msg
from sustainml.exceptions import InvalidProblem, TaskFailed

from conftest import ROOT

TABULAR = {
    "text": "predict tool wear from CNC sensor data",
    "task_type": "tabular_regression",
    "dataset": {"num_samples": 20000, "num_features": 8},
    "usage": {"requests_per_day": 1000, "horizon_days": 30},
    "train_region": "DEU",
    "alternative_regions": ["FRA"],
}


def test_tabular_problem_gives_ranked_options(shared_pipeline):
    with Client() as client:
        task = client.submit(TABULAR)
        statuses = list(task.progress(timeout_s=300))
        result = task.result(timeout_s=60)
    assert statuses[-1].state == msg.TaskState.TASK_DONE
    assert result.state == msg.TaskState.TASK_DONE
    assert result.task_type == "tabular_regression"
    models = {o.model for o in result.options}
    assert len(models) >= 3
    assert {o.region for o in result.options} == {"DEU", "FRA"}
    assert any(o.pareto for o in result.options)
    assert sorted(o.rank for o in result.options) == list(range(1, len(result.options) + 1))
    for o in result.options:
        assert o.energy_per_inference_j > 0
        assert o.energy_method == "estimate"   # no RAPL, no GPU on this machine
        kwh = o.energy_per_inference_j * 1000 * 30 / 3.6e6 * o.pue
        assert o.inference_co2_g == pytest.approx(kwh * o.intensity_g_per_kwh, rel=1e-6)


def test_services_answer_direct_queries(shared_pipeline):
    with Client() as client:
        catalogue = client.catalogue("image_classification")
        inventories = client.inventory()
        encoded = client.encode({"text": "classify photos of welds", "dataset": {"num_samples": 100},
                                 "train_region": "Germany"})
        with pytest.raises(InvalidProblem, match="no task with problem id"):
            client.history(problem_id="nope")
    assert {m.name for m in catalogue} >= {"resnet18", "mobilenet_v2"}
    assert all(m.task_type == "image_classification" and m.quality_source for m in catalogue)
    assert len(inventories) == 1 and inventories[0].devices[0].id == "cpu"
    assert inventories[0].devices[0].energy_method in ("rapl", "estimate")
    assert encoded.task_type == "image_classification" and encoded.metric == "top1_accuracy"


@pytest.mark.slow
def test_a_node_stops_cleanly_on_sigterm(dds):
    proc = subprocess.Popen([sys.executable, "-m", "sustainml.cli", "node", "task_encoder"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if " ready on " in line:
                break
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "shutting down" in out


def test_submit_json_against_the_launched_pipeline(shared_pipeline, tmp_path):
    done = subprocess.run([sys.executable, "-m", "sustainml.cli", "submit",
                           str(ROOT / "examples" / "tool_wear_tabular.yaml"), "--json", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "done" and data["error"] == ""
    assert data["task_id"]["iteration"] == 1
    assert any(o["pareto"] for o in data["options"])
    for o in data["options"]:
        assert o["energy_per_inference_j"] > 0 and o["energy_method"] == "estimate"
        co2 = o["co2_g"]
        assert co2["total"] == pytest.approx(co2["experimentation"] + co2["training"] + co2["inference"]
                                             + co2["embodied"])
        assert 0 < co2["embodied"] < co2["total"] and sum(o["shares"].values()) == pytest.approx(1.0)
        assert o["sci_g_per_request"] > o["embodied_g_per_request"] > 0
        greener = [a for a in o["alternatives"] if a["kind"] == "region"]
        assert len(greener) == 3 if o["region"] == "DEU" else len(greener) <= 3
        assert all(a["saving_g"] > 0 for a in greener)
        assert [a["total_co2_g"] for a in greener] == sorted(a["total_co2_g"] for a in greener)
        assert o["pue_source"] and o["intensity_year"] and o["equivalents"]
        inference_kwh = o["energy_per_inference_j"] * 100000 * 730 / 3.6e6 * o["pue"]
        assert o["co2_g"]["inference"] == pytest.approx(inference_kwh * o["intensity_g_per_kwh"], rel=1e-6)
