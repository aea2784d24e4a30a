"""Measurements kept across runs, so that an iteration or another user asking the same never re-measures.

One SQLite file (stdlib ``sqlite3``, WAL mode), by default ``<store_dir>/measurements.sqlite3``,
shared by the hardware node, ``sustainml measure`` and the estimator's per-device calibrations
(``estimate.py``, kept here by :func:`calibration_for`).
A measurement is stored as its CDR serialisation (``msg.JobMeasurement.serialize()``): the IDL stays
the one definition of its fields. The IDL's types are ``@final`` (see its header): a change of
``JobMeasurement`` needs a migration here that drops the rows it can no longer read (migration 3 did,
for the move from ``@appendable``). It is keyed by everything that changes the figures
(:class:`MeasurementKey`): the model's name and builder (its fingerprint: two models proposed under one
name never share figures) and its input, the batch sizes, the precision, the device and its name, the
energy method, the torch and Python versions and the window length. Profiles and the estimator's
observations key on the builder too. A result read back is a copy marked ``cached``.

Typical use::

    with MeasurementCache(Path(config.store_dir) / CACHE_FILE) as cache:
        key = MeasurementKey.here(model="resnet18", builder=fingerprint, input_shape=(3, 224, 224), batch_size=1,
                                  train_batch_size=8, precision="fp32", device="cpu",
                                  energy_method="estimate", window_s=1.0)
        m = cache.get_or_measure(key, lambda: measure(...))
"""

from __future__ import annotations

import copy
import logging
import platform
import sqlite3
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields

from sustainml import msg
from sustainml.energy import make_energy_source
from sustainml.energy_source import EnergySource
from sustainml.sqlite_file import SqliteFile

from .estimate import DeviceCalibration, ModelProfile, calibrate
from .learning import Observation
from .measure import lookup_device_name

__all__ = ["CACHE_FILE", "SCHEMA_VERSION", "MeasurementCache", "MeasurementKey", "CalibrationKey", "calibration_for"]

CACHE_FILE = "measurements.sqlite3"

log = logging.getLogger(__name__)

