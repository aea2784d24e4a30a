"""Importing CodeCarbon's emissions.csv: a real file written by CodeCarbon around real work, the older
column sets, and every malformed file a user may hand us.

Expected figures are worked out in the test from the CSV's own cells (read with ``csv``, not through
the importer), so the checks are: kWh -> J with the PUE divided out, kg -> g, intensity = emissions /
energy, start = end timestamp - duration.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest

from sustainml import msg
from sustainml.codecarbon_import import (DEFAULT_STAGE, RELATIVE_UNCERTAINTY, add_cli, cmd_import_codecarbon,
                                         read_emissions_csv)
from sustainml.exceptions import InvalidProblem
from sustainml.problem import parse_task_id

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "codecarbon"
J_PER_KWH = 3_600_000  # written out on purpose, not imported from sustainml.units


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


@pytest.fixture
def tz_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CodeCarbon's timestamps carry no zone and are read as local time: pin it to UTC for exact figures."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -------------------------------------------------------------------- a real CodeCarbon run
@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """CodeCarbon's offline tracker around half a second of real arithmetic; about 2 s in all here
    (most of it CodeCarbon's own start-up). Returns the CSV and the wall-clock times around the run."""
    from codecarbon import OfflineEmissionsTracker

    out = tmp_path_factory.mktemp("codecarbon")
    with warnings.catch_warnings():  # 3.x deprecates save_to_file for output_methods; 2.x lacks the latter
        warnings.simplefilter("ignore", DeprecationWarning)
        tracker = OfflineEmissionsTracker(country_iso_code="DEU", output_dir=str(out), save_to_file=True,
                                          log_level="error", project_name="tiny-matmul")
    before = time.time()
    tracker.start()
    total = 0.0
    deadline = time.perf_counter() + 0.5
    while time.perf_counter() < deadline:
        total += sum(i * i for i in range(2_000))
    tracker.stop()
    after = time.time()
    assert total > 0
    return out / "emissions.csv", before, after


def test_a_real_codecarbon_file_becomes_one_consistent_record(real_run: tuple[Path, float, float]) -> None:
    import codecarbon

    path, before, after = real_run
    (row,) = list(csv.DictReader(path.open()))
    (record,) = read_emissions_csv(path, task_id=msg.TaskId("p1", 2), run="RF")

    energy_kwh = float(row["energy_consumed"])
    pue = float(row["pue"])
    emissions_kg = float(row["emissions"])
    assert energy_kwh > 0 and emissions_kg > 0
    assert record.energy_j == pytest.approx(energy_kwh / pue * J_PER_KWH, rel=1e-12)
    assert record.co2_g == pytest.approx(emissions_kg * 1000, rel=1e-12)
    assert record.intensity_g_per_kwh == pytest.approx(emissions_kg * 1000 / energy_kwh, rel=1e-12)
    assert record.pue == pue == 1.0
    # the IDL's identity: co2 = kWh x PUE x intensity
    assert record.co2_g == pytest.approx(record.energy_j / J_PER_KWH * record.pue * record.intensity_g_per_kwh)
    # CodeCarbon used Germany's figure from its own bundled data
    mix = json.loads(files("codecarbon").joinpath("data/private_infra/global_energy_mix.json").read_text())
    assert record.intensity_g_per_kwh == pytest.approx(mix["DEU"]["carbon_intensity"], rel=1e-9)

    assert record.task_id == msg.TaskId("p1", 2)
    assert (record.run, record.stage, record.region) == ("RF", "tiny-matmul", "DEU")
    assert record.duration_s == pytest.approx(float(row["duration"]))
    # timestamp is the end, to the second; the run lies inside the window we timed
    assert before - 1.0 <= record.started_unix_s <= after
    assert before - 1.0 <= record.started_unix_s + record.duration_s <= after + 1.0
    assert record.energy_method == "codecarbon"
    assert record.devices.startswith("cpu") and record.devices.endswith("+ram")
    assert record.energy_uncertainty_j == pytest.approx(RELATIVE_UNCERTAINTY * record.energy_j)
    assert record.co2_uncertainty_g == pytest.approx(RELATIVE_UNCERTAINTY * record.co2_g)
    for words in (f"CodeCarbon {codecarbon.__version__}", f"tracking mode {row['tracking_mode']}", "split CPU",
                  "TDP", "20%", "gives none"):
        assert words in record.assumptions


def test_without_a_run_name_the_codecarbon_run_id_names_the_run(real_run: tuple[Path, float, float]) -> None:
    path, _, _ = real_run
    (row,) = list(csv.DictReader(path.open()))
    (record,) = read_emissions_csv(path)
    assert record.run == row["run_id"]
    assert record.task_id == msg.TaskId()  # a run outside any task


# -------------------------------------------------------------------- older and richer column sets
def test_codecarbon_1x_columns(tz_utc: None) -> None:
    first, second = read_emissions_csv(DATA / "v1_emissions.csv")
    # row 1: 0.0004 kWh, 0.0001 kg, 40 s, CodeCarbon's default project name, no PUE column
    assert first.run == "0df9711e-6191-4944-94a4-d9d7e79bf126"  # 1.x kept the run id in experiment_id
    assert first.stage == DEFAULT_STAGE
    assert first.energy_j == pytest.approx(0.0004 * J_PER_KWH)  # 1,440 J
    assert first.co2_g == pytest.approx(0.1)
    assert first.intensity_g_per_kwh == pytest.approx(250.0)  # 0.1 g / 0.0004 kWh
    assert first.pue == 1.0 and "PUE 1.0: this CSV gives none" in first.assumptions
    assert first.started_unix_s == utc("2020-11-09T11:09:20")  # 11:10:00 - 40 s
    assert first.region == "USA"
    assert first.devices == "machine" and "no CPU/GPU/RAM split" in first.assumptions
    assert "version not recorded" in first.assumptions
    # row 2: on Azure; 0.09 g / 0.0003 kWh = 300 g/kWh
    assert second.stage == "mnist"
    assert second.region == "azure:westeurope"
    assert second.intensity_g_per_kwh == pytest.approx(300.0)


def test_codecarbon_2x_columns_on_a_gcp_gpu(tz_utc: None) -> None:
    (record,) = read_emissions_csv(DATA / "v2_emissions.csv", run="ResNet")
    assert (record.run, record.stage) == ("ResNet", "resnet-train")
    assert record.region == "gcp:europe-west1"
    assert record.energy_j == pytest.approx(0.5 * J_PER_KWH)  # 1.8 MJ
    assert record.co2_g == pytest.approx(10.8)
    assert record.intensity_g_per_kwh == pytest.approx(21.6)  # 10.8 g / 0.5 kWh
    assert record.devices == "cpu (Intel(R) Xeon(R) CPU @ 2.20GHz)+gpu (1 x Tesla T4)+ram"
    assert "split CPU 8%, GPU 84%, RAM 8%" in record.assumptions  # 0.04, 0.42, 0.04 of 0.5 kWh
    assert record.started_unix_s == utc("2022-12-21T09:00:00")  # 10:00:00 - 3600 s


def test_pue_is_divided_out_and_flushed_rows_count_once(tz_utc: None) -> None:
    first, second = read_emissions_csv(DATA / "v3_pue_flush.csv")
    # run aaaaaaaa flushed once at 60 s, then stopped at 120 s: only the cumulative last row counts
    assert first.run.startswith("aaaaaaaa") and first.duration_s == 120.0
    assert "last of 2 cumulative rows" in first.assumptions
    # 0.03 kWh with PUE 1.5 = 0.02 kWh of IT energy = 72,000 J; 11.4 g; 11.4 / 0.03 = 380 g/kWh
    assert first.energy_j == pytest.approx(72_000.0)
    assert first.pue == 1.5
    assert first.co2_g == pytest.approx(11.4)
    assert first.intensity_g_per_kwh == pytest.approx(380.0)
    assert first.co2_g == pytest.approx(first.energy_j / J_PER_KWH * first.pue * first.intensity_g_per_kwh)
    assert "tracking mode process (this process only)" in first.assumptions
    assert first.devices == "cpu (AMD EPYC 7543 32-Core Processor)+gpu (1 x NVIDIA A100-SXM4-40GB)+ram"
    # run bbbbbbbb: 0.009 kWh with PUE = 0.006 kWh = 21,600 J
    assert second.run.startswith("bbbbbbbb")
    assert second.energy_j == pytest.approx(21_600.0)
    assert second.started_unix_s == utc("2026-03-02T09:09:30")


def test_one_run_name_for_several_codecarbon_runs_keeps_their_records_apart() -> None:
    records = read_emissions_csv(DATA / "v3_pue_flush.csv", run="LSTM")
    assert [(r.run, r.stage) for r in records] == [("LSTM", "llm-finetune [aaaaaaaa]"),
                                                    ("LSTM", "llm-finetune [bbbbbbbb]")]


# -------------------------------------------------------------------- malformed files
def one_line_problem(path: Path | str) -> str:
    with pytest.raises(InvalidProblem) as caught:
        read_emissions_csv(path)
    text = str(caught.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize(("name", "words"), [
    ("does_not_exist.csv", ["no such file", "emissions.csv"]),
    ("empty.csv", ["empty"]),
    ("header_only.csv", ["header but no rows"]),
    ("missing_columns.csv", ["missing columns emissions, energy_consumed", "since 1.0", "found: timestamp"]),
    ("not_codecarbon.csv", ["not a CodeCarbon emissions.csv", "timestamp, duration, emissions, energy_consumed"]),
    ("ragged.csv", ["not a valid CSV", "line 3"]),
    ("negative_energy.csv", ["line 2", "energy_consumed is -0.5", "kWh >= 0"]),
])
def test_a_malformed_file_is_one_readable_line(name: str, words: list[str]) -> None:
    text = one_line_problem(DATA / name)
    for w in words:
        assert w in text, text


def test_a_binary_file_is_not_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "emissions.parquet"
    path.write_bytes(b"PAR1\x00\x15\x04\x15\x10\x00\x00" * 10)
    assert "not a CSV file" in one_line_problem(path)


def test_a_folder_points_at_the_csv_inside(tmp_path: Path) -> None:
    (tmp_path / "emissions.csv").write_text((DATA / "v2_emissions.csv").read_text())
    assert f"did you mean {tmp_path / 'emissions.csv'}" in one_line_problem(tmp_path)


def test_every_bad_cell_gets_its_own_line() -> None:
    with pytest.raises(InvalidProblem) as caught:
        read_emissions_csv(DATA / "bad_values.csv")
    lines = str(caught.value).splitlines()
    assert len(lines) == 4  # rows 2-5 are bad, row 6 is fine
    assert "line 2: emissions is 'n/a', expected a number of kg CO2e" in lines[0]
    assert "line 3: duration is empty" in lines[1]
    assert "line 4: timestamp is 'yesterday'" in lines[2]
    assert "line 5: pue is 0.8, expected >= 1.0" in lines[3]


# -------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sustainml")
    add_cli(p.add_subparsers(dest="command", required=True))
    return p


@pytest.mark.parametrize(("text", "expected"), [("3f2a", msg.TaskId("3f2a", 0)), ("3f2a/4", msg.TaskId("3f2a", 4)),
                                               (" 3f2a#4 ", msg.TaskId("3f2a", 4))])
def test_task_option(text: str, expected: msg.TaskId) -> None:
    assert parse_task_id(text) == expected


@pytest.mark.parametrize("text", ["#2", "/2", "3f2a#", "3f2a/", "3f2a#two", "3f2a/0", ""])
def test_bad_task_option(text: str) -> None:
    with pytest.raises(InvalidProblem, match="PROBLEM_ID"):
        parse_task_id(text)


def test_cli_imports_and_prints_one_line_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["import-codecarbon", str(DATA / "v3_pue_flush.csv"), "--task", "abc/2",
                                "--run", "LSTM", "--store", str(tmp_path / "runs.sqlite")])
    assert cmd_import_codecarbon(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "LSTM / llm-finetune [aaaaaaaa]: 0.02 kWh (0.03 kWh with PUE 1.5), 11.4 gCO2e in DEU" in lines[0]
    assert "3.42 gCO2e" in lines[1]
    from sustainml.tracking.store import RunStore

    stored = RunStore(tmp_path / "runs.sqlite").stages(problem_id="abc")
    assert sorted(r.stage for r in stored) == ["llm-finetune [aaaaaaaa]", "llm-finetune [bbbbbbbb]"]
    assert {(r.task_id.iteration, r.energy_method) for r in stored} == {(2, "codecarbon")}
    # Importing the same file again adds nothing and says so.
    assert cmd_import_codecarbon(args) == 0
    assert "2 of 2 runs were already in" in capsys.readouterr().out
    assert len(RunStore(tmp_path / "runs.sqlite").stages(problem_id="abc")) == 2


def test_cli_error_is_an_invalid_problem_before_any_store_is_opened(tmp_path: Path) -> None:
    from sustainml.cli import EXIT_CODES

    args = parser().parse_args(["import-codecarbon", str(tmp_path / "missing.csv")])
    with pytest.raises(InvalidProblem) as caught:
        cmd_import_codecarbon(args)
    assert EXIT_CODES[InvalidProblem] == 2  # what ``sustainml``'s main turns it into
    assert "\n" not in str(caught.value)


def test_the_sustainml_command_exits_2_with_one_line(tmp_path: Path) -> None:
    from sustainml.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert "import-codecarbon" in commands
    command = [sys.executable, "-m", "sustainml.cli", "import-codecarbon", str(DATA / "negative_energy.csv")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "energy_consumed is -0.5" in lines[0]
    assert done.stdout == ""
