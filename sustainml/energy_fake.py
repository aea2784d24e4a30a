"""Deterministic energy sources for tests and demos on machines without counters (Zeus-style fakes).

They subclass :class:`EnergySource` like the real backends, so everything above them runs unchanged.
Their method is ``"fake"`` unless told otherwise, so a figure built on one can never pass for a
measurement.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence

from sustainml.exceptions import MeasurementError

from .energy_source import MJ_PER_J, EnergySource, MonotonicCounter

__all__ = ["ReplayEnergySource", "TimedReplaySource", "PowerTraceSource"]


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


class TimedReplaySource(EnergySource):
    """Plays back counter readings recorded at known times (Units: s, mJ), on a clock the test drives.

    A read returns the latest recording at or before ``clock()``, like a real counter that moved at
    the recorded instants; reads are therefore repeatable, however many a caller makes (the stage
    tracker reads at stage, training and epoch edges alike). Reading before the first recorded time
    or after the last raises MeasurementError, so a test cannot run past its recording unnoticed.
    """

    def __init__(
        self,
        times_s: Sequence[float],
        readings_mj: Sequence[float],
        *,
        clock: Callable[[], float],
        device: str = "cpu",
        method: str = "fake",
        counter_resolution_s: float = 0.1,
        relative_uncertainty: float = 0.0,
        assumptions: str = "",
    ) -> None:
        if len(times_s) != len(readings_mj) or not times_s:
            raise ValueError(f"need as many times as readings, at least one; got {len(times_s)} and {len(readings_mj)}")
        if any(b < a for a, b in zip(times_s, times_s[1:])):
            raise ValueError("recorded times must not decrease")
        self.device = device
        self.method = method
        self.counter_resolution_s = counter_resolution_s
        self.relative_uncertainty = relative_uncertainty
        self.assumptions = assumptions
        self._times_s = list(times_s)
        self._readings_mj = list(readings_mj)
        self._clock = clock

    def read_energy_mj(self) -> float:
        now_s = self._clock()
        if now_s < self._times_s[0] or now_s > self._times_s[-1]:
            raise MeasurementError(
                f"replay clock at {now_s:g} s is outside the recording ({self._times_s[0]:g} s to {self._times_s[-1]:g} s)")
        return self._readings_mj[bisect.bisect_right(self._times_s, now_s) - 1]


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
