"""How far is the pre-run estimate from the measurement, before and after learning? Every catalogue model on one device.

    .venv/bin/python bench/estimator.py                    # CPU, about 3–4 min on 2 cores
    .venv/bin/python bench/estimator.py --device cuda:0 --window 1
    .venv/bin/python bench/estimator.py --models resnet18 bert_tiny ridge_regression

Calibrates the device (``estimate.calibrate``: matrix products, a copy, a tiny operator, with the
same meter as the candidates), then measures every catalogue model, all seven task types: torch
models with ``measure()`` (inference at ``--batch``, training steps at ``--train-batch``),
scikit-learn models with ``measure_estimator()`` (``predict`` on one batch, ``fit`` on the synthetic
training rows). Each model is first estimated the way the hardware node does
(``PreRunEstimator.estimate``), and each measurement is learnt from (``PreRunEstimator.learn``), so
later models are planned from corrected estimates: a slow phase gets one warm-up and the passes that
fit the window (``plan.repetitions_for``); a training phase predicted to take more than
``--max-phase-s`` is left out (the model is measured for inference only, and its row says so); an
inference phase predicted to take that long is measured with no warm-up.

Two estimates are compared with each measurement (the medians over ``--repeats`` runs):

* **before learning**: the raw estimate, the roofline of ``estimate.py`` from the model's counted
  FLOPs, parameters and operators, or ``SKLEARN_PRIOR`` for a scikit-learn model (no FLOP count);
* **after learning**: leave-one-out, the raw estimate multiplied by the correction
  (``learning.correction_for(..., exclude_model=True)``) learnt from every *other* model measured in
  this run, i.e. how well the estimator predicts a model never measured on this device. The row says
  which level of the hierarchy the correction came from (family, library, or none).

Prints each figure and the relative error (estimate − measured) / measured, then the median and worst
absolute relative error of latency and energy, for inference and training, before and after, and per
task type. On a machine without energy counters both sides' energy comes from the declared CPU
estimate (TDP × utilisation), so the energy error there says how well the estimate predicts *that*
figure, not the watts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass

from sustainml.energy import make_energy_source
from sustainml.energy_source import EnergySource
from sustainml.exceptions import MeasurementError
from sustainml.models import zoo
from sustainml.models.catalogue import CatalogueEntry, load_catalogue, to_candidate
from sustainml.msg import JobMeasurement
from sustainml.units import MS_PER_S
from sustainml_nodes.hw_constraints.cache import MeasurementCache
from sustainml_nodes.hw_constraints.estimate import DeviceCalibration, calibrate
from sustainml_nodes.hw_constraints.learning import PHASES, Correction, Observation, correction_for
from sustainml_nodes.hw_constraints.measure import (
    ESTIMATOR_TRAIN_SAMPLES,
    WINDOW_COUNTER_UPDATES,
    measure,
    measure_estimator,
)
from sustainml_nodes.hw_constraints.plan import repetitions_for
from sustainml_nodes.hw_constraints.prerun import JobEstimate, PreRunEstimator, RawFigures

#: Batch sizes by task type when ``--batch`` / ``--train-batch`` are 0: single samples for images and
#: text (a 2-core CPU spends seconds on one detection image or one 128-token training step), 64 rows
#: for tables and series. Training batches of 2 images and 1 text or detection sample keep the slow
#: models' steps within ``--max-phase-s``.
DEFAULT_BATCH = {"tabular": 64, "time_series": 64}
DEFAULT_TRAIN_BATCH = {"image_classification": 2, "object_detection": 1, "text_classification": 1,
                       "text_generation": 1, "tabular_regression": 64, "tabular_classification": 64,
                       "time_series_forecasting": 64}


@dataclass(frozen=True)
class MeasuringPlan:
    """How one model is measured: its batches, warm-ups and passes, and why it was cut short."""

    batch: int
    train_batch: int  # 0: inference only
    warmup: int
    repetitions: int
    note: str  # why fewer passes or no training phase; "" when measured in full


@dataclass
class Result:
    """One model: its estimate, what was measured (None when the measurement failed) and how."""

    entry: CatalogueEntry
    job: JobEstimate
    plan: MeasuringPlan
    measured: JobMeasurement | None
    error: str = ""


@dataclass(frozen=True)
class Row:
    """One phase of one model: the measured figures, the raw estimate and the leave-one-out corrected one."""

    model: str
    task_type: str
    phase: str  # "inference" or "training"
    batch: int
    latency_ms: tuple[float, float, float]  # (measured, raw, corrected), per batch or step
    energy_j: tuple[float, float, float]  # (measured, raw, corrected), active, per sample
    level: str  # where the correction came from: "family", "kind", "library" or "none"
    observations: int  # how many other models' observations it was drawn from

    @staticmethod
    def error(measured: float, estimated: float) -> float:
        """(estimate − measured) / measured; NaN when nothing was measured (an active energy of 0)."""
        return (estimated - measured) / measured if measured > 0 else math.nan

    def errors(self, figure: str) -> tuple[float, float]:
        """The raw and the corrected estimate's relative error of ``figure`` ("latency_ms", "energy_j")."""
        measured, raw, corrected = getattr(self, figure)
        return Row.error(measured, raw), Row.error(measured, corrected)


