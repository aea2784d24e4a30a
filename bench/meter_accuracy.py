"""How close is each energy meter to the truth on short workloads? Ours, CodeCarbon's and Zeus's, one run.

    .venv/bin/python bench/meter_accuracy.py                  # the first GPU if there is one, else the CPU
    .venv/bin/python bench/meter_accuracy.py --device cpu --repeats 3

The workload is a run of identical matrix products (8192² bf16 on a GPU, 512² fp32 on the CPU) sized
to last about 0.1 s, 1 s and 10 s. Each meter measures the same number of products on its own (one
meter at a time, so that none disturbs another), ``--repeats`` times for the short workloads, and
reports the energy of the device over the window, divided by the products (Units: J per product):

- **ours**: :class:`EnergyMeter` over the source :func:`make_energy_source` picks (NVML on a GPU; RAPL,
  else the declared estimate, on the CPU);
- **codecarbon**: ``OfflineEmissionsTracker`` (no network; ``tracking_mode="process"``, 1 s sampling),
  its GPU energy on a GPU, its CPU energy on the CPU (its RAM energy is printed apart);
- **zeus**: ``ZeusMonitor.begin_window/end_window`` when ``zeus`` imports (a bench-only extra:
  ``pip install zeus``), its GPU energy, or its RAPL CPU energy.

The reference on a GPU is the NVML total-energy counter read around a ``--reference-s`` (30 s)
steady run of the same products: J per product. The error of a meter is (meter − reference) /
reference, median and worst over the repeats. On a CPU there is no counter to trust (RAPL is
often hidden, and our CPU figure is then itself an estimate): the bench says so and prints each
meter's figure side by side, without an error column.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sustainml.exceptions import MeasurementError
from sustainml.energy import make_energy_source
from sustainml.energy_source import MJ_PER_J, EnergyMeter, EnergySource
from sustainml_nodes.hw_constraints.measure import resolve_device

J_PER_KWH = 3.6e6
WORKLOADS_S = (0.1, 1.0, 10.0)


@dataclass
class Reading:
    """One meter's figure for one run: energy of the device (Units: J) and what else it said."""

    energy_j: float
    uncertainty_j: float = math.nan  # one standard uncertainty, where the meter states one
    ram_j: float = math.nan  # memory energy, where the meter adds one (not compared)


class Meter(ABC):
    """A meter under test: ``measure(run)`` calls ``run()`` inside its window and returns the reading."""

    name = ""
    available = True
    why_not = ""

    @abstractmethod
    def measure(self, run: Callable[[], None]) -> Reading:
        """The energy of one call of ``run``."""


class OurMeter(Meter):
    name = "ours"

    def __init__(self, source: EnergySource) -> None:
        self.meter = EnergyMeter(source)
        self.name = f"ours ({source.method})"

    def measure(self, run: Callable[[], None]) -> Reading:
        self.meter.begin_window("bench")
        run()
        window = self.meter.end_window("bench")
        return Reading(window.energy_j, uncertainty_j=window.uncertainty_j)


class CodeCarbonMeter(Meter):
    name = "codecarbon"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as e:
            self.available, self.why_not = False, f"codecarbon does not import ({e})"
            return
        self.tracker_type = OfflineEmissionsTracker
        logging.getLogger("codecarbon").setLevel(logging.ERROR)

    def measure(self, run: Callable[[], None]) -> Reading:
        tracker = self.tracker_type(
            country_iso_code="DEU", tracking_mode="process", measure_power_secs=1, save_to_file=False,
            log_level="error", allow_multiple_runs=True,
            gpu_ids=[self.device.index or 0] if self.device.type == "cuda" else None,
        )
        tracker.start()
        run()
        tracker.stop()
        data = tracker.final_emissions_data
        if self.device.type == "cuda":
            return Reading(data.gpu_energy * J_PER_KWH)
        return Reading(data.cpu_energy * J_PER_KWH, ram_j=data.ram_energy * J_PER_KWH)


class ZeusMeter(Meter):
    name = "zeus"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        try:
            from zeus.monitor import ZeusMonitor
        except ImportError as e:
            self.available = False
            self.why_not = f"zeus does not import ({e}); it is a bench-only extra: pip install zeus"
            return
        try:
            if device.type == "cuda":
                self.monitor = ZeusMonitor(gpu_indices=[device.index or 0], cpu_indices=[])
            else:
                self.monitor = ZeusMonitor(gpu_indices=[])
        except Exception as e:  # noqa: BLE001 - any failure of a third-party meter only skips it
            self.available, self.why_not = False, f"zeus cannot start here: {e}"
            return
        probe = self._energy_j(self._window(lambda: None))
        if probe is None:
            self.available = False
            self.why_not = "zeus sees nothing it can measure here (no NVML GPU, no readable RAPL)"

    def _window(self, run: Callable[[], None]) -> object:
        self.monitor.begin_window("bench", sync_execution=self.device.type == "cuda")
        run()
        return self.monitor.end_window("bench", sync_execution=self.device.type == "cuda")

    def _energy_j(self, result: object) -> float | None:
        if self.device.type == "cuda":
            return getattr(result, "gpu_energy", {}).get(self.device.index or 0)
        cpu = getattr(result, "cpu_energy", None)
        return sum(cpu.values()) if cpu else None

    def measure(self, run: Callable[[], None]) -> Reading:
        energy_j = self._energy_j(self._window(run))
        return Reading(float("nan") if energy_j is None else energy_j)


