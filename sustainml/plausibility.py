"""Physical sense of the figures nodes send: checked before anything uses or stores them.

A measurement or a footprint is refused (with the offending field, value and node named) when a
figure is not a finite number, is negative where only a quantity can be, or lies outside what any
device could do: a forged or broken "1e-12 J per inference, measured by NVML" would otherwise
rank first and enter the evidence everyone reads. The bounds are deliberately wide (a check of
sense, not of accuracy) and written by hand: no library states them.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

from . import msg

__all__ = ["measurement_problems", "footprint_problems", "MAX_DEVICE_POWER_W", "MIN_MEASURED_POWER_W"]

#: No single device draws more (an 8-GPU board is about 10 kW), Units: W.
MAX_DEVICE_POWER_W = 20_000.0
#: A metered device draws at least this on average while it computes (idle draw alone is watts),
#: Units: W. Applies to metered energy (nvml, rapl, ...), not to declared estimates.
MIN_MEASURED_POWER_W = 1e-3
#: The largest figure of any unit that still makes sense here (1e12 J is 280 GWh).
MAX_FIGURE = 1e12
#: Fields that may be negative: a change, a saving (an alternative can be worse).
SIGNED = frozenset({"saving_g", "latency_change_ms", "intensity_year"})
#: Bounds of particular fields (inclusive).
RANGES: dict[str, tuple[float, float]] = {
    "pue": (0.0, 5.0),     # 0 = not applied; the worst data centres are near 3
    "intensity_g_per_kwh": (0.0, 3000.0),   # coal is about 1000
    "train_intensity_g_per_kwh": (0.0, 3000.0),
    "active_power_w": (0.0, MAX_DEVICE_POWER_W),
    "idle_power_w": (0.0, MAX_DEVICE_POWER_W),
    "device_lifetime_years": (0.0, 100.0),
}
ESTIMATE_METHODS = frozenset({"", "estimate", "estimated", "none"})


def _numbers(message: Any, path: str = "") -> list[tuple[str, str, float]]:
    """(path, field name, value) of every float or int in a message, nested ones included."""
    found: list[tuple[str, str, float]] = []
    for f in fields(message):
        value = getattr(message, f.name)
        where = f"{path}{f.name}"
        if isinstance(value, bool) or isinstance(value, str):
            continue
        if isinstance(value, (int, float)):
            found.append((where, f.name, float(value)))
        elif is_dataclass(value):
            found += _numbers(value, where + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if is_dataclass(item):
                    found += _numbers(item, f"{where}[{i}].")
    return found


def _sense(message: Any) -> list[str]:
    problems = []
    for where, name, value in _numbers(message):
        if not math.isfinite(value):
            problems.append(f"{where} = {value} is not a finite number")
        elif value < 0 and name not in SIGNED:
            problems.append(f"{where} = {value:g} is negative")
        elif abs(value) > MAX_FIGURE:
            problems.append(f"{where} = {value:g} is beyond any device ({MAX_FIGURE:g})")
        elif name in RANGES and not RANGES[name][0] <= value <= RANGES[name][1]:
            low, high = RANGES[name]
            problems.append(f"{where} = {value:g} is outside {low:g}..{high:g}")
    return problems


def measurement_problems(message: msg.HardwareMeasurement) -> list[str]:
    """What makes a hardware measurement physically impossible ([] = nothing)."""
    problems = _sense(message)
    for i, job in enumerate(message.measurements):
        if problems:
            break
        where = f"measurements[{i}] ({job.model} on {job.device})"
        # Average power while computing: energy per inference times inferences per second.
        for energy, name in ((job.energy_per_inference_j, "energy_per_inference_j"),
                             (job.total_energy_per_inference_j, "total_energy_per_inference_j")):
            if energy <= 0 or job.throughput_per_s <= 0:
                continue
            power_w = energy * job.throughput_per_s
            if power_w > MAX_DEVICE_POWER_W:
                problems.append(f"{where}: {name} = {energy:g} J at {job.throughput_per_s:g} inferences/s "
                                f"is {power_w:g} W, more than any device draws ({MAX_DEVICE_POWER_W:g} W)")
            elif job.energy_method.lower() not in ESTIMATE_METHODS and power_w < MIN_MEASURED_POWER_W:
                problems.append(f"{where}: {name} = {energy:g} J at {job.throughput_per_s:g} inferences/s "
                                f"is {power_w:g} W, metered by {job.energy_method!r}: no device computes "
                                f"on less than {MIN_MEASURED_POWER_W:g} W")
        if job.latency_p95_ms and job.latency_p50_ms > job.latency_p95_ms * 1.0001:
            problems.append(f"{where}: latency_p50_ms {job.latency_p50_ms:g} > latency_p95_ms {job.latency_p95_ms:g}")
    return problems


def footprint_problems(message: msg.CarbonFootprint) -> list[str]:
    """What makes a carbon footprint impossible ([] = nothing)."""
    problems = _sense(message)
    for i, detail in enumerate(message.footprints):
        parts = detail.training_co2_g + detail.inference_co2_g + detail.experimentation_co2_g + detail.embodied_co2_g
        if not problems and detail.total_co2_g > 0 and parts > detail.total_co2_g * 1.01 + 1e-9:
            problems.append(f"footprints[{i}] ({detail.model} on {detail.device} in {detail.region}): the parts "
                            f"({parts:g} g) exceed total_co2_g ({detail.total_co2_g:g} g)")
    return problems
