"""CPU package energy from the Linux powercap RAPL counters.

Intel CPUs, and AMD Zen CPUs on kernels whose powercap driver exposes them, publish one cumulative
counter per package under ``/sys/class/powercap/intel-rapl:<package>/energy_uj``. Some Intel client
CPUs publish the same package a second time through MMIO (``intel-rapl-mmio:<package>``); it is
counted once. Sub-domains (``intel-rapl:0:0`` cores, uncore, DRAM) and the platform domain
``psys`` are left out: the first are inside the package, the last contains it.

Some multi-die AMD parts publish one ``package-N`` domain per die that all read the same socket
counter; summing them counts the socket once per die (CodeCarbon reported 137 W for 125 W at the
plug). Domains whose readings are identical at two reads spaced apart, and advanced in between,
are taken as one counter, counted once, and the source's ``assumptions`` say so.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sustainml.exceptions import MeasurementError

from .energy_source import EnergySource, MonotonicCounter

__all__ = [
    "RaplEnergySource",
    "RaplDomain",
    "find_package_domains",
    "find_mirrored_domains",
    "POWERCAP_ROOT",
    "RAPL_RELATIVE_UNCERTAINTY",
    "MIRROR_PROBE_S",
]

log = logging.getLogger(__name__)

POWERCAP_ROOT = Path("/sys/class/powercap")
# Units: s. The counters are updated about every millisecond.
RAPL_COUNTER_RESOLUTION_S = 0.001
# One standard uncertainty, an assumed 10 %: RAPL's modelled/measured package energy tracks external
# meters closely, but it leaves out DRAM (on most parts), the board, fans and the power supply.
RAPL_RELATIVE_UNCERTAINTY = 0.10
# Units: s. How far apart the two reads that detect mirrored domains are: many counter updates, so a
# working counter has advanced, and short enough not to slow start-up.
MIRROR_PROBE_S = 0.02
# A snapshot of all domains is retaken when a counter moved while it was being read (at most this often),
# so that two mirrors are never compared across one of their updates.
_STEADY_SNAPSHOT_TRIES = 5

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


def _steady_snapshot(domains: Sequence[RaplDomain]) -> list[int]:
    """Every domain's ``energy_uj``, read until two passes in a row agree (or the tries run out)."""
    snapshot = [_read_int(d.energy_file) for d in domains]
    for _ in range(_STEADY_SNAPSHOT_TRIES):
        again = [_read_int(d.energy_file) for d in domains]
        if again == snapshot:
            break
        snapshot = again
    return snapshot


def find_mirrored_domains(
    domains: Sequence[RaplDomain],
    *,
    probe_s: float = MIRROR_PROBE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> list[list[RaplDomain]]:
    """``domains`` grouped by the counter they read: each group is one counter, in name order.

    Two domains read one counter when their ``energy_uj`` is identical at two reads ``probe_s``
    apart and advanced in between; distinct counters (even idle ones) stay in groups of their own.
    ``sleep`` waits between the reads (tests pass one that advances a fake sysfs tree).
    """
    if len(domains) < 2:
        return [[d] for d in domains]
    before = _steady_snapshot(domains)
    sleep(probe_s)
    after = _steady_snapshot(domains)
    groups: list[list[int]] = []
    for i in range(len(domains)):
        for group in groups:
            first = group[0]
            if before[i] == before[first] and after[i] == after[first] and after[i] != before[i]:
                group.append(i)
                break
        else:
            groups.append([i])
    return [[domains[i] for i in group] for group in groups]


def _names_span(names: Sequence[str]) -> str:
    """``package-0..3`` for consecutive package numbers, else the names joined by commas."""
    matches = [re.fullmatch(r"package-(\d+)", n) for n in names]
    ints = [int(m.group(1)) for m in matches if m is not None]
    if len(ints) == len(names) and ints == list(range(ints[0], ints[0] + len(ints))):
        return f"package-{ints[0]}..{ints[-1]}"
    return ", ".join(names)


class RaplEnergySource(EnergySource):
    """Energy of every CPU package of this machine, summed (Units: mJ since the source was created).

    ``root`` is the powercap directory; tests point it at a fake sysfs tree. Each package's counter
    wraps at its ``max_energy_range_uj`` (a few minutes at full power on large parts), which is handled
    as long as the counter is read at least once per wrap period. Package domains that mirror one
    counter (multi-die AMD parts) are detected at start-up (see :func:`find_mirrored_domains`, which
    ``mirror_probe_s`` and ``sleep`` are passed to) and counted once: ``domains`` holds one domain per
    counter, ``mirrors`` the names of the domains each stands for, and ``assumptions`` says so.
    """

    method = "rapl"
    counter_resolution_s = RAPL_COUNTER_RESOLUTION_S
    relative_uncertainty = RAPL_RELATIVE_UNCERTAINTY

    def __init__(
        self,
        root: Path | str = POWERCAP_ROOT,
        *,
        device: str = "cpu",
        mirror_probe_s: float = MIRROR_PROBE_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.device = device
        groups = find_mirrored_domains(find_package_domains(Path(root)), probe_s=mirror_probe_s, sleep=sleep)
        self.domains = [group[0] for group in groups]
        self.mirrors = {group[0].name: [d.name for d in group] for group in groups if len(group) > 1}
        self.assumptions = "; ".join(
            f"{_names_span(names)} mirror one counter; counted once" for names in self.mirrors.values()
        )
        if self.assumptions:
            log.info("RAPL: %s", self.assumptions)
        self._counters = {d.name: MonotonicCounter(max_range=d.max_energy_range_uj) for d in self.domains}
        self.read_energy_mj()  # prime every counter so the total starts at 0

    def read_energy_mj(self) -> float:
        total_uj = 0.0
        for domain in self.domains:
            total_uj += self._counters[domain.name].update(_read_int(domain.energy_file))
        return total_uj / _UJ_PER_MJ
