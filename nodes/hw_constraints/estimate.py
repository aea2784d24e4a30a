"""Estimates before running: latency and energy of a model on a device from what its forward pass computes
and moves, and one calibration of the device, for configurations nobody measured (another batch size,
a full training run).

**Calibration** (:func:`calibrate`, once per device and dtype, cached with the measurements): with the
same meter as the candidates (:func:`~.energy.make_energy_source`, idle baseline, the same metered loop),
square matrix products give the achieved ``flop_per_s`` and the active energy per FLOP ``j_per_flop``
(and so the power the device adds when busy, ``active_power_w``); a large copy gives the achieved memory
bandwidth; a tiny linear layer run forward, and trained, gives what one operator call costs (dispatch,
kernel launch, autograd) in inference and in a training step.

**Profile** (:func:`profile_model`, on the meta device, nothing computed): the forward FLOPs per sample
``F`` (torch's FLOP counter: a multiply-add is 2), the activation bytes per sample ``A`` that the
operators read and write (views excluded), the weight bytes ``W`` and the number of operators ``K``.

**Model** (:func:`estimate`), for a batch of ``B`` samples in a dtype of ``b`` bytes (profiles count 4)::

    t_compute  = f_F · B·F / flop_per_s
    t_memory   = (f_A · B·A + f_W · W) · b/4 / memory_bytes_per_s
    t_overhead = K · call_overhead_s            (train_call_overhead_s for a training step)
    latency    = t_compute + t_memory + t_overhead        (no overlap assumed)
    E_active   = active_power_w · latency       (= j_per_flop · B·F for pure compute)
    E_total    = (active_power_w + idle_power_w) · latency

with ``f_F = f_A = f_W = 1`` for a forward pass. A training step (forward, backward, SGD update) is
taken as ``f_F = 3`` (:data:`TRAIN_FLOPS_FACTOR`: the backward pass computes the gradients of both the
activations and the weights, about twice the forward), ``f_A = 3`` (the backward reads the saved
activations and the output gradients and writes the input gradients) and ``f_W = 4`` (weights read
forward and backward, gradient written, update). A full training run is ``epochs × ceil(samples /
batch)`` such steps (a last, partial batch counts as a whole step).

The device is assumed as busy during the whole estimated time as during the calibration's products,
which overestimates the energy of work bound by operator overhead (one CPU core of many busy, a GPU
waiting for launches). Activation traffic is counted as if it all went to memory, which caches
contradict for small tensors. Every estimate is labelled :data:`ESTIMATE_METHOD` and carries these
assumptions; ``bench/estimator.py`` reports its error against measurements.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sustainml.energy import make_energy_source
from sustainml.energy_source import EnergyMeter, EnergySource
from sustainml.models.architecture import example_input
from sustainml.units import MS_PER_S, j_to_kwh

from .measure import (
    IDLE_COUNTER_UPDATES,
    SGD_LR,
    WINDOW_COUNTER_UPDATES,
    _idle_baseline,
    _metered_loop,
    _PeakMemory,
    _per_sample,
    _sync,
    lookup_device_name,
    parse_precision,
    resolve_device,
)

__all__ = [
    "ESTIMATE_METHOD",
    "TRAIN_FLOPS_FACTOR",
    "TRAIN_ACTIVATION_FACTOR",
    "TRAIN_WEIGHT_FACTOR",
    "MODEL_RELATIVE_UNCERTAINTY",
    "DeviceCalibration",
    "ModelProfile",
    "Estimate",
    "TrainingRunEstimate",
    "calibrate",
    "profile_model",
    "estimate",
    "estimate_profile",
    "estimate_training_run",
]

log = logging.getLogger(__name__)

#: The energy method of every figure this module produces: an estimate from FLOPs and a calibration.
ESTIMATE_METHOD = "estimate-flops"
TRAIN_FLOPS_FACTOR = 3.0  # a training step ≈ 3 × the forward FLOPs (forward 1, backward 2)
TRAIN_ACTIVATION_FACTOR = 3.0  # forward writes and reads them; backward reads them and writes their gradients
TRAIN_WEIGHT_FACTOR = 4.0  # weights read forward and backward, gradient written, update read-modify-write
#: One standard uncertainty of the model itself, as a fraction, on top of the calibration's: about
#: the median error bench/estimator.py finds on a 2-core CPU (a roofline without overlap ignores
#: kernel efficiency and caches).
MODEL_RELATIVE_UNCERTAINTY = 0.5
PROFILE_BYTES_PER_ELEMENT = 4  # profiles count fp32 tensors

MIN_PRODUCTS = 20  # the calibration window holds at least about this many matrix products
MIN_MATMUL_SIZE = 128
_DEFAULT_MATMUL_SIZE = {"cpu": 512, "cuda": 8192}
_COPY_BYTES = {"cpu": 64 * 2**20, "cuda": 1024 * 2**20}
_OVERHEAD_CALLS = 200
_OVERHEAD_WIDTH = 16
_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}


@dataclass(frozen=True)
class DeviceCalibration:
    """What one device achieves in one dtype, measured once with the meter the candidates use."""

    device: str  # "cpu", "cuda:N"
    device_name: str
    precision: str  # "fp32", "bf16", "fp16"
    energy_method: str  # of the meter: "nvml", "rapl", "estimate" (or a fake's)
    flop_per_s: float  # achieved by square matrix products of matmul_size
    j_per_flop: float  # active energy (above idle) per FLOP of those products, Units: J
    active_power_w: float  # power above idle during the products
    idle_power_w: float
    memory_bytes_per_s: float  # achieved by a large copy, bytes read + written
    call_overhead_s: float  # per forward operator of a tiny model's inference, Units: s
    train_call_overhead_s: float  # per forward operator of a tiny model's training step, Units: s
    relative_uncertainty: float  # of j_per_flop, one standard uncertainty as a fraction
    matmul_size: int
    window_s: float  # the products' metered window, Units: s
    assumptions: str  # the meter's (what an energy estimate assumed), "" for a hardware counter


@dataclass(frozen=True)
class ModelProfile:
    """What one forward pass of a model computes and moves, per sample, independent of the device."""

    flops_per_sample: float  # forward FLOPs, a multiply-add counts 2
    activation_bytes_per_sample: float  # read and written by the operators, weights and views excluded (fp32)
    weight_bytes: float  # parameters and buffers (fp32)
    operators: int  # operator calls of one forward pass, views included (each is a dispatch)


@dataclass(frozen=True)
class Estimate:
    """Latency and energy of one inference batch or one training step, estimated, not measured."""

    latency_ms: float  # per batch (inference) or per step (training)
    energy_j: float  # active energy (above idle) of that batch or step, Units: J
    total_energy_j: float  # with the idle power over the same time, Units: J
    energy_j_per_sample: float
    energy_j_per_sample_uncertainty: float  # one standard uncertainty, Units: J
    bound: str  # the largest term: "compute", "memory" or "overhead"
    method: str
    assumptions: str


@dataclass(frozen=True)
class TrainingRunEstimate:
    """A whole training run: steps × one step's estimate."""

    steps: int
    duration_s: float
    energy_j: float  # active, Units: J
    total_energy_j: float  # with idle, Units: J
    energy_uncertainty_j: float  # one standard uncertainty, Units: J (fully correlated across steps)
    step: Estimate
    method: str
    assumptions: str

    @property
    def energy_kwh(self) -> float:
        return j_to_kwh(self.energy_j)

    @property
    def total_energy_kwh(self) -> float:
        return j_to_kwh(self.total_energy_j)