# _MIGRATIONS[v] brings a file at user_version v to v + 1.
_MIGRATIONS: dict[int, list[str]] = {
    0: [
        """
        CREATE TABLE measurements (
            model             TEXT    NOT NULL,
            input_shape       TEXT    NOT NULL,  -- per sample, e.g. "3x224x224"
            batch_size        INTEGER NOT NULL,
            train_batch_size  INTEGER NOT NULL,  -- 0: no training phase
            precision         TEXT    NOT NULL,  -- "fp32", "bf16", "fp16"
            device            TEXT    NOT NULL,  -- torch device id, "cpu" or "cuda:N"
            device_name       TEXT    NOT NULL,  -- CPU model or GPU name
            energy_method     TEXT    NOT NULL,  -- "nvml", "rapl", "estimate"
            torch_version     TEXT    NOT NULL,
            python_version    TEXT    NOT NULL,
            window_s          REAL    NOT NULL,  -- the requested metered window, Units: s
            measurement       BLOB    NOT NULL,  -- msg.JobMeasurement CDR
            measured_unix_s   REAL    NOT NULL,
            PRIMARY KEY (model, input_shape, batch_size, train_batch_size, precision, device, device_name,
                         energy_method, torch_version, python_version, window_s)
        )
        """,
    ],
    1: [
        """
        CREATE TABLE calibrations (
            device            TEXT    NOT NULL,
            device_name       TEXT    NOT NULL,
            precision         TEXT    NOT NULL,
            energy_method     TEXT    NOT NULL,
            torch_version     TEXT    NOT NULL,
            python_version    TEXT    NOT NULL,
            flop_per_s        REAL    NOT NULL,  -- achieved by the calibration's matrix products
            j_per_flop        REAL    NOT NULL,  -- active energy per FLOP, Units: J
            active_power_w    REAL    NOT NULL,
            idle_power_w      REAL    NOT NULL,
            memory_bytes_per_s REAL   NOT NULL,  -- achieved by the calibration's copies
            call_overhead_s   REAL    NOT NULL,  -- per forward operator, inference, Units: s
            train_call_overhead_s REAL NOT NULL, -- per forward operator, training step, Units: s
            relative_uncertainty REAL NOT NULL,  -- of j_per_flop, one standard uncertainty
            matmul_size       INTEGER NOT NULL,
            window_s          REAL    NOT NULL,
            assumptions       TEXT    NOT NULL,
            measured_unix_s   REAL    NOT NULL,
            PRIMARY KEY (device, device_name, precision, energy_method, torch_version, python_version)
        )
        """,
    ],
    2: [
        """
        CREATE TABLE observations (            -- the pre-run estimator's errors (learning.py)
            device            TEXT    NOT NULL,
            device_name       TEXT    NOT NULL,
            precision         TEXT    NOT NULL,
            energy_method     TEXT    NOT NULL,
            torch_version     TEXT    NOT NULL,
            python_version    TEXT    NOT NULL,
            model             TEXT    NOT NULL,  -- a variant included: "resnet18+int8-dynamic"
            family            TEXT    NOT NULL,
            library           TEXT    NOT NULL,
            phase             TEXT    NOT NULL,  -- "inference" or "training"
            latency_ratio     REAL    NOT NULL,  -- measured / estimated
            energy_ratio      REAL    NOT NULL,
            observed_unix_s   REAL    NOT NULL,
            PRIMARY KEY (device, device_name, precision, energy_method, torch_version, python_version, model, phase)
        )
        """,
        """
        CREATE TABLE profiles (                -- estimate.profile_model, which takes seconds for some models
            model             TEXT    NOT NULL,
            input_shape       TEXT    NOT NULL,
            torch_version     TEXT    NOT NULL,
            flops_per_sample  REAL    NOT NULL,
            activation_bytes_per_sample REAL NOT NULL,
            weight_bytes      REAL    NOT NULL,
            operators         INTEGER NOT NULL,
            PRIMARY KEY (model, input_shape, torch_version)
        )
        """,
    ],
    3: [
        # Models travel as data (ModelCandidate.builder): what was stored by name alone may be another model
        # of that name, and the rows were CDR of the previous IDL's @appendable types, which the @final
        # types cannot read. Measurements and profiles are dropped (MeasurementCache._migrate logs how
        # many); observations are kept with an unknown builder (they still teach by family, kind of data
        # and library, never as a model's own); calibrations do not depend on models and stay.
        "DROP TABLE measurements",
        """
        CREATE TABLE measurements (
            model             TEXT    NOT NULL,
            builder           TEXT    NOT NULL,  -- builder_message.fingerprint of what built the model
            input_shape       TEXT    NOT NULL,  -- per sample, e.g. "3x224x224"
            batch_size        INTEGER NOT NULL,
            train_batch_size  INTEGER NOT NULL,  -- 0: no training phase
            precision         TEXT    NOT NULL,  -- "fp32", "bf16", "fp16", or a variant: "int8-dynamic"
            device            TEXT    NOT NULL,  -- torch device id, "cpu" or "cuda:N"
            device_name       TEXT    NOT NULL,  -- CPU model or GPU name
            energy_method     TEXT    NOT NULL,  -- "nvml", "rapl", "estimate"
            torch_version     TEXT    NOT NULL,
            python_version    TEXT    NOT NULL,
            window_s          REAL    NOT NULL,  -- the requested metered window, Units: s
            measurement       BLOB    NOT NULL,  -- msg.JobMeasurement CDR
            measured_unix_s   REAL    NOT NULL,
            PRIMARY KEY (model, builder, input_shape, batch_size, train_batch_size, precision, device, device_name,
                         energy_method, torch_version, python_version, window_s)
        )
        """,
        "DROP TABLE profiles",
        """
        CREATE TABLE profiles (
            model             TEXT    NOT NULL,
            builder           TEXT    NOT NULL,
            input_shape       TEXT    NOT NULL,
            torch_version     TEXT    NOT NULL,
            flops_per_sample  REAL    NOT NULL,
            activation_bytes_per_sample REAL NOT NULL,
            weight_bytes      REAL    NOT NULL,
            operators         INTEGER NOT NULL,
            PRIMARY KEY (model, builder, input_shape, torch_version)
        )
        """,
        "ALTER TABLE observations RENAME TO observations_v3",
        """
        CREATE TABLE observations (
            device            TEXT    NOT NULL,
            device_name       TEXT    NOT NULL,
            precision         TEXT    NOT NULL,
            energy_method     TEXT    NOT NULL,
            torch_version     TEXT    NOT NULL,
            python_version    TEXT    NOT NULL,
            model             TEXT    NOT NULL,  -- a variant included: "resnet18+int8-dynamic"
            family            TEXT    NOT NULL,
            library           TEXT    NOT NULL,
            phase             TEXT    NOT NULL,  -- "inference" or "training"
            latency_ratio     REAL    NOT NULL,  -- measured / estimated
            energy_ratio      REAL    NOT NULL,
            builder           TEXT    NOT NULL,  -- fingerprint; "" = unknown (kept from before migration 3)
            observed_unix_s   REAL    NOT NULL,
            PRIMARY KEY (device, device_name, precision, energy_method, torch_version, python_version, model, builder,
                         phase)
        )
        """,
        """
        INSERT INTO observations SELECT device, device_name, precision, energy_method, torch_version, python_version,
            model, family, library, phase, latency_ratio, energy_ratio, '', observed_unix_s FROM observations_v3
        """,
        "DROP TABLE observations_v3",
    ],
}
SCHEMA_VERSION = len(_MIGRATIONS)
#: The migration that drops every stored measurement and profile (see its comment).
_DROPS_MEASUREMENTS = 3


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


