"""Greener variants on each candidate: what they are, what they are expected to cost in quality, and
whether that figure is published (both sources) or an assumption that says so."""

import pytest

from sustainml.msg import EncodedTask, GreenerVariant
from sustainml.models.catalogue import find, flops_per_sample, load_catalogue
from sustainml_nodes.model_provider.greener import variants_for
from sustainml_nodes.model_provider.proposal import propose

CATALOGUE = load_catalogue(extra=[])


def variants(name: str) -> dict[str, GreenerVariant]:
    found = variants_for(find(CATALOGUE, name), CATALOGUE, flops_per_sample)
    by_name = {v.name: v for v in found}
    assert len(by_name) == len(found), "variant names are unique per candidate"
    return by_name


def test_smaller_sizes_of_a_family_carry_the_difference_of_the_published_figures_and_both_sources():
    bert = variants("bert_base")
    smaller = [v for v in bert.values() if v.kind == "smaller_size"]
    assert [v.name for v in smaller] == ["bert_tiny", "bert_small", "bert_medium"]  # cheapest first
    tiny = bert["bert_tiny"]
    assert tiny.quality_change == pytest.approx(0.832 - 0.935)
    assert tiny.quality_effect == "-10.3 points of accuracy on SST-2 (GLUE test) (83.2% accuracy vs 93.5% accuracy)"
    assert not tiny.assumed
    assert "huggingface.co/google-bert/bert-base-uncased" in tiny.evidence
    assert "huggingface.co/google/bert_uncased_L-2_H-128_A-2" in tiny.evidence
    ratio = flops_per_sample(find(CATALOGUE, "bert_tiny")) / flops_per_sample(find(CATALOGUE, "bert_base"))
    assert tiny.energy_factor == pytest.approx(ratio, rel=1e-2)  # three significant digits

    resnet = variants("resnet50")["resnet18"]
    assert resnet.quality_effect.startswith("-6.4 points of top-1 on ImageNet-1k val")
    # Another benchmark is not compared: DistilBERT publishes SST-2 dev, the BERTs SST-2 test.
    assert "distilbert_base" not in {v.name for v in bert.values() if v.kind == "smaller_size"}


def test_distillation_names_its_student_and_its_published_figure():
    bert = variants("bert_base")["distilbert_base"]
    assert (bert.kind, bert.quality_change, bert.assumed) == ("distillation", -0.014, False)
    assert "arxiv.org/abs/1910.01108" in bert.evidence
    gpt2 = variants("gpt2")["distilgpt2"]
    assert (gpt2.quality_change, gpt2.assumed) == (4.8, False)
    assert gpt2.quality_effect.startswith("+4.8 perplexity on WikiText-103 test")
    assert 0.4 < gpt2.energy_factor < 0.7
    mobilenet = variants("resnet50")["mobilenet_v2"]
    assert mobilenet.kind == "distillation" and mobilenet.assumed and "assumption:" in mobilenet.evidence


INT8 = "int8-dynamic"


def test_int8_dynamic_is_offered_where_linear_layers_hold_the_weights():
    with_int8 = {e.name for e in CATALOGUE if INT8 in variants(e.name)}
    assert with_int8 == {
        "tabular_mlp", "tabular_resnet", "ft_transformer", "bert_tiny", "bert_small", "bert_medium", "bert_base",
        "distilbert_base", "yolos_tiny", "yolos_small", "dlinear", "patchtst",
    }  # not the convolutional networks, not GPT-2 (Conv1D layers), not scikit-learn
    bert = variants("bert_base")[INT8]
    assert (bert.kind, bert.quality_change, bert.assumed) == ("quantization", -0.0045, True)
    assert "Intel/bert-base-uncased-mrpc-int8-dynamic-inc" in bert.evidence
    mlp = variants("tabular_mlp")[INT8]
    assert mlp.assumed and mlp.evidence.startswith("assumption:")


def test_precision_and_training_variants_are_marked_as_assumptions_with_their_energy_factors():
    torch_model = variants("bert_tiny")
    assert {"bf16", "fp16"} <= set(torch_model)
    assert all(torch_model[p].assumed and torch_model[p].evidence.startswith("assumption:") for p in ("bf16", "fp16"))
    training = {v.kind: v.energy_factor for v in torch_model.values() if v.kind in
                ("data_sampling", "early_stopping", "fewer_epochs")}
    assert training == {"data_sampling": 0.25, "early_stopping": 0.0, "fewer_epochs": 0.5}

    forest = variants("random_forest_regressor")
    assert [v.kind for v in forest.values()] == ["data_sampling"]  # no precision, epochs or stopping for one fit
    for v in [*torch_model.values(), *forest.values()]:
        assert v.evidence and v.quality_effect and v.description
        assert v.assumed or "https://" in v.evidence


def test_candidates_carry_their_variants():
    task = EncodedTask(task_type="object_detection", metric="box_map")
    proposal = propose(task, CATALOGUE)
    small = next(c for c in proposal.candidates if c.name == "yolos_small")
    assert small.variants[0].name == "yolos_tiny"
    assert small.variants[0].quality_change == pytest.approx(0.287 - 0.361)
