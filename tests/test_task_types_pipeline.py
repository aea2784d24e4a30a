"""One free-text problem per task type through `sustainml submit` on the real pipeline: the encoder
reads the type, size and region from the words alone; the provider proposes models of that type, each
with its reason and greener variants with their expected effect on quality; the hardware node measures
them for real. Models are restricted to the smallest of each type so that CI measures in minutes; the
provider's full proposals per type are checked in tests/test_model_provider.py."""

import json
import subprocess
import sys
from pathlib import Path

PROBLEMS = {
    "image_classification": ("sort photos of seabed organisms into species, 30k images, trained in France",
                             ["squeezenet1_1"]),
    "object_detection": ("find and box every pedestrian in dashcam frames, 10k frames, in Germany", ["yolos_tiny"]),
    "text_classification": ("tell whether customer reviews are positive or negative, 50k reviews, in Ireland",
                            ["bert_tiny"]),
    "text_generation": ("write short replies to customer emails, 20k emails, in Sweden", ["distilgpt2"]),
    "tabular_classification": ("predict whether a customer will churn from their account table, 100k rows, "
                               "in Spain", ["logistic_regression", "decision_tree_classifier"]),
    "tabular_regression": ("estimate the sale price of houses from a spreadsheet of their features, 20k rows, "
                           "in Germany", ["tabular_mlp", "ridge_regression"]),
    "time_series_forecasting": ("forecast electricity demand for the next day from hourly meter data, "
                                "17k readings, in Germany", ["dlinear"]),
}


def test_every_task_type_from_free_text_gets_candidates_reasons_and_greener_variants(
        shared_pipeline, tmp_path: Path):
    # The shared pipeline gives stages 600 s and training steps 2 samples (conftest.SHARED_PIPELINE_PARAMS):
    # seven tasks measure at once here.
    runs = {}
    for task_type, (text, models) in PROBLEMS.items():
        path = tmp_path / f"{task_type}.json"
        path.write_text(json.dumps({"text": text, "models": models, "usage": {"requests_per_day": 1000,
                                                                               "horizon_days": 365}}))
        runs[task_type] = subprocess.Popen(
            [sys.executable, "-m", "sustainml.cli", "submit", "--json", "--quiet", "--timeout", "900", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for task_type, run in runs.items():
        out, err = run.communicate(timeout=1200)
        assert run.returncode == 0, f"{task_type}: {err}"
        result = json.loads(out)
        assert result["task_type"] == task_type, result["explanation"]
        candidates = result["candidates"]
        assert sorted(c["name"] for c in candidates) == sorted(PROBLEMS[task_type][1])
        for c in candidates:
            assert c["task_type"] == task_type and c["reason"], c
            assert c["variants"], f"{c['name']} has no greener variant"
            for v in c["variants"]:
                assert v["kind"] and v["name"] and v["quality_effect"] and v["evidence"], v
        options = result["options"]
        assert options and {o["model"].partition("+")[0] for o in options} <= set(PROBLEMS[task_type][1])
        assert all(o["energy_method"] and o["co2_g"]["total"] > 0 for o in options)
