"""Task encoder logic: what a user writes, what the encoded task says, and every error a user can meet."""

import math
from dataclasses import replace

import pytest

from sustainml import msg
from sustainml.exceptions import ConfigError, InvalidProblem
from sustainml_nodes.task_encoder.encoding import encode, load_knowledge

KNOWN = (
    "image_classification, tabular_regression, object_detection, text_classification, "
    "text_generation, tabular_classification, time_series_forecasting"
)


def problem(**changes) -> msg.UserInput:
    """A complete, valid problem; each test changes what it is about."""
    base = msg.UserInput(
        task_id=msg.TaskId("seabed", 1),
        text="classify photos of seabed organisms",
        dataset=msg.DatasetInfo(description="30k labelled photos", num_samples=30_000, num_classes=12),
        constraints=msg.Constraints(quality_target=0.8, max_latency_ms=50),
        usage=msg.Usage(requests_per_day=2_000, horizon_days=365, batch_size=1),
        epochs=20,
        train_region="DEU",
        inference_region="FRA",
        alternative_regions=["gcp:europe-west1"],
        allowed_hardware=["cpu", "cuda:0"],
        candidate_models=["resnet18"],
    )
    return replace(base, **changes)


def invalid(p: msg.UserInput) -> str:
    with pytest.raises(InvalidProblem) as e:
        encode(p)
    message = str(e.value)
    assert "\n" not in message, "an error is one readable line"
    return message


# ---------------------------------------------------------------- structured fields


def test_a_hint_gives_the_task_type_and_the_rest_is_copied_through():
    p = problem(task_type_hint="image_classification", text="")
    task = encode(p)
    assert (task.task_type, task.modality, task.metric, task.higher_is_better) == (
        "image_classification",
        "image",
        "top1_accuracy",
        True,
    )
    assert task.confidence == 1.0
    assert "given as task_type_hint" in task.explanation
    assert task.task_id == msg.TaskId("seabed", 1)
    assert task.dataset == p.dataset and task.constraints == p.constraints and task.usage == p.usage
    assert task.epochs == 20
    assert (task.train_region, task.inference_region) == ("DEU", "FRA")
    assert task.alternative_regions == ["gcp:europe-west1"]
    assert task.allowed_hardware == ["cpu", "cuda:0"]
    assert task.candidate_models == ["resnet18"]
    assert task.warnings == []  # nothing was assumed


def test_the_encoded_task_does_not_share_state_with_the_input():
    p = problem(task_type_hint="image_classification")
    task = encode(p)
    p.dataset.num_samples = 1
    p.alternative_regions.append("ESP")
    assert task.dataset.num_samples == 30_000
    assert task.alternative_regions == ["gcp:europe-west1"]


def test_tabular_regression_by_hint_uses_rmse_lower_is_better():
    task = encode(
        problem(task_type_hint="tabular_regression", constraints=msg.Constraints(quality_target=2.5))
    )
    assert (task.modality, task.metric, task.higher_is_better) == ("tabular", "rmse", False)
    assert task.constraints.quality_target == 2.5  # an RMSE ceiling in target units, not a fraction


def test_a_hint_is_read_in_a_human_spelling():
    assert encode(problem(task_type_hint="Tabular Regression")).task_type == "tabular_regression"


def test_the_explanation_names_the_regions_and_their_intensities():
    explanation = encode(problem()).explanation
    assert "Training in Germany [DEU]" in explanation
    assert "Serving in France [FRA]" in explanation
    assert "gcp:europe-west1" in explanation and "gCO2e/kWh" in explanation


# ---------------------------------------------------------------- inference from text


def test_image_classification_is_inferred_from_the_goal():
    task = encode(
        problem(text="Classify photos of seabed organisms", dataset=msg.DatasetInfo(num_samples=30_000))
    )
    assert (task.task_type, task.modality, task.metric, task.higher_is_better) == (
        "image_classification",
        "image",
        "top1_accuracy",
        True,
    )
    assert 0 < task.confidence < 1
    assert "'classify'" in task.explanation and "'photo'" in task.explanation
    assert any("inferred from the text" in w and "task_type_hint" in w for w in task.warnings)


def test_tabular_regression_is_inferred_from_the_goal():
    task = encode(problem(text="predict tool wear from CNC sensor data"))
    assert (task.task_type, task.modality, task.metric, task.higher_is_better) == (
        "tabular_regression",
        "tabular",
        "rmse",
        False,
    )
    assert "'wear'" in task.explanation and "'sensor'" in task.explanation


def test_the_dataset_description_counts_as_text():
    p = problem(
        text="sort them by species",
        dataset=msg.DatasetInfo(description="30k labelled pictures", num_samples=30_000),
    )
    assert encode(p).task_type == "image_classification"


