"""A declared CPU energy estimate for machines without any energy counter. Never a measurement.

Model: ``power_w = tdp_w * utilisation + idle_floor_w``, where ``utilisation`` is this process's
share of the machine's logical cores since the previous reading (CPU time / (wall time × logical
cores), from psutil) and ``idle_floor_w = IDLE_FLOOR_FRACTION * tdp_w`` (CodeCarbon's floor of 10 %
of TDP). The TDP comes from CodeCarbon's bundled CPU table, matched to the model name in
/proc/cpuinfo, times the number of sockets; an unknown CPU gets ``DEFAULT_W_PER_CORE`` per logical
core. The ``assumptions`` string says which TDP was used and where it came from, so every figure
built on it can say so too.

Known bias: a VM that sees a few vCPUs of a large server CPU gets the whole package's TDP spread over
its few cores, which overestimates; the 30 % uncertainty does not cover that case.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import logging
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .energy_source import MJ_PER_J, EnergySource

__all__ = [
    "EstimateEnergySource",
    "CpuTdp",
    "lookup_cpu_tdp",
    "read_cpu_model",
    "read_cpu_sockets",
    "ESTIMATE_RELATIVE_UNCERTAINTY",
    "DEFAULT_W_PER_CORE",
    "IDLE_FLOOR_FRACTION",
]

log = logging.getLogger(__name__)

# One standard uncertainty of the estimate, as a fraction: 30 %. TDP is a thermal design figure,
# not a power reading; real package power under load sits anywhere from well below to above it,
# and power is not linear in utilisation. Meters that *measure* already disagree by up to 20 %.
ESTIMATE_RELATIVE_UNCERTAINTY = 0.3
# Units: W per logical core, for a CPU the table does not know (CodeCarbon's DEFAULT_POWER_PER_CORE).
DEFAULT_W_PER_CORE = 4.0
# The share of TDP drawn even when this process is idle (CodeCarbon: "minimum 10 % of TDP").
IDLE_FLOOR_FRACTION = 0.1
# Units: s. The estimate can be read at any time; process CPU time advances in scheduler ticks.
ESTIMATE_RESOLUTION_S = 0.01

_CODECARBON_TABLE = ("data", "hardware", "cpu_power.csv")
_NOISE = re.compile(
    r"\(r\)|\(tm\)|\bcpu\b|\bprocessor\b|@\s*[\d.]+\s*ghz|\b\d+-core\b|\bwith radeon.*$|\bw/ radeon.*$", re.IGNORECASE
)


@dataclass(frozen=True)
class CpuTdp:
    """The TDP used for an estimate (Units: W), the table entry it matched ("" if none) and where it came from."""

    tdp_w: float
    matched_name: str
    source: str


def read_cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what ``platform`` knows, else "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def read_cpu_sockets() -> int:
    """How many CPU packages /proc/cpuinfo lists (distinct ``physical id``); 1 when it does not say."""
    try:
        ids = {
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("physical id")
        }
    except OSError:
        return 1
    return max(1, len(ids))


def _normalise(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name).lower().split())


def _codecarbon_table_path() -> Path | None:
    """CodeCarbon's cpu_power.csv, found without importing codecarbon (whose import is slow)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *_CODECARBON_TABLE)
    return path if path.is_file() else None