@dataclass(frozen=True)
class MeasurementKey:
    """Everything that changes a measurement's figures; two equal keys may share one measurement.

    ``window_s`` is the requested window (Units: s), not the one the loop ended with.
    """

    model: str
    builder: str  # builder_message.fingerprint of what built the model
    input_shape: tuple[int, ...]
    batch_size: int
    train_batch_size: int
    precision: str
    device: str
    device_name: str
    energy_method: str
    torch_version: str
    python_version: str
    window_s: float

    @classmethod
    def here(
        cls,
        *,
        model: str,
        builder: str,
        input_shape: tuple[int, ...] | list[int],
        batch_size: int,
        train_batch_size: int,
        precision: str,
        device: str,
        energy_method: str,
        window_s: float,
        device_name: str | None = None,
    ) -> MeasurementKey:
        """The key of a measurement made in this process: software versions filled in, and the device's
        name looked up unless given (a node passes its inventory's)."""
        return cls(
            model=model,
            builder=builder,
            input_shape=tuple(int(d) for d in input_shape),
            batch_size=int(batch_size),
            train_batch_size=int(train_batch_size),
            precision=precision,
            device=device,
            device_name=device_name if device_name is not None else lookup_device_name(device),
            energy_method=energy_method,
            torch_version=_torch_version(),
            python_version=platform.python_version(),
            window_s=float(window_s),
        )

    def row(self) -> tuple[object, ...]:
        """The key as the table's key columns, in their order."""
        values = list(astuple(self))
        values[2] = "x".join(str(d) for d in self.input_shape)
        return tuple(values)


