"""Measure one model on one device for real: latency, throughput, energy per sample, peak memory.

A measurement has three phases, each reported through ``progress`` before it starts:

1. **Idle baseline.** The device's counter is read over a short idle window (at least five counter
   updates) to get ``idle_power_w``.
2. **Inference.** ``eval()`` and ``torch.inference_mode()``, ``warmup`` unmetered passes, then forward
   passes on one batch repeated until the metered window lasts ``max(window_s, 10 × counter update
   period)`` and holds at least :data:`MIN_REPETITIONS` passes. Each pass is timed on its own (after
   ``torch.cuda.synchronize`` on a GPU) for the latency percentiles.
3. **Training.** The same windowing over full steps (forward, loss, backward, SGD step) on a copy of
   the module, so the caller's weights are untouched. ``train_step_ms`` is the mean step time (window
   / steps), what a training-time estimate multiplies by the number of steps.

Every phase runs in the requested precision: the module's floating-point weights (on a copy) and the
floating-point inputs and regression targets are cast to fp32, bf16 or fp16; no autocast, no loss scaling.

Variant ``int8-dynamic`` (CPU only): the inference phase runs a copy whose ``nn.Linear`` layers torch's
dynamic quantisation turned into int8 (weights int8, activations quantised on the fly); training is
measured in fp32, because dynamic quantisation is applied to a trained model.

Models that are not torch (scikit-learn estimators, :func:`measure_estimator`) go through the same
phases on the CPU: ``predict`` on one batch for inference, ``fit`` on a seeded synthetic training set
for training.

Throughput is samples / window. ``active_power_w`` is the power the workload added above idle during
the inference window (total power = active + idle). Peak memory is the larger of the two phases'.

Energy is split as the mission asks: ``total`` is everything the counter saw during the window,
``active`` is what the workload added above the idle baseline,
``E_active = max(0, E_total - P_idle × T)``, both divided by the samples processed.

Uncertainty (one standard uncertainty of the active energy per sample), with ``r`` the source's
relative uncertainty, ``τ`` its counter update period, ``T`` the window, ``T_idle`` the idle window,
``P`` the window's mean power, ``SE_P`` the standard error of the mean power over the window's
sub-windows (``std(P_i, ddof=1) / sqrt(k)``, ``k`` sub-windows of at least five updates each) and
``N`` the samples::

    u = sqrt((r·E_active)² + (P·τ)² + (P_idle·τ/T_idle·T)² + (SE_P·T)²) / N

i.e. the counter's calibration (applied to the active share: a scale error of the meter is common to
the idle and the loaded readings), the quantisation of the window's edges, the quantisation of the
idle baseline carried over the window, and the spread of the power across the window (noise,
throttling, a counter that stalls and catches up).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import psutil
import torch

from sustainml.energy import make_energy_source, parse_device
from sustainml.energy_estimate import read_cpu_model
from sustainml.energy_source import MJ_PER_J, EnergyMeter, EnergySource, EnergyWindow
from sustainml.exceptions import MeasurementError
from sustainml.models.workload import EstimatorWorkload, Workload
from sustainml.msg import JobMeasurement
from sustainml.units import MS_PER_S, bytes_to_mb

__all__ = [
    "measure", "measure_estimator", "resolve_device", "lookup_device_name", "parse_precision", "PRECISIONS", "INT8_DYNAMIC",
    "with_training_of",
    "MIN_REPETITIONS", "DEFAULT_IDLE_S", "Progress",
]

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
"""``progress(percent, message)``: called between phases; raising from it cancels the measurement."""

Check = Callable[[], None]
"""``check()``: called before every pass and step, warm-ups included; raising from it stops the
measurement at once (a task that ended, a budget spent), so a stop waits for one pass at most."""

MIN_REPETITIONS = 5
#: Relative spread of one pass assumed when a window held a single pass (nothing to compute it from).
SINGLE_PASS_RELATIVE_SPREAD = 0.2
DEFAULT_IDLE_S = 0.2
WINDOW_COUNTER_UPDATES = 10  # a metered window spans at least this many counter updates
IDLE_COUNTER_UPDATES = 5  # and the idle baseline at least this many
SUBWINDOW_COUNTER_UPDATES = 5  # each sub-window used for the spread at least this many
MAX_SUBWINDOWS = 5
SGD_LR = 1e-4  # small: the steps are timed, not meant to learn anything

#: The precisions a measurement can run in: the module's floating-point weights and the floating-point
#: inputs (and regression targets) are cast to this dtype. Pure low precision, no autocast and no loss
#: scaling: what the kernels cost, not a training recipe.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

INT8_DYNAMIC = "int8-dynamic"
"""The variant name of dynamic int8 quantisation of the Linear layers (the model provider's name too)."""

ESTIMATOR_TRAIN_SAMPLES = 2048
"""Rows of the synthetic training set a scikit-learn ``fit`` is timed on."""


def quantize_dynamic_int8(module: torch.nn.Module, model_name: str) -> torch.nn.Module:
    """A copy of ``module`` with every ``nn.Linear`` dynamically quantised to int8 (torch, CPU kernels)."""
    if not any(isinstance(m, torch.nn.Linear) for m in module.modules()):
        raise MeasurementError(f"{model_name} has no Linear layers, so int8 dynamic quantisation changes nothing")
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes point to torchao, not installed here
        return quantize_dynamic(copy.deepcopy(module).eval(), {torch.nn.Linear}, dtype=torch.qint8)
_PRECISION = {dtype: name for name, dtype in PRECISIONS.items()} | {torch.float64: "fp64"}


@dataclass(frozen=True)
class _Loop:
    """What one metered loop found."""

    window: EnergyWindow
    iteration_s: list[float]  # Units: s, one per repetition
    subwindow_power_w: list[float]

    @property
    def repetitions(self) -> int:
        return len(self.iteration_s)


@dataclass(frozen=True)
class _PerSample:
    """Energy per sample of one loop (Units: J)."""

    active_j: float
    total_j: float
    uncertainty_j: float
    active_power_w: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device`` ("cpu", "cuda:N"); MeasurementError when that GPU is not there."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MeasurementError(
            f"{device} was asked for, but this torch ({torch.__version__}, CUDA {torch.version.cuda or 'none'}) "
            "sees no CUDA GPU; measure on 'cpu' or run the hardware node on a GPU machine"
        )
    if index >= torch.cuda.device_count():
        raise MeasurementError(f"{device} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


def lookup_device_name(device: str) -> str:
    """What is behind a torch device id: the CPU model for ``"cpu"``, the GPU's name for ``"cuda:N"``.

    Raises MeasurementError when the GPU is not there (see :func:`resolve_device`).
    """
    dev = resolve_device(device)
    if dev.type == "cpu":
        return read_cpu_model()
    return str(torch.cuda.get_device_name(dev))


def parse_precision(precision: str) -> torch.dtype:
    """The torch dtype of ``"fp32"``, ``"bf16"`` or ``"fp16"``; ValueError naming the known ones otherwise."""
    try:
        return PRECISIONS[precision.strip().lower()]
    except KeyError:
        raise ValueError(f"precision {precision!r} is not supported; expected one of {', '.join(PRECISIONS)}") from None


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype`` if it holds real numbers; class indices and the like stay as they are."""
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _state_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in itertools.chain(module.parameters(), module.buffers()))


def _is_on(module: torch.nn.Module, device: torch.device) -> bool:
    return all(t.device == device for t in itertools.chain(module.parameters(), module.buffers()))


def _precision(module: torch.nn.Module) -> str:
    for param in module.parameters():
        if param.is_floating_point():
            return _PRECISION.get(param.dtype, str(param.dtype).removeprefix("torch."))
    return ""


class _PeakMemory:
    """Peak memory of one phase on its device (Units: MB).

    GPU: ``torch.cuda.max_memory_allocated`` above what was allocated when the phase began. CPU: the
    growth of the process's resident set, sampled at the loop's sub-window edges (an approximation:
    the allocator may reuse freed pages without growing). ``resident_bytes`` is model state that was
    already in memory when the phase began and belongs in its peak.
    """

    def __init__(self, device: torch.device, resident_bytes: int = 0) -> None:
        self.device = device
        self.resident_bytes = resident_bytes
        self._process = psutil.Process()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self._base = torch.cuda.memory_allocated(device)
        else:
            self._base = self._process.memory_info().rss
        self._peak = self._base

    def sample(self) -> None:
        if self.device.type != "cuda":
            self._peak = max(self._peak, self._process.memory_info().rss)

    def peak_mb(self) -> float:
        self.sample()
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else self._peak
        return bytes_to_mb(max(0, peak - self._base) + self.resident_bytes)


def _metered_loop(
    step: Callable[[], object],
    *,
    name: str,
    meter: EnergyMeter,
    device: torch.device,
    target_s: float,
    memory: _PeakMemory,
    min_repetitions: int = MIN_REPETITIONS,
    check: Check | None = None,
) -> _Loop:
    """Repeat ``step`` until the metered window lasts ``target_s`` and holds ``min_repetitions`` steps;
    ``check()`` runs before each step and may raise to stop."""
    source = meter.source
    subwindows = max(1, min(MAX_SUBWINDOWS, int(target_s // (SUBWINDOW_COUNTER_UPDATES * source.counter_resolution_s))))
    edges = [target_s * (i + 1) / subwindows for i in range(subwindows - 1)]
    iteration_s: list[float] = []
    powers_w: list[float] = []
    _sync(device)
    meter.begin_window(name)
    start_s = last_s = time.perf_counter()
    last_mj = source.read_energy_mj()

    def close_subwindow() -> None:
        nonlocal last_s, last_mj
        now_mj, now_s = source.read_energy_mj(), time.perf_counter()
        powers_w.append((now_mj - last_mj) / MJ_PER_J / (now_s - last_s))
        last_s, last_mj = now_s, now_mj
        memory.sample()

    while True:
        if check is not None:
            check()
        began_s = time.perf_counter()
        step()
        _sync(device)
        ended_s = time.perf_counter()
        iteration_s.append(ended_s - began_s)
        elapsed_s = ended_s - start_s
        if elapsed_s >= target_s and len(iteration_s) >= min_repetitions:
            break
        if edges and elapsed_s >= edges[0]:
            close_subwindow()
            edges = [edge for edge in edges if edge > elapsed_s]
    close_subwindow()
    return _Loop(meter.end_window(name), iteration_s, powers_w)


def _per_sample(loop: _Loop, idle: EnergyWindow, source: EnergySource, samples: int) -> _PerSample:
    """Active and total energy per sample and the active share's uncertainty (formula in the module doc)."""
    window = loop.window
    idle_power_w = idle.power_w
    total_j = window.energy_j
    active_j = max(0.0, total_j - idle_power_w * window.duration_s)
    tau_s = source.counter_resolution_s
    spread_w = (
        statistics.stdev(loop.subwindow_power_w) / math.sqrt(len(loop.subwindow_power_w))
        if len(loop.subwindow_power_w) >= 2
        else 0.0
    )
    uncertainty_j = math.sqrt(
        (source.relative_uncertainty * active_j) ** 2
        + (window.power_w * tau_s) ** 2
        + (idle_power_w * tau_s / idle.duration_s * window.duration_s) ** 2
        + (spread_w * window.duration_s) ** 2
        + (_repetition_spread(loop.iteration_s) * active_j) ** 2
    )
    return _PerSample(
        active_j=active_j / samples,
        total_j=total_j / samples,
        uncertainty_j=uncertainty_j / samples,
        active_power_w=active_j / window.duration_s,
    )


def _repetition_spread(iteration_s: list[float]) -> float:
    """The relative standard error of a window of few passes (fewer than :data:`MIN_REPETITIONS`, as a
    slow model gets): the passes' spread over the root of their number; one pass is assumed to vary by
    :data:`SINGLE_PASS_RELATIVE_SPREAD`. A window of enough passes has its spread in the sub-windows."""
    n = len(iteration_s)
    if n >= MIN_REPETITIONS:
        return 0.0
    if n < 2:
        return SINGLE_PASS_RELATIVE_SPREAD
    return statistics.stdev(iteration_s) / statistics.fmean(iteration_s) / math.sqrt(n)


@contextmanager
def _workload_errors(model_name: str, device: str, phase: str, batch_size: int, precision: str) -> Iterator[None]:
    """Turn torch's failures while running the workload into a MeasurementError that names the run."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise MeasurementError(
            f"{model_name} does not fit on {device} for {phase} at batch size {batch_size} in {precision}: {e}; "
            "try a smaller batch size or a device with more memory"
        ) from e
    except (RuntimeError, NotImplementedError) as e:
        hint = ""
        missing = ("not implemented", "not supported", "unsupported")
        if precision != "fp32" and (isinstance(e, NotImplementedError) or any(m in str(e).lower() for m in missing)):
            hint = f"; this torch has no {precision} kernel for an operator of {model_name} on {device}: try fp32"
            hint += " or bf16" if precision == "fp16" else ""
        raise MeasurementError(
            f"{model_name} failed on {device} during {phase} at batch size {batch_size} in {precision}: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}{hint}"
        ) from e


def _check_arguments(batch_size: int, train_batch_size: int, window_s: float, warmup: int, idle_s: float) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if train_batch_size < 0:
        raise ValueError(f"train_batch_size must be 0 (skip training) or more, got {train_batch_size}")
    if not window_s > 0:
        raise ValueError(f"window_s must be positive (seconds), got {window_s}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more passes, got {warmup}")
    if not idle_s > 0:
        raise ValueError(f"idle_s must be positive (seconds), got {idle_s}")


def _idle_baseline(meter: EnergyMeter, device: torch.device, idle_s: float) -> EnergyWindow:
    _sync(device)
    meter.begin_window("idle")
    time.sleep(idle_s)  # deliberately idle: this is the baseline
    return meter.end_window("idle")


def _inference(
    workload: Workload,
    device: torch.device,
    *,
    batch_size: int,
    dtype: torch.dtype,
    warmup: int,
    meter: EnergyMeter,
    target_s: float,
    before_window: Callable[[], None],
    errors: Callable[[], AbstractContextManager[None]],
    min_repetitions: int = MIN_REPETITIONS,
    check: Check | None = None,
) -> tuple[_Loop, float]:
    """Warm up, then meter forward passes; returns the loop and the phase's peak memory (MB).

    ``errors()`` wraps the torch work (not ``before_window``, whose exceptions must pass untouched).
    """
    module = workload.module
    was_training = module.training
    try:
        with errors():
            already_there = _is_on(module, device) and _precision(module) in ("", _PRECISION[dtype])
            memory = _PeakMemory(device, resident_bytes=_state_bytes(module) if already_there else 0)
            model = module if already_there else copy.deepcopy(module).to(device=device, dtype=dtype)
            model.eval()
            inputs = _cast(workload.inputs(batch_size).to(device), dtype)
        with torch.inference_mode():
            with errors():
                for _ in range(warmup):
                    _checked(check)
                    model(inputs)
                _sync(device)
            before_window()
            with errors():
                loop = _metered_loop(
                    lambda: model(inputs), name="inference", meter=meter, device=device, target_s=target_s,
                    memory=memory, min_repetitions=min_repetitions, check=check,
                )
        return loop, memory.peak_mb()
    finally:
        module.train(was_training)


def _training(
    workload: Workload,
    device: torch.device,
    *,
    batch_size: int,
    dtype: torch.dtype,
    warmup: int,
    meter: EnergyMeter,
    target_s: float,
    before_window: Callable[[], None],
    errors: Callable[[], AbstractContextManager[None]],
    min_repetitions: int = MIN_REPETITIONS,
    check: Check | None = None,
) -> tuple[_Loop, float]:
    """Warm up, then meter full SGD steps on a copy of the module; returns the loop and peak memory (MB)."""
    with errors():
        memory = _PeakMemory(device)
        model = copy.deepcopy(workload.module).to(device=device, dtype=dtype).train()
        optimiser = torch.optim.SGD(model.parameters(), lr=SGD_LR)
        inputs = _cast(workload.inputs(batch_size).to(device), dtype)
        targets = _cast(workload.targets(batch_size).to(device), dtype)

        def step() -> None:
            optimiser.zero_grad(set_to_none=True)
            workload.loss(model(inputs), targets).backward()
            optimiser.step()

        for _ in range(warmup):
            _checked(check)
            step()
        _sync(device)
    before_window()
    with errors():
        loop = _metered_loop(step, name="training", meter=meter, device=device, target_s=target_s, memory=memory,
                             min_repetitions=min_repetitions, check=check)
    return loop, memory.peak_mb()


def _checked(check: Check | None) -> None:
    if check is not None:
        check()


def measure(
    workload: Workload,
    device: str,
    *,
    model_name: str,
    host: str,
    batch_size: int = 1,
    train_batch_size: int = 8,
    precision: str = "fp32",
    window_s: float = 1.0,
    warmup: int = 2,
    idle_s: float = DEFAULT_IDLE_S,
    source: EnergySource | None = None,
    progress: Progress | None = None,
    variant: str = "",
    min_repetitions: int = MIN_REPETITIONS,
    check: Check | None = None,
) -> JobMeasurement:
    """Run ``workload`` on ``device`` ("cpu", "cuda:N") and return what was measured.

    ``variant`` :data:`INT8_DYNAMIC` measures inference on the int8 dynamically quantised model (CPU
    only) and training in fp32; its measurement's precision is ``int8-dynamic``.

    ``precision`` ("fp32", "bf16", "fp16") is the dtype the module's weights and the inputs are cast
    to (on a copy of the module when it differs); a precision the device has no kernel for is a
    MeasurementError. ``source`` defaults to :func:`~.energy.make_energy_source` for the device; tests pass a fake.
    ``idle_s`` is the idle baseline's length (stretched to five counter updates);
    ``train_batch_size=0`` skips the training phase (its fields stay 0). ``progress`` is called
    between phases and may raise to cancel; its exception propagates unchanged, and so does
    ``check``'s, called before every pass and step. ``min_repetitions`` (at least 1) lets a model whose
    one pass outlasts the window be measured with fewer passes; the energy uncertainty then carries
    the passes' spread (:func:`_repetition_spread`).

    Raises MeasurementError when the device is missing, the model does not fit or fails to run,
    or the energy counter misbehaves; ValueError for out-of-range arguments.
    """
    _check_arguments(batch_size, train_batch_size, window_s, warmup, idle_s)
    if min_repetitions < 1:
        raise ValueError(f"min_repetitions must be at least 1, got {min_repetitions}")
    started_s = time.perf_counter()
    dtype = parse_precision(precision)
    precision = _PRECISION[dtype]
    report: Progress = progress or (lambda _pct, _msg: None)
    dev = resolve_device(device)
    source = source or make_energy_source(device)
    inference_workload = workload
    if variant == INT8_DYNAMIC:
        if dev.type != "cpu" or dtype != torch.float32:
            raise MeasurementError(f"{model_name}: {INT8_DYNAMIC} runs on the CPU from fp32 weights; "
                                   f"not on {device} in {precision}")
        inference_workload = copy.copy(workload)
        inference_workload.module = quantize_dynamic_int8(workload.module, model_name)
        precision = INT8_DYNAMIC
    elif variant:
        raise ValueError(f"unknown measurement variant {variant!r}; known: {INT8_DYNAMIC}")
    meter = EnergyMeter(source)
    tau_s = source.counter_resolution_s
    target_s = max(window_s, WINDOW_COUNTER_UPDATES * tau_s)
    what = f"{model_name} on {device}"

    report(0.0, f"{what}: idle baseline")
    idle = _idle_baseline(meter, dev, max(idle_s, IDLE_COUNTER_UPDATES * tau_s))

    report(10.0, f"{what}: inference warm-up ({warmup} passes, batch {batch_size})")
    inference, inference_peak_mb = _inference(
        inference_workload, dev, batch_size=batch_size, dtype=dtype, warmup=warmup, meter=meter, target_s=target_s,
        before_window=lambda: report(20.0, f"{what}: inference window (≥ {target_s:g} s, ≥ {min_repetitions} passes)"),
        errors=lambda: _workload_errors(model_name, device, "inference", batch_size, precision),
        min_repetitions=min_repetitions, check=check,
    )
    per_inference = _per_sample(inference, idle, source, inference.repetitions * batch_size)

    training: _Loop | None = None
    per_train = _PerSample(0.0, 0.0, 0.0, 0.0)
    train_peak_mb = 0.0
    if train_batch_size:
        report(55.0, f"{what}: training warm-up ({warmup} steps, batch {train_batch_size})")
        training, train_peak_mb = _training(
            workload, dev, batch_size=train_batch_size, dtype=dtype, warmup=warmup, meter=meter, target_s=target_s,
            before_window=lambda: report(65.0, f"{what}: training window (≥ {target_s:g} s, ≥ {min_repetitions} steps)"),
            errors=lambda: _workload_errors(model_name, device, "training", train_batch_size, _PRECISION[dtype]),
            min_repetitions=min_repetitions, check=check,
        )
        per_train = _per_sample(training, idle, source, training.repetitions * train_batch_size)

    report(100.0, f"{what}: measured")
    return _measurement(
        model_name, device, host, precision, source, idle,
        inference=inference, batch_size=batch_size, per_inference=per_inference,
        training=training, train_batch_size=train_batch_size, per_train=per_train,
        peak_memory_mb=max(inference_peak_mb, train_peak_mb),
        assumptions=_INT8_TRAINING if variant == INT8_DYNAMIC and train_batch_size else "",
        started_s=started_s,
    )


_INT8_TRAINING = "training measured in fp32; int8 dynamic quantisation is applied to the trained model"


def with_training_of(variant: JobMeasurement, base: JobMeasurement) -> JobMeasurement:
    """``variant`` (an inference-only measurement of a post-training variant, such as int8 dynamic
    quantisation) with the training figures of ``base``, the same model measured as trained: the
    variant trains exactly like its model, so its training is measured once, not twice."""
    merged = copy.deepcopy(variant)
    for name in ("train_batch_size", "train_step_ms", "energy_per_train_sample_j",
                 "energy_per_train_sample_uncertainty_j"):
        setattr(merged, name, getattr(base, name))
    merged.peak_memory_mb = max(variant.peak_memory_mb, base.peak_memory_mb)
    merged.assumptions = _join(variant.assumptions, f"{_INT8_TRAINING} (the {base.precision} measurement's "
                                                    "training figures)")
    return merged


def _measurement(
    model_name: str, device: str, host: str, precision: str, source: EnergySource, idle: EnergyWindow, *,
    inference: _Loop, batch_size: int, per_inference: _PerSample,
    training: _Loop | None, train_batch_size: int, per_train: _PerSample,
    peak_memory_mb: float, assumptions: str, started_s: float,
) -> JobMeasurement:
    """The message of one measurement, from its metered loops (torch and scikit-learn alike).

    ``measuring_s`` is the whole call's wall time since ``started_s`` (building inputs, warm-ups and
    the idle baseline included); ``measuring_energy_j`` is that time at the mean total power of the
    metered windows, an approximation for the unmetered warm-ups."""
    step_ms = [s * MS_PER_S for s in inference.iteration_s]
    windows = [inference.window] + ([training.window] if training else [])
    mean_power_w = sum(w.energy_j for w in windows) / max(sum(w.duration_s for w in windows), 1e-9)
    measuring_s = time.perf_counter() - started_s
    few = inference.repetitions < MIN_REPETITIONS or (training is not None and training.repetitions < MIN_REPETITIONS)
    if few:
        assumptions = _join(assumptions, f"a slow model: measured with {inference.repetitions} inference pass(es)"
                            + (f" and {training.repetitions} training step(s)" if training else "")
                            + ", the energy uncertainty widened by the passes' spread")
    return JobMeasurement(
        model=model_name,
        device=device,
        host=host,
        precision=precision,
        batch_size=batch_size,
        latency_p50_ms=_percentile(step_ms, 50),
        latency_p95_ms=_percentile(step_ms, 95),
        throughput_per_s=inference.repetitions * batch_size / inference.window.duration_s,
        energy_per_inference_j=per_inference.active_j,
        energy_per_inference_uncertainty_j=per_inference.uncertainty_j,
        total_energy_per_inference_j=per_inference.total_j,
        train_batch_size=train_batch_size,
        # The mean, not the median: a training-time estimate multiplies it by the number of steps.
        train_step_ms=training.window.duration_s / training.repetitions * MS_PER_S if training else 0.0,
        energy_per_train_sample_j=per_train.active_j,
        energy_per_train_sample_uncertainty_j=per_train.uncertainty_j,
        peak_memory_mb=peak_memory_mb,
        active_power_w=per_inference.active_power_w,
        idle_power_w=idle.power_w,
        window_s=inference.window.duration_s,
        repetitions=inference.repetitions,
        energy_method=source.method,
        assumptions=_join(source.assumptions, assumptions),
        cached=False,
        basis="measured",
        latency_p50_uncertainty_ms=_latency_uncertainty_ms(step_ms),
        measuring_s=measuring_s,
        measuring_energy_j=mean_power_w * measuring_s,
    )


def _latency_uncertainty_ms(step_ms: list[float]) -> float:
    """One standard uncertainty of the median pass time: about 1.25 standard errors of the mean for
    a normal spread; a single pass is given :data:`SINGLE_PASS_RELATIVE_SPREAD`."""
    if len(step_ms) < 2:
        return SINGLE_PASS_RELATIVE_SPREAD * step_ms[0]
    return 1.2533 * statistics.stdev(step_ms) / math.sqrt(len(step_ms))


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def measure_estimator(
    workload: EstimatorWorkload,
    device: str,
    *,
    model_name: str,
    host: str,
    batch_size: int = 1,
    train_samples: int = ESTIMATOR_TRAIN_SAMPLES,
    window_s: float = 1.0,
    warmup: int = 1,
    idle_s: float = DEFAULT_IDLE_S,
    source: EnergySource | None = None,
    progress: Progress | None = None,
    check: Check | None = None,
    min_repetitions: int = MIN_REPETITIONS,
) -> JobMeasurement:
    """Measure a scikit-learn estimator with its own library, on the CPU, through the same meter.

    Training: ``fit`` on ``train_samples`` seeded synthetic rows, repeated for the window; the energy
    per training sample is the window's energy over the rows fitted (tree fitting grows a little
    faster than linearly with rows, so larger sets cost somewhat more per row: said in the
    assumptions). Inference: ``predict`` on one batch of ``batch_size`` rows of a fitted model.
    ``train_batch_size`` in the result is ``train_samples`` (one "step" is one fit), so a training-time
    estimate of steps × step time holds for one pass over the data (``default_epochs`` 1).
    ``min_repetitions`` lets a slow fit be metered fewer times (its uncertainty widened as ``measure``'s).
    """
    _check_arguments(batch_size, train_samples, window_s, warmup, idle_s)
    started_s = time.perf_counter()
    if device != "cpu":
        raise MeasurementError(f"{model_name} is a scikit-learn model and runs on the CPU only, not on {device}")
    dev = resolve_device(device)
    report: Progress = progress or (lambda _pct, _msg: None)
    source = source or make_energy_source(device)
    meter = EnergyMeter(source)
    tau_s = source.counter_resolution_s
    target_s = max(window_s, WINDOW_COUNTER_UPDATES * tau_s)
    what = f"{model_name} on {device}"
    x_train, y_train = workload.data(train_samples)
    x_batch = x_train[:batch_size] if batch_size <= train_samples else workload.data(batch_size)[0]
    estimator = copy.deepcopy(workload.estimator)

    def fit() -> object:
        return estimator.fit(x_train, y_train)

    def predict() -> object:
        return estimator.predict(x_batch)

    errors = lambda phase: _estimator_errors(model_name, phase)  # noqa: E731
    report(0.0, f"{what}: idle baseline")
    idle = _idle_baseline(meter, dev, max(idle_s, IDLE_COUNTER_UPDATES * tau_s))
    report(10.0, f"{what}: training (fit on {train_samples} rows)")
    with errors("training"):
        for _ in range(warmup):
            _checked(check)
            fit()
        training = _metered_loop(fit, name="training", meter=meter, device=dev, target_s=target_s,
                                 memory=(train_memory := _PeakMemory(dev)), check=check,
                                 min_repetitions=min_repetitions)
    per_train = _per_sample(training, idle, source, training.repetitions * train_samples)
    report(55.0, f"{what}: inference (predict, batch {batch_size})")
    with errors("inference"):
        for _ in range(max(warmup, 1)):
            predict()
        inference = _metered_loop(predict, name="inference", meter=meter, device=dev, target_s=target_s,
                                  memory=(inference_memory := _PeakMemory(dev)), check=check)
    per_inference = _per_sample(inference, idle, source, inference.repetitions * batch_size)
    report(100.0, f"{what}: measured")
    return _measurement(
        model_name, device, host, "fp32", source, idle,
        inference=inference, batch_size=batch_size, per_inference=per_inference,
        training=training, train_batch_size=train_samples, per_train=per_train,
        peak_memory_mb=max(train_memory.peak_mb(), inference_memory.peak_mb()),
        assumptions=f"scikit-learn fit timed on {train_samples} synthetic rows; per-row training energy depends "
        "on the data set size (tree fitting grows as n log n)",
        started_s=started_s,
    )


@contextmanager
def _estimator_errors(model_name: str, phase: str) -> Iterator[None]:
    """A scikit-learn failure as a MeasurementError naming the model and phase."""
    try:
        yield
    except (ValueError, MemoryError, RuntimeError) as e:
        raise MeasurementError(f"{model_name} failed during {phase}: {str(e).splitlines()[0] if str(e) else e!r}") from e


def _percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
