"""A hardware node builds what a candidate's builder says, not what its catalogue calls by that name: two
models proposed under one name get different figures and never share stored ones; a candidate without
a builder is built from the catalogue when its name is there, and refused with the reason otherwise."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sustainml import msg
from sustainml_nodes.hw_constraints.answer import Budget, MeasuringSettings, TaskMeasuring
from sustainml_nodes.hw_constraints.cache import MeasurementCache
from sustainml_nodes.hw_constraints.candidate_model import UnbuildableCandidate, resolve
from sustainml.energy_estimate import EstimateEnergySource
from sustainml_nodes.hw_constraints.estimate import DeviceCalibration
from sustainml_nodes.hw_constraints.inventory import read_inventory
from sustainml_nodes.hw_constraints.prerun import PreRunEstimator
from sustainml.models.catalogue import default_catalogue, find, to_candidate

TABULAR = "tabular_regression"


def mlp(name: str, d_layers: list[int], *, flops: float = 0.0, params: float = 0.0) -> msg.ModelCandidate:
    """A partner's candidate: a zoo tabular MLP of its own widths, its FLOPs and params left unknown (0)."""
    return msg.ModelCandidate(
        name=name, family="MLP", task_type=TABULAR, params=params, flops_per_sample=flops, input_shape=[8],
        quality_metric="rmse", quality_value=0.5, default_epochs=10, default_batch_size=64, library="torch",
        builder=msg.ModelBuilder(kind="zoo", name="tabular_mlp", settings=[
            msg.BuilderSetting(name="d_layers", is_list=True, integers=d_layers),
            msg.BuilderSetting(name="dropout", numbers=[0.1])]))


@pytest.fixture
def estimator() -> PreRunEstimator:
    """An estimator on an in-memory store, with a made-up CPU calibration (nothing is run)."""
    cache = MeasurementCache(":memory:")
    estimator = PreRunEstimator(cache, host="test-host", precision="fp32", window_s=0.2)
    estimator._calibrations["cpu"] = DeviceCalibration(
        device="cpu", device_name="a CPU", precision="fp32", energy_method="estimate", flop_per_s=1e10,
        j_per_flop=1e-10, active_power_w=10.0, idle_power_w=5.0, memory_bytes_per_s=1e10, call_overhead_s=1e-6,
        train_call_overhead_s=3e-6, relative_uncertainty=0.1, matmul_size=512, window_s=0.2, assumptions="")
    yield estimator
    cache.close()


def test_one_name_with_other_widths_is_another_model(estimator: PreRunEstimator) -> None:
    narrow, wide = resolve(mlp("partner_mlp", [64, 32])), resolve(mlp("partner_mlp", [512, 256]))
    assert narrow.fingerprint != wide.fingerprint
    p_narrow, p_wide = estimator.profile(narrow), estimator.profile(wide)
    assert p_narrow.flops_per_sample < p_wide.flops_per_sample / 10
    assert p_narrow.weight_bytes < p_wide.weight_bytes / 10
    # 8 features -> 64 -> 32 -> 1: the widths the builder gave, counted here (the candidate said 0)
    assert p_narrow.weight_bytes / 4 == (8 * 64 + 64) + (64 * 32 + 32) + (32 * 1 + 1)

    a = estimator.estimate(mlp("partner_mlp", [64, 32]), "cpu", "a CPU", batch_size=1, train_batch_size=8)
    b = estimator.estimate(mlp("partner_mlp", [512, 256]), "cpu", "a CPU", batch_size=1, train_batch_size=8)
    assert a.measurement.latency_p50_ms < b.measurement.latency_p50_ms
    assert (a.builder, b.builder) == (narrow.fingerprint, wide.fingerprint)
    for figures in (a.measurement, b.measurement):
        assert math.isfinite(figures.energy_per_inference_j) and figures.energy_per_inference_j > 0


def test_what_one_model_taught_is_not_taken_for_the_other_of_the_same_name(estimator: PreRunEstimator) -> None:
    narrow = estimator.estimate(mlp("partner_mlp", [64, 32]), "cpu", "a CPU", batch_size=1, train_batch_size=0)
    measured = dataclasses.replace(narrow.measurement, latency_p50_ms=narrow.measurement.latency_p50_ms * 7,
                                   energy_per_inference_j=narrow.measurement.energy_per_inference_j * 7)
    estimator.learn(narrow, measured, "a CPU")
    again = estimator.estimate(mlp("partner_mlp", [64, 32]), "cpu", "a CPU", batch_size=1, train_batch_size=0)
    other = estimator.estimate(mlp("partner_mlp", [512, 256]), "cpu", "a CPU", batch_size=1, train_batch_size=0)
    assert "this model's earlier measurement" in again.measurement.assumptions
    assert "this model's earlier measurement" not in other.measurement.assumptions
    assert "measured MLP (any) models" in other.measurement.assumptions   # its family still teaches


def test_stored_measurements_are_keyed_by_the_builder(estimator: PreRunEstimator) -> None:
    inventory = read_inventory("test-host")
    task = msg.EncodedTask(task_id=msg.TaskId(problem_id="keys", iteration=1), task_type=TABULAR,
                           allowed_hardware=["cpu"], reuse_only=True)
    keys = []
    for widths in ([64, 32], [512, 256]):
        candidates = msg.ModelCandidates(task_id=task.task_id, candidates=[mlp("partner_mlp", widths)])
        measuring = TaskMeasuring(
            task=task, candidates=candidates, devices=["cpu"], excluded=[], inventory=inventory,
            cache=estimator.cache, estimator=estimator,
            settings=MeasuringSettings(window_s=0.2, train_batch_size=8, precision="fp32"),
            budget=Budget(seconds=1.0), publish=lambda m: None, progress=lambda p, t: None, check=lambda: None)
        [job] = measuring.jobs
        keys.append(measuring._key(job, train=True))
    assert keys[0].model == keys[1].model == "partner_mlp"
    assert keys[0] != keys[1] and keys[0].builder != keys[1].builder