def median_measurement(runs: list[JobMeasurement]) -> JobMeasurement:
    """Each compared figure's median over repeated measurements: a shared machine's stalls hit single runs."""
    figures = ("latency_p50_ms", "energy_per_inference_j", "train_step_ms", "energy_per_train_sample_j")
    return dataclasses.replace(runs[0], **{f: statistics.median(getattr(r, f) for r in runs) for f in figures})


def plan_measuring(entry: CatalogueEntry, job: JobEstimate, *, batch: int, train_batch: int, target_s: float,
                   max_phase_s: float) -> MeasuringPlan:
    """Warm-ups and passes from the job's estimate (corrected by the models measured so far), as the
    hardware node plans them; a training phase predicted beyond ``max_phase_s`` is left out, an
    inference phase that long gets no warm-up."""
    estimated = job.measurement
    if entry.library == "sklearn":  # measure_estimator meters at least five fits; only its warm-up can go
        fit_s = estimated.train_step_ms / MS_PER_S
        slow = fit_s > target_s
        return MeasuringPlan(batch, ESTIMATOR_TRAIN_SAMPLES, 0 if slow else 1, 5,
                             f"no fit warm-up: one fit predicted at {fit_s:.2g} s" if slow else "")

    def cost_s(pass_s: float, warmup: int, repetitions: int) -> float:
        return warmup * pass_s + max(target_s, repetitions * pass_s)

    inference_s = estimated.latency_p50_ms / MS_PER_S
    step_s = estimated.train_step_ms / MS_PER_S
    notes = []
    if train_batch:
        warmup, repetitions = min(repetitions_for(p, target_s, 5) for p in (inference_s, step_s))
        if cost_s(step_s, warmup, repetitions) > max_phase_s:
            notes.append(f"inference only: a training step predicted at {step_s:.3g} s")
            train_batch = 0
    if not train_batch:
        warmup, repetitions = repetitions_for(inference_s, target_s, 5)
    if cost_s(inference_s, warmup, repetitions) > max_phase_s:
        notes.append(f"no warm-up: one pass predicted at {inference_s:.3g} s")
        warmup = 0
    if repetitions < 5 and not notes:
        notes.append(f"{warmup} warm-up, ≥{repetitions} pass(es): one predicted at "
                     f"{max(inference_s, step_s if train_batch else 0):.2g} s")
    return MeasuringPlan(batch, train_batch, warmup, repetitions, "; ".join(notes))


def measure_model(entry: CatalogueEntry, plan: MeasuringPlan, *, device: str, precision: str, window_s: float,
                  source: EnergySource) -> JobMeasurement:
    """One measurement of ``entry`` as planned (torch or scikit-learn)."""
    if entry.library == "sklearn":
        return measure_estimator(zoo.build_estimator(entry.name), device, model_name=entry.name, host="bench",
                                 batch_size=plan.batch, train_samples=plan.train_batch, window_s=window_s,
                                 warmup=plan.warmup, source=source)
    return measure(zoo.build(entry.name), device, model_name=entry.name, host="bench", batch_size=plan.batch,
                   train_batch_size=plan.train_batch, precision=precision, window_s=window_s, warmup=plan.warmup,
                   min_repetitions=plan.repetitions, source=source)


def rows_of(results: list[Result], observations: list[Observation]) -> list[Row]:
    """Each measured phase compared with its raw estimate and with its leave-one-out corrected one."""
    rows = []
    for result in results:
        m, job = result.measured, result.job
        if m is None:
            continue
        phases: list[tuple[str, RawFigures | None, int, float, float]] = [
            ("inference", job.raw_inference, result.plan.batch, m.latency_p50_ms, m.energy_per_inference_j),
            ("training", job.raw_training, result.plan.train_batch, m.train_step_ms, m.energy_per_train_sample_j),
        ]
        for phase, raw, batch, latency_ms, energy_j in phases:
            if raw is None or latency_ms <= 0:
                continue
            correction: Correction = correction_for(observations, model=m.model, family=job.family,
                                                    library=job.library, phase=phase, exclude_model=True)
            rows.append(Row(
                m.model, result.entry.task_type, phase, batch,
                (latency_ms, raw.latency_ms, raw.latency_ms * correction.latency_factor),
                (energy_j, raw.energy_j_per_sample, raw.energy_j_per_sample * correction.energy_factor),
                correction.level, correction.observations,
            ))
    return rows


