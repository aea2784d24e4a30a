"""What a user sees when things go wrong: bad files, impossible constraints, a node killed mid-task,
a cancelled task, an orchestrator restart, a node that cannot start. Real processes, real DDS."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sustainml import Client, msg
from sustainml.exceptions import TaskFailed

from conftest import ROOT, RunningPipeline, fast_pipeline

SUSTAINML = [sys.executable, "-m", "sustainml.cli"]

IMAGES = {
    "text": "classify photos of seabed organisms",
    "task_type": "image_classification",
    "dataset": {"num_samples": 30000, "num_classes": 20},
    "usage": {"requests_per_day": 100, "horizon_days": 30},
    "train_region": "FRA",
    "models": ["resnet18", "mobilenet_v2", "squeezenet1_1"],
}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SUSTAINML, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def one_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("sustainml: ")
    return lines[0]


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("text: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("text: x\ncolour: blue\n", "unknown key 'colour'"),
    ("text: x\nusage: {requests_per_day: many}\n", "'usage.requests_per_day' must be a number"),
    ("text: x\nconstraints: {max_latency_ms: -5}\n", "must not be negative"),
    ("train_region: DEU\n", "give 'text'"),
])
def test_malformed_problem_file_gives_one_line_and_exit_2(tmp_path: Path, content, expected):
    path = tmp_path / "problem.yaml"
    if content is not None:
        path.write_text(content)
    done = run_cli("submit", str(path), "--timeout", "5")
    assert done.returncode == 2
    assert expected in one_line(done.stderr)


def test_impossible_constraints_fail_with_the_node_that_refused(shared_pipeline, tmp_path: Path):
    cases = [
        ({**IMAGES, "constraints": {"quality_target": 0.99}}, "model_provider", "reaches top1_accuracy"),
        ({**IMAGES, "constraints": {"quality_target": 90}}, "task_encoder", "0.9"),
        ({**IMAGES, "train_region": "Germny"}, "task_encoder", "Germany"),
        ({**IMAGES, "usage": {"requests_per_day": 100, "horizon_days": 0}}, "task_encoder", "horizon_days"),
    ]
    with Client() as client:
        for problem, node, words in cases:
            with pytest.raises(TaskFailed) as failure:
                client.submit(problem).result(timeout_s=60)
            result = failure.value.result
            assert result.state == msg.TaskState.TASK_FAILED
            assert result.failed_node == node, result
            assert words in result.error
    # and the CLI: one readable line, exit 3
    path = tmp_path / "impossible.yaml"
    path.write_text(json.dumps({**IMAGES, "constraints": {"quality_target": 0.99}}))
    done = run_cli("submit", str(path), "--quiet")
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert "failed (node model_provider)" in line and "quality_target" in line


def _hw_busy_on(client: Client, task_id: msg.TaskId):
    for status in client.nodes(wait_s=0):
        if status.kind == "hw_constraints" and status.state == msg.NodeState.NODE_BUSY \
                and status.task_id.problem_id == task_id.problem_id:
            return status
    return None


def test_sigkill_of_the_hardware_node_mid_task_is_survived(pipeline):
    with Client() as client:
        task = client.submit(IMAGES)
        busy = wait_for(lambda: _hw_busy_on(client, task.task_id), 60, "the hardware node to start measuring")
        pid = pipeline.launcher.pid_of("hw_constraints")
        os.kill(pid, signal.SIGKILL)
        # the orchestrator and every client learn it is down within the liveliness lease (3 s)
        wait_for(lambda: busy.node not in {n.node for n in client.nodes(wait_s=0)}, 6, "the node to be seen down")
        pipeline.wait_line("hw_constraints", "respawning", timeout_s=10)
        result = task.result(timeout_s=240, raise_on_failure=False)
    # either it completed after the respawn, or it failed naming the node; never a hang
    if result.state == msg.TaskState.TASK_DONE:
        assert {o.model for o in result.options} == set(IMAGES["models"])
    else:
        assert "hw_constraints" in result.failed_node, result
    assert "re-sending the inputs of task" in pipeline.log("orchestrator")


def test_cancel_stops_the_work_and_reports_cancelled(pipeline):
    with Client() as client:
        task = client.submit(IMAGES)
        wait_for(lambda: _hw_busy_on(client, task.task_id), 60, "the hardware node to start measuring")
        task.cancel("changed my mind")
        result = task.result(timeout_s=30, raise_on_failure=False)
        assert result.state == msg.TaskState.TASK_CANCELLED
        assert "changed my mind" in result.error
        # the hardware node stops within one measurement phase and goes idle
        wait_for(lambda: not _hw_busy_on(client, task.task_id), 30, "the hardware node to stop")
    pipeline.wait_line("hw_constraints", "cancelled", timeout_s=10)


def test_orchestrator_restart_resumes_unfinished_tasks_and_keeps_history(pipeline):
    tabular = {"text": "predict tool wear", "task_type": "tabular_regression",
               "dataset": {"num_samples": 1000}, "train_region": "DEU"}
    with Client() as client:
        first = client.submit(tabular).result(timeout_s=120)
        task = client.submit(IMAGES)
        wait_for(lambda: _hw_busy_on(client, task.task_id), 60, "the hardware node to start measuring")
        os.kill(pipeline.launcher.pid_of("orchestrator"), signal.SIGKILL)
        pipeline.wait_line("orchestrator", "resuming task " + task.task_id.problem_id, timeout_s=60)
        result = task.result(timeout_s=240)
        assert result.state == msg.TaskState.TASK_DONE
        history = client.history(limit=10)
    ids = [(r.task_id.problem_id, r.task_id.iteration) for r in history]
    assert (first.task_id.problem_id, 1) in ids and (task.task_id.problem_id, 1) in ids


def test_iteration_reuses_cached_measurements(shared_pipeline):
    tabular = {"text": "predict tool wear", "task_type": "tabular_regression",
               "dataset": {"num_samples": 1000}, "train_region": "DEU"}
    with Client() as client:
        first = client.submit(tabular).result(timeout_s=120)
        second = client.submit({**tabular, "train_region": "FRA"},
                               problem_id=first.task_id.problem_id).result(timeout_s=120)
    assert second.task_id.problem_id == first.task_id.problem_id
    assert second.task_id.iteration == 2
    assert {o.region for o in second.options} == {"FRA"}
    # Only the region changed: every figure is a stored measurement, or the estimate that stayed one
    # (dominated, or past the budget) with its reason; nothing was measured anew.
    assert {o.basis for o in second.options} <= {"reused", "estimated"}
    assert all("reused" in o.note for o in second.options if o.basis == "reused"), second.options[0].note
    assert all("not measured" in o.note for o in second.options if o.basis == "estimated")
    assert second.measuring_s == 0.0


def test_status_topics_and_echo(shared_pipeline):
    done = run_cli("status", "--json")
    assert done.returncode == 0, done.stderr
    kinds = {n["kind"] for n in json.loads(done.stdout)}
    assert kinds == {"orchestrator", "task_encoder", "model_provider", "hw_constraints", "carbon_tracker"}
    done = run_cli("topics")
    assert "sustainml/v3/task_result" in done.stdout and "TaskResult" in done.stdout
    echo = subprocess.Popen([*SUSTAINML, "echo", "task_status", "--count", "1", "--timeout", "60"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    with Client() as client:
        client.submit({"text": "x", "task_type": "tabular_regression", "dataset": {"num_samples": 10},
                       "train_region": "DEU"}).result(timeout_s=120)
    out, _ = echo.communicate(timeout=60)
    assert json.loads(out.splitlines()[0])["task_id"]["problem_id"]


@pytest.mark.slow
def test_launch_fails_with_one_clear_line_when_a_node_cannot_start(dds, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - name: broken\n    cmd: [%s, -c, 'import sys; print(\"no GPU\"); sys.exit(3)']\n"
                   % sys.executable)
    done = run_cli("launch", str(bad), timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        "sustainml launch: node broken could not start (3 attempts, last exit code 3): no GPU"
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("nodes:\n  - node: teleporter\n")
    done = run_cli("launch", str(unknown))
    assert done.returncode == 2
    assert "unknown node 'teleporter'" in one_line(done.stderr)
