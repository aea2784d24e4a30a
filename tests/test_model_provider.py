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
from sustainml.msg import Constraints, EncodedTask, ModelCandidate, TaskId
from sustainml_nodes.model_provider import tabular_models, zoo
from sustainml_nodes.model_provider.catalogue import (
    DEFAULT_CATALOGUE_PATH,
    CatalogueEntry,
    find,
    flops_per_sample,
    load_catalogue,
    propose,
    summary,
    to_candidate,
)
from sustainml_nodes.model_provider.errors import CatalogueError, UnknownModel

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

CATALOGUE = load_catalogue()
NAMES = [e.name for e in CATALOGUE]
IMAGE_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1"]
TABULAR_MODELS = ["tabular_mlp", "tabular_resnet", "ft_transformer"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def image_task(quality_target: float = 0.0, candidate_models: list[str] | None = None) -> EncodedTask:
    return EncodedTask(
        task_id=TaskId(problem_id="p-1", iteration=2),
        task_type="image_classification",
        modality="image",
        metric="top1_accuracy",
        higher_is_better=True,
        constraints=Constraints(quality_target=quality_target),
        candidate_models=candidate_models or [],
    )


def regression_task(quality_target: float = 0.0, candidate_models: list[str] | None = None) -> EncodedTask:
    return EncodedTask(
        task_type="tabular_regression",
        modality="tabular",
        metric="rmse",
        constraints=Constraints(quality_target=quality_target),
        candidate_models=candidate_models or [],
    )


# ---------------------------------------------------------------------------------------------- catalogue


def test_the_catalogue_lists_every_zoo_model_once_in_zoo_order():
    assert NAMES == zoo.known_models() == IMAGE_MODELS + TABULAR_MODELS


@pytest.mark.parametrize("entry", CATALOGUE, ids=NAMES)
def test_catalogue_entry_agrees_with_the_zoo(entry: CatalogueEntry):
    arch = zoo.architecture(entry.name)
    assert entry.task_type == arch.task_type
    assert entry.input_shape == arch.default_input_shape
    assert entry.metric.higher_is_better == entry.quality.higher_is_better
    if entry.quality.metric == "top1_accuracy":
        assert 0 < entry.quality.value < 1, "top-1 accuracy is stored as a fraction"


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_equals_the_published_figure(name: str):
    # Exact, not within 1%: the zoo writes the very architectures whose counts were published.
    published = TORCHVISION_PARAMS.get(name) or GORISHNIY_PARAMS[name]
    assert find(CATALOGUE, name).params == published
    assert n_params(zoo.build(name).module) == published


def test_tabular_hyperparameters_in_the_catalogue_are_the_ones_the_zoo_builds():
    configs = {
        "tabular_mlp": tabular_models.TabularMLPConfig(),
        "tabular_resnet": tabular_models.TabularResNetConfig(),
        "ft_transformer": tabular_models.FTTransformerConfig(),
    }
    for name, config in configs.items():
        assert dict(find(CATALOGUE, name).hyperparameters) == dataclasses.asdict(config), name


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


@pytest.mark.parametrize("name", NAMES)
def test_every_model_runs_a_forward_pass_and_a_training_step_at_batch_2(name: str):
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
    with pytest.raises(InvalidProblem, match=r"resnet18 takes images of shape \[channels, height, width\]"):
        zoo.build("resnet18", input_shape=(8,))
    with pytest.raises(InvalidProblem, match=r"tabular_mlp takes rows of numeric features.*got \[3, 224, 224"):
        zoo.build("tabular_mlp", input_shape=(3, 224, 224))
    with pytest.raises(InvalidProblem, match="num_outputs >= 1"):
        zoo.build("tabular_mlp", num_outputs=0)


# ---------------------------------------------------------------------------------------------- propose


def test_without_constraints_every_model_of_the_task_type_is_proposed():
    proposal = propose(image_task(), CATALOGUE)
    assert [c.name for c in proposal.candidates] == IMAGE_MODELS
    assert proposal.excluded == []
    assert proposal.task_id == TaskId(problem_id="p-1", iteration=2)
    assert all(c.reason.endswith("; no quality target set") for c in proposal.candidates)


def test_a_quality_floor_drops_weaker_models_and_says_why():
    proposal = propose(image_task(quality_target=0.60), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["resnet18", "resnet50", "mobilenet_v2"]
    assert proposal.excluded == ["squeezenet1_1: 58.2% top-1 on ImageNet-1k val misses the 60% target"]
    resnet18 = proposal.candidates[0]
    assert resnet18.reason == (
        "ResNet-18: 69.8% top-1 on ImageNet-1k val (torchvision docs), 11.7 M params, 3.63 GFLOPs/sample; "
        "meets the 60% target"
    )


def test_an_error_metric_target_is_a_ceiling():
    proposal = propose(regression_task(quality_target=0.49), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["tabular_resnet", "ft_transformer"]
    assert proposal.excluded == [
        "tabular_mlp: RMSE 0.499 on California Housing test misses the RMSE <= 0.49 target"
    ]
    assert proposal.candidates[1].reason.startswith(
        "FT-Transformer: RMSE 0.459 on California Housing test (Gorishniy et al. 2021, Table 2), 2.46 M params"
    )
    assert proposal.candidates[1].reason.endswith("; meets the RMSE <= 0.49 target")


def test_candidate_models_restrict_the_proposal_and_the_rest_is_explained():
    proposal = propose(regression_task(candidate_models=["ft_transformer", "resnet18"]), CATALOGUE)
    assert [c.name for c in proposal.candidates] == ["ft_transformer"]
    assert proposal.excluded == [
        "resnet18: built for image_classification, the task is tabular_regression",
        "tabular_mlp: not among the requested candidate_models",
        "tabular_resnet: not among the requested candidate_models",
    ]


def test_an_unknown_candidate_model_is_an_error_listing_the_known_ones():
    with pytest.raises(UnknownModel) as caught:
        propose(image_task(candidate_models=["resnet18", "vgg16"]), CATALOGUE)
    assert isinstance(caught.value, InvalidProblem)
    assert str(caught.value) == (
        "unknown model 'vgg16': the model catalogue knows resnet18, resnet50, mobilenet_v2, squeezenet1_1, "
        "tabular_mlp, tabular_resnet, ft_transformer"
    )


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
    task = EncodedTask(task_type="text_classification", modality="text")
    with pytest.raises(NoCandidates, match="the catalogue covers image_classification, tabular_regression"):
        propose(task, CATALOGUE)


def test_requesting_only_models_of_another_task_type_leaves_no_candidate():
    with pytest.raises(NoCandidates, match=r"\(ft_transformer\) is built for image_classification; the image"):
        propose(image_task(candidate_models=["ft_transformer"]), CATALOGUE)


def test_an_accuracy_target_given_as_a_percentage_is_rejected_with_the_fraction_to_use():
    with pytest.raises(InvalidProblem, match="e.g. 0.75 for 75%"):
        propose(image_task(quality_target=75), CATALOGUE)


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
    assert candidate.reason.startswith("MobileNetV2: 71.9% top-1")


def test_find_names_the_known_models_when_it_misses():
    assert find(CATALOGUE, "resnet50").display_name == "ResNet-50"
    with pytest.raises(UnknownModel, match="knows resnet18, resnet50"):
        find(CATALOGUE, "resnet101")


# ------------------------------------------------------------------------------------ malformed catalogues


def write_catalogue(tmp_path: Path, mutate) -> Path:
    """A copy of the packaged catalogue with its first entry changed by ``mutate(entry)``."""
    document = yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())
    mutate(document["models"][0])
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
        (lambda e: e.update(params=-5), r"field 'params': expected a positive integer, got -5"),
        (lambda e: e.update(parameters=1), r"field 'parameters': unknown field \(a typo\?\)"),
        (lambda e: e.update(input_shape="3x224x224"), r"'input_shape': expected a list of positive integers"),
        (lambda e: e["quality"].update(higher_is_better=False), r"'quality.higher_is_better': expected true"),
        (lambda e: e["quality"].update(metric="top5"), r"'quality.metric': expected one of top1_accuracy"),
        (lambda e: e.update(modality="tabular"), r"'modality': expected 'image', the modality of image_class"),
        (lambda e: e.update(name="vgg16"), r"entry #1 \(vgg16\), field 'name': expected one of resnet18, res"),
        (lambda e: e.update(name="resnet50"), r"entry #2 \(resnet50\), field 'name': expected a unique name"),
    ],
)
def test_a_malformed_catalogue_is_rejected_naming_file_entry_and_field(tmp_path: Path, mutate, message: str):
    path = write_catalogue(tmp_path, mutate)
    with pytest.raises(CatalogueError, match=message) as caught:
        load_catalogue(path)
    assert str(caught.value).startswith(str(path))


def test_a_catalogue_that_is_not_yaml_or_has_no_models_is_rejected(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [\n  - name: resnet18\n")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(broken)

    empty = tmp_path / "empty.yaml"
    empty.write_text(textwrap.dedent("""\
        # nothing yet
        models: []
        """))
    with pytest.raises(CatalogueError, match="expected a top-level 'models:' list"):
        load_catalogue(empty)

    with pytest.raises(CatalogueError, match="cannot read the catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