def test_more_cues_give_more_confidence():
    weak = encode(problem(text="classify these", modality_hint="image"))
    strong = encode(problem(text="classify camera images of species into categories", modality_hint="image"))
    assert weak.task_type == strong.task_type == "image_classification"
    assert weak.confidence < strong.confidence <= 1


def test_other_known_task_types_are_encoded_with_a_warning():
    task = encode(problem(text="find where the fish are in the pictures and draw bounding boxes"))
    assert (task.task_type, task.metric) == ("object_detection", "box_map")
    assert any("no models for it yet" in w for w in task.warnings)


def test_a_modality_hint_that_contradicts_the_task_type_is_flagged():
    task = encode(problem(task_type_hint="image_classification", modality_hint="tabular"))
    assert any("modality_hint 'tabular' ignored" in w for w in task.warnings)


def test_nothing_to_infer_from_asks_for_a_hint():
    message = invalid(problem(text="hello there", dataset=msg.DatasetInfo(num_samples=10)))
    assert message == (
        "the task type could not be inferred from the text 'hello there': "
        f"set task_type_hint to one of {KNOWN}"
    )


def test_an_ambiguous_text_asks_for_a_hint():
    message = invalid(problem(text="classify these", dataset=msg.DatasetInfo(num_samples=10)))
    assert "fits image_classification, text_classification, tabular_classification equally well" in message
    assert "set task_type_hint" in message


def test_an_unknown_hint_lists_the_known_names():
    assert invalid(problem(task_type_hint="segmentation")) == (
        f"task_type_hint 'segmentation' is not a known task type: use one of {KNOWN}"
    )


def test_an_unknown_modality_hint_lists_the_known_modalities():
    assert (
        "modality_hint 'audio' is not a known modality: use one of image, tabular, text, time_series"
        in invalid(problem(modality_hint="audio"))
    )


def test_the_knowledge_file_names_every_task_type_with_modality_and_metric():
    knowledge = load_knowledge()
    expected = {
        "image_classification": ("image", "top1_accuracy", True),
        "tabular_regression": ("tabular", "rmse", False),
        "object_detection": ("image", "box_map", True),
        "text_classification": ("text", "accuracy", True),
        "text_generation": ("text", "perplexity", False),
        "tabular_classification": ("tabular", "accuracy", True),
        "time_series_forecasting": ("time_series", "mase", False),
    }
    assert {
        n: (t.modality, t.metric.name, t.metric.higher_is_better) for n, t in knowledge.task_types.items()
    } == expected
    assert {n for n, t in knowledge.task_types.items() if t.supported} == {
        "image_classification",
        "tabular_regression",
    }


def test_a_malformed_knowledge_file_is_a_config_error(tmp_path):
    path = tmp_path / "knowledge.yaml"
    path.write_text(
        "metrics: {}\n"
        "modalities: {image: {cues: [photo]}}\n"
        "task_types:\n"
        "  x: {modality: image, metric: f1, cues: []}\n"
    )
    with pytest.raises(ConfigError, match="task type x names unknown metric 'f1'"):
        load_knowledge(path)


# ---------------------------------------------------------------- assumptions


def test_assumptions_are_listed_as_warnings():
    p = problem(
        inference_region="",
        epochs=0,
        usage=msg.Usage(),
        allowed_hardware=["cpu", "CUDA", "cuda:1", "gpu-box-7"],
    )
    warnings = encode(p).warnings
    assert "inference_region not given: the model is assumed to be served in train_region 'DEU'" in warnings
    assert "epochs not given: each candidate's catalogue training recipe is assumed" in warnings
    assert any(w.startswith("usage not given") for w in warnings)
    host_warnings = [w for w in warnings if "host name" in w]
    assert host_warnings == [
        "allowed_hardware entry 'gpu-box-7' is taken as a host name (not 'cpu', 'cuda' or 'cuda:N')"
    ]


# ---------------------------------------------------------------- validation errors

NEGATIVE_FIELDS = [
    ("constraints.quality_target", {"constraints": msg.Constraints(quality_target=-0.5)}, -0.5),
    ("constraints.max_latency_ms", {"constraints": msg.Constraints(max_latency_ms=-1)}, -1),
    ("constraints.max_train_hours", {"constraints": msg.Constraints(max_train_hours=-2)}, -2),
    ("constraints.max_train_co2_g", {"constraints": msg.Constraints(max_train_co2_g=-3)}, -3),
    ("constraints.max_memory_mb", {"constraints": msg.Constraints(max_memory_mb=-4)}, -4),
    ("usage.requests_per_day", {"usage": msg.Usage(requests_per_day=-10, horizon_days=5)}, -10),
    ("usage.horizon_days", {"usage": msg.Usage(requests_per_day=10, horizon_days=-5)}, -5),
]


