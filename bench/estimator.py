"""How far is the pre-run estimate from the measurement? Every catalogue model on one device.

    /work/venv/bin/python bench/estimator.py                    # CPU, ~2 min on 2 cores
    /work/venv/bin/python bench/estimator.py --device cuda:0 --window 1

Calibrates the device (``estimate.calibrate``: matrix products, a copy, a tiny operator, with
the same meter as the candidates), then for each catalogue model measures inference at ``--batch``
(image models at batch 1 on the CPU) and training steps at ``--train-batch`` with ``measure()``, and
compares the medians over ``--repeats`` runs (a shared machine's stalls hit single runs) with
``estimate()``'s latency and active energy for the same configuration, from the
model's counted FLOPs, its parameters and its operator count. Prints each figure and the relative
error (estimate − measured) / measured, then the median and worst absolute relative error of latency
and energy, for inference and training.

On a machine without energy counters both sides' energy comes from the declared CPU estimate (TDP ×
utilisation), so the energy error there says how well FLOPs predict *that* model, not the watts.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass

import torch

from sustainml.msg import Measurement
from sustainml_nodes.hw_constraints.energy import make_energy_source
from sustainml_nodes.hw_constraints.estimate import calibrate, estimate_profile, profile_model
from sustainml_nodes.hw_constraints.measure import measure
from sustainml_nodes.model_provider import zoo
from sustainml_nodes.model_provider.catalogue import load_catalogue


@dataclass
class Row:
    model: str
    phase: str  # "inference" or "training"
    batch: int
    latency_ms: tuple[float, float]  # (measured, estimated), per batch or step
    energy_j: tuple[float, float]  # (measured, estimated), active, per sample
    bound: str

    @staticmethod
    def error(pair: tuple[float, float]) -> float:
        measured, estimated = pair
        return (estimated - measured) / measured if measured > 0 else float("nan")


def median_measurement(runs: list[Measurement]) -> Measurement:
    """Each compared figure's median over repeated measurements: a shared machine's stalls hit single runs."""
    figures = ("latency_ms_p50", "energy_j_per_inference", "train_step_ms", "energy_j_per_train_sample")
    return dataclasses.replace(runs[0], **{f: statistics.median(getattr(r, f) for r in runs) for f in figures})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--window", type=float, default=0.3, help="metered window per phase, s")
    parser.add_argument("--batch", type=int, default=0, help="inference batch (0: 1 for images, 64 for tables)")
    parser.add_argument("--train-batch", type=int, default=0, help="training batch (0: 2 for images, 64 for tables)")
    parser.add_argument("--models", nargs="*", help="catalogue names (default: all)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measure each model (and calibrate) this often; the median is compared")
    args = parser.parse_args()

    started = time.perf_counter()
    source = make_energy_source(args.device)
    calibrations = [calibrate(args.device, args.precision, window_s=max(1.0, args.window), source=source)
                    for _ in range(args.repeats)]
    c = sorted(calibrations, key=lambda k: k.flop_per_s)[len(calibrations) // 2]  # the median by FLOP/s
    print(f"device {c.device} ({c.device_name}), {c.precision}, energy method {c.energy_method}")
    print(f"calibration: {c.flop_per_s / 1e9:.1f} GFLOP/s ({c.matmul_size}² products), "
          f"{c.j_per_flop * 1e12:.1f} pJ/FLOP ±{c.relative_uncertainty:.0%}, {c.active_power_w:.2f} W above "
          f"{c.idle_power_w:.2f} W idle, {c.memory_bytes_per_s / 1e9:.1f} GB/s, "
          f"{c.call_overhead_s * 1e6:.1f} µs per operator call ({c.train_call_overhead_s * 1e6:.1f} µs training)")
    if c.assumptions:
        print(f"meter: {c.assumptions}")
    print()

    rows: list[Row] = []
    header = (f"{'model':15} {'phase':9} {'batch':>5}  {'latency ms: measured':>21} {'estimate':>9} {'error':>7}"
              f"  {'energy J/sample: measured':>26} {'estimate':>9} {'error':>7}  bound")
    print(header)
    for entry in load_catalogue():
        if args.models and entry.name not in args.models:
            continue
        if zoo.architecture(entry.name).library != "torch":
            continue  # a FLOP-based estimate is about torch kernels; scikit-learn models are only measured
        image = len(entry.input_shape) == 3
        batch = args.batch or (1 if image else 64)
        train_batch = args.train_batch or (2 if image else 64)
        with torch.device("meta"):
            profile = profile_model(zoo.build(entry.name).module, entry.input_shape)
        runs = [
            measure(zoo.build(entry.name), args.device, model_name=entry.name, host="bench", batch_size=batch,
                    train_batch_size=train_batch, precision=args.precision, window_s=args.window, source=source)
            for _ in range(args.repeats)
        ]
        m = median_measurement(runs)
        infer = estimate_profile(profile, batch, c)
        train = estimate_profile(profile, train_batch, c, train=True)
        for row in (
            Row(entry.name, "inference", batch, (m.latency_ms_p50, infer.latency_ms),
                (m.energy_j_per_inference, infer.energy_j_per_sample), infer.bound),
            Row(entry.name, "training", train_batch, (m.train_step_ms, train.latency_ms),
                (m.energy_j_per_train_sample, train.energy_j_per_sample), train.bound),
        ):
            rows.append(row)
            print(f"{row.model:15} {row.phase:9} {row.batch:>5}  {row.latency_ms[0]:>21.4g} {row.latency_ms[1]:>9.4g} "
                  f"{Row.error(row.latency_ms):>+7.0%}  {row.energy_j[0]:>26.4g} {row.energy_j[1]:>9.4g} "
                  f"{Row.error(row.energy_j):>+7.0%}  {row.bound}", flush=True)

    print()
    print("absolute relative error of the estimate, |estimate − measured| / measured:")
    for phase in ("inference", "training", "all"):
        chosen = [r for r in rows if phase in ("all", r.phase)]
        for figure in ("latency_ms", "energy_j"):
            errors = [abs(Row.error(getattr(r, figure))) for r in chosen]
            worst = max(zip(errors, (r.model for r in chosen)))
            name = figure.removesuffix("_ms").removesuffix("_j")
            print(f"  {phase:9} {name:8} median {statistics.median(errors):6.0%}"
                  f"   worst {worst[0]:6.0%} ({worst[1]})")
    print(f"\n{len(rows)} comparisons in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
