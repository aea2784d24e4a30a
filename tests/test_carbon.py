"""Carbon tracker logic: region intensities from codecarbon's data, and footprints computed by hand.

Expected intensities are read straight from codecarbon's bundled files (not through our code), so the
tests follow the data when codecarbon updates it; every energy figure is worked out in the test.
"""

import csv
import json
import logging
import math
from importlib.resources import files

import pytest

from sustainml import msg
from sustainml.exceptions import InvalidProblem, UnknownRegion
from sustainml_nodes.carbon_tracker.footprint import CarbonSettings, compute_footprints, serving_regions
from sustainml.carbon.intensity import RegionIntensity, resolve_region

J_PER_KWH = 3_600_000  # written out here on purpose, not imported from sustainml.units


def country_row(iso3: str) -> dict:
    path = files("codecarbon").joinpath("data/private_infra/global_energy_mix.json")
    return json.loads(path.read_text(encoding="utf-8"))[iso3]


def gcp_intensity(region: str) -> float:
    path = files("codecarbon").joinpath("data/cloud/impact.csv")
    with path.open(encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f) if r["provider"] == "gcp" and r["region"] == region]
    assert len(rows) == 1, f"{region} should be in codecarbon's impact.csv once"
    return float(rows[0]["impact"])


# ---------------------------------------------------------------- regions


@pytest.mark.parametrize(
    "text", ["DEU", "deu", " DEU ", "Germany", "GERMANY", "DE", "Federal Republic of Germany"]
)
def test_a_country_resolves_from_its_codes_and_names(text):
    region = resolve_region(text)
    row = country_row("DEU")
    assert region.code == "DEU"
    assert region.name == "Germany"
    assert region.intensity_g_per_kwh == row["carbon_intensity"]
    assert region.year == row["year"]
    assert region.source == "codecarbon bundled data (Our World in Data / Ember, CC BY 4.0)"


def test_country_names_ignore_accents():
    assert resolve_region("Côte d'Ivoire").code == resolve_region("Cote d'Ivoire").code == "CIV"


@pytest.mark.parametrize("text", ["gcp:europe-west1", "GCP:europe-west1", "europe-west1"])
def test_a_gcp_region_has_its_own_intensity(text):
    region = resolve_region(text)
    assert region.code == "gcp:europe-west1"
    assert region.intensity_g_per_kwh == gcp_intensity("europe-west1")
    assert "Belgium" in region.name
    assert "codecarbon bundled data" in region.source and "Google" in region.source
    assert region.year is None  # impact.csv gives no year


def test_gcp_doha_is_found_under_its_real_name():
    # codecarbon's impact.csv spells it "me-cenrtal1".
    assert resolve_region("gcp:me-central1").intensity_g_per_kwh == gcp_intensity("me-cenrtal1")


def test_an_aws_region_is_mapped_to_its_country_and_says_so():
    region = resolve_region("aws:eu-central-1")
    assert region.code == "aws:eu-central-1"
    assert region.intensity_g_per_kwh == country_row("DEU")["carbon_intensity"]
    assert "AWS region mapped to its country (DEU)" in region.source
    assert "Our World in Data / Ember, CC BY 4.0" in region.source


@pytest.mark.parametrize("text", ["azure:westeurope", "Azure:West Europe"])
def test_an_azure_region_is_mapped_to_its_country(text):
    region = resolve_region(text)
    assert region.code == "azure:westeurope"
    assert region.intensity_g_per_kwh == country_row("NLD")["carbon_intensity"]
    assert "Azure region mapped to its country (NLD)" in region.source


def test_a_misspelt_country_lists_close_matches_and_the_accepted_forms():
    with pytest.raises(UnknownRegion) as e:
        resolve_region("Germny")
    message = str(e.value)
    assert "'Germny'" in message
    assert "close matches: 'Germany'" in message
    assert "'gcp:REGION'" in message and "'aws:REGION'" in message and "alpha-3" in message
    assert "\n" not in message