@pytest.mark.parametrize(
    ("field", "changes", "value"), NEGATIVE_FIELDS, ids=[f for f, _, _ in NEGATIVE_FIELDS]
)
def test_negative_numbers_are_rejected(field, changes, value):
    assert invalid(problem(**changes)) == (
        f"{field} is {value}, but it cannot be negative: give a value >= 0 (0 = no limit / not given)"
    )


def test_a_number_that_is_not_finite_is_rejected():
    assert invalid(problem(constraints=msg.Constraints(max_train_hours=math.inf))) == (
        "constraints.max_train_hours is inf: give a finite number (0 = no limit / not given)"
    )


@pytest.mark.parametrize(("target", "example"), [(90, "0.9"), (99.5, "0.995"), (250, "0.9")])
def test_a_percentage_for_a_fraction_metric_is_rejected(target, example):
    assert invalid(problem(constraints=msg.Constraints(quality_target=target))) == (
        f"constraints.quality_target is {target:g}, but top1_accuracy is a fraction in (0, 1]: "
        f"give a fraction such as {example}"
    )


@pytest.mark.parametrize("target", [0, 0.9, 1.0])
def test_fractions_and_no_target_are_accepted(target):
    assert (
        encode(problem(constraints=msg.Constraints(quality_target=target))).constraints.quality_target
        == target
    )


def test_requests_without_a_horizon_are_rejected():
    assert invalid(problem(usage=msg.Usage(requests_per_day=500, horizon_days=0))) == (
        "usage.requests_per_day is 500 but usage.horizon_days is 0: set horizon_days to how many days "
        "the model will be served, or requests_per_day to 0 for no serving"
    )


def test_a_horizon_without_requests_is_rejected():
    assert invalid(problem(usage=msg.Usage(requests_per_day=0, horizon_days=30))) == (
        "usage.horizon_days is 30 but usage.requests_per_day is 0: set requests_per_day to the requests "
        "expected per day, or horizon_days to 0 for no serving"
    )


def test_an_unknown_dataset_size_is_rejected():
    assert invalid(problem(dataset=msg.DatasetInfo(num_samples=0))) == (
        "dataset.num_samples is 0 (unknown), but training energy needs it: "
        "set dataset.num_samples to the number of training samples"
    )


def test_a_latency_limit_below_a_microsecond_is_rejected():
    assert invalid(problem(constraints=msg.Constraints(max_latency_ms=0.0005))) == (
        "constraints.max_latency_ms is 0.0005, below 0.001 ms, which no model can meet: "
        "give the limit in milliseconds (e.g. 50 for 50 ms), or 0 for no limit"
    )


def test_a_latency_limit_of_a_microsecond_is_accepted():
    assert (
        encode(problem(constraints=msg.Constraints(max_latency_ms=0.001))).constraints.max_latency_ms == 0.001
    )


def test_a_missing_train_region_is_rejected():
    message = invalid(problem(train_region=""))
    assert message.startswith(
        "train_region '': a region is required: give an ISO 3166 alpha-3 country code ('DEU')"
    )


@pytest.mark.parametrize(
    ("changes", "start", "match"),
    [
        (
            {"train_region": "Germny"},
            "train_region 'Germny': unknown region 'Germny'",
            "close matches: 'Germany'",
        ),
        (
            {"inference_region": "Frnace"},
            "inference_region 'Frnace': unknown region",
            "close matches: 'France'",
        ),
        (
            {"alternative_regions": ["ESP", "gcp:europe-west99"]},
            "alternative_regions[1] 'gcp:europe-west99': unknown region",
            "'gcp:europe-west9'",
        ),
        (
            {"alternative_regions": ["ESP", ""]},
            "alternative_regions[1] '': a region is required",
            "'gcp:REGION'",
        ),
    ],
)
def test_regions_the_carbon_data_lacks_are_rejected(changes, start, match):
    message = invalid(problem(**changes))
    assert message.startswith(start)
    assert match in message


def test_region_forms_the_carbon_tracker_accepts_are_accepted():
    task = encode(
        problem(
            train_region="Germany",
            inference_region="aws:eu-west-1",
            alternative_regions=["DE", "europe-west4"],
        )
    )
    assert task.train_region == "Germany"  # copied as given; the carbon tracker resolves it
    assert "AWS eu-west-1 (Ireland)" in task.explanation


def test_absurd_epochs_are_rejected():
    assert invalid(problem(epochs=10_001)) == (
        "epochs is 10001, more than 10000, which is not a plausible training plan: give the planned number "
        "of epochs (e.g. 90), or 0 for each model's catalogue recipe"
    )
    assert encode(problem(epochs=10_000)).epochs == 10_000
