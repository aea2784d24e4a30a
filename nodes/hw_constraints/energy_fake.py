"""Deterministic energy sources for tests and demos on machines without counters (Zeus-style fakes).

They subclass :class:`EnergySource` like the real backends, so everything above them runs unchanged.
Their method is ``"fake"`` unless told otherwise, so a figure built on one can never pass for a
measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sustainml.exceptions import MeasurementError

from .energy_source import MJ_PER_J, EnergySource, MonotonicCounter

__all__ = ["ReplayEnergySource", "PowerTraceSource"]


class ReplayEnergySource(EnergySource):
    """Plays back a recorded sequence of raw counter readings (Units: mJ), one per ``read_energy_mj``.

    With ``max_range`` the recording is of a counter that wraps there (like RAPL's), and the replay
    unwraps it the way the real backends do. Reading past the end raises MeasurementError.
    """

    def __init__(
        self,
        readings_mj: Sequence[float],
        *,
        max_range: float | None = None,
        device: str = "cpu",
        method: str = "fake",
        counter_resolution_s: float = 0.1,
        relative_uncertainty: float = 0.0,
    ) -> None:
        self.device = device
        self.method = method
        self.counter_resolution_s = counter_resolution_s
        self.relative_uncertainty = relative_uncertainty
        self._readings = list(readings_mj)
        self._next = 0
        self._counter = MonotonicCounter(max_range=max_range) if max_range is not None else None

    def read_energy_mj(self) -> float:
        if self._next >= len(self._readings):
            raise MeasurementError(f"replay exhausted: all {len(self._readings)} recorded readings were read")
        raw = self._readings[self._next]
        self._next += 1
        return self._counter.update(raw) if self._counter is not None else raw


class PowerTraceSource(EnergySource):
    """A counter fed by a power the caller sets (Units: W), integrated on ``clock``.

    With ``update_period_s > 0`` the counter only moves at whole periods since creation, like NVML's
    (about 100 ms on an H100); with 0 it is continuous. ``set_power_w`` changes the power from now on.
    """

    def __init__(
        self,
        power_w: float,
        *,
        update_period_s: float = 0.0,
        device: str = "cpu",
        method: str = "fake",
        relative_uncertainty: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.device = device
        self.method = method
        self.relative_uncertainty = relative_uncertainty
        self.update_period_s = update_period_s
        # A continuous counter still has a finite resolution: the clock's, taken as 1 µs.
        self.counter_resolution_s = update_period_s or 1e-6
        self._clock = clock
        self._start_s = clock()
        # (time since start, energy at that time in J, power from then on in W), in time order.
        self._segments: list[tuple[float, float, float]] = [(0.0, 0.0, power_w)]

    def _energy_j_at(self, t_s: float) -> float:
        for start_s, energy_j, power_w in reversed(self._segments):
            if t_s >= start_s:
                return energy_j + power_w * (t_s - start_s)
        return 0.0

    def set_power_w(self, power_w: float) -> None:
        now_s = self._clock() - self._start_s
        self._segments.append((now_s, self._energy_j_at(now_s), power_w))

    def read_energy_mj(self) -> float:
        now_s = self._clock() - self._start_s
        if self.update_period_s > 0:
            now_s = (now_s // self.update_period_s) * self.update_period_s
        return self._energy_j_at(now_s) * MJ_PER_J