@dataclass(frozen=True)
class CalibrationKey:
    """What one device calibration holds for: the device, its dtype, its energy method and the software."""

    device: str
    device_name: str
    precision: str
    energy_method: str
    torch_version: str
    python_version: str

    @classmethod
    def here(cls, *, device: str, precision: str, energy_method: str, device_name: str | None = None) -> CalibrationKey:
        return cls(
            device=device,
            device_name=device_name if device_name is not None else lookup_device_name(device),
            precision=precision,
            energy_method=energy_method,
            torch_version=_torch_version(),
            python_version=platform.python_version(),
        )


_MEASUREMENT_KEY_COLUMNS = ", ".join(f.name for f in fields(MeasurementKey))
_MEASUREMENT_MATCH = " AND ".join(f"{f.name} = ?" for f in fields(MeasurementKey))

_CALIBRATION_KEY_COLUMNS = [f.name for f in fields(CalibrationKey)]
# DeviceCalibration's fields that are columns of their own (the rest are the key's).
_CALIBRATION_VALUE_COLUMNS = [
    f.name for f in fields(DeviceCalibration) if f.name not in ("device", "device_name", "precision", "energy_method")
]


class MeasurementCache(SqliteFile):
    """Measurements and device calibrations on one SQLite file; safe to call from several threads, and
    from several processes on the same file.

    ``path`` may be ``":memory:"`` for a cache that lives as long as the object.
    """

    migrations = _MIGRATIONS
    what = "measurement cache"
    # The hardware node opens it with ``holder``: two hardware nodes on one cache would measure every task
    # twice on the same devices. ``sustainml measure`` opens it without, beside the node.
    holder_hint = ("one hardware node per measurement cache: stop that one first, or give this one another "
                   "cache (SUSTAINML_STORE_DIR, or --param cache=FILE)")

    def _migrate(self) -> None:
        """The base class's migrations, saying how many stored figures the migration to builder keys drops."""
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            dropped = {table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                       for table in ("measurements", "profiles")
                       if 0 < version <= _DROPS_MEASUREMENTS and _has_table(self._db, table)}
        super()._migrate()
        if any(dropped.values()):
            log.warning("%s %s: dropped %d stored measurements and %d model profiles while upgrading it to schema %d: "
                        "they were keyed by model name alone (models now travel as data and are keyed by their "
                        "builder too) and stored as CDR of the previous IDL's @appendable types, which can no "
                        "longer be read; they are measured and profiled again when asked. Calibrations and what "
                        "the estimator learned are kept.", self.what, self.path, dropped.get("measurements", 0),
                        dropped.get("profiles", 0), self.schema_version)

    # ----------------------------------------------------------------------------- measurements

    def get(self, key: MeasurementKey) -> msg.JobMeasurement | None:
        """The stored measurement for ``key`` as a new object with ``cached=True`` and basis "reused"
        (nothing spent producing it this time: ``measuring_s`` 0), or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT measurement FROM measurements WHERE {_MEASUREMENT_MATCH}", key.row()
            ).fetchone()
        if row is None:
            return None
        measurement = msg.JobMeasurement.deserialize(row[0])
        measurement.cached = True
        measurement.basis = "reused"
        measurement.measuring_s = measurement.measuring_energy_j = 0.0  # nothing spent on it this time
        return measurement

    def put(self, key: MeasurementKey, measurement: msg.JobMeasurement) -> None:
        """Store ``measurement`` under ``key``, replacing what was there. Stored with ``cached=False``."""
        fresh = copy.copy(measurement)
        fresh.cached = False
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO measurements ({_MEASUREMENT_KEY_COLUMNS}, measurement, measured_unix_s)"
                f" VALUES ({', '.join('?' * (len(key.row()) + 2))})",
                (*key.row(), fresh.serialize(), time.time()),
            )

    def get_or_measure(self, key: MeasurementKey, measure: Callable[[], msg.JobMeasurement]) -> msg.JobMeasurement:
        """The stored measurement for ``key`` (``cached=True``), else ``measure()``'s, stored first.

        Two threads asking for the same missing key at once may both measure; the later result wins.
        """
        found = self.get(key)
        if found is not None:
            return found
        measurement = measure()
        self.put(key, measurement)
        return measurement

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    # ----------------------------------------------------------------------------- calibrations

    def get_calibration(self, key: CalibrationKey) -> DeviceCalibration | None:
        """The stored calibration of ``key``'s device and dtype, or None."""
        match = " AND ".join(f"{name} = ?" for name in _CALIBRATION_KEY_COLUMNS)
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_CALIBRATION_VALUE_COLUMNS)} FROM calibrations WHERE {match}", astuple(key)
            ).fetchone()
        if row is None:
            return None
        return DeviceCalibration(
            device=key.device,
            device_name=key.device_name,
            precision=key.precision,
            energy_method=key.energy_method,
            **dict(zip(_CALIBRATION_VALUE_COLUMNS, row, strict=True)),
        )

    def put_calibration(self, key: CalibrationKey, calibration: DeviceCalibration) -> None:
        """Store ``calibration`` under ``key``, replacing what was there."""
        columns = [*_CALIBRATION_KEY_COLUMNS, *_CALIBRATION_VALUE_COLUMNS, "measured_unix_s"]
        values = [*astuple(key), *(getattr(calibration, name) for name in _CALIBRATION_VALUE_COLUMNS), time.time()]
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO calibrations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                values,
            )


    # ----------------------------------------------------------------------------- the estimator's errors

    def observations(self, key: CalibrationKey) -> list[Observation]:
        """Every observation of the estimator's error on ``key``'s device, dtype, meter and software."""
        match = " AND ".join(f"{name} = ?" for name in _CALIBRATION_KEY_COLUMNS)
        with self._lock:
            rows = self._db.execute(
                f"SELECT model, family, library, phase, latency_ratio, energy_ratio, builder FROM observations "
                f"WHERE {match}",
                astuple(key),
            ).fetchall()
        return [Observation(*row) for row in rows]

    def put_observation(self, key: CalibrationKey, observation: Observation) -> None:
        """Keep ``observation`` for ``key``'s device, replacing the model's earlier one in that phase."""
        columns = [*_CALIBRATION_KEY_COLUMNS, "model", "family", "library", "phase", "latency_ratio", "energy_ratio",
                   "builder", "observed_unix_s"]
        values = [*astuple(key), *astuple(observation), time.time()]
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO observations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                values,
            )

    # ----------------------------------------------------------------------------- model profiles

    def get_profile(self, model: str, builder: str, input_shape: tuple[int, ...]) -> ModelProfile | None:
        """The stored profile of ``model`` built by ``builder`` (a fingerprint) at ``input_shape``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT flops_per_sample, activation_bytes_per_sample, weight_bytes, operators FROM profiles "
                "WHERE model = ? AND builder = ? AND input_shape = ? AND torch_version = ?",
                (model, builder, _shape_text(input_shape), _torch_version()),
            ).fetchone()
        return ModelProfile(*row) if row is not None else None

    def put_profile(self, model: str, builder: str, input_shape: tuple[int, ...], profile: ModelProfile) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (model, builder, _shape_text(input_shape), _torch_version(), *astuple(profile)),
            )


def _has_table(db: sqlite3.Connection, table: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in shape)


def calibration_for(
    device: str, precision: str, *, cache: MeasurementCache | None = None, source: EnergySource | None = None,
    window_s: float = 1.0,
) -> DeviceCalibration:
    """The device's calibration in ``precision``: from ``cache`` if it holds one for this device, dtype,
    energy method and software, else measured now (and stored there)."""
    source = source or make_energy_source(device)
    name = lookup_device_name(device)
    key = CalibrationKey.here(device=device, precision=precision, energy_method=source.method, device_name=name)
    if cache is not None:
        found = cache.get_calibration(key)
        if found is not None:
            return found
    calibration = calibrate(device, precision, window_s=window_s, source=source, device_name=name)
    if cache is not None:
        cache.put_calibration(key, calibration)
    return calibration
