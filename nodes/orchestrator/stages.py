"""The tracked stages of a user's pipeline attached to a task: merging records as they come, and
saying which stage dominates. Plain functions, tested without DDS."""

from __future__ import annotations

from collections import defaultdict

from sustainml import msg

__all__ = ["MAX_STAGE_RECORDS", "merge_stage", "merge_forecast", "stage_totals", "summarise_stages"]

#: Records kept per task; beyond it the oldest go, so a script tracking a stage in a loop cannot
#: grow a result without bound.
MAX_STAGE_RECORDS = 2_000


def merge_stage(records: list[msg.StageRecord], record: msg.StageRecord) -> None:
    """Add ``record``; a record seen before (same run, stage, host and start) replaces its copy."""
    identity = (record.run, record.stage, record.host, record.started_unix_s)
    for i, known in enumerate(records):
        if (known.run, known.stage, known.host, known.started_unix_s) == identity:
            records[i] = record
            return
    records.append(record)
    del records[:-MAX_STAGE_RECORDS]


def merge_forecast(forecasts: list[msg.TrainingForecast], forecast: msg.TrainingForecast) -> None:
    """Keep the latest forecast per (run, host)."""
    forecasts[:] = [f for f in forecasts if (f.run, f.host) != (forecast.run, forecast.host)] + [forecast]


def stage_totals(records: list[msg.StageRecord]) -> dict[str, float]:
    """gCO2e per stage name, summed over runs and repeats, in the order stages first appeared."""
    totals: dict[str, float] = defaultdict(float)
    for record in records:
        totals[record.stage] += record.co2_g
    return dict(totals)


def summarise_stages(records: list[msg.StageRecord]) -> str:
    """One sentence: which stage dominates the tracked CO2, its share, over how many runs."""
    totals = stage_totals(records)
    total = sum(totals.values())
    if not records:
        return ""
    runs = len({r.run for r in records})
    if total <= 0:
        return f"{len(records)} tracked stages in {runs} run(s), no CO2 recorded"
    stage, co2 = max(totals.items(), key=lambda item: item[1])
    methods = sorted({r.energy_method for r in records})
    return (
        f"{stage} dominates: {100 * co2 / total:.0f}% of the {total:.3g} g CO2e of {len(totals)} tracked stages "
        f"in {runs} run(s) (energy: {', '.join(methods)})"
    )
