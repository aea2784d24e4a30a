"""CPU package energy from the Linux powercap RAPL counters.

Intel CPUs, and AMD Zen CPUs on kernels whose powercap driver exposes them, publish one cumulative
counter per package under ``/sys/class/powercap/intel-rapl:<package>/energy_uj``. Some Intel client
CPUs publish the same package a second time through MMIO (``intel-rapl-mmio:<package>``); it is
counted once. Sub-domains (``intel-rapl:0:0`` cores, uncore, DRAM) and the platform domain
``psys`` are left out: the first are inside the package, the last contains it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sustainml.exceptions import MeasurementError

from .energy_source import EnergySource, MonotonicCounter

__all__ = ["RaplEnergySource", "RaplDomain", "POWERCAP_ROOT", "RAPL_RELATIVE_UNCERTAINTY"]

log = logging.getLogger(__name__)

POWERCAP_ROOT = Path("/sys/class/powercap")
# Units: s. The counters are updated about every millisecond.
RAPL_COUNTER_RESOLUTION_S = 0.001
# One standard uncertainty, an assumed 10 %: RAPL's modelled/measured package energy tracks external
# meters closely, but it leaves out DRAM (on most parts), the board, fans and the power supply.
RAPL_RELATIVE_UNCERTAINTY = 0.10

_UJ_PER_MJ = 1000.0
# Top-level domain directories, preferred first when one package is exposed twice.
_DOMAIN_GLOBS = ("intel-rapl:*", "intel-rapl-mmio:*")


@dataclass(frozen=True)
class RaplDomain:
    """One package counter: its sysfs directory, its name (``package-0``) and wrap range (Units: µJ)."""

    path: Path
    name: str
    max_energy_range_uj: int

    @property
    def energy_file(self) -> Path:
        return self.path / "energy_uj"


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as e:
        raise MeasurementError(
            f"cannot read {path}: RAPL energy_uj is readable by root only since Linux restricted it "
            "against the Platypus power side channel (CVE-2020-8694); run the hardware node as root, "
            f"or grant read access (sudo chmod o+r {path}), or let it fall back to the declared estimate"
        ) from e
    except (OSError, ValueError) as e:
        raise MeasurementError(f"cannot read a RAPL counter from {path}: {e}") from e


def find_package_domains(root: Path = POWERCAP_ROOT) -> list[RaplDomain]:
    """The package domains under ``root``, each package once, in name order.

    Raises MeasurementError when there are none (no powercap, a VM, a CPU without RAPL) or when a
    counter cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise MeasurementError(f"no RAPL counters: {root} does not exist (a VM, a non-Linux system or no powercap driver)")
    by_name: dict[str, RaplDomain] = {}
    for pattern in _DOMAIN_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.name.count(":") != 1 or not (path / "name").is_file():
                continue  # a sub-domain such as intel-rapl:0:0, or not a domain at all
            name = (path / "name").read_text().strip()
            if not name.startswith("package-"):
                continue  # psys (contains the packages) or dram
            if name in by_name:
                log.debug("RAPL %s: %s duplicates %s, counted once", name, path, by_name[name].path)
                continue
            _read_int(path / "energy_uj")  # fail now, with the clear message, if it is root-only
            by_name[name] = RaplDomain(path, name, _read_int(path / "max_energy_range_uj"))
    if not by_name:
        raise MeasurementError(f"no RAPL package domains under {root}")
    return [by_name[name] for name in sorted(by_name)]


class RaplEnergySource(EnergySource):
    """Energy of every CPU package of this machine, summed (Units: mJ since the source was created).

    ``root`` is the powercap directory; tests point it at a fake sysfs tree. Each package's counter
    wraps at its ``max_energy_range_uj`` (a few minutes at full power on large parts), which is handled
    as long as the counter is read at least once per wrap period.
    """

    method = "rapl"
    counter_resolution_s = RAPL_COUNTER_RESOLUTION_S
    relative_uncertainty = RAPL_RELATIVE_UNCERTAINTY

    def __init__(self, root: Path | str = POWERCAP_ROOT, *, device: str = "cpu") -> None:
        self.device = device
        self.domains = find_package_domains(Path(root))
        self._counters = {d.name: MonotonicCounter(max_range=d.max_energy_range_uj) for d in self.domains}
        self.read_energy_mj()  # prime every counter so the total starts at 0

    def read_energy_mj(self) -> float:
        total_uj = 0.0
        for domain in self.domains:
            total_uj += self._counters[domain.name].update(_read_int(domain.energy_file))
        return total_uj / _UJ_PER_MJ
