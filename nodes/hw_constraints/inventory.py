"""What hardware this machine offers the pipeline, and which of it the user allows.

The inventory lists the CPU (always) and each CUDA GPU that torch can run on, each with the energy
method the hardware node would use for it, so a front end can say up front which figures will be
measured and which estimated.
"""

from __future__ import annotations

import logging
import platform
import socket
from collections.abc import Callable, Sequence

import psutil
import torch

from sustainml.energy import make_energy_source, parse_device
from sustainml.energy_estimate import read_cpu_model
from sustainml.energy_source import EnergySource
from sustainml.exceptions import MeasurementError
from sustainml.msg import DeviceInfo, HardwareInventory
from sustainml.units import bytes_to_mb

__all__ = ["read_inventory", "allowed_devices", "NO_ENERGY_METHOD"]

log = logging.getLogger(__name__)

# DeviceInfo.energy_method of a device whose energy cannot be obtained at all (a GPU without NVML energy).
NO_ENERGY_METHOD = ""


def _software() -> str:
    parts = [f"torch {torch.__version__}", f"python {platform.python_version()}"]
    if torch.version.cuda:
        parts.append(f"cuda {torch.version.cuda}")
    return ", ".join(parts)


def _probe(device: str, factory: Callable[[str], EnergySource]) -> tuple[str, EnergySource | None]:
    try:
        source = factory(device)
    except MeasurementError as e:
        log.warning("%s: no energy source (%s)", device, e)
        return NO_ENERGY_METHOD, None
    return source.method, source


def _gpu_devices(factory: Callable[[str], EnergySource]) -> list[DeviceInfo]:
    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        method, source = _probe(f"cuda:{index}", factory)
        devices.append(
            DeviceInfo(
                id=f"cuda:{index}",
                name=props.name,
                cores=props.multi_processor_count,  # streaming multiprocessors
                memory_mb=bytes_to_mb(props.total_memory),
                power_limit_w=float(getattr(source, "power_limit_w", 0.0)),
                energy_method=method,
            )
        )
    return devices


def read_inventory(
    host: str | None = None, *, energy_source_factory: Callable[[str], EnergySource] = make_energy_source
) -> HardwareInventory:
    """This machine's CPU, RAM and CUDA GPUs, each with the energy method it would be measured with.

    ``host`` defaults to the host name; ``energy_source_factory`` is the probe (tests pass a fake).
    """
    cpu_model = read_cpu_model()
    cores = psutil.cpu_count(logical=True) or 1
    ram_mb = bytes_to_mb(psutil.virtual_memory().total)
    cpu_method, _ = _probe("cpu", energy_source_factory)
    cpu = DeviceInfo(id="cpu", name=cpu_model, cores=cores, memory_mb=ram_mb, power_limit_w=0.0, energy_method=cpu_method)
    return HardwareInventory(
        host=host or socket.gethostname(),
        cpu_model=cpu_model,
        cpu_cores=cores,
        ram_mb=ram_mb,
        devices=[cpu, *_gpu_devices(energy_source_factory)],
        software=_software(),
    )


def _allows(entry: str, device_id: str, host: str) -> bool:
    """Whether one allowed_hardware entry admits ``device_id`` on ``host``."""
    if entry == host.lower():
        return True
    try:
        kind, index = parse_device(entry)
    except ValueError:
        return False  # another host's name: admits nothing here
    if entry in ("cpu", "cuda"):
        return device_id.startswith(kind)
    return device_id == f"{kind}:{index}"


def allowed_devices(inventory: HardwareInventory, allowed: Sequence[str]) -> tuple[list[str], list[str]]:
    """Apply the user's ``allowed_hardware`` to this machine's devices.

    Entries are "cpu", "cuda" (every GPU), "cuda:N" or host names (every device of that host);
    an empty list allows everything. Devices without any energy source are excluded too, since
    nothing honest could be reported for them. Returns (device ids kept, "device: why excluded").
    """
    wanted = [entry.strip().lower() for entry in allowed if entry.strip()]
    kept: list[str] = []
    excluded: list[str] = []
    for device in inventory.devices:
        if wanted and not any(_allows(entry, device.id, inventory.host) for entry in wanted):
            excluded.append(f"{device.id}: not in allowed_hardware {list(allowed)} (host {inventory.host})")
        elif device.energy_method == NO_ENERGY_METHOD:
            counter = "NVML energy counter" if device.id.startswith("cuda") else "energy source"
            excluded.append(f"{device.id}: its energy cannot be measured (no {counter})")
        else:
            kept.append(device.id)
    return kept, excluded
