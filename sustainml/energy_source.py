"""One small interface for every energy counter, and a two-verb meter on top of it.

Each backend (NVML for NVIDIA GPUs, RAPL for CPU packages, a declared estimate where neither exists)
is an :class:`EnergySource` in its own module; :func:`~.energy.make_energy_source` picks one per
device. Everything above this layer sees cumulative millijoules and never a vendor library.

The shape follows Zeus (``zeus/device/gpu/common.py`` and ``zeus/monitor/energy.py``).
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sustainml.exceptions import MeasurementError

__all__ = [
    "EnergySource",
    "EnergyMeter",
    "EnergyWindow",
    "MonotonicCounter",
    "window_uncertainty_j",
    "MJ_PER_J",
    "STALL_AFTER_S",
]

MJ_PER_J = 1000.0
# A real counter under any load advances within this long; a window this long (and at least five
# update periods) without any increase means the counter is stuck, not that the device drew 0 W.
STALL_AFTER_S = 0.5


class EnergySource(abc.ABC):
    """A cumulative energy counter of one device.

    Subclasses set these attributes (as class or instance attributes):

    - ``method``: how the energy is obtained: ``"nvml"``, ``"rapl"`` or ``"estimate"``.
    - ``device``: the torch device it covers, ``"cpu"`` or ``"cuda:N"``.
    - ``counter_resolution_s``: how often the counter's value changes (Units: s). A window must
      span many updates before its energy means anything.
    - ``relative_uncertainty``: one standard uncertainty of the counter's energy as a fraction of
      the energy read (calibration, what the counter leaves out). Each backend documents its figure.
    - ``assumptions``: what an estimate assumed (TDP, its source); ``""`` for a hardware counter.
    """

    method: str
    device: str
    counter_resolution_s: float
    relative_uncertainty: float
    assumptions: str = ""

    @abc.abstractmethod
    def read_energy_mj(self) -> float:
        """The counter now: energy since an arbitrary origin, never decreasing. Units: mJ.

        Backends whose hardware counter wraps or resets hide that here (see
        :class:`MonotonicCounter`), so a later reading minus an earlier one is always the energy
        drawn in between.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, method={self.method!r})"


class MonotonicCounter:
    """Turns a raw hardware counter that wraps or resets into a never-decreasing total.

    ``max_range`` is the value at which the raw counter wraps back to 0 (RAPL's
    ``max_energy_range_uj``). With ``max_range=None`` the counter does not wrap (NVML's 64-bit
    millijoules) and a decrease means it was reset (driver reload): the raw value then counts from 0.
    Readings must come more often than one wrap period, or whole wraps are lost unseen.
    """

    def __init__(self, max_range: float | None = None) -> None:
        if max_range is not None and max_range <= 0:
            raise ValueError(f"max_range must be positive or None, got {max_range}")
        self.max_range = max_range
        self._last_raw: float | None = None
        self._total = 0.0

    def update(self, raw: float) -> float:
        """Feed one raw reading; return the total counted since the first reading (raw units)."""
        if self._last_raw is not None:
            delta = raw - self._last_raw
            if delta < 0:
                delta = raw + self.max_range - self._last_raw if self.max_range is not None else raw
            self._total += delta
        self._last_raw = raw
        return self._total


