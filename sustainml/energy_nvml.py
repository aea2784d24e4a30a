"""NVIDIA GPU energy from NVML: the total-energy counter (Volta and newer), else sampled power.

GPUs older than Volta have no total-energy counter (NVML answers NOT_SUPPORTED); their power is
sampled in a background thread and integrated into the same cumulative millijoules, and the source
says so in its ``assumptions`` and ``energy_reading``.

This is the only module that imports pynvml, and it does so lazily, on first use, so that machines
without the NVIDIA library import the rest of the node freely. NVML errors are translated into
:class:`~sustainml.exceptions.MeasurementError` here, at the boundary, with a hint on what to do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from sustainml.exceptions import MeasurementError

from .energy_source import EnergySource, MonotonicCounter

__all__ = [
    "NvmlEnergySource",
    "PowerIntegrator",
    "NVML_COUNTER_RESOLUTION_S",
    "NVML_RELATIVE_UNCERTAINTY",
    "NVML_POWER_SAMPLE_PERIOD_S",
    "NVML_POWER_UPDATE_PERIOD_S",
    "NVML_SAMPLED_RELATIVE_UNCERTAINTY",
    "TOTAL_ENERGY_COUNTER",
    "SAMPLED_POWER",
]

log = logging.getLogger(__name__)

# On an H100 the counter was seen to advance about every 100 ms; older boards update no faster.
NVML_COUNTER_RESOLUTION_S = 0.1
# One standard uncertainty of the board's energy counter: an assumed 5 %. nvidia-smi documents its
# board power reading as accurate to about +/-5 W, i.e. 1-4 % between an H100's ~125 W idle and its
# 700 W limit; 5 % leaves room for older boards whose sensors are coarser.
NVML_RELATIVE_UNCERTAINTY = 0.05

# The fallback for GPUs without the total-energy counter. Units: s.
NVML_POWER_SAMPLE_PERIOD_S = 0.01
# An assumption, not a measured figure: how often such a board refreshes its power reading. Samples
# between refreshes repeat the last value, so nothing shorter than this is resolved.
NVML_POWER_UPDATE_PERIOD_S = 0.1
# One standard uncertainty of sampled-and-integrated power, an assumed 10 %: the board sensor's own
# +/-5 W (as for the counter), plus what sampling cannot see: power swings shorter than the ~0.1 s
# refresh of the reading, and on some boards a reading that is itself a moving average that lags.
NVML_SAMPLED_RELATIVE_UNCERTAINTY = 0.10

# What ``NvmlEnergySource.energy_reading`` says was used.
TOTAL_ENERGY_COUNTER = "total-energy counter"
SAMPLED_POWER = "sampled power"

# What to do about an NVML error, by the name of its pynvml error constant.
_HINTS = {
    "NVML_ERROR_NOT_SUPPORTED": "this GPU does not offer it: the total-energy counter needs a Volta (2017) or "
    "newer GPU, and some consumer boards report no power at all",
    "NVML_ERROR_NO_PERMISSION": "this user may not query the GPU; check the permissions on /dev/nvidia*",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA driver is not loaded on this machine",
    "NVML_ERROR_LIBRARY_NOT_FOUND": "libnvidia-ml.so was not found: install the NVIDIA driver",
    "NVML_ERROR_NOT_FOUND": "no such GPU: check CUDA_VISIBLE_DEVICES and the device index",
    "NVML_ERROR_GPU_IS_LOST": "the GPU fell off the bus; it needs a reset by an administrator",
}


def _pynvml() -> ModuleType:
    """Import pynvml on first use (package nvidia-ml-py)."""
    try:
        import pynvml
    except ImportError as e:
        raise MeasurementError("NVML is not installed; install it with `pip install nvidia-ml-py`") from e
    return pynvml


@contextmanager
def _nvml_errors(what: str) -> Iterator[ModuleType]:
    """Run NVML calls, turning any NVMLError into a MeasurementError that says ``what`` failed and why."""
    pynvml = _pynvml()
    try:
        yield pynvml
    except pynvml.NVMLError as e:
        hint = next(
            (text for name, text in _HINTS.items() if getattr(e, "value", None) == getattr(pynvml, name, object())),
            "",
        )
        raise MeasurementError(f"NVML could not {what}: {e}" + (f" ({hint})" if hint else "")) from e


def _visible_device(cuda_index: int) -> str | int:
    """The NVML index or UUID that torch's ``cuda:<cuda_index>`` refers to, honouring CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible:
        return cuda_index
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if cuda_index >= len(entries):
        raise MeasurementError(
            f"cuda:{cuda_index} is not visible: CUDA_VISIBLE_DEVICES={visible!r} exposes {len(entries)} GPU(s)"
        )
    entry = entries[cuda_index]
    return int(entry) if entry.isdigit() else entry