def test_an_unknown_cloud_region_lists_at_most_five_of_that_provider():
    with pytest.raises(UnknownRegion) as e:
        resolve_region("gcp:europe-west99")
    matches = str(e.value).split("close matches: ")[1].split(";")[0].split(", ")
    assert 1 <= len(matches) <= 5
    assert "'gcp:europe-west9'" in matches
    assert all(m.startswith("'gcp:") for m in matches)


def test_a_bare_aws_name_suggests_the_prefixed_form():
    with pytest.raises(UnknownRegion, match="'aws:eu-central-1'"):
        resolve_region("eu-central-1")


def test_an_unknown_provider_is_named():
    with pytest.raises(UnknownRegion, match="unknown cloud provider 'oracle'"):
        resolve_region("oracle:eu-frankfurt-1")


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_region_is_an_invalid_problem(text):
    with pytest.raises(InvalidProblem, match="a region is required"):
        resolve_region(text)


def test_region_intensity_is_frozen():
    region = resolve_region("FRA")
    assert isinstance(region, RegionIntensity)
    with pytest.raises(AttributeError):
        region.intensity_g_per_kwh = 0.0  # type: ignore[misc]


# ---------------------------------------------------------------- footprints


def make_task(**changes) -> msg.EncodedTask:
    task = msg.EncodedTask(
        task_id=msg.TaskId("p1", 2),
        task_type="image_classification",
        dataset=msg.DatasetInfo(num_samples=50_000),
        usage=msg.UsageProfile(requests_per_day=1_000, horizon_days=365),
        train_region="FRA",
        alternative_regions=["gcp:europe-west1", "France"],  # France = FRA: counted once
    )
    for name, value in changes.items():
        setattr(task, name, value)
    return task


CANDIDATES = msg.ModelCandidates(
    task_id=msg.TaskId("p1", 2),
    candidates=[
        msg.ModelCandidate(name="resnet18", default_epochs=10),
        msg.ModelCandidate(name="tiny", default_epochs=4),
    ],
)


def measurement(*ms: msg.JobMeasurement) -> msg.HardwareMeasurement:
    return msg.HardwareMeasurement(task_id=msg.TaskId("p1", 2), host="gpu-box", measurements=list(ms))


RESNET_ON_GPU = msg.JobMeasurement(
    model="resnet18",
    device="cuda:0",
    host="gpu-box",
    energy_per_inference_j=0.5,
    energy_per_train_sample_j=2.0,
)


