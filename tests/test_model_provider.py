"""The model provider's logic: the zoo builds what the catalogue describes, and proposals say why.

No DDS here: the catalogue, the zoo and ``propose`` are plain functions, driven as the node will.
"""

import dataclasses
import math
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from sustainml.exceptions import InvalidProblem, NoCandidates, SustainMLError
from sustainml.msg import TaskConstraints, EncodedTask, ModelCandidate, TaskId
from sustainml.models import tabular_models, zoo
from sustainml.models.catalogue import (
    DEFAULT_CATALOGUE_PATH,
    CatalogueEntry,
    find,
    flops_per_sample,
    load_catalogue,
    summary,
    to_candidate,
)
from sustainml.models.errors import CatalogueError, UnknownModel
from sustainml.models.tasks import TASK_TYPES
from sustainml_nodes.model_provider.proposal import propose

# Parameter counts for 1000 classes from the torchvision model docs, written here independently of
# the catalogue so that a typo in either one fails.
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "squeezenet1_1": 1_235_496,
}
# n_parameters recorded by the reference runs of Gorishniy et al. (tuned configs, California Housing).
GORISHNIY_PARAMS = {"tabular_mlp": 94_045, "tabular_resnet": 233_429, "ft_transformer": 2_463_247}

CATALOGUE = load_catalogue(extra=[])
NAMES = [e.name for e in CATALOGUE]
IMAGE_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1"]
TABULAR_MODELS = ["tabular_mlp", "tabular_resnet", "ft_transformer"]
SKLEARN_REGRESSORS = ["ridge_regression", "random_forest_regressor", "hist_gradient_boosting_regressor"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def image_task(quality_target: float = 0.0, candidate_models: list[str] | None = None) -> EncodedTask:
    return EncodedTask(
        task_id=TaskId(problem_id="p-1", iteration=2),
        task_type="image_classification",
        modality="image",
        metric="top1_accuracy",
        higher_is_better=True,
        constraints=TaskConstraints(quality_target=quality_target),
        candidate_models=candidate_models or [],
    )


def regression_task(quality_target: float = 0.0, candidate_models: list[str] | None = None) -> EncodedTask:
    return EncodedTask(
        task_type="tabular_regression",
        modality="tabular",
        metric="rmse",
        constraints=TaskConstraints(quality_target=quality_target),
        candidate_models=candidate_models or [],
    )


# ---------------------------------------------------------------------------------------------- catalogue


def test_the_catalogue_covers_every_task_type_and_uses_every_zoo_function():
    assert {e.task_type for e in CATALOGUE} == set(TASK_TYPES)
    assert len(NAMES) == len(set(NAMES)) == len(CATALOGUE)
    assert zoo.known_models(CATALOGUE) == NAMES
    assert {e.builder.name for e in CATALOGUE if e.builder.kind == "zoo"} == set(zoo.ZOO_FUNCTIONS)
    assert {e.library for e in CATALOGUE} == {"torch", "sklearn"}


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_catalogue_entry_agrees_with_the_zoo(entry: CatalogueEntry):
    arch = zoo.architecture(entry.name, CATALOGUE)
    assert (arch.task_type, arch.default_input_shape, arch.library) == (entry.task_type, entry.input_shape, entry.library)
    assert entry.family and entry.licence and entry.default_epochs >= 1
    if entry.quality is not None:
        assert entry.metric.higher_is_better == entry.quality.higher_is_better
        assert entry.quality.source_url.startswith("https://")
        if entry.metric.fraction:
            assert 0 < entry.quality.value < 1, "accuracy-like metrics are stored as fractions"


@pytest.mark.parametrize("name", IMAGE_MODELS + TABULAR_MODELS)
def test_parameter_count_equals_the_published_figure(name: str):
    # Exact, not within 1%: the zoo writes the very architectures whose counts were published.
    published = TORCHVISION_PARAMS.get(name) or GORISHNIY_PARAMS[name]
    assert find(CATALOGUE, name).params == published
    assert n_params(zoo.build(name).module) == published


def test_tabular_builder_params_in_the_catalogue_are_the_tuned_configs_the_zoo_defaults_to():
    configs = {
        "tabular_mlp": tabular_models.TabularMLPConfig(),
        "tabular_resnet": tabular_models.TabularResNetConfig(),
        "ft_transformer": tabular_models.FTTransformerConfig(),
    }
    for name, config in configs.items():
        params = find(CATALOGUE, name).builder.settings_dict()
        expected = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
        assert params == expected, name


@pytest.mark.parametrize("entry", [e for e in CATALOGUE if e.published_gmacs], ids=lambda e: e.name)
def test_counted_flops_agree_with_twice_the_published_gmacs(entry: CatalogueEntry):
    published_flops = 2 * entry.published_gmacs * 1e9
    assert flops_per_sample(entry) == pytest.approx(published_flops, rel=0.10)


def test_tabular_flops_are_counted_even_without_a_published_figure():
    mlp = find(CATALOGUE, "tabular_mlp")
    assert mlp.published_gmacs is None
    # Two multiply-adds per weight of the three linear layers: 8x512 + 512x174 + 174x1.
    assert flops_per_sample(mlp) == 2 * (8 * 512 + 512 * 174 + 174)


# ---------------------------------------------------------------------------------------------- zoo


@pytest.mark.parametrize("name", IMAGE_MODELS + TABULAR_MODELS)
def test_every_image_and_tabular_model_runs_a_forward_pass_and_a_training_step_at_batch_2(name: str):
    workload = zoo.build(name)
    arch = zoo.architecture(name)
    model = workload.module
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]

    outputs = model(workload.inputs(2))
    assert outputs.shape == (2, arch.default_num_outputs)
    loss = workload.loss(outputs, workload.targets(2))
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    optimizer.step()

    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        assert model(workload.inputs(1)).shape == (1, arch.default_num_outputs)


