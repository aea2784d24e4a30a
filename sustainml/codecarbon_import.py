"""Import a CodeCarbon ``emissions.csv`` as measured evidence: one ``msg.StageRecord`` per run.

Why: teams that already wrap their training in CodeCarbon have its figures on disk. Importing them
lets those runs stand beside our own metered stages (same record, same store, same report) instead
of being re-typed by hand or ignored.

How a row becomes a record (units checked against CodeCarbon 3.3.2's ``emissions_tracker.py`` and
``output_methods/emissions_data.py``; the older column sets below are read the same way):

- ``energy_consumed`` is kWh and already multiplied by CodeCarbon's ``pue`` (its
  ``_do_measurements`` does ``energy *= self._pue``). ``StageRecord.energy_j`` is IT energy with
  no PUE, so ``energy_j = energy_consumed / pue × 3.6e6`` and ``pue`` travels in its own field.
- ``emissions`` is kg CO2e: ``co2_g = emissions × 1000``. ``intensity_g_per_kwh = emissions × 1000
  / energy_consumed`` (the grid figure CodeCarbon used), so ``co2_g = kWh(energy_j) × pue ×
  intensity`` holds exactly, as the IDL says.
- ``timestamp`` is written when the row is made, at the end of the run (``datetime.now()``, no zone:
  the local time of the machine that ran CodeCarbon), so ``started_unix_s = timestamp − duration``.
  A timestamp without a zone is read in this machine's zone; one with an offset keeps it.
- ``stage`` is the row's ``task_name`` (CodeCarbon's task files), else its ``project_name``, else
  ``"codecarbon run"`` (also for CodeCarbon's default project name ``"codecarbon"``, which says
  nothing). ``experiment_id`` is a UUID in 2.x and later, so it never names a stage.
- ``run`` is the caller's ``run`` when given, else the row's ``run_id`` (``experiment_id`` in 1.x,
  which held the run's id there). When several CodeCarbon runs would share one (run, stage) key,
  the stage gets the CodeCarbon run id's first 8 characters, so no record overwrites another.
- ``tracker.flush()`` in CodeCarbon's default append mode writes a cumulative row per flush with the
  same ``run_id``; only the last (longest) row of each run is imported, or the run would be counted
  several times. The record's assumptions say how many rows it superseded.
- ``region`` is ``cloud_provider:cloud_region`` on a cloud (CodeCarbon's provider names, ``aws``,
  ``azure``, ``gcp``, are ours), else ``country_iso_code``.

Column sets read (``REQUIRED_COLUMNS`` must be there; every other column is optional):

- CodeCarbon 1.x: timestamp, experiment_id, project_name, duration, emissions, energy_consumed,
  country_name, country_iso_code, region, on_cloud, cloud_provider, cloud_region;
- 2.0 to early 2.x: adds run_id (instead of experiment_id), emissions_rate, cpu/gpu/ram power and
  energy, os, python_version, cpu_count, cpu_model, gpu_count, gpu_model, longitude, latitude,
  ram_total_size, tracking_mode;
- later 2.x and 3.x: adds experiment_id back (a UUID), codecarbon_version, pue; 3.x adds
  cpu/gpu/ram utilisation, ram_used_gb, water_consumed, wue.

Uncertainty: CodeCarbon states none. Its CPU figure may be a TDP × load model rather than a RAPL
reading (the CSV does not say which), and RAM is always modelled; published comparisons of software
energy meters against wall meters find them apart by up to about 20 %. ``RELATIVE_UNCERTAINTY``
(0.20) is therefore taken as one standard uncertainty of the energy, and of the CO2 (the grid
intensity is a yearly average without a stated uncertainty). The assumptions text says so.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import msg, units
from .exceptions import InvalidProblem
from .problem import parse_task_id
from .tracking.store import RunStore

__all__ = [
    "DEFAULT_STAGE",
    "ENERGY_METHOD",
    "REQUIRED_COLUMNS",
    "RELATIVE_UNCERTAINTY",
    "add_cli",
    "cmd_import_codecarbon",
    "read_emissions_csv",
    "summary_lines",
]

ENERGY_METHOD = "codecarbon"
DEFAULT_STAGE = "codecarbon run"
#: CodeCarbon's own default ``project_name``: names no stage, so it becomes ``DEFAULT_STAGE``.
_CODECARBON_DEFAULT_PROJECT = "codecarbon"
#: One standard uncertainty of CodeCarbon's energy, relative (see the module docstring).
RELATIVE_UNCERTAINTY = 0.20

#: Columns without which a row cannot become a record; CodeCarbon has written all four since 1.0.
REQUIRED_COLUMNS = ("timestamp", "duration", "emissions", "energy_consumed")
_REQUIRED_SINCE = "every CodeCarbon release since 1.0 writes them"

_MAX_PROBLEM_LINES = 10
_HEADER_LINES = 1  # CSV line of the first row = row index + 1 + _HEADER_LINES
_G_PER_KG = 1000.0
_SHORT_RUN_ID = 8
_MODE_MEANING = {"machine": " (the whole machine, other processes included)", "process": " (this process only)"}


@dataclass(frozen=True)
class _Row:
    """One CSV row, with its numbers checked; ``line`` is its line in the file (header = 1)."""

    line: int
    cells: dict[str, str]
    energy_kwh_with_pue: float
    emissions_kg: float
    duration_s: float
    end_unix_s: float
    pue: float

    def text(self, column: str) -> str:
        return self.cells.get(column, "").strip()

    def number(self, column: str) -> float | None:
        """The cell as a finite float, or None when the column is absent, empty or not a number."""
        try:
            value = float(self.text(column))
        except ValueError:
            return None
        return value if math.isfinite(value) else None


# -------------------------------------------------------------------- reading
def read_emissions_csv(path: str | Path, *, task_id: msg.TaskId | None = None, run: str = "") -> list[msg.StageRecord]:
    """The runs of a CodeCarbon ``emissions.csv`` as stage records, in file order.

    ``task_id`` ties them to a task (default: none, a run outside any task); ``run`` names the
    pipeline they belong to (default: each row's CodeCarbon run id). Raises ``InvalidProblem`` with
    one line per problem when the file is missing, empty, not a CSV, lacks required columns, or has
    energy, emissions, duration, PUE or timestamp cells that are not valid.
    """
    file = Path(path)
    header, cells = _read_table(file)
    rows = _check_rows(file, header, cells)
    rows, superseded = _last_row_per_run(rows, has_tasks="task_name" in header)
    records = [_record(file, row, task_id or msg.TaskId(), run.strip(), superseded.get(row.line, 0)) for row in rows]
    _disambiguate(records, rows)
    return records


def _read_table(file: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows as text: numbers are checked cell by cell later, so a bad cell is named."""
    import pandas as pd  # deferred: the CLI's other commands should not pay for pandas

    if not file.exists():
        raise InvalidProblem(f"{file}: no such file; give the emissions.csv CodeCarbon wrote "
                             "(in its output_dir, by default the folder the tracked script ran in)")
    if file.is_dir():
        hint = f"; did you mean {file / 'emissions.csv'}?" if (file / "emissions.csv").is_file() else ""
        raise InvalidProblem(f"{file}: is a folder, expected CodeCarbon's emissions.csv file{hint}")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise InvalidProblem(f"{file}: cannot read it: {e.strerror or e}") from None
    if not raw.strip():
        raise InvalidProblem(f"{file}: the file is empty; CodeCarbon writes a header and one row per run")
    if b"\x00" in raw[:4096]:
        raise InvalidProblem(f"{file}: not a CSV file (binary content); expected CodeCarbon's emissions.csv")
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError:
        raise InvalidProblem(f"{file}: not a CSV file (not UTF-8 text); expected CodeCarbon's emissions.csv") from None
    except pd.errors.EmptyDataError:
        raise InvalidProblem(f"{file}: the file is empty; CodeCarbon writes a header and one row per run") from None
    except pd.errors.ParserError as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise InvalidProblem(f"{file}: not a valid CSV file ({detail}); expected CodeCarbon's emissions.csv") from None
    header = [str(c).strip() for c in frame.columns]
    frame.columns = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        looks_foreign = len(missing) == len(REQUIRED_COLUMNS)
        what = "not a CodeCarbon emissions.csv: " if looks_foreign else ""
        raise InvalidProblem(f"{file}: {what}missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             f"({_REQUIRED_SINCE}); found: {', '.join(header[:12]) or 'none'}"
                             f"{' ...' if len(header) > 12 else ''}")
    if frame.empty:
        raise InvalidProblem(f"{file}: has a header but no rows; CodeCarbon writes one row per run when the "
                             "tracker stops")
    return header, [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _check_rows(file: Path, header: list[str], cells: list[dict[str, str]]) -> list[_Row]:
    """Every row's numbers, or one InvalidProblem listing every bad cell (one line each)."""
    problems: list[str] = []
    rows: list[_Row] = []
    has_pue = "pue" in header
    for index, row_cells in enumerate(cells):
        line = index + 1 + _HEADER_LINES
        found: list[str] = []

        def amount(column: str, unit: str, *, positive: bool = False) -> float:
            text = str(row_cells.get(column, "")).strip()
            if not text:
                found.append(f"{column} is empty, expected a number of {unit}")
                return math.nan
            try:
                value = float(text)
            except ValueError:
                found.append(f"{column} is {text!r}, expected a number of {unit}")
                return math.nan
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                found.append(f"{column} is {text}, expected a finite number of {unit} {bound}")
                return math.nan
            return value

        energy = amount("energy_consumed", "kWh")
        emissions = amount("emissions", "kg CO2e")
        duration = amount("duration", "seconds")
        pue = 1.0
        if has_pue and str(row_cells.get("pue", "")).strip():
            pue = amount("pue", "(facility energy / IT energy)", positive=True)
            if math.isfinite(pue) and pue < 1.0:
                found.append(f"pue is {pue:g}, expected >= 1.0 (a facility cannot use less energy than its IT)")
        if energy == 0 and math.isfinite(emissions) and emissions > 0:
            found.append(f"emissions is {emissions:g} kg with energy_consumed 0: CodeCarbon derives emissions "
                         "from energy, so one of them was edited")
        end_unix_s = _timestamp_unix_s(str(row_cells.get("timestamp", "")).strip(), found)
        if found:
            problems += [f"{file} line {line}: {p}" for p in found]
            continue
        rows.append(_Row(line=line, cells={k: str(v) for k, v in row_cells.items()}, energy_kwh_with_pue=energy,
                         emissions_kg=emissions, duration_s=duration, end_unix_s=end_unix_s, pue=pue))
    if problems:
        shown = problems[:_MAX_PROBLEM_LINES]
        if len(problems) > _MAX_PROBLEM_LINES:
            shown.append(f"{file}: ... and {len(problems) - _MAX_PROBLEM_LINES} more problems")
        raise InvalidProblem("\n".join(shown))
    return rows


def _timestamp_unix_s(text: str, found: list[str]) -> float:
    """CodeCarbon's end-of-run timestamp as Unix seconds; naive times are this machine's local time."""
    if not text:
        found.append("timestamp is empty, expected an ISO 8601 time such as 2024-05-01T12:00:00")
        return math.nan
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        found.append(f"timestamp is {text!r}, expected an ISO 8601 time such as 2024-05-01T12:00:00")
        return math.nan


def _run_id(row: _Row) -> str:
    return row.text("run_id") or row.text("experiment_id")


def _last_row_per_run(rows: list[_Row], *, has_tasks: bool) -> tuple[list[_Row], dict[int, int]]:
    """Drop the cumulative rows ``tracker.flush()`` appended before a run's last one.

    Returns the rows kept (file order) and, by kept row's line, how many earlier rows it superseded.
    CodeCarbon's task files hold one row per task of a run, all distinct, so they are kept whole.
    """
    if has_tasks:
        return rows, {}
    last: dict[tuple[str, str], _Row] = {}
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        run_id = _run_id(row)
        if not run_id:
            key = ("", str(row.line))  # no id: every row stands alone
        else:
            key = (run_id, row.text("project_name"))
        counts[key] = counts.get(key, 0) + 1
        if key not in last or row.duration_s >= last[key].duration_s:
            last[key] = row
    kept = sorted(last.values(), key=lambda r: r.line)
    by_line = {row.line: counts[key] - 1 for key, row in last.items() if counts[key] > 1}
    return kept, by_line


# -------------------------------------------------------------------- records
def _stage(row: _Row) -> str:
    name = row.text("task_name") or row.text("project_name")
    if not name or name == _CODECARBON_DEFAULT_PROJECT:
        return DEFAULT_STAGE
    return name


def _region(row: _Row) -> str:
    provider, cloud_region = row.text("cloud_provider").lower(), row.text("cloud_region").lower()
    if provider and cloud_region:
        return f"{provider}:{cloud_region}"
    return row.text("country_iso_code").upper()


def _devices(row: _Row) -> str:
    """What CodeCarbon metered, e.g. ``cpu (Intel Xeon Gold 6148)+gpu (4 x Tesla V100-SXM2-16GB)+ram``."""
    if not any(c in row.cells for c in ("cpu_energy", "cpu_model", "gpu_model", "gpu_count")):
        return "machine"  # CodeCarbon 1.x: one total, no split or models
    cpu_model = row.text("cpu_model")
    parts = [f"cpu ({cpu_model})" if cpu_model else "cpu"]
    gpu_count = row.number("gpu_count") or 0.0
    gpu_energy = row.number("gpu_energy") or 0.0
    if gpu_count > 0 or gpu_energy > 0:
        gpu_model = row.text("gpu_model")  # CodeCarbon writes it with the count: "4 x NVIDIA A100-SXM4-40GB"
        parts.append(f"gpu ({gpu_model})" if gpu_model else f"gpu ({gpu_count:g})" if gpu_count > 0 else "gpu")
    parts.append("ram")
    return "+".join(parts)


def _split(row: _Row) -> str:
    """CodeCarbon's CPU/GPU/RAM shares, as it reported them."""
    shares = {part: row.number(f"{part}_energy") for part in ("cpu", "gpu", "ram")}
    if any(v is None for v in shares.values()):
        return "no CPU/GPU/RAM split in this CSV (CodeCarbon 1.x)"
    total = sum(v for v in shares.values() if v is not None)
    if total <= 0:
        return "CPU/GPU/RAM split all 0"
    return "split " + ", ".join(f"{part.upper()} {100 * (v or 0.0) / total:.0f}%" for part, v in shares.items())


def _assumptions(file: Path, row: _Row, intensity_g_per_kwh: float, superseded: int) -> str:
    version = row.text("codecarbon_version")
    mode = row.text("tracking_mode")
    notes = [
        f"imported from CodeCarbon {version or '(version not recorded: an older release)'} {file.name} "
        f"line {row.line}"
        + (f", run {_run_id(row)}" if _run_id(row) else ""),
        f"tracking mode {mode}{_MODE_MEANING.get(mode, '')}" if mode else "tracking mode not recorded",
        _split(row),
        "CodeCarbon's CPU figure may itself be a TDP x load estimate (the CSV does not say whether it read "
        "RAPL), and its RAM figure is always modelled",
        f"PUE {row.pue:g} from the CSV, divided out of energy_consumed" if "pue" in row.cells and row.text("pue")
        else "PUE 1.0: this CSV gives none",
        f"intensity {intensity_g_per_kwh:.4g} g/kWh is CodeCarbon's (emissions / energy_consumed)"
        if row.energy_kwh_with_pue > 0 else "no energy recorded, so no intensity",
        "start = timestamp - duration; a timestamp without zone read as this machine's local time",
        f"energy uncertainty {RELATIVE_UNCERTAINTY:.0%} relative: CodeCarbon gives none, and software energy meters "
        f"disagree with wall meters by up to about {RELATIVE_UNCERTAINTY:.0%} in published comparisons",
    ]
    if superseded:
        notes.append(f"last of {superseded + 1} cumulative rows of this run (tracker.flush()); earlier ones skipped")
    return "; ".join(notes)


def _record(file: Path, row: _Row, task_id: msg.TaskId, run: str, superseded: int) -> msg.StageRecord:
    energy_kwh_it = row.energy_kwh_with_pue / row.pue
    energy_j = units.kwh_to_j(energy_kwh_it)
    co2_g = row.emissions_kg * _G_PER_KG
    intensity = co2_g / row.energy_kwh_with_pue if row.energy_kwh_with_pue > 0 else 0.0
    return msg.StageRecord(
        task_id=msg.TaskId(problem_id=task_id.problem_id, iteration=task_id.iteration),
        run=run or _run_id(row) or f"{file.stem} line {row.line}",
        stage=_stage(row),
        host=row.text("hostname") or row.text("host"),
        devices=_devices(row),
        started_unix_s=row.end_unix_s - row.duration_s,
        duration_s=row.duration_s,
        energy_j=energy_j,
        energy_uncertainty_j=energy_j * RELATIVE_UNCERTAINTY,
        energy_method=ENERGY_METHOD,
        assumptions=_assumptions(file, row, intensity, superseded),
        region=_region(row),
        intensity_g_per_kwh=intensity,
        pue=row.pue,
        co2_g=co2_g,
        co2_uncertainty_g=co2_g * RELATIVE_UNCERTAINTY,
    )


def _disambiguate(records: list[msg.StageRecord], rows: list[_Row]) -> None:
    """Give records that share a (run, stage) key the CodeCarbon run id, so none overwrites another."""
    keys: dict[tuple[str, str], int] = {}
    for record in records:
        keys[(record.run, record.stage)] = keys.get((record.run, record.stage), 0) + 1
    for record, row in zip(records, rows):
        if keys[(record.run, record.stage)] > 1:
            tag = _run_id(row)[:_SHORT_RUN_ID] or f"line {row.line}"
            record.stage = f"{record.stage} [{tag}]"


# -------------------------------------------------------------------- command line
def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``import-codecarbon`` on the ``sustainml`` command's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "import-codecarbon", help="import a CodeCarbon emissions.csv as measured stage records",
        description="Read CodeCarbon's emissions.csv and store each run as a stage record (energy without PUE, "
        "CO2, intensity, PUE, devices, assumptions), so it can be reported next to the pipeline's own stages.",
    )
    p.add_argument("file", metavar="FILE", help="CodeCarbon's emissions.csv")
    p.add_argument("--task", metavar="PROBLEM_ID[/ITER]", default="",
                   help="tie the runs to this task, as `sustainml submit` printed it; default: no task")
    p.add_argument("--run", metavar="NAME", default="",
                   help="pipeline name for every run, e.g. the model trained (default: CodeCarbon's run id)")
    p.add_argument("--store", metavar="PATH", default="",
                   help="run store file to add to (default: $SUSTAINML_RUN_STORE or the user's data folder)")
    p.set_defaults(func=cmd_import_codecarbon)
    return p


def cmd_import_codecarbon(args: argparse.Namespace) -> int:
    """Read, store, print one line per run. Errors are ``SustainMLError``s for ``sustainml``'s main
    to print as one line (``InvalidProblem``: exit code 2)."""
    task_id = parse_task_id(args.task) if args.task else None
    records = read_emissions_csv(args.file, task_id=task_id, run=args.run)
    with RunStore(args.store or RunStore.default_path()) as store:
        added = store.add(records)
        path = store.path
    for line in summary_lines(records):
        print(line)
    if added < len(records):
        print(f"{len(records) - added} of {len(records)} runs were already in {path}: not added again")
    return 0


def summary_lines(records: Sequence[msg.StageRecord]) -> list[str]:
    """One line per imported run: run, stage, IT energy in kWh (and with PUE when it is not 1), gCO2e."""
    lines = []
    for r in records:
        energy_kwh = units.j_to_kwh(r.energy_j)
        with_pue = f" ({energy_kwh * r.pue:.6g} kWh with PUE {r.pue:g})" if r.pue != 1.0 else ""
        where = f" in {r.region}" if r.region else ""
        lines.append(f"imported {r.run} / {r.stage}: {energy_kwh:.6g} kWh{with_pue}, {r.co2_g:.4g} gCO2e{where}, "
                     f"{r.duration_s:.1f} s")
    return lines