@functools.lru_cache(maxsize=4)
def _load_table(path: Path) -> dict[str, tuple[str, float]]:
    """normalised name -> (name as in the table, TDP in W); rows without a TDP are skipped."""
    table: dict[str, tuple[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                tdp_w = float(row["TDP"])
            except (KeyError, TypeError, ValueError):
                continue
            table.setdefault(_normalise(row["Name"]), (row["Name"], tdp_w))
    return table


def _match(model: str, table: dict[str, tuple[str, float]]) -> tuple[str, float] | None:
    """Fuzzy match in the spirit of CodeCarbon's: exact after removing marketing noise, else the
    most specific table entry all of whose words appear in the model name (at least one of them a
    model number); ``None`` when two equally specific entries disagree on the TDP."""
    wanted = _normalise(model)
    if wanted in table:
        return table[wanted]
    words = set(wanted.split())
    best: list[tuple[str, float]] = []
    best_len = 0
    for key, entry in table.items():
        key_words = key.split()
        if not any(ch.isdigit() for ch in key) or not set(key_words) <= words:
            continue
        if len(key_words) > best_len:
            best, best_len = [entry], len(key_words)
        elif len(key_words) == best_len:
            best.append(entry)
    if best and len({tdp for _, tdp in best}) == 1:
        return best[0]
    return None


def lookup_cpu_tdp(model: str, logical_cores: int, sockets: int = 1, table_path: Path | None = None) -> CpuTdp:
    """The machine's TDP to assume for ``model`` (Units: W): CodeCarbon's per-package entry × sockets,
    or a stated default per logical core."""
    path = table_path or _codecarbon_table_path()
    if path is not None:
        found = _match(model, _load_table(path))
        if found is not None:
            name, tdp_w = found
            per_socket = f" × {sockets} sockets" if sockets > 1 else ""
            return CpuTdp(tdp_w * sockets, name, f"CodeCarbon's CPU table ({path.name}) entry {name!r}{per_socket}")
        why = f"{model!r} is not in CodeCarbon's CPU table"
    else:
        why = "CodeCarbon's CPU table is not installed"
    return CpuTdp(
        DEFAULT_W_PER_CORE * logical_cores,
        "",
        f"a default of {DEFAULT_W_PER_CORE:g} W per logical core × {logical_cores} ({why})",
    )


class EstimateEnergySource(EnergySource):
    """A counter-like estimate of this process's CPU energy: integrates the model above since creation.

    Each ``read_energy_mj()`` samples the process's CPU time, so read it at the edges of what you
    want to attribute (EnergyMeter does). Reads from several threads are serialised by the GIL but
    share one integration state; use one source per measuring thread.
    """

    method = "estimate"
    counter_resolution_s = ESTIMATE_RESOLUTION_S
    relative_uncertainty = ESTIMATE_RELATIVE_UNCERTAINTY

    def __init__(
        self,
        *,
        device: str = "cpu",
        cpu_model: str | None = None,
        logical_cores: int | None = None,
        tdp: CpuTdp | None = None,
        process: psutil.Process | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.device = device
        self.cpu_model = cpu_model or read_cpu_model()
        self.logical_cores = logical_cores or psutil.cpu_count(logical=True) or 1
        self.tdp = tdp or lookup_cpu_tdp(self.cpu_model, self.logical_cores, read_cpu_sockets())
        self.idle_floor_w = IDLE_FLOOR_FRACTION * self.tdp.tdp_w
        self.assumptions = (
            f"estimate, not a measurement: CPU power = TDP {self.tdp.tdp_w:g} W × this process's share of "
            f"{self.logical_cores} logical cores + an idle floor of {self.idle_floor_w:g} W "
            f"({IDLE_FLOOR_FRACTION:.0%} of TDP); TDP from {self.tdp.source}; CPU {self.cpu_model!r}; "
            f"±{self.relative_uncertainty:.0%} assumed"
        )
        self._process = process or psutil.Process()
        self._clock = clock
        self._last_s = clock()
        self._last_cpu_s = self._cpu_s()
        self._energy_mj = 0.0
        log.debug("CPU energy estimate: %s", self.assumptions)

    def _cpu_s(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def read_energy_mj(self) -> float:
        now_s, cpu_s = self._clock(), self._cpu_s()
        wall_s = now_s - self._last_s
        if wall_s > 0:
            utilisation = min(1.0, max(0.0, (cpu_s - self._last_cpu_s) / (wall_s * self.logical_cores)))
            power_w = self.tdp.tdp_w * utilisation + self.idle_floor_w
            self._energy_mj += power_w * wall_s * MJ_PER_J
        self._last_s, self._last_cpu_s = now_s, cpu_s
        return self._energy_mj