def test_synthetic_data_is_deterministic_and_shaped_like_the_reference_data():
    image = zoo.build("squeezenet1_1")
    assert image.inputs(2).shape == (2, 3, 224, 224)
    assert torch.equal(image.inputs(2), image.inputs(2))
    labels = image.targets(64)
    assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < 1000
    assert torch.equal(labels, image.targets(64))

    table = zoo.build("tabular_mlp")
    assert table.inputs(4).shape == (4, 8)
    assert table.targets(4).dtype == torch.float32 and table.targets(4).shape == (4, 1)
    assert table.loss is torch.nn.functional.mse_loss and image.loss is torch.nn.functional.cross_entropy


def test_weights_are_seeded_and_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = zoo.build("tabular_resnet").module.state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    second = zoo.build("tabular_resnet").module.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_build_adapts_to_the_users_classes_and_shapes():
    small = zoo.build("resnet18", num_outputs=10, input_shape=(1, 64, 64))
    assert small.module(small.inputs(2)).shape == (2, 10)
    assert small.targets(2).max() < 10

    wide = zoo.build("ft_transformer", num_outputs=3, input_shape=(20,))
    assert wide.module(wide.inputs(2)).shape == (2, 3) == wide.targets(2).shape


def test_build_rejects_an_unknown_name_listing_the_known_ones():
    with pytest.raises(UnknownModel) as caught:
        zoo.build("vgg16")
    assert isinstance(caught.value, SustainMLError)
    assert "'vgg16'" in str(caught.value)
    assert all(name in str(caught.value) for name in NAMES)


def test_build_rejects_a_shape_the_model_cannot_take():
    with pytest.raises(InvalidProblem, match=r"resnet18 \(image_classification\) takes samples of shape \[channels, h"):
        zoo.build("resnet18", input_shape=(8,))
    with pytest.raises(InvalidProblem, match=r"tabular_mlp \(tabular_regression\) takes .*\[features\].*got \[3, 224, 224"):
        zoo.build("tabular_mlp", input_shape=(3, 224, 224))
    with pytest.raises(InvalidProblem, match="num_outputs >= 1"):
        zoo.build("tabular_mlp", num_outputs=0)


# ---------------------------------------------------------------------------------------------- propose


