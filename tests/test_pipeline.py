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


def test_tabular_problem_gives_ranked_options(pipeline):
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
        assert o.energy_j_per_inference > 0
        assert o.energy_method == "estimate"   # no RAPL, no GPU on this machine
        kwh = o.energy_j_per_inference * 1000 * 30 / 3.6e6 * o.pue
        assert o.co2_g_inference == pytest.approx(kwh * o.intensity_g_per_kwh, rel=1e-6)
