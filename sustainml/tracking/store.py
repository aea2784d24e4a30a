"""Where tracked stages and training forecasts are kept on the user's machine, pipeline or not.

One SQLite file (see :class:`~sustainml.sqlite_file.SqliteFile`). Messages are stored as their CDR
serialisation (``msg.StageRecord.serialize()``), as the orchestrator's task store does: the IDL stays
the one definition of their fields, and ``@appendable`` types still read back after fields are
appended. The columns beside the blob are only there to select by.

Anything that produces ``msg.StageRecord`` values may add them (the tracker; a CodeCarbon
``emissions.csv`` importer with ``energy_method`` "codecarbon"): ``RunStore(path).add(records)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sustainml import msg
from sustainml.sqlite_file import SqliteFile

__all__ = ["RunStore", "RUN_STORE_ENV"]

#: Names the run store file; else ``$XDG_DATA_HOME/sustainml/runs.sqlite`` (``~/.local/share/...``).
RUN_STORE_ENV = "SUSTAINML_RUN_STORE"

# _MIGRATIONS[v] brings a file at user_version v to v + 1.
_MIGRATIONS: dict[int, list[str]] = {
    0: [
        """
        CREATE TABLE stages (
            problem_id      TEXT    NOT NULL,   -- "" = a run outside any task
            iteration       INTEGER NOT NULL,
            run             TEXT    NOT NULL,
            stage           TEXT    NOT NULL,
            host            TEXT    NOT NULL,
            started_unix_s  REAL    NOT NULL,
            record          BLOB    NOT NULL    -- msg.StageRecord
        )
        """,
        "CREATE INDEX stages_by_task ON stages (problem_id, run, started_unix_s)",
        """
        CREATE TABLE forecasts (
            problem_id      TEXT    NOT NULL,
            iteration       INTEGER NOT NULL,
            run             TEXT    NOT NULL,
            host            TEXT    NOT NULL,
            updated_unix_s  REAL    NOT NULL,
            forecast        BLOB    NOT NULL    -- msg.TrainingForecast
        )
        """,
        "CREATE INDEX forecasts_by_task ON forecasts (problem_id, run, updated_unix_s)",
    ],
    # One record per stage run: importing the same emissions.csv twice, or a tracker re-sending,
    # must not count a run twice.
    1: [
        "DELETE FROM stages WHERE rowid NOT IN (SELECT MIN(rowid) FROM stages"
        " GROUP BY problem_id, iteration, run, stage, host, started_unix_s)",
        "CREATE UNIQUE INDEX stages_once ON stages (problem_id, iteration, run, stage, host, started_unix_s)",
    ],
}


class RunStore(SqliteFile):
    """Stage records and training forecasts of the user's own pipelines; safe from several threads
    and processes. ``path`` may be ``":memory:"`` for a store that lives as long as the object."""

    migrations = _MIGRATIONS
    what = "run store"

    @staticmethod
    def default_path() -> Path:
        """``$SUSTAINML_RUN_STORE`` if set, else ``runs.sqlite`` in the user's data folder
        (``$XDG_DATA_HOME/sustainml``, by default ``~/.local/share/sustainml``)."""
        named = os.environ.get(RUN_STORE_ENV, "").strip()
        if named:
            return Path(named).expanduser()
        data_home = os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local" / "share"
        return Path(data_home) / "sustainml" / "runs.sqlite"

    def add(self, records: Iterable[msg.StageRecord]) -> int:
        """Keep ``records`` (all or none); return how many were new. A stage run twice is kept twice
        (they differ by ``started_unix_s``); a record already stored (same task, run, stage, host and
        start) is not added again."""
        rows = []
        for record in records:
            if not isinstance(record, msg.StageRecord):
                raise TypeError(f"RunStore.add takes msg.StageRecord values, got {type(record).__name__}")
            rows.append((record.task_id.problem_id, record.task_id.iteration, record.run, record.stage,
                         record.host, record.started_unix_s, record.serialize()))
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO stages (problem_id, iteration, run, stage, host, started_unix_s, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return db.total_changes - before

    def stages(self, problem_id: str = "", run: str = "") -> list[msg.StageRecord]:
        """Stage records, oldest first, of one task's problem and/or one run ("" = any)."""
        clause, params = _where(problem_id=problem_id, run=run)
        with self._lock:
            rows = self._db.execute(
                f"SELECT record FROM stages {clause} ORDER BY started_unix_s, rowid", params).fetchall()
        return [msg.StageRecord.deserialize(blob) for (blob,) in rows]

    def add_forecast(self, forecast: msg.TrainingForecast) -> None:
        """Keep one training forecast (every one: their sequence shows how the prediction converged)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO forecasts (problem_id, iteration, run, host, updated_unix_s, forecast)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (forecast.task_id.problem_id, forecast.task_id.iteration, forecast.run, forecast.host,
                 forecast.updated_unix_s, forecast.serialize()))

    def forecasts(self, problem_id: str = "", run: str = "") -> list[msg.TrainingForecast]:
        """Training forecasts, oldest first, of one task's problem and/or one run ("" = any)."""
        clause, params = _where(problem_id=problem_id, run=run)
        with self._lock:
            rows = self._db.execute(
                f"SELECT forecast FROM forecasts {clause} ORDER BY updated_unix_s, rowid", params).fetchall()
        return [msg.TrainingForecast.deserialize(blob) for (blob,) in rows]


def _where(**equal: str) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause matching the non-empty ``column=value`` pairs (column names are ours, not input)."""
    wanted = {column: value for column, value in equal.items() if value}
    if not wanted:
        return "", ()
    return "WHERE " + " AND ".join(f"{column} = ?" for column in wanted), tuple(wanted.values())