def test_without_constraints_every_model_of_the_task_type_is_proposed_greenest_front_first():
    proposal = propose(image_task(), CATALOGUE)
    # Front (no other model as good for fewer FLOPs) by FLOPs, then the dominated ones by FLOPs.
    assert [c.name for c in proposal.candidates] == ["mobilenet_v2", "resnet50", "squeezenet1_1", "resnet18"]
    assert proposal.excluded == []
    assert proposal.task_id == TaskId(problem_id="p-1", iteration=2)
    reasons = {c.name: c.reason for c in proposal.candidates}
    assert all("; no quality target set; " in r for r in reasons.values())
    assert reasons["resnet50"].endswith("; on the quality/compute front of its benchmark")
    assert reasons["resnet18"].endswith("; dominated: mobilenet_v2 is as good or better for fewer FLOPs")


def test_a_quality_floor_drops_weaker_models_and_says_why():
    proposal = propose(image_task(quality_target=0.60), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["mobilenet_v2", "resnet50", "resnet18"]
    assert proposal.excluded == ["squeezenet1_1: 58.2% top-1 on ImageNet-1k val misses the 60% target"]
    resnet18 = proposal.candidates[2]
    assert resnet18.reason == (
        "ResNet-18: 69.8% top-1 on ImageNet-1k val (torchvision docs), 11.7 M params, 3.63 GFLOPs/sample; "
        "meets the 60% target; dominated: mobilenet_v2 is as good or better for fewer FLOPs"
    )


def test_an_error_metric_target_is_a_ceiling_and_models_without_a_figure_cannot_meet_it():
    proposal = propose(regression_task(quality_target=0.49), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["tabular_resnet", "ft_transformer"]
    assert proposal.excluded == [
        "tabular_mlp: RMSE 0.499 on California Housing test misses the RMSE <= 0.49 target",
        *(f"{name}: publishes no quality figure, so the quality target cannot be checked"
          for name in SKLEARN_REGRESSORS),
    ]
    assert proposal.candidates[1].reason.startswith(
        "FT-Transformer: RMSE 0.459 on California Housing test (Gorishniy et al. 2021, Table 2), 2.46 M params"
    )
    assert "; meets the RMSE <= 0.49 target; " in proposal.candidates[1].reason


def test_without_a_target_models_of_unknown_quality_are_kept_last_and_say_so():
    proposal = propose(regression_task(), CATALOGUE)
    assert [c.name for c in proposal.candidates] == TABULAR_MODELS + SKLEARN_REGRESSORS
    forest = proposal.candidates[4]
    assert (forest.library, forest.licence, forest.params, forest.flops_per_sample) == ("sklearn", "BSD-3-Clause", 0, 0)
    assert forest.quality_metric == "" and math.isnan(forest.quality_value)
    assert forest.reason == (
        "Random forest (scikit-learn): no published quality figure, size set by the data (scikit-learn), "
        "FLOPs not counted; quality unknown until you evaluate it; not compared with the others "
        "(quality or FLOPs unknown)"
    )


def test_candidate_models_restrict_the_proposal_and_the_rest_is_explained():
    proposal = propose(regression_task(candidate_models=["ft_transformer", "resnet18"]), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["ft_transformer"]
    assert proposal.excluded == [
        "resnet18: built for image_classification, the task is tabular_regression",
        "tabular_mlp: not among the requested candidate_models",
        "tabular_resnet: not among the requested candidate_models",
        *(f"{name}: not among the requested candidate_models" for name in SKLEARN_REGRESSORS),
    ]


def test_an_unknown_candidate_model_is_an_error_listing_the_known_ones():
    with pytest.raises(UnknownModel) as caught:
        propose(image_task(candidate_models=["resnet18", "vgg16"]), CATALOGUE)
    assert isinstance(caught.value, InvalidProblem)
    assert str(caught.value) == f"unknown model 'vgg16': the model catalogue knows {', '.join(NAMES)}"


def test_an_unreachable_target_names_the_best_model_and_the_fix():
    with pytest.raises(NoCandidates) as caught:
        propose(image_task(quality_target=0.99), CATALOGUE)
    assert str(caught.value) == (
        "no known image_classification model reaches top1_accuracy >= 0.99; the best is resnet50 at 0.761 "
        "(torchvision docs). Lower quality_target."
    )
    with pytest.raises(NoCandidates, match=r"rmse <= 0.3; the best is ft_transformer at 0.459 .* Raise"):
        propose(regression_task(quality_target=0.3), CATALOGUE)


def test_an_unknown_task_type_lists_the_task_types_the_catalogue_covers():
    task = EncodedTask(task_type="speech_recognition", modality="audio")
    with pytest.raises(NoCandidates, match="the catalogue covers image_classification, object_detection, tabular_cl"):
        propose(task, CATALOGUE)


def test_requesting_only_models_of_another_task_type_leaves_no_candidate():
    with pytest.raises(NoCandidates, match=r"\(ft_transformer\) is built for image_classification; the image"):
        propose(image_task(candidate_models=["ft_transformer"]), CATALOGUE)


def test_an_accuracy_target_given_as_a_percentage_is_rejected_with_the_fraction_to_use():
    with pytest.raises(InvalidProblem, match="e.g. 0.75 for 75%"):
        propose(image_task(quality_target=75), CATALOGUE)


def text_task(quality_target: float = 0.0, max_memory_mb: float = 0.0, deploy_target: str = "") -> EncodedTask:
    return EncodedTask(
        task_type="text_classification",
        modality="text",
        metric="accuracy",
        higher_is_better=True,
        constraints=TaskConstraints(
            quality_target=quality_target, max_memory_mb=max_memory_mb, deploy_target=deploy_target
        ),
    )


def test_a_memory_budget_excludes_models_whose_weights_do_not_fit_with_the_figures():
    proposal = propose(text_task(max_memory_mb=100), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["bert_tiny"]
    assert "fp32 weights of 16.7 MiB fit the max_memory_mb budget of 100 MiB (activations come on top)" in (
        proposal.candidates[0].reason
    )
    assert proposal.excluded == [
        "bert_small: its fp32 weights alone take 110 MiB (28,763,648 params × 4 bytes), over the max_memory_mb "
        "budget of 100 MiB; int8 weights would take 27.4 MiB",
        "bert_medium: its fp32 weights alone take 158 MiB (41,373,184 params × 4 bytes), over the max_memory_mb "
        "budget of 100 MiB; int8 weights would take 39.5 MiB",
        "bert_base: its fp32 weights alone take 420 MiB (110,000,000 params × 4 bytes), over the max_memory_mb "
        "budget of 100 MiB",
        "distilbert_base: its fp32 weights alone take 252 MiB (66,000,000 params × 4 bytes), over the "
        "max_memory_mb budget of 100 MiB; int8 weights would take 62.9 MiB",
    ]


def test_a_deploy_target_excludes_what_does_not_fit_the_device_and_an_unknown_one_is_said_unchecked():
    with pytest.raises(NoCandidates, match=r"no known text_classification model fits a microcontroller .*"
                                           r"the smallest is bert_tiny with 16.7 MiB of fp32 weights"):
        propose(text_task(deploy_target="microcontroller"), CATALOGUE)
    pi = propose(text_task(deploy_target="raspberry_pi"), CATALOGUE)
    assert [c.name for c in pi.candidates] == ["bert_tiny", "bert_small", "distilbert_base", "bert_base", "bert_medium"]
    assert "fit a raspberry_pi (" in pi.candidates[0].reason
    unknown = propose(text_task(deploy_target="toaster"), CATALOGUE)
    assert len(unknown.candidates) == 5
    assert "deploy_target 'toaster' is not a device class the provider knows (raspberry_pi" in unknown.candidates[0].reason


def test_the_users_memory_budget_wins_over_the_deploy_targets_as_in_the_encoder():
    # A microcontroller leaves a model far less than BERT-tiny's 16.7 MiB, but the user said 500 MiB:
    # the encoder uses the user's figure (and notes the contradiction), so the provider does too.
    proposal = propose(text_task(max_memory_mb=500, deploy_target="microcontroller"), CATALOGUE)
    assert "bert_base" in [c.name for c in proposal.candidates]
    assert "fit the max_memory_mb budget of 500 MiB" in proposal.candidates[0].reason


def test_a_budget_nothing_fits_names_the_smallest_model():
    with pytest.raises(NoCandidates) as caught:
        propose(text_task(max_memory_mb=10), CATALOGUE)
    assert str(caught.value) == (
        "no known text_classification model fits the max_memory_mb budget of 10 MiB; the smallest is bert_tiny "
        "with 16.7 MiB of fp32 weights. Raise max_memory_mb, choose a larger deploy_target, or add a smaller model "
        "to the catalogue."
    )


def test_to_candidate_carries_the_catalogue_figures():
    entry = find(CATALOGUE, "mobilenet_v2")
    candidate = to_candidate(entry, summary(entry))
    assert isinstance(candidate, ModelCandidate)
    assert candidate.params == 3_504_872
    assert candidate.flops_per_sample == pytest.approx(0.6e9, rel=0.01)
    assert candidate.input_shape == [3, 224, 224]
    assert (candidate.quality_metric, candidate.quality_value, candidate.higher_is_better) == (
        "top1_accuracy",
        0.71878,
        True,
    )
    assert candidate.quality_source.startswith("torchvision docs, https://")
    assert (candidate.default_epochs, candidate.default_batch_size) == (300, 256)
    assert (candidate.display_name, candidate.licence, candidate.library) == ("MobileNetV2", "BSD-3-Clause", "torch")
    assert candidate.reason.startswith("MobileNetV2: 71.9% top-1")


def test_find_names_the_known_models_when_it_misses():
    assert find(CATALOGUE, "resnet50").display_name == "ResNet-50"
    with pytest.raises(UnknownModel, match="knows resnet18, resnet50"):
        find(CATALOGUE, "resnet101")


# ------------------------------------------------------------------------------------ malformed catalogues


def write_catalogue(tmp_path: Path, mutate) -> Path:
    """A copy of the packaged catalogue with its first entry changed by ``mutate(entry)``."""
    document = yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())
    mutate(document["models"][0])  # resnet18
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e["quality"].update(value=69.758),
            r"entry #1 \(resnet18\), field 'quality.value': expected top1_accuracy as a fraction 0..1, "
            r"e.g. 0.69758 for 69.758%, got 69.758",
        ),
        (lambda e: e.pop("params"), r"entry #1 \(resnet18\), field 'params': missing"),
        (lambda e: e.update(params=-5), r"field 'params': expected a positive integer \(the published count\), or null, got -5"),
        (lambda e: e.update(parameters=1), r"field 'parameters': unknown field \(a typo\?\)"),
        (lambda e: e.update(input_shape="3x224x224"), r"'input_shape': expected a list of positive integers"),
        (lambda e: e["quality"].update(higher_is_better=False), r"'quality.higher_is_better': expected true"),
        (lambda e: e["quality"].update(metric="top5"), r"'quality.metric': expected one of top1_accuracy"),
        (lambda e: e.update(modality="tabular"), r"'modality': expected 'image', the modality of image_class"),
        (lambda e: e.update(builder={"kind": "zoo", "name": "vgg16"}),
         r"entry #1 \(resnet18\), field 'builder.name': expected a zoo builder, one of resnet18, resnet50"),
        (lambda e: e.update(name="resnet50"), r"entry #2 \(resnet50\), field 'name': expected a unique name, got one "
                                               r"already defined earlier in this file; rename it"),
        (lambda e: e.update(input_shape=[224, 224]),
         r"'input_shape': expected \[channels, height, width\], e.g. \[3, 224, 224\] for image_classification"),
        (lambda e: e.update(task_type="text_classification", modality="text"),
         r"'builder.name': a zoo builder for text_classification; resnet18 builds image_classification"),
    ],
)
def test_a_malformed_catalogue_is_rejected_naming_file_entry_and_field(tmp_path: Path, mutate, message: str):
    path = write_catalogue(tmp_path, mutate)
    with pytest.raises(CatalogueError, match=message) as caught:
        load_catalogue(path, extra=[])
    assert str(caught.value).startswith(str(path))


def test_a_catalogue_that_is_not_yaml_or_has_no_models_is_rejected(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [\n  - name: resnet18\n")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(broken, extra=[])

    empty = tmp_path / "empty.yaml"
    empty.write_text(textwrap.dedent("""\
        # nothing yet
        models: []
        """))
    with pytest.raises(CatalogueError, match="expected a top-level 'models:' list"):
        load_catalogue(empty, extra=[])

    with pytest.raises(CatalogueError, match="cannot read the catalogue"):
        load_catalogue(tmp_path / "missing.yaml", extra=[])