def test_footprints_by_hand_with_pue():
    result = compute_footprints(make_task(), CANDIDATES, measurement(RESNET_ON_GPU), settings=CarbonSettings(pue=1.2))
    fra = country_row("FRA")["carbon_intensity"]
    belgium_gcp = gcp_intensity("europe-west1")

    # Training: 2 J/sample x 50,000 samples x 10 epochs (catalogue recipe) = 1,000,000 J
    #   = 1e6 / 3.6e6 kWh = 0.2777... kWh; x PUE 1.2 = 0.3333... kWh, always at FRA (train_region).
    train_kwh = 1_000_000 / J_PER_KWH * 1.2
    assert train_kwh == pytest.approx(1 / 3)
    # Inference: 0.5 J x 1,000 requests/day x 365 days = 182,500 J = 0.050694 kWh; x 1.2 = 0.060833 kWh.
    inference_kwh = 182_500 / J_PER_KWH * 1.2
    assert inference_kwh == pytest.approx(0.0608333, rel=1e-5)
    # One request: 0.5 J = 1.3889e-7 kWh; x 1.2 = 1.6667e-7 kWh.
    request_kwh = 0.5 / J_PER_KWH * 1.2

    assert result.task_id == msg.TaskId("p1", 2)
    assert result.host == "gpu-box"
    assert [f.region for f in result.footprints] == ["FRA", "gcp:europe-west1"]

    served_in_france, served_in_belgium = result.footprints
    for f in result.footprints:
        assert (f.model, f.device, f.host, f.pue) == ("resnet18", "cuda:0", "gpu-box", 1.2)
        assert f.train_region == "FRA"
        assert f.train_intensity_g_per_kwh == fra
        assert f.train_energy_kwh == pytest.approx(train_kwh)
        assert f.inference_energy_kwh == pytest.approx(inference_kwh)
        assert f.training_co2_g == pytest.approx(train_kwh * fra)
        assert f.total_co2_g == pytest.approx(f.training_co2_g + f.inference_co2_g)

    assert served_in_france.intensity_g_per_kwh == fra
    assert served_in_france.inference_co2_g == pytest.approx(inference_kwh * fra)
    assert served_in_france.sci_g_per_request == pytest.approx(request_kwh * fra)
    assert (
        served_in_france.intensity_source == "codecarbon bundled data (Our World in Data / Ember, CC BY 4.0)"
    )

    assert served_in_belgium.intensity_g_per_kwh == belgium_gcp
    assert served_in_belgium.inference_co2_g == pytest.approx(inference_kwh * belgium_gcp)
    assert served_in_belgium.sci_g_per_request == pytest.approx(request_kwh * belgium_gcp)
    assert served_in_belgium.total_co2_g == pytest.approx(train_kwh * fra + inference_kwh * belgium_gcp)
    assert (
        "serving:" in served_in_belgium.intensity_source and "training:" in served_in_belgium.intensity_source
    )


def test_a_worked_example_in_plain_numbers():
    # 1 J/sample x 36,000 samples x 100 epochs = 3.6e6 J = 1 kWh of training.
    # 3.6 J x 10,000 requests/day x 100 days = 3.6e6 J = 1 kWh of serving. PUE 1: CO2 = intensity x 2.
    task = make_task(
        epochs=100,
        dataset=msg.DatasetInfo(num_samples=36_000),
        usage=msg.UsageProfile(requests_per_day=10_000, horizon_days=100),
        train_region="DEU",
        alternative_regions=[],
    )
    m = msg.JobMeasurement(
        model="resnet18", device="cpu", energy_per_inference_j=3.6, energy_per_train_sample_j=1.0
    )
    (f,) = compute_footprints(task, CANDIDATES, measurement(m), settings=CarbonSettings(pue=1.0)).footprints
    deu = country_row("DEU")["carbon_intensity"]
    assert f.train_energy_kwh == pytest.approx(1.0)
    assert f.inference_energy_kwh == pytest.approx(1.0)
    assert f.total_co2_g == pytest.approx(2 * deu)
    assert f.sci_g_per_request == pytest.approx(3.6 / J_PER_KWH * deu)  # 1e-6 kWh x intensity
    assert f.host == "gpu-box"  # the measurement left it empty: the hardware message's host


def test_task_epochs_override_the_catalogue_recipe():
    (f, _) = compute_footprints(make_task(epochs=3), CANDIDATES, measurement(RESNET_ON_GPU),
                                settings=CarbonSettings(pue=1.0)).footprints
    assert f.train_energy_kwh == pytest.approx(2.0 * 50_000 * 3 / J_PER_KWH)


def test_without_train_region_each_option_trains_where_it_is_served():
    task = make_task(train_region="", inference_region="DEU", alternative_regions=["aws:eu-west-3"])
    result = compute_footprints(task, CANDIDATES, measurement(RESNET_ON_GPU))
    assert [(f.region, f.train_region) for f in result.footprints] == [
        ("DEU", "DEU"),
        ("aws:eu-west-3", "aws:eu-west-3"),
    ]
    for f in result.footprints:
        assert f.train_intensity_g_per_kwh == f.intensity_g_per_kwh
    assert "AWS region mapped to its country (FRA)" in result.footprints[1].intensity_source


