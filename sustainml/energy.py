"""Pick the energy source of a device once: probe the best counter, fall back to what is left.

``cuda:N`` -> NVML: its total-energy counter, or on pre-Volta boards its power sampled and integrated
(said in the source's ``assumptions``); no estimate: a GPU whose energy NVML cannot give cannot be
measured honestly. ``cpu`` -> the RAPL package counters if this process can read them (mirrored dies
counted once, said in ``assumptions``), else the declared estimate of :mod:`.energy_estimate`. The
choice and its reason are logged.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from sustainml.exceptions import MeasurementError

from .energy_estimate import EstimateEnergySource
from .energy_nvml import NvmlEnergySource
from .energy_rapl import POWERCAP_ROOT, RaplEnergySource
from .energy_source import EnergySource

__all__ = ["make_energy_source", "parse_device"]

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(device: str) -> tuple[str, int]:
    """Split a torch device string into kind and index: ``"cuda:1"`` -> ``("cuda", 1)``, ``"cpu"`` -> ``("cpu", 0)``."""
    match = _DEVICE.match(device.strip().lower())
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise ValueError(f"device {device!r} is not supported; expected 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...)")
    return match.group(1), int(match.group(2) or 0)


def _torch_nvml_uuid(cuda_index: int) -> str | None:
    """The NVML UUID ("GPU-…") of torch's cuda:<cuda_index>, or None when torch cannot say."""
    try:
        import torch

        if not torch.cuda.is_available() or cuda_index >= torch.cuda.device_count():
            return None
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
    except (ImportError, RuntimeError, AttributeError, AssertionError):
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def make_energy_source(device: str, *, powercap_root: Path | str = POWERCAP_ROOT) -> EnergySource:
    """The energy source for ``device`` ("cpu", "cuda" or "cuda:N").

    Raises MeasurementError for a GPU whose NVML energy counter is unavailable, ValueError for a
    device string of another form. ``powercap_root`` lets tests point the RAPL probe elsewhere.
    """
    kind, index = parse_device(device)
    if kind == "cuda":
        try:
            source: EnergySource = NvmlEnergySource(index, uuid=_torch_nvml_uuid(index))
        except MeasurementError as e:
            raise MeasurementError(f"cannot measure the energy of {device}: {e}") from e
        log.info(
            "%s energy: NVML %s of %s%s",
            source.device,
            getattr(source, "energy_reading", "total-energy counter"),
            getattr(source, "name", "the GPU"),
            f" ({source.assumptions})" if source.assumptions else "",
        )
        return source
    try:
        source = RaplEnergySource(powercap_root)
    except MeasurementError as e:
        source = EstimateEnergySource()
        log.info("cpu energy: declared estimate, because RAPL is not usable (%s); %s", e, source.assumptions)
        return source
    log.info(
        "cpu energy: RAPL counters %s%s",
        ", ".join(d.name for d in source.domains),
        f" ({source.assumptions})" if source.assumptions else "",
    )
    return source
