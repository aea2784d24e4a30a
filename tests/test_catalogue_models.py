"""Every catalogue model is the one its figures are about: published parameter counts, a real forward
pass and training step per task type, FLOPs counted with the right kind of input, scikit-learn models
fitted and run. Big models are only built on the meta device (no memory, no time)."""

import math

import numpy as np
import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from sustainml_nodes.hw_constraints.estimate import profile_model
from sustainml.models import zoo
from sustainml.models.catalogue import (
    CatalogueEntry,
    count_params,
    find,
    flops_per_sample,
    load_catalogue,
)
from sustainml.models.errors import LibraryMismatch
from sustainml.models.tasks import TASK_TYPES
from sustainml.models.transformer_tasks import DEFAULT_NEW_TOKENS, GreedyGenerator

CATALOGUE = load_catalogue(extra=[])
TORCH = [e for e in CATALOGUE if e.library == "torch"]

# Parameter counts as published, written here independently of the catalogue so that a typo in either
# one fails. Sources: torchvision docs; n_parameters of Gorishniy et al.'s runs; KerasHub's BERT presets
# (backbone); Devlin et al. 2019 (110M); Sanh et al. 2019 (66M); the distilgpt2 model card (124M, 82M);
# the YOLOS README (6.5M, 30.7M); the RT-DETR PyTorch README (20M).
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "squeezenet1_1": 1_235_496,
    "tabular_mlp": 94_045,
    "tabular_resnet": 233_429,
    "ft_transformer": 2_463_247,
    "bert_tiny": 4_385_920,
    "bert_small": 28_763_648,
    "bert_medium": 41_373_184,
    "bert_base": 110_000_000,
    "distilbert_base": 66_000_000,
    "gpt2": 124_000_000,
    "distilgpt2": 82_000_000,
    "yolos_tiny": 6_500_000,
    "yolos_small": 30_700_000,
    "rtdetr_r18": 20_000_000,
}
# No count is published for these configurations: the catalogue carries the count as built.
UNPUBLISHED_PARAMS = {"dlinear", "patchtst"}


def built_params(entry: CatalogueEntry) -> int:
    return count_params(zoo.architecture_of(entry), entry.params_scope)


def test_every_torch_entry_is_listed_here_as_published_or_not():
    assert {e.name for e in TORCH} == set(PUBLISHED_PARAMS) | UNPUBLISHED_PARAMS


@pytest.mark.parametrize("entry", [e for e in TORCH if e.name in PUBLISHED_PARAMS], ids=lambda e: e.name)
def test_the_built_model_has_the_published_parameter_count_within_one_percent(entry: CatalogueEntry):
    published = PUBLISHED_PARAMS[entry.name]
    assert entry.params == published and entry.params_published
    assert built_params(entry) == pytest.approx(published, rel=0.01)


def test_unpublished_counts_are_said_to_be_the_count_as_built():
    for name in sorted(UNPUBLISHED_PARAMS):
        entry = find(CATALOGUE, name)
        assert not entry.params_published and entry.params == built_params(entry)
        assert "(as built; none published)" in zoo_summary(entry)
    assert find(CATALOGUE, "dlinear").params == 2 * (336 * 96 + 96)  # two shared linear layers, 336 → 96


def zoo_summary(entry: CatalogueEntry) -> str:
    from sustainml.models.catalogue import summary

    return summary(entry)


def test_scikit_learn_entries_have_no_parameter_count_nor_flops():
    for entry in (e for e in CATALOGUE if e.library == "sklearn"):
        assert entry.params is None and flops_per_sample(entry) is None
        assert entry.default_epochs == 1 and entry.default_batch_size == 0


def test_flops_are_counted_for_every_torch_model_with_the_input_it_takes():
    for entry in TORCH:
        flops = flops_per_sample(entry)
        assert flops and flops > 0, entry.name
    # One multiply-add = 2 FLOPs: DLinear's two 336 → 96 layers over 7 channels.
    assert flops_per_sample(find(CATALOGUE, "dlinear")) == 2 * 2 * 7 * 336 * 96
    # One text-generation inference is the prompt's pass plus a pass per new token.
    with torch.device("meta"):
        gpt2 = zoo.build("distilgpt2", entries=CATALOGUE).module.model
    with FlopCounterMode(display=False) as prompt_only, torch.no_grad():
        gpt2(input_ids=torch.zeros((1, 128), dtype=torch.int64, device="meta"), logits_to_keep=1)
    assert flops_per_sample(find(CATALOGUE, "distilgpt2")) > 1.2 * prompt_only.get_total_flops()


# ---------------------------------------------------------------------------------------------- running


def smallest(task_type: str) -> CatalogueEntry:
    return min((e for e in TORCH if e.task_type == task_type), key=lambda e: e.params)


