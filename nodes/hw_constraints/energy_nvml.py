"""NVIDIA GPU energy from NVML's total-energy counter (Volta and newer).

This is the only module that imports pynvml, and it does so lazily, on first use, so that machines
without the NVIDIA library import the rest of the node freely. NVML errors are translated into
:class:`~sustainml.exceptions.MeasurementError` here, at the boundary, with a hint on what to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from sustainml.exceptions import MeasurementError

from .energy_source import EnergySource, MonotonicCounter

__all__ = ["NvmlEnergySource", "NVML_COUNTER_RESOLUTION_S", "NVML_RELATIVE_UNCERTAINTY"]

log = logging.getLogger(__name__)

# On an H100 the counter was seen to advance about every 100 ms; older boards update no faster.
NVML_COUNTER_RESOLUTION_S = 0.1
# One standard uncertainty of the board's energy counter: an assumed 5 %. nvidia-smi documents its
# board power reading as accurate to about +/-5 W, i.e. 1-4 % between an H100's ~125 W idle and its
# 700 W limit; 5 % leaves room for older boards whose sensors are coarser.
NVML_RELATIVE_UNCERTAINTY = 0.05

# What to do about an NVML error, by the name of its pynvml error constant.
_HINTS = {
    "NVML_ERROR_NOT_SUPPORTED": "the total-energy counter needs a Volta (2017) or newer data-centre GPU",
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


class NvmlEnergySource(EnergySource):
    """Energy of one NVIDIA GPU from ``nvmlDeviceGetTotalEnergyConsumption`` (Units: mJ since driver load).

    ``cuda_index`` is torch's index (``cuda:N``). Pass ``uuid`` (NVML form, ``"GPU-…"``) when torch
    knows it: it names the same board whatever CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER say.
    Without it, the index is mapped through CUDA_VISIBLE_DEVICES.

    The counter is 64-bit and does not wrap in practice; a decrease (driver reload) is treated as a
    reset. Whole-GPU counters are refused under MIG, where they would mix other tenants' work in.
    """

    method = "nvml"
    counter_resolution_s = NVML_COUNTER_RESOLUTION_S
    relative_uncertainty = NVML_RELATIVE_UNCERTAINTY

    def __init__(self, cuda_index: int = 0, *, uuid: str | None = None) -> None:
        self.device = f"cuda:{cuda_index}"
        self._counter = MonotonicCounter(max_range=None)
        with _nvml_errors("initialise"):
            _pynvml().nvmlInit()
        self._handle = self._find_handle(cuda_index, uuid)
        with _nvml_errors(f"read the name of {self.device}") as pynvml:
            self.name = _as_str(pynvml.nvmlDeviceGetName(self._handle))
        self._refuse_mig()
        with _nvml_errors(f"read the total-energy counter of {self.device} ({self.name})") as pynvml:
            self._counter.update(pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        self.power_limit_w = self._read_power_limit_w()

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
        with _nvml_errors(f"read the total-energy counter of {self.device}") as pynvml:
            raw_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return float(self._counter.update(raw_mj))
