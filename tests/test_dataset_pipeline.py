"""A dataset named in a problem, through the real pipeline: the task encoder profiles it, the profile
and the encoder's findings come back in the result, and bad files fail the task with one clear line."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sustainml import Client, msg
from sustainml.exceptions import TaskFailed

from conftest import ROOT, RunningPipeline, fast_pipeline, private_domain, use_environment

TOOL_WEAR = ROOT / "examples" / "data" / "cnc_tool_wear.csv"

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("datasets") / "data"
    folder.mkdir()
    pd.read_csv(TOOL_WEAR).head(600).to_csv(folder / "wear.csv", index=False)
    (folder / "empty.csv").touch()
    (folder / "photo.csv").write_bytes(bytes(range(256)) * 4)
    (folder.parent / "elsewhere.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.fixture(scope="module")
def pipeline_with_data(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """One pipeline for this module's tests (they only submit and read), in a DDS domain of its own."""
    with pytest.MonkeyPatch.context() as mp:
        use_environment(mp, private_domain(tmp_path_factory.mktemp("store")))
        running = RunningPipeline(fast_pipeline(task_encoder={"data_dir": str(data_dir),
                                                              "max_dataset_mb": "1"})).start()
        try:
            yield running
        finally:
            running.stop()


def problem(path: str) -> dict:
    return {"text": "predict flank wear of the cutting tool from CNC sensor readings, in Germany",
            "dataset": {"path": path}, "models": ["tabular_mlp"]}


def test_the_profile_and_the_encoders_findings_come_back_in_the_result(pipeline_with_data, tmp_path):
    out = subprocess.run([sys.executable, "-m", "sustainml.cli", "submit", "--json", "--quiet",
                          str(write_problem(tmp_path, problem("wear.csv")))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    profile = result["dataset_profile"]
    assert (profile["format"], profile["rows"], profile["columns"]) == ("csv", 600, 9)
    assert profile["target_column"] == "flank_wear_mm" and profile["sample_shape"] == [8]
    assert profile["missing_values"] > 0 and "600 rows x 9 columns" in profile["summary"]
    assert result["task_type"] == "tabular_regression"
    fields = {f["field"] for f in result["findings"]}
    assert {"train_region", "dataset.num_samples"} <= fields   # "in Germany"; 600 rows from the profile
    assert [c["name"] for c in result["candidates"]] == ["tabular_mlp"]
    assert result["candidates"][0]["reason"]


BAD_PATHS = {
    "empty.csv": "'empty.csv' is empty (0 bytes)",
    "photo.csv": "'photo.csv' is not a text CSV (binary data at byte 0)",
    "../elsewhere.csv": "'../elsewhere.csv' is outside the allowed data folder",
}


def test_bad_dataset_paths_fail_the_task_with_one_clear_line(pipeline_with_data):
    with Client() as client:
        tasks = {path: client.submit(problem(path)) for path in BAD_PATHS}   # all at once, one pipeline
        for path, error in BAD_PATHS.items():
            with pytest.raises(TaskFailed) as failed:
                tasks[path].result(timeout_s=60)
            result = failed.value.result
            assert result.state == msg.TaskState.TASK_FAILED and result.failed_node == "task_encoder"
            assert error in result.error and "\n" not in result.error


def write_problem(folder: Path, data: dict) -> Path:
    path = folder / "problem.json"   # JSON is YAML
    path.write_text(json.dumps(data))
    return path
