"""``sustainml measure MODEL``: measure one catalogue model on this machine, without the pipeline.

The same measurement the hardware node makes (``measure.py``), on one device, printed as a table of
figures with their uncertainty and how the energy was obtained, or as JSON (the ``JobMeasurement``
message's fields). Results go through the hardware node's cache (``cache.py``), so asking twice
answers from the store; ``--fresh`` measures again.

``--estimate`` adds the pre-run estimate of the same configuration (``estimate.py``: the model's FLOPs,
activation traffic and operators against a calibration of the device, measured once and cached), and
with ``--samples`` the estimate of a whole training run; ``--estimate-only`` gives the estimate
without measuring the model.

This module is imported by ``sustainml --help``: it imports torch and the node's modules only when
the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from sustainml.energy_source import EnergySource
    from sustainml.models.catalogue import CatalogueEntry
    from sustainml.msg import JobMeasurement

    from .cache import MeasurementCache
    from .estimate import DeviceCalibration, Estimate, TrainingRunEstimate

__all__ = ["add_parser", "cmd_measure", "PRECISION_CHOICES"]

PRECISION_CHOICES = ("fp32", "bf16", "fp16")  # measure.PRECISIONS, without importing torch for --help


def _device(text: str) -> str:
    from sustainml.energy import parse_device

    try:
        kind, index = parse_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return "cpu" if kind == "cpu" else f"cuda:{index}"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of samples, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``measure`` on the ``sustainml`` command's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "measure", help="measure one catalogue model on this machine, without the pipeline",
        description="Measure one catalogue model on one device of this machine: latency, throughput, energy "
        "per sample with its uncertainty and method, peak memory. Results are cached in the store.",
    )
    p.add_argument("model", help="catalogue name, e.g. resnet18 or tabular_mlp")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--batch", type=_positive_int, default=1, metavar="N", help="inference batch size (default 1)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help="dtype of weights and inputs")
    p.add_argument("--train", action="store_true", help="also measure full training steps (forward, backward, SGD)")
    p.add_argument("--train-batch", type=_positive_int, metavar="N", help="training batch size (default: --batch)")
    p.add_argument("--window", type=_positive_seconds, default=1.0, metavar="S",
                   help="metered window per phase in seconds (default 1; stretched to 10 counter updates)")
    p.add_argument("--fresh", action="store_true", help="measure again even if the cache holds this configuration")
    p.add_argument("--estimate", action="store_true", help="also print the pre-run estimate of this configuration")
    p.add_argument("--estimate-only", action="store_true", help="print the pre-run estimate without measuring")
    p.add_argument("--samples", type=_positive_int, metavar="N",
                   help="estimate a whole training run over N samples (with --estimate or --estimate-only)")
    p.add_argument("--epochs", type=_positive_int, metavar="E", help="epochs of that run (default: the catalogue's)")
    p.add_argument("--json", action="store_true",
                   help="print the JobMeasurement's fields as JSON; with an estimate, {measurement, estimate}")
    p.add_argument("--config", help="configuration file (for store_dir; default SUSTAINML_CONFIG)")
    p.set_defaults(func=cmd_measure)
    return p


def cmd_measure(args: argparse.Namespace) -> int:
    """Run the command; errors are SustainMLError subclasses for ``sustainml``'s main to print."""
    from pathlib import Path

    from rich.console import Console

    from sustainml.config import load_config
    from sustainml.energy import make_energy_source
    from sustainml.exceptions import InvalidProblem
    from sustainml.models import zoo
    from sustainml.models.catalogue import find, load_catalogue

    from .cache import CACHE_FILE, MeasurementCache, MeasurementKey
    from .candidate_model import model_of_entry
    from .measure import ESTIMATOR_TRAIN_SAMPLES, lookup_device_name, measure, measure_estimator

    entry = find(load_catalogue(), args.model)  # UnknownModel (exit 2) names the known models
    sklearn = zoo.architecture(entry.name).library == "sklearn"
    if sklearn and (args.estimate or args.estimate_only or args.precision != "fp32"):
        raise InvalidProblem(f"{entry.name} is a scikit-learn model: it is measured in fp32 with its own "
                             "library, and the FLOP-based estimate does not apply to it")
    config = load_config(args.config)
    name = lookup_device_name(args.device)  # MeasurementError when that GPU is not there
    source = make_energy_source(args.device)
    train_batch = args.train_batch or args.batch
    measured_train_batch = train_batch if args.train else 0
    if sklearn:
        measured_train_batch = ESTIMATOR_TRAIN_SAMPLES  # one fit on this many rows is its "training step"
    key = MeasurementKey.here(
        model=entry.name, builder=model_of_entry(entry).fingerprint, input_shape=entry.input_shape,
        batch_size=args.batch, train_batch_size=measured_train_batch,
        precision=args.precision, device=args.device, device_name=name, energy_method=source.method,
        window_s=args.window,
    )
    host = _host()
    err = Console(stderr=True)

    def run() -> JobMeasurement:
        if sklearn:
            return measure_estimator(zoo.build_estimator(entry.name, input_shape=entry.input_shape), args.device,
                                     model_name=entry.name, host=host, batch_size=args.batch,
                                     window_s=args.window, source=source)
        workload = zoo.build(entry.name, input_shape=entry.input_shape)
        kwargs = dict(model_name=entry.name, host=host, batch_size=args.batch, train_batch_size=measured_train_batch,
                      precision=args.precision, window_s=args.window, source=source)
        if args.json or not err.is_terminal:
            return measure(workload, args.device, **kwargs)
        with err.status(f"measuring {entry.name} on {args.device}") as status:
            return measure(workload, args.device, progress=lambda pct, text: status.update(f"{pct:3.0f}% {text}"),
                           **kwargs)

    result: JobMeasurement | None = None
    estimates: PreRunEstimates | None = None
    with MeasurementCache(Path(config.store_dir) / CACHE_FILE) as cache:
        if args.estimate or args.estimate_only:
            estimates = _estimate(entry, args, train_batch, cache, source, err)
        if not args.estimate_only:
            if args.fresh:
                result = run()
                cache.put(key, result)
            else:
                result = cache.get_or_measure(key, run)
    if args.json:
        document: dict[str, Any] = {}
        if result is not None:
            document["measurement"] = dataclasses.asdict(result)
        if estimates is not None:
            document["estimate"] = dataclasses.asdict(estimates)
        print(json.dumps(document["measurement"] if estimates is None else document, indent=2))
        return 0
    console = Console()
    if result is not None:
        print_measurement(result, name, console)
    if estimates is not None:
        print_estimates(estimates, result, console)
    return 0


