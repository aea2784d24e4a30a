"""The tracked stages of a user's pipeline attached to a task: merging records as they come. Plain
functions, tested without DDS; which stage dominates is said by ``sustainml.tracking``'s
``describe_dominance``, the same words the tracker prints."""

from __future__ import annotations

from sustainml import msg

__all__ = ["MAX_STAGE_RECORDS", "merge_stage", "merge_forecast"]

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
