"""The estimator's learning: which measurements correct the next estimate (model → family → library →
none), and the leave-one-out that bench/estimator.py uses to say how well a never-measured model is
predicted. Hand-made observations, nothing is measured."""

from __future__ import annotations

import math

import pytest

from sustainml_nodes.hw_constraints.learning import (
    UNLEARNED_RELATIVE_UNCERTAINTY,
    Observation,
    correction_for,
    family_key,
    kind_key,
)


def seen(model: str, family: str, library: str, ratio: float, phase: str = "inference") -> Observation:
    """An observation whose latency is ``ratio`` × the estimate and energy twice that."""
    return Observation(model=model, family=family, library=library, phase=phase, latency_ratio=ratio,
                       energy_ratio=2 * ratio)


OBSERVED = [
    seen("resnet18", "ResNet", "torch", 2.0),
    seen("resnet50", "ResNet", "torch", 8.0),
    seen("bert_tiny", "BERT", "torch", 0.5),
    seen("ridge_regression", "Linear model", "sklearn", 0.1),
    seen("resnet18", "ResNet", "torch", 3.0, phase="training"),
]


def test_a_model_measured_before_is_corrected_by_its_own_ratio() -> None:
    got = correction_for(OBSERVED, model="resnet18", family="ResNet", library="torch", phase="inference")
    assert (got.latency_factor, got.energy_factor, got.observations) == (pytest.approx(2.0), pytest.approx(4.0), 1)
    assert "this model" in got.basis


def test_leaving_the_model_out_falls_back_to_its_family() -> None:
    got = correction_for(OBSERVED, model="resnet18", family="ResNet", library="torch", phase="inference",
                         exclude_model=True)
    assert got.latency_factor == pytest.approx(8.0)  # resnet50 alone
    assert got.observations == 1
    assert "ResNet" in got.basis


def test_a_new_family_member_gets_the_geometric_mean_of_the_family() -> None:
    got = correction_for(OBSERVED, model="resnet34", family="ResNet", library="torch", phase="inference")
    assert got.latency_factor == pytest.approx(4.0)  # sqrt(2 × 8)
    assert got.energy_factor == pytest.approx(8.0)
    # The spread of the two ratios (log 2 and log 8: a standard deviation of log 4 / sqrt 2) is above the floor.
    assert got.relative_uncertainty == pytest.approx(math.log(4) / math.sqrt(2))


def test_a_lone_family_falls_back_to_its_library_and_never_to_another_library() -> None:
    got = correction_for(OBSERVED, model="bert_tiny", family="BERT", library="torch", phase="inference",
                         exclude_model=True)
    assert got.latency_factor == pytest.approx(4.0)  # resnet18 and resnet50; not ridge_regression's 0.1
    assert got.observations == 2
    assert "torch" in got.basis


def test_nothing_learnt_for_the_library_is_no_correction() -> None:
    got = correction_for(OBSERVED, model="ridge_regression", family="Linear model", library="sklearn",
                         phase="inference", exclude_model=True)
    assert (got.latency_factor, got.energy_factor, got.observations) == (1.0, 1.0, 0)
    assert got.relative_uncertainty == UNLEARNED_RELATIVE_UNCERTAINTY


def test_phases_are_learnt_apart() -> None:
    got = correction_for(OBSERVED, model="resnet50", family="ResNet", library="torch", phase="training",
                         exclude_model=True)
    assert got.latency_factor == pytest.approx(3.0)  # resnet18's training ratio, not any inference one


def test_one_model_has_at_least_the_floor_of_its_level() -> None:
    model = correction_for(OBSERVED, model="resnet50", family="ResNet", library="torch", phase="inference")
    family = correction_for(OBSERVED, model="resnet50", family="ResNet", library="torch", phase="inference",
                            exclude_model=True)
    library = correction_for(OBSERVED, model="gpt2", family="GPT-2", library="torch", phase="training")
    assert model.relative_uncertainty < family.relative_uncertainty < library.relative_uncertainty
    assert library.relative_uncertainty < UNLEARNED_RELATIVE_UNCERTAINTY


@pytest.mark.parametrize("field, value", [("phase", "serving"), ("latency_ratio", 0.0), ("energy_ratio", -1.0)])
def test_an_observation_out_of_range_is_refused(field: str, value: object) -> None:
    fields = {"model": "m", "family": "f", "library": "torch", "phase": "inference", "latency_ratio": 1.0,
              "energy_ratio": 1.0, field: value}
    with pytest.raises(ValueError):
        Observation(**fields)


def test_one_family_name_for_two_kinds_of_data_is_two_families() -> None:
    image, tabular = family_key("ResNet", "image"), family_key("ResNet", "tabular")
    observed = [Observation("tabular_resnet", tabular, kind_key("torch", "tabular"), "inference", 0.2, 0.2),
                Observation("mobilenet_v2", family_key("MobileNet", "image"), kind_key("torch", "image"),
                            "inference", 3.0, 3.0)]
    got = correction_for(observed, model="resnet18", family=image, library=kind_key("torch", "image"),
                         phase="inference")
    # Not the tabular ResNet's ratio: the image models' of the same library.
    assert (got.level, got.latency_factor) == ("kind", pytest.approx(3.0))
    other = correction_for(observed, model="bert_tiny", family=family_key("BERT", "text"),
                           library=kind_key("torch", "text"), phase="inference")
    assert other.level == "library" and other.observations == 2