# ------------------------------------------------------------------------------------------ profile


def _is_view(func: Any) -> bool:
    """Whether an aten operator returns an alias of an input without writing it (t, view, transpose...)."""
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def profile_model(module: torch.nn.Module, input_shape: tuple[int, ...]) -> ModelProfile:
    """Count what one forward pass of ``module`` on one sample of ``input_shape`` computes and moves.

    Runs on the meta device (nothing is computed), on a copy unless ``module`` was built under
    ``torch.device("meta")``, with torch's FLOP formulas. A tensor is a weight if it is a parameter or
    buffer of the module or a view of one; every other tensor an operator reads or writes is
    activation traffic, except the outputs of views (no data moves).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import flop_registry

    on_meta = all(t.device.type == "meta" for t in [*module.parameters(), *module.buffers()])
    meta = module if on_meta else copy.deepcopy(module).to("meta")
    weights = {id(t) for t in [*meta.parameters(), *meta.buffers()]}

    class _Profiler(TorchDispatchMode):
        operators = 0
        flops = 0.0
        activation_bytes = 0.0
        weight_views: list[torch.Tensor] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.operators += 1
            if func._overloadpacket in flop_registry:
                self.flops += flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
            inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if _is_view(func):
                if any(id(t) in weights for t in inputs):
                    weights.update(id(t) for t in outputs)
                    # Held until the end: a freed view's id could be reused by a later activation,
                    # which would then be taken for a weight and not counted.
                    self.weight_views.extend(outputs)
                return out
            self.activation_bytes += sum(t.nbytes for t in [*inputs, *outputs] if id(t) not in weights)
            return out

    was_training = meta.training
    meta.eval()
    try:
        with _Profiler() as profiler, torch.no_grad():
            meta(example_input(meta, input_shape, device="meta"))  # token ids for text models, else floats
    finally:
        meta.train(was_training)
    return ModelProfile(
        flops_per_sample=float(profiler.flops),
        activation_bytes_per_sample=float(profiler.activation_bytes),
        weight_bytes=float(sum(t.numel() * PROFILE_BYTES_PER_ELEMENT for t in [*meta.parameters(), *meta.buffers()])),
        operators=profiler.operators,
    )


# ------------------------------------------------------------------------------------------ calibration


#: The share of the fastest calls a calibration takes its speed from: a node calibrates at start-up,
#: while the other nodes of a pipeline load, and a busy moment must not make every later estimate slow.
FAST_QUANTILE = 0.25
_BATCHES = 20  # a timed probe is split in this many batches of calls, each timed


def _fast(seconds: list[float]) -> float:
    """The :data:`FAST_QUANTILE` quantile of ``seconds``."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(FAST_QUANTILE * len(ordered)))]