def _as_str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_not_supported(error: MeasurementError) -> bool:
    """Whether ``error`` was NVML's NOT_SUPPORTED (the function does not exist on this GPU)."""
    pynvml = _pynvml()
    return getattr(error.__cause__, "value", None) == pynvml.NVML_ERROR_NOT_SUPPORTED


class PowerIntegrator:
    """A cumulative energy counter (Units: mJ) made by sampling a power reading and integrating it.

    ``read_power_mw`` returns the power now (Units: mW). The first :meth:`energy_mj` takes the first
    sample and starts a daemon thread that samples every ``period_s``; each later call samples once
    more, so a window's edges are where it was read, not up to one period earlier. Between samples
    the power is taken to change linearly (trapezoid rule). :meth:`stop` ends the thread.
    An error raised by ``read_power_mw`` in the thread is raised again by the next :meth:`energy_mj`.
    """

    def __init__(
        self,
        read_power_mw: Callable[[], float],
        *,
        period_s: float = NVML_POWER_SAMPLE_PERIOD_S,
        clock: Callable[[], float] = time.perf_counter,
        name: str = "power sampler",
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.period_s = period_s
        self._read_power_mw = read_power_mw
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last: tuple[float, float] | None = None  # (time in s, power in mW) of the latest sample
        self._total_mj = 0.0
        self.samples = 0

    def _sample(self) -> None:
        with self._lock:
            power_mw = float(self._read_power_mw())
            now_s = self._clock()
            if self._last is not None:
                last_s, last_mw = self._last
                self._total_mj += (last_mw + power_mw) / 2.0 * (now_s - last_s)  # mW × s = mJ
            self._last = (now_s, power_mw)
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._sample()
            except Exception as e:  # kept for the reader's thread, which can report it
                self._error = e
                return

    def energy_mj(self) -> float:
        """Energy integrated since the first call. Units: mJ."""
        if self._error is not None:
            raise self._error
        self._sample()
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            return self._total_mj

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop sampling (idempotent); the total stays readable but no longer follows the power."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)


class NvmlEnergySource(EnergySource):
    """Energy of one NVIDIA GPU from NVML (Units: mJ).

    Preferred: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta and newer). Its
    counter is 64-bit and does not wrap in practice; a decrease (driver reload) is treated as a reset.
    Where NVML answers NOT_SUPPORTED (pre-Volta boards), ``nvmlDeviceGetPowerUsage`` is sampled every
    ``NVML_POWER_SAMPLE_PERIOD_S`` and integrated (:class:`PowerIntegrator`), with a larger
    uncertainty and the board's assumed power refresh period as resolution. ``energy_reading`` names
    the one in use (``TOTAL_ENERGY_COUNTER`` or ``SAMPLED_POWER``) and ``assumptions`` says it in words.
    :meth:`close` stops the sampling thread (it is a daemon, and also stops when the source is collected).

    ``cuda_index`` is torch's index (``cuda:N``). Pass ``uuid`` (NVML form, ``"GPU-…"``) when torch
    knows it: it names the same board whatever CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER say.
    Without it, the index is mapped through CUDA_VISIBLE_DEVICES. Whole-GPU counters are refused
    under MIG, where they would mix other tenants' work in.
    """

    method = "nvml"
    counter_resolution_s = NVML_COUNTER_RESOLUTION_S
    relative_uncertainty = NVML_RELATIVE_UNCERTAINTY
    energy_reading = TOTAL_ENERGY_COUNTER

    def __init__(self, cuda_index: int = 0, *, uuid: str | None = None) -> None:
        self.device = f"cuda:{cuda_index}"
        self._counter = MonotonicCounter(max_range=None)
        self._integrator: PowerIntegrator | None = None
        with _nvml_errors("initialise"):
            _pynvml().nvmlInit()
        self._handle = self._find_handle(cuda_index, uuid)
        with _nvml_errors(f"read the name of {self.device}") as pynvml:
            self.name = _as_str(pynvml.nvmlDeviceGetName(self._handle))
        self._refuse_mig()
        try:
            with _nvml_errors(f"read the total-energy counter of {self.device} ({self.name})") as pynvml:
                self._counter.update(pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except MeasurementError as e:
            if not _is_not_supported(e):
                raise
            self._fall_back_to_sampled_power()
        self.power_limit_w = self._read_power_limit_w()

    def _fall_back_to_sampled_power(self) -> None:
        """Switch to sampling ``nvmlDeviceGetPowerUsage``; raise MeasurementError if that is missing too."""
        handle, device = self._handle, self.device
        what = f"read the power of {device} ({self.name}), which has no total-energy counter"

        def read_power_mw() -> float:
            # A closure over the handle, not the source, so an unclosed source can still be collected.
            with _nvml_errors(what) as pynvml:
                return float(pynvml.nvmlDeviceGetPowerUsage(handle))

        read_power_mw()  # fail now, with the hint, if this board reports no power either
        self._integrator = PowerIntegrator(
            read_power_mw, period_s=NVML_POWER_SAMPLE_PERIOD_S, name=f"nvml-power-{device}"
        )
        self._stop_sampling = weakref.finalize(self, self._integrator.stop)
        self.energy_reading = SAMPLED_POWER
        self.counter_resolution_s = NVML_POWER_UPDATE_PERIOD_S
        self.relative_uncertainty = NVML_SAMPLED_RELATIVE_UNCERTAINTY
        self.assumptions = (
            f"NVML power sampled every {NVML_POWER_SAMPLE_PERIOD_S * 1000:g} ms and integrated (no total-energy "
            f"counter on this GPU, {self.name}); its power reading assumed to refresh every "
            f"{NVML_POWER_UPDATE_PERIOD_S:g} s; uncertainty {NVML_SAMPLED_RELATIVE_UNCERTAINTY:.0%}"
        )
        log.warning("%s (%s) has no NVML total-energy counter: %s", device, self.name, self.assumptions)

    def close(self) -> None:
        """Stop the power-sampling thread, if any (idempotent)."""
        if self._integrator is not None:
            self._stop_sampling()
    def _find_handle(self, cuda_index: int, uuid: str | None) -> object:
        pynvml = _pynvml()
        if uuid:
            try:
                with _nvml_errors(f"find the GPU with UUID {uuid}"):
                    return pynvml.nvmlDeviceGetHandleByUUID(uuid)
            except MeasurementError as e:
                log.warning("%s; falling back to the index of cuda:%d", e, cuda_index)
        target = _visible_device(cuda_index)
        if isinstance(target, int):
            with _nvml_errors(f"open GPU {target} (torch's cuda:{cuda_index})"):
                return pynvml.nvmlDeviceGetHandleByIndex(target)
        with _nvml_errors(f"find the GPU {target!r} named in CUDA_VISIBLE_DEVICES"):
            return pynvml.nvmlDeviceGetHandleByUUID(target)

    def _refuse_mig(self) -> None:
        pynvml = _pynvml()
        try:
            current, _pending = pynvml.nvmlDeviceGetMigMode(self._handle)
        except pynvml.NVMLError:
            return  # no MIG on this board (pre-Ampere or consumer GPU)
        if current == getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1):
            raise MeasurementError(
                f"{self.device} ({self.name}) is in MIG mode: its energy counter covers the whole GPU, "
                "not one instance; measure on a GPU with MIG disabled (nvidia-smi -mig 0)"
            )

    def _read_power_limit_w(self) -> float:
        """The enforced board power limit (Units: W); 0 when NVML does not say."""
        pynvml = _pynvml()
        try:
            return pynvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1000.0  # NVML reports mW
        except pynvml.NVMLError:
            return 0.0

    def read_energy_mj(self) -> float:
        if self._integrator is not None:
            return self._integrator.energy_mj()
        with _nvml_errors(f"read the total-energy counter of {self.device}") as pynvml:
            raw_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return float(self._counter.update(raw_mj))