@dataclasses.dataclass(frozen=True)
class PreRunEstimates:
    """What ``--estimate`` prints: the calibration used and the estimates built on it."""

    calibration: DeviceCalibration
    inference: Estimate
    training: Estimate | None
    training_run: TrainingRunEstimate | None


def _estimate(
    entry: CatalogueEntry, args: argparse.Namespace, train_batch: int, cache: MeasurementCache,
    source: EnergySource, err: Console,
) -> PreRunEstimates:
    import torch

    from sustainml.models import zoo

    from .cache import calibration_for
    from .estimate import estimate_profile, estimate_training_run, profile_model

    with err.status(f"calibrating {args.device} in {args.precision} (once, then cached)"):
        calibration = calibration_for(args.device, args.precision, cache=cache, source=source)
    with torch.device("meta"):
        profile = profile_model(zoo.build(entry.name, input_shape=entry.input_shape).module, entry.input_shape)
    inference = estimate_profile(profile, args.batch, calibration)
    training = estimate_profile(profile, train_batch, calibration, train=True) if args.train or args.samples else None
    run = None
    if args.samples and training is not None:
        run = estimate_training_run(training, samples=args.samples, epochs=args.epochs or entry.default_epochs,
                                    batch_size=train_batch)
    return PreRunEstimates(calibration, inference, training, run)


def _difference(estimated: float, measured: float | None) -> str:
    return f"{(estimated - measured) / measured:+.0%}" if measured else ""


