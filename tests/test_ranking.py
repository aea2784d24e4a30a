"""The orchestrator's ranking: options joined from hand-built node outputs, checked, ranked, explained."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from sustainml import msg
from sustainml_nodes.orchestrator.ranking import (
    assess,
    build_options,
    explain,
    missing_constraints_summary,
    unmeetable_constraints,
)

HOST = "lab-1"


@dataclass
class Spec:
    """One option as a test describes it; turned into the three node outputs it comes from."""

    model: str
    device: str
    region: str
    quality: float
    total_co2_g: float
    latency_ms: float
    peak_memory_mb: float = 500.0
    training_co2_g: float = 0.0
    train_step_ms: float = 100.0
    train_batch_size: int = 50
    default_epochs: int = 90
    energy_method: str = "nvml"
    assumptions: str = ""


def encoded_task(constraints: msg.TaskConstraints | None = None, *, samples: int = 50_000, epochs: int = 0,
                 metric: str = "top1_accuracy", higher_is_better: bool = True) -> msg.EncodedTask:
    return msg.EncodedTask(
        task_id=msg.TaskId("p1", 1),
        task_type="image_classification",
        metric=metric,
        higher_is_better=higher_is_better,
        dataset=msg.DatasetInfo(num_samples=samples),
        constraints=constraints or msg.TaskConstraints(),
        epochs=epochs,
    )


def node_outputs(specs: list[Spec], *, metric: str = "top1_accuracy", higher_is_better: bool = True):
    task_id = msg.TaskId("p1", 1)
    candidates = msg.ModelCandidates(task_id=task_id)
    for spec in specs:
        if spec.model not in {c.name for c in candidates.candidates}:
            candidates.candidates.append(
                msg.ModelCandidate(
                    name=spec.model,
                    quality_metric=metric,
                    quality_value=spec.quality,
                    higher_is_better=higher_is_better,
                    default_epochs=spec.default_epochs,
                )
            )
    measurements = msg.HardwareMeasurement(
        task_id=task_id,
        host=HOST,
        measurements=[
            msg.JobMeasurement(
                model=s.model,
                device=s.device,
                host=HOST,
                batch_size=1,
                latency_p50_ms=s.latency_ms,
                energy_per_inference_j=0.5,
                energy_per_inference_uncertainty_j=0.05,
                peak_memory_mb=s.peak_memory_mb,
                train_batch_size=s.train_batch_size,
                train_step_ms=s.train_step_ms,
                energy_method=s.energy_method,
                assumptions=s.assumptions,
            )
            for s in specs
        ],
    )
    footprints = msg.CarbonFootprint(
        task_id=task_id,
        host=HOST,
        footprints=[
            msg.FootprintDetail(
                model=s.model,
                device=s.device,
                host="",  # the enclosing message's host applies
                region=s.region,
                intensity_g_per_kwh=300.0,
                pue=1.2,
                train_energy_kwh=0.01,
                training_co2_g=s.training_co2_g,
                inference_co2_g=s.total_co2_g - s.training_co2_g,
                total_co2_g=s.total_co2_g,
                sci_g_per_request=0.001,
            )
            for s in specs
        ],
    )
    return candidates, [measurements], [footprints]


def by_model(options: list[msg.TaskOption]) -> dict[str, msg.TaskOption]:
    return {o.model: o for o in options}


def sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


SMALL = Spec("resnet18", "cpu", "FRA", quality=69.8, total_co2_g=1.0, latency_ms=10.0)
LARGE = Spec("resnet50", "cuda:0", "DEU", quality=76.1, total_co2_g=3.0, latency_ms=5.0)
DOMINATED = Spec("vgg16", "cpu", "DEU", quality=71.6, total_co2_g=5.0, latency_ms=41.0)


def test_a_dominated_option_is_off_the_front_and_ranked_last():
    options = build_options(encoded_task(), *node_outputs([DOMINATED, LARGE, SMALL]))

    assert [o.model for o in options] == ["resnet18", "resnet50", "vgg16"]
    assert [o.rank for o in options] == [1, 2, 3]
    found = by_model(options)
    assert found["resnet18"].pareto and found["resnet50"].pareto
    assert not found["vgg16"].pareto  # resnet50 is better on quality, gCO2e and latency
    assert all(o.meets_constraints for o in options)


def test_option_carries_the_joined_figures():
    (option,) = build_options(encoded_task(), *node_outputs([SMALL]))

    assert (option.model, option.device, option.host, option.region) == ("resnet18", "cpu", HOST, "FRA")
    assert option.quality == msg.QualityFigure("top1_accuracy", 69.8, True)
    assert option.latency_ms == 10.0
    assert option.energy_per_inference_j == 0.5
    assert option.energy_per_inference_uncertainty_j == 0.05
    assert option.energy_method == "nvml"
    assert (option.intensity_g_per_kwh, option.pue, option.train_energy_kwh) == (300.0, 1.2, 0.01)
    assert option.total_co2_g == 1.0 and option.sci_g_per_request == 0.001


def test_missed_constraints_are_named_in_the_note():
    constraints = msg.TaskConstraints(
        quality_target=70.0, max_latency_ms=20.0, max_memory_mb=1024.0, max_train_co2_g=50.0
    )
    heavy = Spec("vgg16", "cpu", "DEU", quality=71.6, total_co2_g=80.0, latency_ms=41.0,
                 peak_memory_mb=2048.0, training_co2_g=60.0)
    options = by_model(build_options(encoded_task(constraints), *node_outputs([SMALL, LARGE, heavy])))

    assert "top1_accuracy 69.8 < 70 target" in options["resnet18"].note
    assert "latency 41 ms > 20 ms limit" in options["vgg16"].note
    assert "peak memory 2,048 MB > 1,024 MB limit" in options["vgg16"].note
    assert "training 60 g CO2e > 50 g limit" in options["vgg16"].note
    assert not options["resnet18"].meets_constraints and not options["vgg16"].meets_constraints
    assert options["resnet50"].meets_constraints and options["resnet50"].note == ""


def test_quality_target_is_a_ceiling_for_error_metrics():
    encoded = encoded_task(msg.TaskConstraints(quality_target=0.3), metric="rmse", higher_is_better=False)
    good = Spec("xgboost", "cpu", "FRA", quality=0.2, total_co2_g=0.1, latency_ms=1.0)
    bad = Spec("linear", "cpu", "FRA", quality=0.5, total_co2_g=0.05, latency_ms=0.5)
    options = by_model(build_options(encoded, *node_outputs([good, bad], metric="rmse", higher_is_better=False)))

    assert options["xgboost"].meets_constraints
    assert "rmse 0.5 > 0.3 target" in options["linear"].note
    assert options["xgboost"].rank == 1


def test_train_time_estimate_uses_catalogue_epochs_and_names_its_assumptions():
    # 100 ms per 50-sample step × 50,000 samples × 90 epochs = 9,000 s = 2.5 h
    (option,) = build_options(encoded_task(msg.TaskConstraints(max_train_hours=2.0)), *node_outputs([SMALL]))

    assert not option.meets_constraints
    assert "training ≈ 2.5 h > 2 h limit" in option.note
    assert "90 epochs × 50,000 samples at 100 ms per 50-sample step" in option.note


def test_planned_epochs_override_the_catalogue_recipe():
    encoded = encoded_task(msg.TaskConstraints(max_train_hours=2.0), epochs=10)  # 0.28 h
    (option,) = build_options(encoded, *node_outputs([SMALL]))

    assert option.meets_constraints
    assert "10 epochs" in option.note


def test_train_time_is_not_checked_without_a_dataset_size():
    encoded = encoded_task(msg.TaskConstraints(max_train_hours=0.001), samples=0)
    (option,) = build_options(encoded, *node_outputs([SMALL]))

    assert option.meets_constraints
    assert "training time not checked: dataset size unknown" in option.note


def test_front_is_computed_among_options_that_meet_the_constraints():
    # resnet18 is undominated overall but misses the quality target; vgg16 meets it and is
    # dominated only by resnet50.
    encoded = encoded_task(msg.TaskConstraints(quality_target=70.0))
    options = by_model(build_options(encoded, *node_outputs([SMALL, LARGE, DOMINATED])))

    assert options["resnet50"].pareto and not options["vgg16"].pareto
    assert not options["resnet18"].pareto
    assert [options[m].rank for m in ("resnet50", "vgg16", "resnet18")] == [1, 2, 3]


def test_when_nothing_meets_the_constraints_the_front_is_computed_among_all():
    encoded = encoded_task(msg.TaskConstraints(max_latency_ms=1.0))
    options = build_options(encoded, *node_outputs([DOMINATED, LARGE, SMALL]))

    assert not any(o.meets_constraints for o in options)
    assert [(o.model, o.pareto) for o in options] == [("resnet18", True), ("resnet50", True), ("vgg16", False)]


def test_rank_meets_then_front_then_co2_then_quality():
    encoded = encoded_task(msg.TaskConstraints(max_latency_ms=20.0))
    specs = [
        Spec("a_slow_green", "cpu", "SWE", quality=90.0, total_co2_g=0.1, latency_ms=50.0),  # misses latency
        Spec("b_front", "cuda:0", "DEU", quality=80.0, total_co2_g=2.0, latency_ms=5.0),
        Spec("c_dominated", "cpu", "DEU", quality=75.0, total_co2_g=2.5, latency_ms=6.0),
        Spec("d_dominated_tie", "cpu", "POL", quality=78.0, total_co2_g=2.5, latency_ms=6.0),
        Spec("e_front_green", "cpu", "FRA", quality=70.0, total_co2_g=1.0, latency_ms=15.0),
    ]
    options = build_options(encoded, *node_outputs(specs))

    assert [o.model for o in options] == [
        "e_front_green",  # meets, on the front, least CO2
        "b_front",  # meets, on the front
        "d_dominated_tie",  # meets, off the front, 2.5 g, better quality wins the tie
        "c_dominated",
        "a_slow_green",  # misses a constraint
    ]
    assert [o.rank for o in options] == [1, 2, 3, 4, 5]


def test_an_option_without_its_measurement_cannot_meet_constraints_and_goes_last():
    candidates, measurements, footprints = node_outputs([SMALL, LARGE])
    measurements[0].measurements = [m for m in measurements[0].measurements if m.model != "resnet18"]
    options = build_options(encoded_task(), candidates, measurements, footprints)

    assert [o.model for o in options] == ["resnet50", "resnet18"]
    assert not options[1].meets_constraints and not options[1].pareto
    assert "no measurement of resnet18 on cpu at lab-1" in options[1].note


def test_one_option_per_footprint_and_region():
    candidates, measurements, footprints = node_outputs([SMALL])
    extra = msg.FootprintDetail(model="resnet18", device="cpu", host=HOST, region="POL", total_co2_g=4.0)
    footprints.append(msg.CarbonFootprint(task_id=msg.TaskId("p1", 1), host=HOST, footprints=[extra]))
    options = build_options(encoded_task(), candidates, measurements, footprints)

    assert [(o.region, o.rank) for o in options] == [("FRA", 1), ("POL", 2)]
    assert options[1].latency_ms == 10.0  # the same measurement, served elsewhere


def test_energy_estimates_are_declared_in_the_note():
    estimated = Spec("resnet18", "cpu", "FRA", quality=69.8, total_co2_g=1.0, latency_ms=10.0,
                     energy_method="estimate", assumptions="TDP 65 W × utilisation")
    (option,) = build_options(encoded_task(), *node_outputs([estimated]))

    assert option.energy_method == "estimate"
    assert "energy is an estimate: TDP 65 W × utilisation" in option.note


def test_explanation_names_the_winner_the_count_and_the_trade_off():
    encoded = encoded_task(msg.TaskConstraints(max_latency_ms=20.0))
    options = build_options(encoded, *node_outputs([SMALL, LARGE, DOMINATED]))
    text = explain(encoded, options)

    assert text.startswith("Recommended: resnet18 on cpu in FRA")
    assert "2 of 3 options meet the constraints" in text
    assert "resnet18 on cpu in FRA emits 2 g CO2e less than resnet50 on cuda:0 in DEU at -6.3 top1_accuracy" in text
    assert "estimate" not in text
    assert 3 <= sentences(text) <= 6


def test_explanation_warns_about_estimates_and_missed_constraints():
    estimated = Spec("resnet18", "cpu", "FRA", quality=69.8, total_co2_g=1.0, latency_ms=30.0,
                     energy_method="estimate")
    encoded = encoded_task(msg.TaskConstraints(max_latency_ms=20.0))
    text = explain(encoded, build_options(encoded, *node_outputs([estimated])))

    assert "None of the 1 options meets every constraint" in text
    assert "latency 30 ms > 20 ms limit" in text
    assert "labelled estimate" in text and "not measurements" in text
    assert 3 <= sentences(text) <= 6


def test_explanation_of_nothing():
    assert "No option" in explain(encoded_task(), [])


def test_missing_constraints_summary_says_what_to_loosen():
    encoded = encoded_task(msg.TaskConstraints(max_latency_ms=8.0, quality_target=70.0))
    summary = missing_constraints_summary(assess(encoded, *node_outputs([SMALL, LARGE, DOMINATED])))

    assert "latency limit missed by 2 of 3" in summary
    assert "quality target missed by 1 of 3" in summary
    assert "Loosening the latency limit alone would admit 1 more option." in summary


@pytest.mark.parametrize("specs", [[SMALL, LARGE, DOMINATED], [DOMINATED], []])
def test_options_survive_serialisation(specs):
    options = build_options(encoded_task(), *node_outputs(specs))
    result = msg.TaskResult(task_id=msg.TaskId("p1", 1), options=options)

    assert msg.TaskResult.deserialize(result.serialize()).options == options


def test_a_latency_budget_no_option_meets_is_reported_with_the_closest_option():
    task = encoded_task(msg.TaskConstraints(max_latency_ms=2.0, max_train_co2_g=100.0))
    assessed = assess(task, *node_outputs([SMALL, LARGE, DOMINATED]))
    findings = unmeetable_constraints(assessed)
    assert [(f.field, f.kind) for f in findings] == [("constraints.max_latency_ms", "contradiction")]
    assert "no option meets the latency limit; the closest is resnet50 on cuda:0 in DEU: latency 5 ms > 2 ms" \
        in findings[0].message


def test_a_training_budget_below_the_cheapest_candidate_is_reported():
    cheap = Spec("resnet18", "cpu", "FRA", quality=69.8, total_co2_g=3.0, latency_ms=10.0, training_co2_g=2.0)
    dear = Spec("resnet50", "cpu", "FRA", quality=76.1, total_co2_g=9.0, latency_ms=20.0, training_co2_g=8.0)
    findings = unmeetable_constraints(assess(encoded_task(msg.TaskConstraints(max_train_co2_g=1.0)),
                                             *node_outputs([cheap, dear])))
    assert len(findings) == 1 and findings[0].field == "constraints.max_train_co2_g"
    assert "closest is resnet18 on cpu in FRA: training 2 g CO2e > 1 g limit" in findings[0].message


def test_nothing_is_reported_when_some_option_meets_each_constraint():
    task = encoded_task(msg.TaskConstraints(max_latency_ms=8.0, quality_target=70.0))
    assert unmeetable_constraints(assess(task, *node_outputs([SMALL, LARGE]))) == []


def test_a_candidate_without_a_published_quality_is_unknown_not_zero():
    unknown = Spec("ridge", "cpu", "FRA", quality=float("nan"), total_co2_g=0.5, latency_ms=1.0)
    options = build_options(encoded_task(), *node_outputs([unknown, SMALL]))
    found = by_model(options)
    assert found["ridge"].pareto and found["resnet18"].pareto  # greener and faster, but quality unknown
    targeted = by_model(build_options(encoded_task(msg.TaskConstraints(quality_target=60.0)),
                                      *node_outputs([unknown, SMALL])))
    assert not targeted["ridge"].meets_constraints
    assert "quality unknown (no published top1_accuracy figure)" in targeted["ridge"].note
    assert targeted["resnet18"].rank == 1