# Smaller samples than the reference for the two heavy ones, so that the CPU test stays quick.
TEST_SHAPES = {"object_detection": (3, 128, 160), "text_generation": (16,)}


@pytest.mark.parametrize("task_type", [t for t in TASK_TYPES if t != "tabular_classification"])
def test_the_smallest_model_of_each_task_runs_a_forward_pass_and_a_training_step_on_the_cpu(task_type: str):
    entry = smallest(task_type)
    workload = zoo.build(entry.name, input_shape=TEST_SHAPES.get(task_type), entries=CATALOGUE)
    model = workload.module
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]

    inputs = workload.inputs(2)
    assert inputs.dtype == (torch.int64 if task_type.startswith("text") else torch.float32)
    loss = workload.loss(model(inputs), workload.targets(2))
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))

    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(workload.inputs(1)).float()).all()


def test_a_text_generation_inference_generates_tokens_after_the_prompt_with_the_kv_cache():
    # The catalogue's wrapper around a small GPT-2 of the same class, so that the test stays quick.
    lm = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000))
    model = GreedyGenerator(lm)
    prompt = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    assert model(prompt).shape == (2, 12, 1000)  # training mode: the language-model forward
    model.eval()
    with torch.no_grad():
        generated = model(prompt)
        assert torch.equal(generated, model(prompt))
        assert generated.shape == (2, 12 + DEFAULT_NEW_TOKENS) and torch.equal(generated[:, :12], prompt)
        # Each new token is the most likely continuation of everything before it, as without a cache.
        for position in (12, 12 + DEFAULT_NEW_TOKENS - 1):
            expected = lm(input_ids=generated[:, :position], use_cache=False).logits[:, -1].argmax(-1)
            assert torch.equal(generated[:, position], expected)


def test_a_detector_outputs_class_logits_and_boxes_per_query():
    workload = zoo.build("yolos_tiny", input_shape=(3, 96, 128), entries=CATALOGUE)
    outputs = workload.module(workload.inputs(1))
    assert outputs.shape == (1, 100, 91 + 1 + 4)  # 100 detection tokens, 91 COCO labels + no-object, box
    targets = workload.targets(1)
    assert targets.shape == outputs.shape and torch.equal(targets[..., :-4].sum(-1), torch.ones(1, 100))


def test_text_models_are_fed_token_ids_for_flop_counting_and_profiling():
    module = zoo.build("bert_tiny", entries=CATALOGUE).module
    meta = zoo.example_input(module, (128,), device="meta")
    assert (meta.dtype, meta.device.type, meta.shape) == (torch.int64, "meta", (1, 128))
    ids = zoo.example_input(module, (128,), 3, generator=torch.Generator().manual_seed(0))
    assert ids.dtype == torch.int64 and 0 <= ids.min() and ids.max() < 30522
    assert zoo.architecture("bert_tiny", CATALOGUE).input_dtype == torch.int64
    # The hardware node's pre-run estimate profiles the very model, token ids and all.
    profile = profile_model(module, (128,))
    assert profile.flops_per_sample == flops_per_sample(find(CATALOGUE, "bert_tiny"))


# ---------------------------------------------------------------------------------------------- scikit-learn


@pytest.mark.parametrize("name", ["decision_tree_classifier", "ridge_regression"])
def test_a_scikit_learn_model_is_built_unfitted_with_seeded_data_of_its_shape(name: str):
    workload = zoo.build_estimator(name, entries=CATALOGUE)
    X, y = workload.data(40)
    features = find(CATALOGUE, name).input_shape[0]
    assert X.shape == (40, features) and X.dtype == np.float32
    assert np.array_equal(X, workload.data(40)[0])
    if name.endswith("classifier"):
        assert set(np.unique(y)) == {0, 1}
    else:
        assert y.dtype == np.float32
    workload.estimator.fit(X, y)
    assert workload.estimator.predict(X[:3]).shape == (3,)


def test_each_library_has_its_builder_and_the_wrong_one_says_which_to_use():
    with pytest.raises(LibraryMismatch, match=r"random_forest_regressor is a scikit-learn model: build it with "
                                              r"zoo.build_estimator\('random_forest_regressor'\)"):
        zoo.build("random_forest_regressor", entries=CATALOGUE)
    with pytest.raises(LibraryMismatch, match=r"resnet18 is a torch model: build it with zoo.build\('resnet18'\)"):
        zoo.build_estimator("resnet18", entries=CATALOGUE)
    assert zoo.architecture("random_forest_regressor", CATALOGUE).library == "sklearn"


def test_token_limits_are_checked_before_building():
    with pytest.raises(Exception, match=r"takes at most 1024 tokens; 1000 prompt \+ 32 generated tokens"):
        zoo.build("distilgpt2", input_shape=(1000,), entries=CATALOGUE)