def test_a_catalogue_candidate_without_a_builder_is_built_from_the_catalogue() -> None:
    entry = find(default_catalogue(), "tabular_mlp")
    with_builder = to_candidate(entry, "test")
    without = dataclasses.replace(with_builder, builder=msg.ModelBuilder())
    old, new = resolve(without), resolve(with_builder)
    assert old.from_catalogue and not new.from_catalogue
    assert old.fingerprint == new.fingerprint   # the same model: the same stored figures
    assert old.arch.builder == new.arch.builder == entry.builder


def test_a_candidate_without_a_builder_outside_the_catalogue_is_refused() -> None:
    candidate = dataclasses.replace(mlp("fastdds_mlp", [64]), builder=msg.ModelBuilder())
    with pytest.raises(UnbuildableCandidate, match=r"candidate 'fastdds_mlp' has no builder \(ModelCandidate.builder"
                                                   r".kind is empty\) and this hardware node's catalogue has no model"):
        resolve(candidate)


@pytest.mark.parametrize("candidate, match", [
    (dataclasses.replace(mlp("m", [64]), builder=msg.ModelBuilder(kind="zoo", name="tabular_mlpp")),
     r"candidate 'm': field 'builder.name': expected a zoo builder"),
    (dataclasses.replace(mlp("m", [64]), input_shape=[]), r"candidate 'm': field 'input_shape'"),
    (dataclasses.replace(mlp("m", [64]), input_shape=[3, 32, 32]),
     r"candidate 'm': field 'builder.settings': zoo tabular_mlp cannot be built with them at input_shape \[3, 32, 32\]"),
    (dataclasses.replace(mlp("m", [64]), builder=msg.ModelBuilder(kind="zoo", name="tabular_mlp", settings=[
        msg.BuilderSetting(name="d_layers", is_list=True, strings=["wide"])])),
     r"candidate 'm': field 'builder.settings': zoo tabular_mlp cannot be built"),
])
def test_a_bad_builder_is_refused_naming_the_field(candidate: msg.ModelCandidate, match: str) -> None:
    with pytest.raises(UnbuildableCandidate, match=match):
        resolve(candidate)


def test_an_unbuildable_candidate_is_excluded_and_the_others_answered(estimator: PreRunEstimator) -> None:
    inventory = read_inventory("test-host")
    task = msg.EncodedTask(task_id=msg.TaskId(problem_id="bad", iteration=1), task_type=TABULAR,
                           allowed_hardware=["cpu"], reuse_only=True)
    bad = dataclasses.replace(mlp("broken", [64]), builder=msg.ModelBuilder(kind="zoo", name="nope"))
    candidates = msg.ModelCandidates(task_id=task.task_id, candidates=[bad, mlp("partner_mlp", [64, 32])])
    estimator._sources["cpu"] = EstimateEnergySource()
    answer = TaskMeasuring(
        task=task, candidates=candidates, devices=["cpu"], excluded=[], inventory=inventory, cache=estimator.cache,
        estimator=estimator, settings=MeasuringSettings(window_s=0.2, train_batch_size=8, precision="fp32"),
        budget=Budget(seconds=1.0), publish=lambda m: None, progress=lambda p, t: None, check=lambda: None).run()
    assert [m.model for m in answer.measurements] == ["partner_mlp"]
    [why] = answer.excluded
    assert why.startswith("broken: cannot be built on test-host: candidate 'broken': field 'builder.name'")


def test_a_partners_scikit_learn_and_transformers_models_are_built_too(estimator: PreRunEstimator) -> None:
    forest = msg.ModelCandidate(
        name="partner_forest", task_type=TABULAR, input_shape=[8], library="",   # the builder says what runs it
        builder=msg.ModelBuilder(kind="sklearn", name="RandomForestRegressor", settings=[
            msg.BuilderSetting(name="n_estimators", integers=[5]), msg.BuilderSetting(name="max_depth", integers=[3])]))
    model = resolve(forest)
    assert model.library == "sklearn"
    workload = model.build_estimator()
    assert (workload.estimator.n_estimators, workload.estimator.max_depth) == (5, 3)
    estimate = estimator.estimate(forest, "cpu", "a CPU", batch_size=1, train_batch_size=64)
    assert "a declared prior for scikit-learn models" in estimate.measurement.assumptions

    def bert(layers: int) -> msg.ModelCandidate:
        return msg.ModelCandidate(
            name="partner_bert", task_type="text_classification", input_shape=[32], library="torch",
            builder=msg.ModelBuilder(kind="transformers", name="BertForSequenceClassification", num_outputs=3,
                                     settings=[msg.BuilderSetting(name=k, integers=[v]) for k, v in (
                                         ("hidden_size", 32), ("num_hidden_layers", layers),
                                         ("num_attention_heads", 2), ("intermediate_size", 64))]))

    one, two = resolve(bert(1)), resolve(bert(2))
    assert one.arch.default_num_outputs == 3 and one.fingerprint != two.fingerprint
    assert estimator.profile(one).weight_bytes < estimator.profile(two).weight_bytes
