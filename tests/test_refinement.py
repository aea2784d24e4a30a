"""An answer in seconds, refined by measurement, on the real pipeline: the estimates come first, the
measurements follow within the task's budget, a slow but working measurement is never taken for a
silent node, a cancelled task stops the hardware node, and an iteration that changes only the region
measures nothing new.

One pipeline for the module (its start is the slow part), with a deliberately slow model added the way
a user adds one: a catalogue extension file. It is an MLP of six 4096-wide layers served in batches of
a few hundred rows, so one inference pass takes about a second on a 2-core CPU, longer than the
metered window's share of one pass, and the whole measurement (two windows of 3 s) lasts longer than
the orchestrator's stage timeout (5 s here). Each test uses its own
batch size, so no test answers from another's stored measurement. No GPU or RAPL here: energy is the
CPU's declared estimate, as on CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sustainml import Client, msg
from sustainml.bus import Gone

from conftest import ROOT, RunningPipeline, fast_pipeline

SUSTAINML = [sys.executable, "-m", "sustainml.cli"]

pytestmark = pytest.mark.pipeline

SLOW_CATALOGUE = textwrap.dedent("""\
    models:
      - name: slow_mlp
        display_name: Slow MLP (test)
        family: Wide MLP
        task_type: tabular_regression
        modality: tabular
        builder: {kind: zoo, name: tabular_mlp, params: {d_layers: [4096, 4096, 4096, 4096, 4096, 4096], dropout: 0.0}}
        input_shape: [8]
        params: null
        published_gmacs: null
        quality: {metric: rmse, value: 0.45, higher_is_better: false, benchmark: California Housing test,
                  source: a made-up figure for a test model, source_url: https://example.org/test}
        licence: MIT
        default_epochs: 1
        default_batch_size: 256
    """)

STAGE_TIMEOUT_S = 5.0
#: The metered window: each phase of a measurement lasts at least this long, so a slow model's whole
#: measurement outlasts the stage timeout while its passes (about a second) keep reporting progress.
WINDOW_S = 3.0


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPipeline]:
    """One pipeline with the slow model in its catalogue, a short stage timeout and short windows."""
    from conftest import _domains  # the suite's domain counter: never the domain of another test

    folder = tmp_path_factory.mktemp("refinement")
    extra = folder / "slow.yaml"
    extra.write_text(SLOW_CATALOGUE)
    domain = 1 + next(_domains) % 230
    with pytest.MonkeyPatch.context() as mp:
        for name in ("CYCLONEDDS_URI", "SUSTAINML_DDS_CONFIG", "SUSTAINML_CONFIG"):
            mp.delenv(name, raising=False)
        mp.setenv("SUSTAINML_DOMAIN_ID", str(domain))
        mp.setenv("SUSTAINML_DISCOVERY_TAG", f"test-{os.getpid()}-{domain}")
        mp.setenv("SUSTAINML_STORE_DIR", str(folder / "store"))
        mp.setenv("SUSTAINML_CATALOGUE_EXTRA", str(extra))
        pipeline = RunningPipeline(fast_pipeline(
            orchestrator={"stage_timeout_s": str(STAGE_TIMEOUT_S)},
            hw_constraints={"train_batch_size": "1", "window_s": str(WINDOW_S)})).start()
        try:
            yield pipeline
        finally:
            pipeline.stop()


@pytest.fixture(scope="module")
def client(running: RunningPipeline) -> Iterator[Client]:
    with Client() as c:
        yield c


def problem(batch: int, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "text": "predict tool wear from CNC sensor data", "task_type": "tabular_regression",
        "dataset": {"num_samples": 2000, "num_features": 8}, "models": ["slow_mlp", "tabular_mlp"],
        "usage": {"requests_per_day": 1000, "horizon_days": 30, "batch_size": batch}, "train_region": "DEU",
    }
    data.update(changes)
    return data


def options_of(result: msg.TaskResult, model: str) -> list[msg.TaskOption]:
    return [o for o in result.options if o.model == model]


def test_a_slow_candidate_is_estimated_first_and_measured_later(client: Client) -> None:
    task = client.submit(problem(256, measurement_budget_s=60))
    revisions = list(task.revisions(timeout_s=180))
    first, final = revisions[0], revisions[-1]
    assert first.state == msg.TaskState.TASK_RUNNING and first.revision == 1, (first.failed_node, first.error)
    assert {o.basis for o in options_of(first, "slow_mlp")} == {"estimated"}
    assert all(o.latency_ms > 0 and o.total_co2_g > 0 for o in first.options), "the first answer is complete"
    assert final.state == msg.TaskState.TASK_DONE and final.revision == revisions[-2].revision + 1
    [slow] = options_of(final, "slow_mlp")
    assert slow.basis == "measured", "\n".join([final.measuring_note, final.explanation[-700:]])
    assert final.measuring_s > 0 and final.measuring_energy_j > 0 and final.measuring_co2_g > 0
    assert "measured" in final.measuring_note


def test_a_tiny_budget_ends_done_with_estimates_and_the_reason(client: Client) -> None:
    result = client.submit(problem(64, measurement_budget_s=0.3)).result(timeout_s=120)
    assert result.state == msg.TaskState.TASK_DONE
    assert result.options and {o.basis for o in result.options} == {"estimated"}
    assert all("not measured" in o.note and "budget" in o.note for o in result.options), \
        [o.note for o in result.options]
    assert result.measuring_note.split(": ", 1)[1].startswith("0 measured"), result.measuring_note


def test_a_slow_but_progressing_measurement_never_trips_the_stage_timeout(client: Client) -> None:
    result = client.submit(problem(200, models=["slow_mlp"], measurement_budget_s=60)).result(timeout_s=180)
    assert result.state == msg.TaskState.TASK_DONE
    [slow] = options_of(result, "slow_mlp")
    assert slow.basis == "measured", slow.note
    # It took longer than the stage timeout; a silent node would have been cut short after it.
    assert result.measuring_s > STAGE_TIMEOUT_S
    assert "cut short" not in result.explanation


def test_cancelling_a_task_stops_the_hardware_nodes_measuring(client: Client) -> None:
    statuses: list[msg.NodeStatus] = []
    changed = threading.Condition()

    def on_node(status: msg.NodeStatus | Gone) -> None:
        if isinstance(status, msg.NodeStatus) and status.kind == "hw_constraints":
            with changed:
                statuses.append(status)
                changed.notify_all()

    client.on_node(on_node)
    task = client.submit(problem(300, models=["slow_mlp"], measurement_budget_s=120))
    mine = task.task_id.problem_id

    def measuring() -> bool:
        return any(s.task_id.problem_id == mine and s.state == msg.NodeState.NODE_BUSY
                   and "measuring slow_mlp" in s.message for s in statuses)

    with changed:
        assert changed.wait_for(measuring, timeout=60), "the hardware node never started measuring"
    task.cancel("test: stop measuring")

    def stopped() -> bool:
        return any(s.task_id.problem_id == mine and s.state == msg.NodeState.NODE_IDLE and "stopped" in s.message
                   for s in statuses)

    with changed:
        assert changed.wait_for(stopped, timeout=10), [(s.state, s.message) for s in statuses[-5:]]
    assert task.result(timeout_s=10, raise_on_failure=False).state == msg.TaskState.TASK_CANCELLED


def test_an_iteration_changing_only_the_region_measures_nothing_new(client: Client) -> None:
    first = client.submit(problem(32, models=["tabular_mlp"])).result(timeout_s=120)
    assert any(o.basis == "measured" for o in first.options)
    again = client.submit(problem(32, models=["tabular_mlp"], train_region="FRA"),
                          problem_id=first.task_id.problem_id)
    second = again.result(timeout_s=60)
    assert second.task_id.iteration == 2 and second.state == msg.TaskState.TASK_DONE
    assert {o.basis for o in second.options} <= {"reused", "estimated"}
    assert "reused" in {o.basis for o in second.options}
    assert second.measuring_s == 0.0 and second.measuring_energy_j == 0.0
    assert {o.region for o in second.options} >= {"FRA"}
    # The problem kept is the one submitted, so that a third iteration can measure again.
    assert not second.problem.reuse_only


def test_the_cli_shows_the_first_answer_then_each_refinement_then_the_final_one(
        client: Client, tmp_path: Path) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(yaml.safe_dump(problem(16)))
    first = subprocess.run([*SUSTAINML, "submit", str(path), "--first", "--json", "--budget", "20"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert (answer["status"], answer["final"], answer["revision"]) == ("running", False, 1)
    assert {o["basis"] for o in answer["options"]} == {"estimated"}
    assert answer["problem"]["measurement_budget_s"] == 20
    # The task goes on refining in the pipeline: its final result comes without the CLI.
    final = client.wait_result(msg.TaskId(**answer["task_id"]), timeout_s=120)
    assert final.state == msg.TaskState.TASK_DONE and final.revision > 1

    path.write_text(yaml.safe_dump(problem(17, models=["tabular_mlp"])))
    shown = subprocess.run([*SUSTAINML, "submit", str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert "first answer (revision 1)" in shown.stdout and "final answer" in shown.stdout

    bad = subprocess.run([*SUSTAINML, "submit", str(path), "--budget", "-3"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("sustainml: --budget -3: give a positive number")