def test_one_footprint_per_measurement_and_region():
    tiny = msg.JobMeasurement(
        model="tiny", device="cpu", energy_per_inference_j=0.01, energy_per_train_sample_j=0.1
    )
    result = compute_footprints(make_task(), CANDIDATES, measurement(RESNET_ON_GPU, tiny), settings=CarbonSettings(pue=1.0))
    assert [(f.model, f.region) for f in result.footprints] == [
        ("resnet18", "FRA"),
        ("resnet18", "gcp:europe-west1"),
        ("tiny", "FRA"),
        ("tiny", "gcp:europe-west1"),
    ]
    # tiny: 0.1 J x 50,000 x 4 epochs = 20,000 J.
    assert result.footprints[2].train_energy_kwh == pytest.approx(20_000 / J_PER_KWH)


def test_no_measurements_no_footprints():
    assert compute_footprints(make_task(), CANDIDATES, measurement()).footprints == []


def test_unknown_num_samples_gives_zero_training_and_says_so(caplog):
    task = make_task(dataset=msg.DatasetInfo(num_samples=0))
    with caplog.at_level(logging.WARNING):
        f = compute_footprints(task, CANDIDATES, measurement(RESNET_ON_GPU)).footprints[0]
    assert f.train_energy_kwh == 0 and f.training_co2_g == 0
    assert f.inference_co2_g > 0
    assert "dataset.num_samples is 0" in caplog.text


def test_a_model_without_epochs_gives_zero_training_and_says_so(caplog):
    stranger = msg.JobMeasurement(model="not-proposed", device="cpu", energy_per_train_sample_j=1.0)
    with caplog.at_level(logging.WARNING):
        f = compute_footprints(make_task(), CANDIDATES, measurement(stranger)).footprints[0]
    assert f.train_energy_kwh == 0
    assert "not-proposed" in caplog.text and "not among the candidates" in caplog.text


def test_serving_regions_dedupe_spellings_of_one_region():
    task = make_task(
        inference_region="DE", alternative_regions=["Germany", "DEU", "gcp:europe-west3", "europe-west3"]
    )
    assert [r.code for r in serving_regions(task)] == ["DEU", "gcp:europe-west3"]


@pytest.mark.parametrize(
    ("changes", "pue", "expected"),
    [
        ({"usage": msg.UsageProfile(requests_per_day=-5, horizon_days=10)}, 1.0, "usage.requests_per_day is -5"),
        ({"usage": msg.UsageProfile(requests_per_day=5, horizon_days=-1)}, 1.0, "usage.horizon_days is -1"),
        (
            {"usage": msg.UsageProfile(requests_per_day=math.nan, horizon_days=1)},
            1.0,
            "usage.requests_per_day is nan",
        ),
        ({}, 0.9, "pue is 0.9"),
        ({}, math.nan, "pue is nan"),
    ],
)
def test_absurd_inputs_are_invalid_problems(changes, pue, expected):
    with pytest.raises(InvalidProblem) as e:
        compute_footprints(make_task(**changes), CANDIDATES, measurement(RESNET_ON_GPU),
                           settings=CarbonSettings(pue=pue))
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_pue_message_says_what_is_right():
    with pytest.raises(InvalidProblem, match="give pue >= 1"):
        compute_footprints(make_task(), CANDIDATES, measurement(RESNET_ON_GPU), settings=CarbonSettings(pue=0.5))


def test_a_negative_measured_energy_is_invalid():
    bad = msg.JobMeasurement(model="resnet18", device="cuda:0", energy_per_inference_j=-1.0)
    with pytest.raises(InvalidProblem, match=r"resnet18 on cuda:0: energy_per_inference_j is -1\.0"):
        compute_footprints(make_task(), CANDIDATES, measurement(bad))


def test_an_unknown_alternative_region_is_reported():
    with pytest.raises(UnknownRegion, match="close matches: 'Spain'"):
        compute_footprints(make_task(alternative_regions=["Spian"]), CANDIDATES, measurement(RESNET_ON_GPU))