@dataclass(frozen=True)
class EnergyWindow:
    """The energy one device drew over one metered window.

    ``uncertainty_j`` is one standard uncertainty (Units: J):
    ``sqrt((relative_uncertainty * energy_j) ** 2 + (energy_j * counter_resolution_s / duration_s) ** 2)``,
    the source's calibration term and the quantisation of a counter that only moves every
    ``counter_resolution_s`` (the window's edges are uncertain by about one update).
    """

    energy_j: float
    duration_s: float
    method: str
    uncertainty_j: float
    assumptions: str

    @property
    def power_w(self) -> float:
        """Mean power over the window. Units: W."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0


def window_uncertainty_j(energy_j: float, duration_s: float, source: EnergySource) -> float:
    """One standard uncertainty of ``energy_j`` read from ``source`` over ``duration_s`` (see EnergyWindow)."""
    calibration = source.relative_uncertainty * energy_j
    quantisation = energy_j * source.counter_resolution_s / duration_s if duration_s > 0 else 0.0
    return math.hypot(calibration, quantisation)


class EnergyMeter:
    """Measures the energy of code between two calls: ``begin_window()`` and ``end_window()``.

    Windows are keyed by an optional name so they may overlap. ``clock`` (a monotonic clock in
    seconds) is injectable so tests can replay recorded counters deterministically.
    """

    def __init__(self, source: EnergySource, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source = source
        self._clock = clock
        self._open: dict[str, tuple[float, float]] = {}
        # (time in s, counter in mJ) of the meter's first and latest readings: the device's mean
        # power over the meter's life bounds what a window shorter than one update may have missed.
        self._first: tuple[float, float] | None = None
        self._latest: tuple[float, float] | None = None

    def read(self, *, counter_first: bool = False) -> tuple[float, float]:
        """Read the clock and the counter (Units: s, mJ), and remember the reading for the mean power.

        A window begins clock first and ends counter first, so its duration spans both counter
        reads (a counter that integrates up to the moment it is read is never given a window
        shorter than what it counted). Call it once before any window to start the mean-power span.
        """
        if counter_first:
            energy_mj = self.source.read_energy_mj()
            reading = (self._clock(), energy_mj)
        else:
            now_s = self._clock()
            reading = (now_s, self.source.read_energy_mj())
        if self._first is None:
            self._first = reading
        self._latest = reading
        return reading

    def begin_window(self, name: str = "") -> None:
        """Start window ``name``: note the time and the counter."""
        if name in self._open:
            raise MeasurementError(f"energy window {name!r} is already open; end it before beginning it again")
        self._open[name] = self.read()

    def end_window(self, name: str = "", *, allow_short: bool = False) -> EnergyWindow:
        """End window ``name`` and return what was drawn since ``begin_window(name)``.

        Raises MeasurementError when the window is shorter than one counter update (its energy would
        be meaningless), when the counter went backwards, or when it did not move at all over a
        window long enough that a working counter must have advanced.

        ``allow_short=True`` returns a window shorter than one counter update anyway, for callers
        that must account for every piece of work however short (the stage tracker). The counter
        may have moved once or not at all inside such a window, so its quantisation term is the
        energy of one whole update at the device's mean power over this meter's life (not the
        energy read scaled by resolution / duration, which would call one 5 J step ± 2,500 J), and
        its ``assumptions`` say so.
        """
        try:
            start_s, start_mj = self._open.pop(name)
        except KeyError:
            raise MeasurementError(f"energy window {name!r} was never begun; call begin_window({name!r}) first") from None
        end_s, end_mj = self.read(counter_first=True)
        duration_s = end_s - start_s
        src = self.source
        if duration_s < src.counter_resolution_s and not allow_short:
            raise MeasurementError(
                f"energy window {name!r} on {src.device} lasted {duration_s:.4f} s, shorter than the "
                f"{src.method} counter's update period of {src.counter_resolution_s} s; "
                "repeat the work until the window spans many updates"
            )
        energy_j = (end_mj - start_mj) / MJ_PER_J
        if energy_j < 0:
            raise MeasurementError(
                f"the {src.method} counter of {src.device} went backwards by {-energy_j:.3f} J; "
                f"{type(src).__name__}.read_energy_mj must return a monotonic total"
            )
        if energy_j == 0 and duration_s >= max(STALL_AFTER_S, 5 * src.counter_resolution_s):
            raise MeasurementError(
                f"the {src.method} counter of {src.device} did not advance over {duration_s:.2f} s "
                f"(it should update every {src.counter_resolution_s} s); the counter is stuck"
            )
        assumptions = src.assumptions
        if duration_s < src.counter_resolution_s:
            # The power over the meter's life when it spans an update, else this window's own.
            power_w = self.mean_power_w() or (energy_j / duration_s if duration_s > 0 else 0.0)
            one_update_j = power_w * src.counter_resolution_s
            uncertainty_j = math.hypot(src.relative_uncertainty * energy_j, one_update_j)
            assumptions = "; ".join(part for part in (
                f"{duration_s * 1000:.3g} ms is shorter than the {src.method} counter's update period "
                f"({src.counter_resolution_s * 1000:g} ms): uncertainty is one update's energy at the mean power",
                assumptions) if part)
        else:
            uncertainty_j = window_uncertainty_j(energy_j, duration_s, src)
        return EnergyWindow(
            energy_j=energy_j,
            duration_s=duration_s,
            method=src.method,
            uncertainty_j=uncertainty_j,
            assumptions=assumptions,
        )

    def mean_power_w(self) -> float:
        """The device's mean power between this meter's first and latest readings (Units: W); 0 while
        they are less than one counter update apart (too close to say anything)."""
        if self._first is None or self._latest is None:
            return 0.0
        span_s = self._latest[0] - self._first[0]
        if span_s < self.source.counter_resolution_s:
            return 0.0
        return max(0.0, (self._latest[1] - self._first[1]) / MJ_PER_J / span_s)