def _timed(step: Callable[[], object], device: torch.device, min_s: float, min_calls: int) -> tuple[int, float]:
    """Repeat ``step`` until ``min_s`` and ``min_calls`` are both reached, timing it in batches;
    returns (calls, seconds) at the pace of the fast batches (:func:`_fast`), so that a moment of
    contention from another process does not count."""
    _sync(device)
    per_call_s: list[float] = []
    batch = max(1, min_calls // _BATCHES)
    calls, start_s = 0, time.perf_counter()
    while True:
        began_s = time.perf_counter()
        for _ in range(batch):
            step()
        _sync(device)
        per_call_s.append((time.perf_counter() - began_s) / batch)
        calls += batch
        if calls >= min_calls and time.perf_counter() - start_s >= min_s:
            return calls, calls * _fast(per_call_s)


def _memory_bytes_per_s(device: torch.device, min_s: float) -> float:
    numel = _COPY_BYTES[device.type] // 4
    src = torch.ones(numel, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: fault the pages in
    calls, elapsed_s = _timed(lambda: dst.copy_(src), device, min_s, 5)
    return 2 * numel * 4 * calls / elapsed_s  # each copy reads and writes every byte


def _call_overheads_s(device: torch.device, dtype: torch.dtype, min_s: float) -> tuple[float, float]:
    """Per forward operator, the time of a tiny model's inference and of its training step (SGD, MSE),
    a model so small that only the calls cost: a 16-wide linear layer on one sample."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(_OVERHEAD_WIDTH, _OVERHEAD_WIDTH).to(device=device, dtype=dtype)
    x = torch.ones(1, _OVERHEAD_WIDTH, device=device, dtype=dtype)
    operators = profile_model(torch.nn.Linear(_OVERHEAD_WIDTH, _OVERHEAD_WIDTH), (_OVERHEAD_WIDTH,)).operators
    optimiser = torch.optim.SGD(layer.parameters(), lr=SGD_LR)

    def train_step() -> None:
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(layer(x), x).backward()
        optimiser.step()

    for _ in range(20):
        train_step()
    train_calls, train_s = _timed(train_step, device, min_s / 2, _OVERHEAD_CALLS)
    layer.eval()
    with torch.inference_mode():
        for _ in range(20):
            layer(x)
        calls, infer_s = _timed(lambda: layer(x), device, min_s / 2, _OVERHEAD_CALLS)
    return infer_s / calls / operators, train_s / train_calls / operators


def calibrate(
    device: str = "cpu",
    precision: str = "fp32",
    *,
    window_s: float = 1.0,
    matmul_size: int | None = None,
    idle_s: float = 0.2,
    source: EnergySource | None = None,
    device_name: str = "",
) -> DeviceCalibration:
    """Measure ``device``'s achieved FLOP/s, J/FLOP, memory bandwidth and operator overhead in ``precision``.

    The products (``matmul_size``, halved until about :data:`MIN_PRODUCTS` fit the window) run for
    ``max(window_s, 10 counter updates)``; the bandwidth and overhead probes for a fifth of that each
    (timing only). Raises MeasurementError like ``measure``.
    """
    dev = resolve_device(device)
    dtype = parse_precision(precision)
    source = source or make_energy_source(device)
    meter = EnergyMeter(source)
    n = matmul_size or _DEFAULT_MATMUL_SIZE[dev.type]
    target_s = max(window_s, WINDOW_COUNTER_UPDATES * source.counter_resolution_s)

    idle = _idle_baseline(meter, dev, max(idle_s, IDLE_COUNTER_UPDATES * source.counter_resolution_s))
    while True:  # halve the size until one product is short enough for many in the window
        generator = torch.Generator(device=dev).manual_seed(0)
        a = torch.randn(n, n, device=dev, dtype=dtype, generator=generator)
        b = torch.randn(n, n, device=dev, dtype=dtype, generator=generator)
        out = torch.empty(n, n, device=dev, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        _, product_s = _timed(lambda: torch.mm(a, b, out=out), dev, 0.0, 1)
        if product_s <= target_s / MIN_PRODUCTS or n <= MIN_MATMUL_SIZE:
            break
        n //= 2
    loop = _metered_loop(lambda: torch.mm(a, b, out=out), name="calibration", meter=meter, device=dev,
                         target_s=target_s, memory=_PeakMemory(dev))
    product_flops = 2.0 * n**3
    per_product = _per_sample(loop, idle, source, loop.repetitions)
    relative = per_product.uncertainty_j / per_product.active_j if per_product.active_j > 0 else 1.0
    call_overhead_s, train_call_overhead_s = _call_overheads_s(dev, dtype, target_s / 5)
    calibration = DeviceCalibration(
        device=device,
        device_name=device_name or lookup_device_name(device),
        precision=precision,
        energy_method=source.method,
        flop_per_s=product_flops / _fast(loop.iteration_s),   # the fast products: see FAST_QUANTILE
        j_per_flop=per_product.active_j / product_flops,
        active_power_w=per_product.active_power_w,
        idle_power_w=idle.power_w,
        memory_bytes_per_s=_memory_bytes_per_s(dev, target_s / 5),
        call_overhead_s=call_overhead_s,
        train_call_overhead_s=train_call_overhead_s,
        relative_uncertainty=relative,
        matmul_size=n,
        window_s=loop.window.duration_s,
        assumptions=source.assumptions,
    )
    log.info("calibrated %s %s: %.3g FLOP/s, %.3g J/FLOP, %.3g B/s, %.3g/%.3g s per operator", device, precision,
             calibration.flop_per_s, calibration.j_per_flop, calibration.memory_bytes_per_s,
             calibration.call_overhead_s, calibration.train_call_overhead_s)
    return calibration


# ------------------------------------------------------------------------------------------ estimating


def estimate(
    flops_per_sample: float,
    params: float,
    batch_size: int,
    calibration: DeviceCalibration,
    *,
    train: bool = False,
    operators: int = 0,
    activation_bytes_per_sample: float = 0.0,
) -> Estimate:
    """Latency and energy of one forward pass of ``batch_size`` samples (``train=False``) or of one
    training step on them (``train=True``), from the model in the module docstring.

    ``flops_per_sample`` are forward FLOPs (a multiply-add counts 2) and ``params`` the parameter
    count (weights of the calibration's dtype). ``operators`` and ``activation_bytes_per_sample`` (fp32)
    come from :func:`profile_model`; left at 0, their terms are left out. See :func:`estimate_profile`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if min(flops_per_sample, params, operators, activation_bytes_per_sample) < 0:
        raise ValueError(
            "FLOPs, params, operators and activation bytes must be non-negative, got "
            f"{flops_per_sample}, {params}, {operators}, {activation_bytes_per_sample}"
        )
    c = calibration
    f_flops, f_activations, f_weights = (
        (TRAIN_FLOPS_FACTOR, TRAIN_ACTIVATION_FACTOR, TRAIN_WEIGHT_FACTOR) if train else (1.0, 1.0, 1.0)
    )
    element_bytes = _BYTES[parse_precision(c.precision)]
    moved_bytes = (
        f_activations * batch_size * activation_bytes_per_sample * element_bytes / PROFILE_BYTES_PER_ELEMENT
        + f_weights * params * element_bytes
    )
    compute_s = f_flops * batch_size * flops_per_sample / c.flop_per_s
    memory_s = moved_bytes / c.memory_bytes_per_s
    overhead_s = operators * (c.train_call_overhead_s if train else c.call_overhead_s)
    latency_s = compute_s + memory_s + overhead_s
    bound = max((compute_s, "compute"), (memory_s, "memory"), (overhead_s, "overhead"))[1]
    energy_j = c.active_power_w * latency_s
    relative = math.hypot(c.relative_uncertainty, MODEL_RELATIVE_UNCERTAINTY)
    what = "training step (forward, backward, SGD update)" if train else "forward pass"
    factor = (lambda f: f" × {f:g}") if train else (lambda f: "")
    assumptions = (
        f"{ESTIMATE_METHOD}: a {what} of batch {batch_size}: {flops_per_sample:.4g} FLOPs/sample{factor(f_flops)} "
        f"at the {c.flop_per_s:.3g} FLOP/s of {c.matmul_size}² {c.precision} matrix products on {c.device} "
        f"({c.device_name}), plus {activation_bytes_per_sample:.3g} B/sample of activations{factor(f_activations)} "
        f"and {params:.4g} weights × {element_bytes} B{factor(f_weights)} at {c.memory_bytes_per_s:.3g} B/s, "
        f"plus {operators} operator calls × "
        f"{(c.train_call_overhead_s if train else c.call_overhead_s) * 1e6:.3g} µs, without overlap; energy = the "
        f"products' {c.active_power_w:.3g} W above idle over that time ({c.j_per_flop:.3g} J/FLOP), "
        f"metered by {c.energy_method}"
        + (f" ({c.assumptions})" if c.assumptions else "")
        + f"; ±{relative:.0%} assumed"
    )
    return Estimate(
        latency_ms=latency_s * MS_PER_S,
        energy_j=energy_j,
        total_energy_j=(c.active_power_w + c.idle_power_w) * latency_s,
        energy_j_per_sample=energy_j / batch_size,
        energy_j_per_sample_uncertainty=relative * energy_j / batch_size,
        bound=bound,
        method=ESTIMATE_METHOD,
        assumptions=assumptions,
    )


def estimate_profile(
    profile: ModelProfile, batch_size: int, calibration: DeviceCalibration, *, train: bool = False
) -> Estimate:
    """:func:`estimate` with every term of a :func:`profile_model` profile."""
    return estimate(
        profile.flops_per_sample,
        profile.weight_bytes / PROFILE_BYTES_PER_ELEMENT,
        batch_size,
        calibration,
        train=train,
        operators=profile.operators,
        activation_bytes_per_sample=profile.activation_bytes_per_sample,
    )


def estimate_training_run(
    step: Estimate, *, samples: int, epochs: int, batch_size: int
) -> TrainingRunEstimate:
    """A training run of ``epochs`` over ``samples`` in batches of ``batch_size``: steps × one ``step``
    (an :func:`estimate` with ``train=True`` at that batch size)."""
    if samples < 1 or epochs < 1 or batch_size < 1:
        raise ValueError(f"samples, epochs and batch_size must be at least 1, got {samples}, {epochs}, {batch_size}")
    steps = epochs * math.ceil(samples / batch_size)
    return TrainingRunEstimate(
        steps=steps,
        duration_s=steps * step.latency_ms / MS_PER_S,
        energy_j=steps * step.energy_j,
        total_energy_j=steps * step.total_energy_j,
        energy_uncertainty_j=steps * step.energy_j_per_sample_uncertainty * batch_size,
        step=step,
        method=ESTIMATE_METHOD,
        assumptions=f"{epochs} epochs × ceil({samples} samples / batch {batch_size}) = {steps} steps, each a "
        + step.assumptions.removeprefix(f"{ESTIMATE_METHOD}: a "),
    )