def print_estimates(e: PreRunEstimates, measured: JobMeasurement | None, console: Console) -> None:
    """The pre-run estimates as a table, next to the measured figures when there are some."""
    from rich.table import Table

    from sustainml.units import S_PER_HOUR

    c = e.calibration
    table = Table(title=f"pre-run estimate ({e.inference.method}), not a measurement", title_justify="left")
    for column, justify in (("figure", "left"), ("estimate", "right"), ("uncertainty (1σ)", "right"),
                            ("measured", "right"), ("difference", "right"), ("unit", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    m = measured
    table.add_row("latency per batch", f"{e.inference.latency_ms:.4g}", "", f"{m.latency_p50_ms:.4g}" if m else "",
                  _difference(e.inference.latency_ms, m.latency_p50_ms if m else None), "ms")
    table.add_row("energy per inference, above idle", f"{e.inference.energy_j_per_sample:.4g}",
                  _relative(e.inference.energy_j_per_sample, e.inference.energy_j_per_sample_uncertainty),
                  f"{m.energy_per_inference_j:.4g}" if m else "",
                  _difference(e.inference.energy_j_per_sample, m.energy_per_inference_j if m else None), "J")
    if e.training is not None:
        mt = m if m and m.train_batch_size else None
        table.add_row("training step", f"{e.training.latency_ms:.4g}", "", f"{mt.train_step_ms:.4g}" if mt else "",
                      _difference(e.training.latency_ms, mt.train_step_ms if mt else None), "ms")
        table.add_row("energy per training sample, above idle", f"{e.training.energy_j_per_sample:.4g}",
                      _relative(e.training.energy_j_per_sample, e.training.energy_j_per_sample_uncertainty),
                      f"{mt.energy_per_train_sample_j:.4g}" if mt else "",
                      _difference(e.training.energy_j_per_sample, mt.energy_per_train_sample_j if mt else None), "J")
    if e.training_run is not None:
        r = e.training_run
        table.add_row("training run: steps", f"{r.steps}", "", "", "", "steps")
        table.add_row("training run: duration", f"{r.duration_s / S_PER_HOUR:.4g}", "", "", "", "h")
        table.add_row("training run: energy with idle", f"{r.total_energy_kwh:.4g}",
                      _relative(r.total_energy_kwh, r.energy_uncertainty_j / r.energy_j * r.total_energy_kwh
                                if r.energy_j else 0.0), "", "", "kWh")
    console.print(table)
    console.print(f"calibration of {c.device} ({c.device_name}, {c.precision}): {c.flop_per_s / 1e9:.4g} GFLOP/s, "
                  f"{c.j_per_flop * 1e12:.4g} pJ/FLOP, {c.memory_bytes_per_s / 1e9:.3g} GB/s, "
                  f"{c.call_overhead_s * 1e6:.3g} µs per operator", highlight=False)
    console.print(f"assumptions: {(e.training_run or e.training or e.inference).assumptions}", highlight=False)


def _host() -> str:
    import os
    import socket

    return os.environ.get("SUSTAINML_HOST") or socket.gethostname()


def _relative(value: float, uncertainty: float) -> str:
    return f"± {uncertainty:.3g} ({uncertainty / value:.0%})" if value > 0 else f"± {uncertainty:.3g}"


def print_measurement(m: JobMeasurement, device_name: str, console: Console) -> None:
    """The figures of ``m`` as a table: value, one standard uncertainty where there is one, unit."""
    from rich.table import Table

    title = f"{m.model} on {m.device} ({device_name}), {m.precision}, batch {m.batch_size}"
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("uncertainty (1σ)", justify="right")
    table.add_column("unit")
    table.add_row("energy per inference, above idle", f"{m.energy_per_inference_j:.4g}",
                  _relative(m.energy_per_inference_j, m.energy_per_inference_uncertainty_j), "J")
    table.add_row("energy per inference, with idle", f"{m.total_energy_per_inference_j:.4g}", "", "J")
    table.add_row("latency per batch p50 / p95", f"{m.latency_p50_ms:.4g} / {m.latency_p95_ms:.4g}", "", "ms")
    table.add_row("throughput", f"{m.throughput_per_s:.4g}", "", "samples/s")
    table.add_row("power above idle / idle", f"{m.active_power_w:.3g} / {m.idle_power_w:.3g}", "", "W")
    if m.train_batch_size:
        table.add_row(f"training step (batch {m.train_batch_size})", f"{m.train_step_ms:.4g}", "", "ms")
        table.add_row("energy per training sample, above idle", f"{m.energy_per_train_sample_j:.4g}",
                      _relative(m.energy_per_train_sample_j, m.energy_per_train_sample_uncertainty_j), "J")
    table.add_row("peak memory", f"{m.peak_memory_mb:.4g}", "", "MB")
    table.add_row("window / repetitions", f"{m.window_s:.3g} / {m.repetitions}", "", "s / passes")
    console.print(table)
    method = {"nvml": "measured (NVML energy counter)", "rapl": "measured (RAPL counters)",
              "estimate": "ESTIMATED, not measured"}.get(m.energy_method, m.energy_method)
    console.print(f"energy method: [bold]{m.energy_method}[/bold], {method}", highlight=False)
    if m.assumptions:
        console.print(f"assumptions: {m.assumptions}", highlight=False)
    if m.cached:
        console.print("cached: this configuration was measured before; --fresh measures again", highlight=False)

