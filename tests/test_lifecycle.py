"""The lifecycle footprint's arithmetic against cases computed by hand: phases (experimentation,
training, inference, embodied), PUE, SCI with its embodied M, the greenest allowed regions, the other
devices, uncertainty, and what happens with absurd inputs.

The embodied figure is injected (``CarbonSettings.embodied``) so the hand computation does not depend
on the reference table; the table itself is checked separately below.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from sustainml import msg
from sustainml.exceptions import InvalidProblem
from sustainml.report import phase_shares, with_uncertainty
from sustainml_nodes.carbon_tracker.footprint import CarbonSettings, compute_footprints
from sustainml.carbon.intensity import resolve_region
from sustainml_nodes.carbon_tracker.reference import EmbodiedFigure, embodied_for, equivalents_of, pue_for
from sustainml_nodes.orchestrator import ranking

YEAR_S = 365.25 * 86_400  # 31,557,600 s
# 1,000 kg over 4 years: 1e6 g / 126,230,400 s = 0.0079220 g per second of device time.
FIGURE = EmbodiedFigure(embodied_kg=1_000.0, lifetime_years=4.0, source="test figure")
SETTINGS = CarbonSettings(embodied=lambda device, name, cores: FIGURE)
G_PER_S = 1e6 / (4 * YEAR_S)


def task(**changes) -> msg.EncodedTask:
    t = msg.EncodedTask(
        task_id=msg.TaskId("life", 1),
        dataset=msg.DatasetInfo(num_samples=1_000),
        usage=msg.UsageProfile(requests_per_day=1_000, horizon_days=100),
        epochs=10,
        train_region="DEU",
        experiment_runs=4,
        pue=1.5,
        intensity_overrides=[msg.RegionFigure(region="Germany", intensity_g_per_kwh=100.0, source="supplier contract")],
    )
    for name, value in changes.items():
        setattr(t, name, value)
    return t


# 360 J per training sample x batch 10 = 3,600 J per step; 1,000 samples / 10 = 100 steps per epoch,
# x 10 epochs = 1,000 steps = 3.6e6 J = 1 kWh per run. 100 ms per step: 100 s of device time per run.
# 36 J per request x 1,000 requests/day x 100 days = 3.6e6 J = 1 kWh; 100 requests/s: 0.01 s each.
MEASURED = msg.JobMeasurement(
    model="m", device="cuda:0", host="box", batch_size=1, latency_p50_ms=10.0, throughput_per_s=100.0,
    energy_per_inference_j=36.0, energy_per_inference_uncertainty_j=3.6,
    train_batch_size=10, train_step_ms=100.0,
    energy_per_train_sample_j=360.0, energy_per_train_sample_uncertainty_j=36.0,
)
CANDIDATES = msg.ModelCandidates(candidates=[msg.ModelCandidate(name="m", default_epochs=3)])


def footprints(t: msg.EncodedTask, *ms: msg.JobMeasurement, settings: CarbonSettings = SETTINGS) -> list[msg.FootprintDetail]:
    hw = msg.HardwareMeasurement(task_id=t.task_id, host="box", measurements=list(ms or [MEASURED]))
    return compute_footprints(t, CANDIDATES, hw, settings=settings).footprints


def test_every_phase_by_hand():
    (f,) = footprints(task())
    # Facility energy: 1 kWh x PUE 1.5 = 1.5 kWh per run and for serving; user's 100 g/kWh.
    assert f.train_steps == 1_000
    assert f.train_energy_kwh == pytest.approx(1.5)
    assert f.experimentation_energy_kwh == pytest.approx(6.0)          # 4 runs
    assert f.training_co2_g == pytest.approx(150.0)
    assert f.experimentation_co2_g == pytest.approx(600.0)
    assert f.inference_energy_kwh == pytest.approx(1.5)
    assert f.inference_co2_g == pytest.approx(150.0)
    # Device time: 5 runs x 100 s + 100,000 requests x 0.01 s = 1,500 s; x 0.0079220 g/s = 11.883 g.
    assert f.embodied_co2_g == pytest.approx(1_500 * G_PER_S)
    assert f.embodied_co2_g == pytest.approx(11.883, abs=1e-3)
    assert f.total_co2_g == pytest.approx(150 + 600 + 150 + 11.883, abs=1e-3)
    # SCI = (E x I + M) / R, R = 1 request: 1e-5 kWh x 1.5 x 100 = 1.5e-3 g, + 0.01 s x 0.0079220 g/s.
    assert f.embodied_g_per_request == pytest.approx(0.01 * G_PER_S)
    assert f.sci_g_per_request == pytest.approx(1.5e-3 + 7.9220e-5, rel=1e-4)
    # Uncertainty: 10% of each energy; the 5 runs share one measurement (add up): 5 x 15 g = 75 g,
    # serving 15 g, in quadrature: sqrt(75^2 + 15^2) = 76.49 g. One request: 10% of 1.5e-3 g.
    assert f.total_co2_uncertainty_g == pytest.approx(math.hypot(75, 15))
    assert f.sci_uncertainty_g_per_request == pytest.approx(1.5e-4)
    assert (f.pue, f.pue_source) == (1.5, "PUE 1.5: given by the user")
    assert f.intensity_source == "given by the user: supplier contract"
    assert (f.device_embodied_kg, f.device_lifetime_years, f.embodied_source) == (1_000.0, 4.0, "test figure")


def test_phase_shares_add_up_to_one():
    (f,) = footprints(task())
    shares = phase_shares(f)
    assert shares["experimentation"] == pytest.approx(600 / 911.883, rel=1e-5)
    assert shares["training"] == pytest.approx(150 / 911.883, rel=1e-5)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_partial_last_batch_costs_a_whole_step():
    (f,) = footprints(task(dataset=msg.DatasetInfo(num_samples=1_001), experiment_runs=0))
    assert f.train_steps == 101 * 10
    assert f.training_co2_g == pytest.approx(150.0 * 1.01)


def test_no_experiment_runs_and_no_device_time_gives_the_operational_figures_only():
    m = msg.JobMeasurement(model="m", device="cpu", energy_per_inference_j=36.0, energy_per_train_sample_j=360.0)
    (f,) = footprints(task(experiment_runs=0), m)
    assert f.experimentation_co2_g == 0 and f.embodied_co2_g == 0
    # No train batch size: per sample, 360 J x 1,000 samples x 10 epochs = 1 kWh, as before.
    assert f.train_steps == 0 and f.training_co2_g == pytest.approx(150.0)
    assert f.total_co2_g == pytest.approx(300.0)


def test_the_country_data_applies_without_a_user_figure():
    (f,) = footprints(task(intensity_overrides=[]))
    deu = resolve_region("DEU")
    assert f.intensity_g_per_kwh == deu.intensity_g_per_kwh
    assert f.intensity_year == deu.year and f.intensity_year > 2000
    assert "CC BY 4.0" in f.intensity_source
    assert f.inference_co2_g == pytest.approx(1.5 * deu.intensity_g_per_kwh)


def test_pue_comes_from_the_user_then_the_operator_then_the_published_figure():
    gcp = "gcp:europe-west1"
    (user,) = footprints(task(train_region=gcp, intensity_overrides=[]))
    assert user.pue == 1.5
    (operator,) = footprints(task(train_region=gcp, intensity_overrides=[], pue=0.0),
                             settings=CarbonSettings(pue=1.3, embodied=SETTINGS.embodied))
    assert (operator.pue, operator.pue_source) == (1.3, "PUE 1.3: set by the operator (carbon tracker parameter pue)")
    (published,) = footprints(task(train_region=gcp, intensity_overrides=[], pue=0.0))
    figure = pue_for(resolve_region(gcp))
    assert published.pue == figure.pue and 1.0 < figure.pue < 1.3
    assert published.pue_source == f"PUE {figure.pue:g}: {figure.source}"
    (country,) = footprints(task(intensity_overrides=[], pue=0.0))
    assert country.pue_source.startswith(f"PUE {country.pue:g}: default")


def test_training_in_one_region_and_serving_in_another_uses_each_ones_pue():
    (f,) = footprints(task(pue=0.0, intensity_overrides=[], inference_region="gcp:europe-west1"))
    serve, train = pue_for(resolve_region("gcp:europe-west1")), pue_for(resolve_region("DEU"))
    assert f.pue == serve.pue
    assert f.train_energy_kwh == pytest.approx(1.0 * train.pue)
    assert "serving (gcp:europe-west1)" in f.pue_source and "training (DEU)" in f.pue_source


def test_the_three_greenest_allowed_regions_with_their_saving():
    allowed = ["FRA", "SWE", "POL", "DEU", "NOR"]
    (f,) = footprints(task(intensity_overrides=[], allowed_regions=allowed))
    intensity = {code: resolve_region(code).intensity_g_per_kwh for code in allowed}
    operational_kwh = 1.5 * 5 + 1.5          # all runs and serving, PUE 1.5, moved together
    embodied = 1_500 * G_PER_S               # the hardware is the same wherever it runs
    expected = sorted(
        (operational_kwh * intensity[c] + embodied, c) for c in allowed
        if c != "DEU" and intensity[c] < intensity["DEU"]
    )[:3]
    assert [a.region for a in f.greener_regions] == [c for _, c in expected]
    for alt, (co2, _) in zip(f.greener_regions, expected):
        assert alt.kind == "region"
        assert alt.total_co2_g == pytest.approx(co2)
        assert alt.saving_g == pytest.approx(f.total_co2_g - co2)
        assert alt.latency_change_ms == 0 and "network latency" in alt.note


def test_a_cloud_region_is_compared_with_its_own_provider_only():
    (f,) = footprints(task(train_region="gcp:europe-west3", intensity_overrides=[]))
    assert len(f.greener_regions) == 3
    assert all(a.region.startswith("gcp:") for a in f.greener_regions)
    assert [a.total_co2_g for a in f.greener_regions] == sorted(a.total_co2_g for a in f.greener_regions)


def test_a_country_is_compared_with_rentable_cloud_regions():
    (f,) = footprints(task(intensity_overrides=[]))
    assert f.greener_regions and all(":" in a.region for a in f.greener_regions)
    assert all(a.intensity_g_per_kwh > 0 for a in f.greener_regions)


def test_the_greenest_region_offers_no_greener_one():
    (f,) = footprints(task(train_region="SWE", intensity_overrides=[], allowed_regions=["SWE", "DEU", "POL"]))
    assert f.greener_regions == []


def test_a_user_figure_also_applies_when_its_region_is_an_alternative():
    figure = msg.RegionFigure(region="POL", intensity_g_per_kwh=1.0, source="own wind farm")
    (f,) = footprints(task(intensity_overrides=[figure], allowed_regions=["POL"]))
    (alt,) = f.greener_regions
    assert alt.region == "POL" and alt.intensity_g_per_kwh == 1.0


def test_equivalents_convert_the_total_with_their_source():
    (f,) = footprints(task())
    assert f.equivalents
    for e in f.equivalents:
        assert e.source and e.unit
    for e, direct in zip(f.equivalents, equivalents_of(f.total_co2_g)):
        assert e.amount == pytest.approx(direct.amount)
    car = next(e for e in f.equivalents if "km" in e.unit)
    assert 50 < f.total_co2_g / car.amount < 400     # g CO2e per km of a car


def test_embodied_table_has_a_figure_per_kind_and_prefers_the_named_device():
    gpu, cpu = embodied_for("cuda:0", ""), embodied_for("cpu", "")
    for figure in (gpu, cpu):
        assert figure.embodied_kg > 0 and figure.lifetime_years > 0 and figure.source
    h100 = embodied_for("cuda:0", "NVIDIA H100 80GB HBM3")
    assert "H100" in h100.source and h100.embodied_kg != gpu.embodied_kg


def test_a_host_that_sees_part_of_a_shared_server_is_charged_its_share():
    whole, part = embodied_for("cpu", "AMD EPYC 7B13"), embodied_for("cpu", "AMD EPYC 7B13", cores=2)
    assert whole.share == 1.0 and 0 < part.share < 1
    assert part.g_per_second == pytest.approx(whole.g_per_second * part.share)
    assert f"{part.share:.3g} of it charged" in part.source


def test_zero_horizon_serves_nothing_but_sci_is_still_per_request():
    (f,) = footprints(task(usage=msg.UsageProfile(requests_per_day=1_000, horizon_days=0)))
    assert f.inference_co2_g == 0 and f.inference_energy_kwh == 0
    assert f.sci_g_per_request == pytest.approx(1.5e-3 + 0.01 * G_PER_S)
    assert phase_shares(f)["inference"] == 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"usage": msg.UsageProfile(requests_per_day=-5, horizon_days=10)}, "usage.requests_per_day is -5"),
        ({"usage": msg.UsageProfile(requests_per_day=5, horizon_days=math.inf)}, "usage.horizon_days is inf"),
        ({"pue": 0.7}, "pue is 0.7"),
        ({"experiment_runs": 10_000_000}, "experiment_runs is 10000000"),
        ({"intensity_overrides": [msg.RegionFigure(region="DEU", intensity_g_per_kwh=-3.0)]}, "-3.0 g CO2e/kWh"),
        ({"intensity_overrides": [msg.RegionFigure(region="DEU", intensity_g_per_kwh=5e4)]}, "is not a grid"),
        ({"allowed_regions": ["Germny"]}, "allowed_regions\\[0\\]: unknown region 'Germny'.*'Germany'"),
        ({"intensity_overrides": [msg.RegionFigure(region="Frnace", intensity_g_per_kwh=5)]},
         "intensity_overrides\\[0\\]: unknown region 'Frnace'.*'France'"),
        ({"train_region": "Atlantis"}, "unknown region 'Atlantis'"),
    ],
)
def test_absurd_inputs_are_refused_with_what_is_right(changes, expected):
    with pytest.raises(Exception, match=expected) as caught:
        footprints(task(**changes))
    assert isinstance(caught.value, InvalidProblem) or type(caught.value).__name__ == "UnknownRegion"


def test_a_negative_measured_step_time_is_refused():
    bad = msg.JobMeasurement(model="m", device="cpu", train_step_ms=-1.0)
    with pytest.raises(InvalidProblem, match="train_step_ms is -1.0"):
        footprints(task(), bad)


# ---------------------------------------------------------------- the orchestrator's view


def _carbon(t: msg.EncodedTask, *ms: msg.JobMeasurement) -> msg.CarbonFootprint:
    hw = msg.HardwareMeasurement(task_id=t.task_id, host="box", measurements=list(ms))
    return compute_footprints(t, CANDIDATES, hw, settings=SETTINGS)


def test_options_carry_the_footprint_and_the_greener_device_with_its_latency_cost():
    t = task(allowed_regions=["DEU"])
    cpu = msg.JobMeasurement(model="m", device="cpu", host="box", batch_size=1, latency_p50_ms=40.0,
                          throughput_per_s=25.0, energy_per_inference_j=3.6, train_batch_size=10,
                          train_step_ms=400.0, energy_per_train_sample_j=36.0)
    hw = msg.HardwareMeasurement(task_id=t.task_id, host="box", measurements=[MEASURED, cpu])
    options = ranking.build_options(t, CANDIDATES, [hw], [_carbon(t, MEASURED, cpu)])
    gpu_option = next(o for o in options if o.device == "cuda:0")
    cpu_option = next(o for o in options if o.device == "cpu")
    assert gpu_option.footprint.embodied_co2_g > 0
    assert gpu_option.total_co2_g > cpu_option.total_co2_g
    (alt,) = [a for a in gpu_option.alternatives if a.kind == "device"]
    assert (alt.device, alt.host) == ("cpu", "box")
    assert alt.saving_g == pytest.approx(gpu_option.total_co2_g - cpu_option.total_co2_g)
    assert alt.latency_change_ms == pytest.approx(30.0)
    assert not [a for a in cpu_option.alternatives if a.kind == "device"]


def test_the_training_co2_limit_counts_the_experiment_runs():
    t = task(constraints=msg.TaskConstraints(max_train_co2_g=500.0))  # final run 150 g, with 4 more: 750 g
    hw = msg.HardwareMeasurement(task_id=t.task_id, host="box", measurements=[MEASURED])
    (option,) = ranking.build_options(t, CANDIDATES, [hw], [_carbon(t, MEASURED)])
    assert not option.meets_constraints
    assert "training (4 experiment runs and the final one) 750 g CO2e > 500 g limit" in option.note


# ---------------------------------------------------------------- digits


@pytest.mark.parametrize(
    ("value", "uncertainty", "text"),
    [
        (1234.5678, 37.2, "1.235 ± 0.037 kg"),
        (911.883, 76.49, "912 ± 76 g"),
        (0.012345, 0.0031, "12.3 ± 3.1 mg"),
        (5.0, 0.0, "5 g"),
        (123_456.0, 0.0, "123 kg"),
    ],
)
def test_no_more_digits_than_the_uncertainty_justifies(value, uncertainty, text):
    assert with_uncertainty(value, uncertainty) == text


def test_a_live_reading_beats_the_data_and_the_user_figure_beats_both():
    asked: list[str] = []

    def live(region):  # stands in for LiveIntensityLookup (tested against a local server elsewhere)
        asked.append(region.code)
        return dataclasses.replace(region, intensity_g_per_kwh=42.0, source="live: test", year=None)

    settings = CarbonSettings(live=live, embodied=SETTINGS.embodied)
    (f,) = footprints(task(intensity_overrides=[]), settings=settings)
    assert (f.intensity_g_per_kwh, f.intensity_source, f.intensity_year) == (42.0, "live: test", 0)
    assert asked == ["DEU"]  # the scan of every cloud region for greener ones uses the data, not the service
    (user,) = footprints(task(), settings=settings)
    assert user.intensity_g_per_kwh == 100.0


def test_the_printed_result_shows_the_lifetime_split_sci_greener_regions_and_tracked_stages():
    from rich.console import Console

    from sustainml.report import print_result

    t = task(allowed_regions=["FRA", "SWE", "POL", "NOR"], intensity_overrides=[])
    hw = msg.HardwareMeasurement(task_id=t.task_id, host="box", measurements=[MEASURED])
    options = ranking.build_options(t, CANDIDATES, [hw], [_carbon(t, MEASURED)])
    stage = msg.StageRecord(task_id=t.task_id, run="RF", stage="train", co2_g=0.25, energy_method="estimate",
                            region="DEU", intensity_g_per_kwh=380.0, pue=1.0)
    result = msg.TaskResult(task_id=t.task_id, state=msg.TaskState.TASK_DONE, options=options, stages=[stage],
                            stages_summary="RF: train dominates (100% of 250 mg CO2e)")
    console = Console(record=True, width=160)
    print_result(result, console)
    text = console.export_text()
    (o,) = options
    assert f"lifetime of #1 m on cuda:0 at box, served in DEU: {with_uncertainty(o.total_co2_g, o.footprint.total_co2_uncertainty_g)}" in text
    assert "experimentation" in text and "(66%)" in text           # 4 of 5 equal runs dominate here
    assert "SCI " in text and "embodied M" in text
    assert text.count("greener region") == 3 and "saves" in text
    assert "RF: train dominates" in text and "tracked stages" in text