def _percent(value: float) -> str:
    return "    n/a" if math.isnan(value) else f"{value:>+7.0%}"


def print_rows(rows: list[Row], results: list[Result]) -> None:
    print(f"{'model':33} {'phase':9} {'batch':>5} | {'latency ms: measured':>20} {'raw':>9} {'error':>7} "
          f"{'learnt':>9} {'error':>7} | {'energy J/sample: measured':>25} {'raw':>9} {'error':>7} {'learnt':>9} "
          f"{'error':>7} | correction")
    by_model: dict[str, list[Row]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
    task_type = ""
    for result in results:
        if result.entry.task_type != task_type:
            task_type = result.entry.task_type
            print(f"-- {task_type}")
        name = result.entry.name
        for row in by_model.get(name, []):
            (lm, lr, lc), (em, er, ec) = row.latency_ms, row.energy_j
            (le_raw, le_learnt), (ee_raw, ee_learnt) = row.errors("latency_ms"), row.errors("energy_j")
            print(f"{name:33} {row.phase:9} {row.batch:>5} | {lm:>20.4g} {lr:>9.4g} {_percent(le_raw)} {lc:>9.4g} "
                  f"{_percent(le_learnt)} | {em:>25.4g} {er:>9.4g} {_percent(ee_raw)} {ec:>9.4g} {_percent(ee_learnt)} "
                  f"| {row.level} ({row.observations})")
        if result.measured is None:
            print(f"{name:33} not measured: {result.error}")
        elif result.plan.note:
            print(f"{'':33} ({result.plan.note})")


def _median_and_worst(rows: list[Row], figure: str, which: int) -> tuple[float, float, str]:
    """Median and worst absolute relative error of ``figure`` over ``rows`` (which 0: raw, 1: learnt)."""
    errors = [(abs(r.errors(figure)[which]), r.model) for r in rows]
    errors = [(e, m) for e, m in errors if not math.isnan(e)]
    if not errors:
        return math.nan, math.nan, ""
    worst = max(errors)
    return statistics.median(e for e, _ in errors), worst[0], worst[1]


def print_summary(rows: list[Row]) -> None:
    print("absolute relative error of the estimate, |estimate − measured| / measured; before = raw estimate, "
          "after = corrected by the other models' measurements (leave-one-out):")
    print(f"  {'phase':9} {'figure':7} {'rows':>4} | {'before: median':>14} {'worst':>7} {'(model)':28} | "
          f"{'after: median':>13} {'worst':>7} (model)")
    for phase in (*PHASES, "all"):
        chosen = [r for r in rows if phase in ("all", r.phase)]
        for figure in ("latency_ms", "energy_j"):
            b_med, b_worst, b_model = _median_and_worst(chosen, figure, 0)
            a_med, a_worst, a_model = _median_and_worst(chosen, figure, 1)
            name = figure.removesuffix("_ms").removesuffix("_j")
            print(f"  {phase:9} {name:7} {len(chosen):>4} | {b_med:>14.0%} {b_worst:>7.0%} {'(' + b_model + ')':28} | "
                  f"{a_med:>13.0%} {a_worst:>7.0%} ({a_model})")
    print("\nper task type, both phases: median |error| before → after (latency; energy):")
    for task_type in dict.fromkeys(r.task_type for r in rows):
        chosen = [r for r in rows if r.task_type == task_type]
        (lb, la), (eb, ea) = ((_median_and_worst(chosen, f, 0)[0], _median_and_worst(chosen, f, 1)[0])
                              for f in ("latency_ms", "energy_j"))
        print(f"  {task_type:25} {len(chosen):>2} rows   latency {lb:>6.0%} → {la:>5.0%}   "
              f"energy {eb:>6.0%} → {ea:>5.0%}")


def calibrate_device(args: argparse.Namespace, source: EnergySource) -> DeviceCalibration:
    """The median (by FLOP/s) of ``--repeats`` calibrations."""
    calibrations = [calibrate(args.device, args.precision, window_s=max(1.0, args.window), source=source)
                    for _ in range(args.repeats)]
    c = sorted(calibrations, key=lambda k: k.flop_per_s)[len(calibrations) // 2]
    print(f"device {c.device} ({c.device_name}), {c.precision}, energy method {c.energy_method}")
    print(f"calibration: {c.flop_per_s / 1e9:.1f} GFLOP/s ({c.matmul_size}² products), "
          f"{c.j_per_flop * 1e12:.1f} pJ/FLOP ±{c.relative_uncertainty:.0%}, {c.active_power_w:.2f} W above "
          f"{c.idle_power_w:.2f} W idle, {c.memory_bytes_per_s / 1e9:.1f} GB/s, "
          f"{c.call_overhead_s * 1e6:.1f} µs per operator call ({c.train_call_overhead_s * 1e6:.1f} µs training)")
    if c.assumptions:
        print(f"meter: {c.assumptions}")
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--window", type=float, default=0.3, help="metered window per phase, s")
    parser.add_argument("--batch", type=int, default=0,
                        help="inference batch (0: 64 for tables and series, 1 for images and text)")
    parser.add_argument("--train-batch", type=int, default=0,
                        help="torch training batch (0: 64 for tables and series, 2 for images, 1 for text and "
                             "detection); scikit-learn fits the synthetic training rows")
    parser.add_argument("--models", nargs="*", help="catalogue names (default: all)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure each model (and calibrate) this often; the median is compared")
    parser.add_argument("--max-phase-s", type=float, default=30.0,
                        help="a training phase predicted longer than this is left out (inference only); an "
                             "inference phase that long gets no warm-up, s")
    args = parser.parse_args()

    started = time.perf_counter()
    source = make_energy_source(args.device)
    c = calibrate_device(args, source)
    cache = MeasurementCache(":memory:")
    estimator = PreRunEstimator(cache, host="bench", precision=args.precision, window_s=max(1.0, args.window))
    cache.put_calibration(estimator.calibration_key(args.device, c.device_name), c)
    target_s = max(args.window, WINDOW_COUNTER_UPDATES * source.counter_resolution_s)

    entries = [e for e in load_catalogue() if not args.models or e.name in args.models]
    unknown = set(args.models or ()) - {e.name for e in entries}
    if unknown:
        print(f"unknown catalogue names: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    results: list[Result] = []
    observations: list[Observation] = []
    print(f"\nmeasuring {len(entries)} models (progress per model); load average {_load()}:", flush=True)
    for index, entry in enumerate(entries, 1):
        began = time.perf_counter()
        batch = args.batch or DEFAULT_BATCH.get(entry.modality, 1)
        train_batch = (ESTIMATOR_TRAIN_SAMPLES if entry.library == "sklearn"
                       else args.train_batch or DEFAULT_TRAIN_BATCH.get(entry.task_type, 2))
        job = estimator.estimate(to_candidate(entry, "bench"), args.device, c.device_name, batch_size=batch,
                                 train_batch_size=train_batch, modality=entry.modality)
        plan = plan_measuring(entry, job, batch=batch, train_batch=train_batch, target_s=target_s,
                              max_phase_s=args.max_phase_s)
        result = Result(entry, job, plan, None)
        try:
            runs = [measure_model(entry, plan, device=args.device, precision=args.precision, window_s=args.window,
                                  source=source) for _ in range(args.repeats)]
        except MeasurementError as e:
            result.error = str(e)
        else:
            result.measured = median_measurement(runs)
            observations += estimator.learn(job, result.measured, c.device_name)
        results.append(result)
        what = (f"inference batch {plan.batch}" + (f", training batch {plan.train_batch}" if plan.train_batch else "")
                if result.measured else f"failed: {result.error}")
        print(f"  [{index:>2}/{len(entries)}] {entry.name:33} {time.perf_counter() - began:6.1f} s  {what}"
              + (f"  ({plan.note})" if plan.note else ""), flush=True)

    rows = rows_of(results, observations)
    print()
    print_rows(rows, results)
    print()
    print_summary(rows)
    failed = [r.entry.name for r in results if r.measured is None]
    short = [r.entry.name for r in results if r.measured is not None and r.plan.train_batch == 0]
    print(f"\n{len(rows)} comparisons of {len(results)} models in {time.perf_counter() - started:.0f} s"
          + (f"; inference only: {', '.join(short)}" if short else "")
          + (f"; not measured: {', '.join(failed)}" if failed else "")
          + f"; load average at the end {_load()}")
    return 0


def _load() -> str:
    """The 1-minute load average over the logical cores: other processes' load inflates single passes."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