class Products:
    """A run of identical matrix products on one device, in a count sized to a duration."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (512, torch.float32)
        self.label = f"{n}² {str(dtype).removeprefix('torch.')} products"
        self.a = torch.randn(n, n, device=device, dtype=dtype)
        self.b = torch.randn(n, n, device=device, dtype=dtype)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        self.run(10)
        started = time.perf_counter()
        self.run(20)
        self.per_product_s = (time.perf_counter() - started) / 20
        while True:  # a steadier figure from about half a second
            count = max(20, int(0.5 / self.per_product_s))
            started = time.perf_counter()
            self.run(count)
            self.per_product_s = (time.perf_counter() - started) / count
            if count * self.per_product_s >= 0.3:
                break

    def run(self, count: int) -> None:
        for _ in range(count):
            torch.mm(self.a, self.b, out=self.out)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def count_for(self, duration_s: float) -> int:
        return max(1, round(duration_s / self.per_product_s))


def reference_j_per_product(source: EnergySource, products: Products, duration_s: float) -> float:
    """J per product from the device's own counter around a long steady run (only for a trusted counter)."""
    count = products.count_for(duration_s)
    products.run(products.count_for(2.0))  # reach the steady state (clocks, temperature)
    start_mj = source.read_energy_mj()
    products.run(count)
    return (source.read_energy_mj() - start_mj) / MJ_PER_J / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5, help="runs of the 0.1 s and 1 s workloads per meter")
    parser.add_argument("--reference-s", type=float, default=30.0, help="length of the NVML reference run, s")
    args = parser.parse_args()
    started = time.perf_counter()

    device = resolve_device(args.device)
    source = make_energy_source(args.device)
    products = Products(device)
    meters: list[Meter] = [OurMeter(source), CodeCarbonMeter(device), ZeusMeter(device)]
    print(f"device {args.device}; workload: {products.label}, {products.per_product_s * 1e3:.3g} ms each")
    reference = None
    if source.method == "nvml":
        reference = reference_j_per_product(source, products, args.reference_s)
        print(f"reference: NVML total-energy counter around a {args.reference_s:g} s steady run: "
              f"{reference:.4g} J per product")
    else:
        print(f"NO REFERENCE on this machine: there is no energy counter to trust here ({args.device}'s energy "
              f"comes from {source.method!r}{': ' + source.assumptions if source.assumptions else ''}). "
              "Each meter's figure is printed side by side; none can be called right or wrong.")
    for meter in meters:
        if not meter.available:
            print(f"{meter.name}: skipped, {meter.why_not}")
    live = [m for m in meters if m.available]
    print()

    header = f"{'workload':>9} {'meter':18} {'runs':>4} {'J/product median':>17} {'spread':>8}"
    header += f" {'error median':>13} {'error worst':>12}" if reference else ""
    print(header + "  notes")
    for duration_s in WORKLOADS_S:
        count = products.count_for(duration_s)
        runs = 1 if duration_s >= 10 else args.repeats
        for meter in live:
            readings: list[Reading] = []
            notes: list[str] = []
            for _ in range(runs):
                try:
                    readings.append(meter.measure(lambda: products.run(count)))
                except MeasurementError as e:
                    notes.append(f"refused: {e}")
            figures = [r.energy_j / count for r in readings if not math.isnan(r.energy_j)]
            uncertainties = [r.uncertainty_j / r.energy_j for r in readings if r.energy_j > 0 and r.uncertainty_j >= 0]
            if uncertainties:
                notes.append(f"states ±{statistics.median(uncertainties):.0%} (1σ)")
            ram = [r.ram_j / count for r in readings if not math.isnan(r.ram_j)]
            if ram:
                notes.append(f"adds RAM {statistics.median(ram):.3g} J/product (not compared)")
            line = f"{duration_s:>8g}s {meter.name:18} {len(figures):>4} "
            if not figures:
                print(line + f"{'—':>17}  " + "; ".join(dict.fromkeys(notes))[:200])
                continue
            median = statistics.median(figures)
            spread = (max(figures) - min(figures)) / median if median else float("nan")
            line += f"{median:>17.4g} {spread:>8.1%}"
            if reference:
                errors = [abs(f - reference) / reference for f in figures]
                line += f" {statistics.median(errors):>13.1%} {max(errors):>12.1%}"
            print(line + "  " + "; ".join(dict.fromkeys(notes))[:120], flush=True)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
