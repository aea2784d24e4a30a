"""Energy sources of the hardware node: the meter, RAPL, NVML, the estimate, the factory, the inventory.

This machine (and CI) has no GPU and no RAPL: the counters are replayed from recordings, RAPL reads a
fake sysfs tree in tmp_path, and NVML is faked by patching the pynvml functions energy_nvml calls.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import pynvml
import pytest

from sustainml.exceptions import MeasurementError
from sustainml.msg import DeviceInfo, HardwareInventory
from sustainml import energy_nvml
from sustainml.energy import make_energy_source, parse_device
from sustainml.energy_estimate import (
    DEFAULT_W_PER_CORE,
    CpuTdp,
    EstimateEnergySource,
    lookup_cpu_tdp,
)
from sustainml.energy_fake import PowerTraceSource, ReplayEnergySource
from sustainml.energy_nvml import (
    NVML_POWER_UPDATE_PERIOD_S,
    NVML_SAMPLED_RELATIVE_UNCERTAINTY,
    SAMPLED_POWER,
    TOTAL_ENERGY_COUNTER,
    NvmlEnergySource,
)
from sustainml.energy_rapl import RaplEnergySource
from sustainml.energy_source import EnergyMeter, EnergySource, MonotonicCounter
from sustainml_nodes.hw_constraints.inventory import allowed_devices, read_inventory


class ReplayClock:
    """A clock that plays back recorded times, one per call."""

    def __init__(self, times_s: list[float]) -> None:
        self._times = iter(times_s)

    def __call__(self) -> float:
        return next(self._times)


def nvml_like_recording(power_w: float, read_at_s: list[float], step_s: float = 0.1) -> list[float]:
    """Raw readings (mJ) of a counter that advances every ``step_s`` at ``power_w``, taken at ``read_at_s``."""
    return [power_w * (t // step_s) * step_s * 1000.0 for t in read_at_s]


# ------------------------------------------------------------------------------- the meter


def test_counter_unwraps_at_its_range_and_treats_a_drop_without_range_as_a_reset() -> None:
    wrapping = MonotonicCounter(max_range=1000)
    assert [wrapping.update(raw) for raw in (900, 990, 40, 100)] == [0, 90, 140, 200]
    resetting = MonotonicCounter(max_range=None)
    assert [resetting.update(raw) for raw in (5000, 5200, 30, 80)] == [0, 200, 230, 280]


def test_a_stepped_100ms_counter_over_a_long_window_gives_power_times_duration() -> None:
    # Begin at 0.05 s, end at 1.19 s: the counter moved 11 times (0.1 ... 1.1 s), i.e. 1.1 s of 300 W.
    meter = EnergyMeter(
        ReplayEnergySource(nvml_like_recording(300.0, [0.05, 1.19]), method="nvml", counter_resolution_s=0.1),
        clock=ReplayClock([0.05, 1.19]),
    )
    meter.begin_window()
    window = meter.end_window()
    assert window.method == "nvml"
    assert window.duration_s == pytest.approx(1.14)
    assert window.energy_j == pytest.approx(300.0 * 1.1)
    # The true 342 J lies within the quantisation uncertainty of about one update (300 W × 0.1 s).
    assert abs(window.energy_j - 300.0 * 1.14) <= window.uncertainty_j
    assert window.assumptions == ""


def test_a_wrapping_counter_is_unwrapped_inside_the_source() -> None:
    max_range = 262_143.0  # mJ
    meter = EnergyMeter(
        ReplayEnergySource([262_000.0, 1_000.0], max_range=max_range, counter_resolution_s=0.001),
        clock=ReplayClock([10.0, 11.0]),
    )
    meter.begin_window("wrap")
    window = meter.end_window("wrap")
    assert window.energy_j == pytest.approx((max_range - 262_000.0 + 1_000.0) / 1000.0)


def test_a_stalled_counter_that_catches_up_gives_the_right_energy() -> None:
    # Recorded at 50 W: stuck at 10 J from 0.2 s to 0.6 s, then caught up.
    readings = [0.0, 10_000.0, 10_000.0, 10_000.0, 40_000.0]
    source = ReplayEnergySource(readings, counter_resolution_s=0.1)
    meter = EnergyMeter(source, clock=ReplayClock([0.0, 0.8]))
    source.read_energy_mj()  # a reader elsewhere sees the stall ...
    source.read_energy_mj()
    source.read_energy_mj()
    meter.begin_window()  # ... the window spans it
    assert meter.end_window().energy_j == pytest.approx(30.0)


def test_a_counter_stuck_for_a_whole_window_is_an_error_not_zero_watts() -> None:
    meter = EnergyMeter(ReplayEnergySource([7_000.0, 7_000.0], counter_resolution_s=0.1), clock=ReplayClock([0.0, 1.0]))
    meter.begin_window()
    with pytest.raises(MeasurementError, match="did not advance"):
        meter.end_window()


def test_a_window_shorter_than_one_counter_update_is_refused() -> None:
    meter = EnergyMeter(ReplayEnergySource([0.0, 0.0], counter_resolution_s=0.1), clock=ReplayClock([0.0, 0.05]))
    meter.begin_window()
    with pytest.raises(MeasurementError, match="shorter than the .* update period"):
        meter.end_window()


def test_a_source_that_goes_backwards_is_reported() -> None:
    class Broken(EnergySource):
        method, device, counter_resolution_s, relative_uncertainty = "fake", "cpu", 0.001, 0.0
        readings = iter([500.0, 100.0])

        def read_energy_mj(self) -> float:
            return next(self.readings)

    meter = EnergyMeter(Broken(), clock=ReplayClock([0.0, 1.0]))
    meter.begin_window()
    with pytest.raises(MeasurementError, match="went backwards"):
        meter.end_window()


def test_windows_are_named_and_may_overlap() -> None:
    meter = EnergyMeter(PowerTraceSource(40.0))
    meter.begin_window("outer")
    meter.begin_window("inner")
    with pytest.raises(MeasurementError, match="already open"):
        meter.begin_window("inner")
    time.sleep(0.02)
    inner = meter.end_window("inner")
    outer = meter.end_window("outer")
    assert outer.energy_j >= inner.energy_j > 0
    assert inner.power_w == pytest.approx(40.0, rel=1e-2)
    with pytest.raises(MeasurementError, match="never begun"):
        meter.end_window("inner")


def test_uncertainty_combines_calibration_and_quantisation() -> None:
    source = ReplayEnergySource([0.0, 100_000.0], counter_resolution_s=0.1, relative_uncertainty=0.05)
    meter = EnergyMeter(source, clock=ReplayClock([0.0, 1.0]))
    meter.begin_window()
    window = meter.end_window()
    assert window.uncertainty_j == pytest.approx(math.hypot(0.05 * 100.0, 100.0 * 0.1 / 1.0))


# ------------------------------------------------------------------------------- RAPL


def make_domain(root: Path, dirname: str, name: str, energy_uj: int, max_range_uj: int = 262_143_328_850) -> Path:
    domain = root / dirname
    domain.mkdir(parents=True)
    (domain / "name").write_text(name + "\n")
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    (domain / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return domain


def test_rapl_sums_packages_once_and_skips_subdomains_psys_and_mmio_duplicates(tmp_path: Path) -> None:
    pkg0 = make_domain(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    pkg1 = make_domain(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    core = make_domain(tmp_path, "intel-rapl:0:0", "core", 0)  # inside package-0
    psys = make_domain(tmp_path, "intel-rapl:2", "psys", 0)  # contains the packages
    mmio = make_domain(tmp_path, "intel-rapl-mmio:0", "package-0", 0)  # package-0 again
    source = RaplEnergySource(tmp_path)
    assert [d.name for d in source.domains] == ["package-0", "package-1"]
    assert source.read_energy_mj() == 0.0
    (pkg0 / "energy_uj").write_text("3000000\n")  # +2 J
    (pkg1 / "energy_uj").write_text("6000000\n")  # +1 J
    for ignored in (core, psys, mmio):
        (ignored / "energy_uj").write_text("999000000\n")
    assert source.read_energy_mj() == pytest.approx(3000.0)
    assert source.method == "rapl" and source.assumptions == ""


def test_rapl_wraps_around_through_max_energy_range(tmp_path: Path) -> None:
    pkg = make_domain(tmp_path, "intel-rapl:0", "package-0", 999_000, max_range_uj=1_000_000)
    source = RaplEnergySource(tmp_path)
    (pkg / "energy_uj").write_text("500\n")  # wrapped: 1000 µJ to the top, 500 µJ after
    assert source.read_energy_mj() == pytest.approx(1.5)
    (pkg / "energy_uj").write_text("2500\n")
    assert source.read_energy_mj() == pytest.approx(3.5)


class AdvancingSysfs:
    """Stands in for ``time.sleep`` in the mirror probe: each wait, the listed counters advance.

    ``steps_uj`` maps an ``energy_uj`` file to how much it advances per wait; files that share one
    counter are listed together with the same value, so they read identical values throughout.
    """

    def __init__(self, steps_uj: dict[Path, int]) -> None:
        self.steps_uj = steps_uj
        self.waits: list[float] = []

    def __call__(self, wait_s: float) -> None:
        self.waits.append(wait_s)
        advance(self.steps_uj)


def advance(steps_uj: dict[Path, int]) -> None:
    for energy_file, step_uj in steps_uj.items():
        energy_file.write_text(f"{int(energy_file.read_text()) + step_uj}\n")


def test_rapl_counts_dies_that_mirror_one_counter_once(tmp_path: Path) -> None:
    # A multi-die AMD part: package-0..3 are four views of one socket counter.
    dies = [make_domain(tmp_path, f"intel-rapl:{i}", f"package-{i}", 7_000_000) / "energy_uj" for i in range(4)]
    probe = AdvancingSysfs({die: 20_000 for die in dies})
    source = RaplEnergySource(tmp_path, sleep=probe)
    assert probe.waits == [pytest.approx(0.02)]
    assert [d.name for d in source.domains] == ["package-0"]
    assert source.mirrors == {"package-0": ["package-0", "package-1", "package-2", "package-3"]}
    assert source.assumptions == "package-0..3 mirror one counter; counted once"
    advance({die: 2_500_000 for die in dies})  # the socket drew 2.5 J
    assert source.read_energy_mj() == pytest.approx(2500.0)  # not 4 × 2.5 J


def test_rapl_still_sums_distinct_packages_next_to_mirrored_ones(tmp_path: Path) -> None:
    # Two sockets of four mirrored dies each, plus a lone package whose counter stood still during the probe.
    socket0 = [make_domain(tmp_path, f"intel-rapl:{i}", f"package-{i}", 1_000_000) / "energy_uj" for i in range(4)]
    socket1 = [make_domain(tmp_path, f"intel-rapl:{i}", f"package-{i}", 1_000_000) / "energy_uj" for i in range(4, 8)]
    lone = make_domain(tmp_path, "intel-rapl:8", "package-8", 1_000_000) / "energy_uj"
    probe = AdvancingSysfs({**dict.fromkeys(socket0, 10_000), **dict.fromkeys(socket1, 30_000)})
    source = RaplEnergySource(tmp_path, sleep=probe)
    assert [d.name for d in source.domains] == ["package-0", "package-4", "package-8"]
    assert source.assumptions == (
        "package-0..3 mirror one counter; counted once; package-4..7 mirror one counter; counted once"
    )
    advance({**dict.fromkeys(socket0, 1_000_000), **dict.fromkeys(socket1, 2_000_000), lone: 500_000})
    assert source.read_energy_mj() == pytest.approx(1000.0 + 2000.0 + 500.0)


def test_rapl_packages_equal_but_idle_during_the_probe_are_not_taken_for_mirrors(tmp_path: Path) -> None:
    pkg0 = make_domain(tmp_path, "intel-rapl:0", "package-0", 4_000) / "energy_uj"
    pkg1 = make_domain(tmp_path, "intel-rapl:1", "package-1", 4_000) / "energy_uj"
    source = RaplEnergySource(tmp_path, sleep=AdvancingSysfs({}))
    assert [d.name for d in source.domains] == ["package-0", "package-1"] and source.assumptions == ""
    advance({pkg0: 1_000_000, pkg1: 3_000_000})
    assert source.read_energy_mj() == pytest.approx(4000.0)


def test_rapl_root_only_counter_gives_the_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = make_domain(tmp_path, "intel-rapl:0", "package-0", 1)
    unreadable = pkg / "energy_uj"
    unreadable.chmod(0)
    # Tests may run as root, who reads anything: make the file refuse as it does for other users.
    original = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == unreadable:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(MeasurementError, match="CVE-2020-8694") as caught:
        RaplEnergySource(tmp_path)
    assert isinstance(caught.value.__cause__, PermissionError)
    assert str(unreadable) in str(caught.value)


def test_no_powercap_means_no_rapl(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="does not exist"):
        RaplEnergySource(tmp_path / "absent")
    (tmp_path / "intel-rapl").mkdir()  # the control type alone, no domains
    with pytest.raises(MeasurementError, match="no RAPL package domains"):
        RaplEnergySource(tmp_path)


# ------------------------------------------------------------------------------- NVML (faked: no GPU here)


class FakeNvml:
    """The pynvml calls energy_nvml makes, answered like an H100 would. This machine has no GPU."""

    def __init__(
        self,
        energy_mj: list[int],
        *,
        mig: int = 0,
        total_energy_error: int | None = None,
        power_mw: int = 50_000,
        power_error: int | None = None,
        name: str = "NVIDIA H100 80GB HBM3",
    ) -> None:
        self.name = name
        self.energy_mj = iter(energy_mj)
        self.mig = mig
        self.total_energy_error = total_energy_error
        self.power_mw = power_mw
        self.power_error = power_error
        self.power_reads = 0
        self.opened: list[object] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", self.by_index)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", self.by_uuid)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda handle: self.name)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetMigMode", lambda handle: (self.mig, self.mig))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetEnforcedPowerLimit", lambda handle: 700_000)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", self.total_energy)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", self.power_usage)

    def by_index(self, index: int) -> str:
        self.opened.append(index)
        return f"handle-{index}"

    def by_uuid(self, uuid: str) -> str:
        if not uuid.startswith("GPU-"):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        self.opened.append(uuid)
        return f"handle-{uuid}"

    def total_energy(self, handle: object) -> int:
        if self.total_energy_error is not None:
            raise pynvml.NVMLError(self.total_energy_error)
        return next(self.energy_mj)

    def power_usage(self, handle: object) -> int:
        if self.power_error is not None:
            raise pynvml.NVMLError(self.power_error)
        self.power_reads += 1
        return self.power_mw


def test_nvml_reads_the_total_energy_counter_in_millijoules(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([1_000_000, 1_000_000, 1_030_000, 1_070_000])
    fake.install(monkeypatch)
    source = NvmlEnergySource(0)
    assert (source.device, source.method, source.name) == ("cuda:0", "nvml", "NVIDIA H100 80GB HBM3")
    assert source.power_limit_w == 700.0
    assert source.counter_resolution_s == 0.1
    assert [source.read_energy_mj() for _ in range(3)] == [0.0, 30_000.0, 70_000.0]
    # The counter is preferred: power is never sampled, and nothing is assumed.
    assert source.energy_reading == TOTAL_ENERGY_COUNTER and source.assumptions == ""
    assert fake.power_reads == 0


def test_nvml_counter_reset_by_a_driver_reload_does_not_go_backwards(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([5_000_000, 5_000_500, 200, 700]).install(monkeypatch)
    source = NvmlEnergySource(0)
    assert [source.read_energy_mj() for _ in range(3)] == [500.0, 700.0, 1200.0]


def test_nvml_error_becomes_a_measurement_error_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither a total-energy counter nor a power reading: nothing to measure with.
    FakeNvml(
        [], total_energy_error=pynvml.NVML_ERROR_NOT_SUPPORTED, power_error=pynvml.NVML_ERROR_NOT_SUPPORTED
    ).install(monkeypatch)
    with pytest.raises(MeasurementError, match="power of cuda:0 .*no total-energy counter.*Volta") as caught:
        NvmlEnergySource(0)
    assert isinstance(caught.value.__cause__, pynvml.NVMLError)


def test_nvml_other_errors_of_the_counter_do_not_fall_back_to_power(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([], total_energy_error=pynvml.NVML_ERROR_NO_PERMISSION)
    fake.install(monkeypatch)
    with pytest.raises(MeasurementError, match="total-energy counter.*permissions"):
        NvmlEnergySource(0)
    assert fake.power_reads == 0


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``condition()`` until it is true or ``timeout_s`` passes; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def pre_volta_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A GPU without the total-energy counter (NVML: NOT_SUPPORTED) that reports 50 W. No GPU here: pynvml is faked."""
    fake = FakeNvml(
        [], total_energy_error=pynvml.NVML_ERROR_NOT_SUPPORTED, power_mw=50_000, name="Tesla P100-PCIE-16GB"
    )
    fake.install(monkeypatch)
    return fake


def test_nvml_without_a_total_energy_counter_integrates_sampled_power(pre_volta_gpu: FakeNvml) -> None:
    source = NvmlEnergySource(0)
    try:
        assert source.method == "nvml" and source.energy_reading == SAMPLED_POWER
        assert "power sampled every 10 ms and integrated" in source.assumptions
        assert "no total-energy counter" in source.assumptions
        assert source.counter_resolution_s == NVML_POWER_UPDATE_PERIOD_S == 0.1
        assert source.relative_uncertainty == NVML_SAMPLED_RELATIVE_UNCERTAINTY > NvmlEnergySource.relative_uncertainty
        meter = EnergyMeter(source)
        meter.begin_window()  # the first read starts the sampling thread
        time.sleep(0.3)  # the GPU's workload: 0.3 s at a constant 50 W
        window = meter.end_window()
        assert window.energy_j == pytest.approx(50.0 * window.duration_s, rel=0.03)
        assert window.energy_j == pytest.approx(15.0, rel=0.1)  # the window lasts 0.3 s and a little more
        assert window.method == "nvml" and window.assumptions == source.assumptions
        assert pre_volta_gpu.power_reads >= 10  # sampled in the background, not only at the window's edges
    finally:
        source.close()


def test_nvml_sampled_power_follows_a_change_between_reads(pre_volta_gpu: FakeNvml) -> None:
    # 50 W for 0.1 s, then 150 W for 0.2 s: 35 J. Two reads alone would give the trapezoid's 30 J.
    source = NvmlEnergySource(0)
    try:
        begin_s = time.perf_counter()
        start_mj = source.read_energy_mj()
        time.sleep(0.1)  # the workload's first phase
        switch_s = time.perf_counter()
        pre_volta_gpu.power_mw = 150_000
        time.sleep(0.2)  # its second phase
        energy_j = (source.read_energy_mj() - start_mj) / 1000.0
        end_s = time.perf_counter()
        assert energy_j == pytest.approx(50.0 * (switch_s - begin_s) + 150.0 * (end_s - switch_s), rel=0.05)
    finally:
        source.close()


def test_nvml_sampling_stops_on_close(pre_volta_gpu: FakeNvml) -> None:
    source = NvmlEnergySource(0)
    source.read_energy_mj()
    assert wait_for(lambda: pre_volta_gpu.power_reads >= 3)
    source.close()
    reads = pre_volta_gpu.power_reads
    time.sleep(0.05)  # five sample periods in which a running sampler would have read the power
    assert pre_volta_gpu.power_reads == reads
    assert not [t for t in threading.enumerate() if t.name == "nvml-power-cuda:0"]


def test_nvml_refuses_a_gpu_in_mig_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([1], mig=pynvml.NVML_DEVICE_MIG_ENABLE).install(monkeypatch)
    with pytest.raises(MeasurementError, match="MIG"):
        NvmlEnergySource(0)


def test_nvml_follows_cuda_visible_devices_and_prefers_the_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([1, 2, 3])
    fake.install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    NvmlEnergySource(1)
    NvmlEnergySource(0, uuid="GPU-1234")
    NvmlEnergySource(1, uuid="MIG-abcd")  # not found by UUID: falls back to the index
    assert fake.opened == [3, "GPU-1234", 3]


def test_factory_gives_nvml_for_cuda_and_a_clear_error_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeNvml([0, 0]).install(monkeypatch)
    source = make_energy_source("cuda:0")
    assert isinstance(source, NvmlEnergySource) and source.energy_reading == TOTAL_ENERGY_COUNTER

    def no_library() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    with pytest.raises(MeasurementError, match="cannot measure the energy of cuda:1.*install the NVIDIA driver"):
        make_energy_source("cuda:1")


def test_factory_says_when_a_gpu_is_measured_by_sampled_power(
    pre_volta_gpu: FakeNvml, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sustainml"):
        source = make_energy_source("cuda:0")
    try:
        assert isinstance(source, NvmlEnergySource) and source.energy_reading == SAMPLED_POWER
        assert "cuda:0 energy: NVML sampled power of Tesla P100-PCIE-16GB" in caplog.text
        assert "integrated (no total-energy counter" in caplog.text
    finally:
        source.close()


def test_only_energy_nvml_touches_pynvml() -> None:
    package = Path(energy_nvml.__file__).parent
    users = [p.name for p in package.glob("*.py") if "pynvml" in p.read_text() and p.name != "energy_nvml.py"]
    assert users == []


# ------------------------------------------------------------------------------- the estimate and the factory


FakeCpuTimes = namedtuple("FakeCpuTimes", "user system")


class FakeProcess:
    """psutil.Process with recorded CPU times."""

    def __init__(self, cpu_s: list[float]) -> None:
        self._cpu_s = iter(cpu_s)

    def cpu_times(self) -> FakeCpuTimes:
        return FakeCpuTimes(next(self._cpu_s), 0.0)


def test_estimate_is_tdp_times_utilisation_plus_idle_floor() -> None:
    # 4 logical cores, 1 s of wall time, 2 s of CPU time: half the machine.
    source = EstimateEnergySource(
        cpu_model="Test CPU",
        logical_cores=4,
        tdp=CpuTdp(100.0, "Test CPU", "a test table"),
        process=FakeProcess([0.0, 2.0, 2.0]),
        clock=ReplayClock([0.0, 1.0, 2.0]),
    )
    assert source.read_energy_mj() == pytest.approx((100.0 * 0.5 + 10.0) * 1000.0)
    assert source.read_energy_mj() == pytest.approx((60.0 + 10.0) * 1000.0)  # then idle: the floor only
    assert source.method == "estimate"
    assert "TDP 100 W" in source.assumptions and "a test table" in source.assumptions
    assert "not a measurement" in source.assumptions
    assert source.relative_uncertainty == 0.3


def test_estimate_follows_real_cpu_work() -> None:
    source = EstimateEnergySource()
    meter = EnergyMeter(source)
    meter.begin_window()
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        sum(i * i for i in range(1000))
    busy = meter.end_window()
    assert busy.power_w > source.idle_floor_w
    assert busy.method == "estimate" and busy.assumptions


@pytest.mark.parametrize(
    ("cpuinfo_name", "tdp_w"),
    [
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", 95.0),
        ("AMD Ryzen 7 5800X 8-Core Processor", 105.0),
        ("AMD EPYC 9654 96-Core Processor", 360.0),
    ],
)
def test_tdp_comes_from_codecarbons_table_matched_fuzzily(cpuinfo_name: str, tdp_w: float) -> None:
    found = lookup_cpu_tdp(cpuinfo_name, logical_cores=16)
    assert found.tdp_w == tdp_w
    assert "CodeCarbon" in found.source and found.matched_name


def test_tdp_multiplies_by_sockets_and_falls_back_to_a_stated_default() -> None:
    assert lookup_cpu_tdp("AMD EPYC 9654 96-Core Processor", 384, sockets=2).tdp_w == 720.0
    unknown = lookup_cpu_tdp("AMD EPYC", logical_cores=8)  # a VM's vague name: no single match
    assert unknown.tdp_w == DEFAULT_W_PER_CORE * 8
    assert unknown.matched_name == "" and "default" in unknown.source


def test_factory_picks_rapl_when_readable_else_the_estimate(tmp_path: Path) -> None:
    assert isinstance(make_energy_source("cpu", powercap_root=tmp_path / "absent"), EstimateEnergySource)
    make_domain(tmp_path, "intel-rapl:0", "package-0", 1)
    assert isinstance(make_energy_source("cpu", powercap_root=tmp_path), RaplEnergySource)


@pytest.mark.parametrize("bad", ["mps", "cuda:x", "cpu:0", "gpu"])
def test_factory_rejects_other_device_strings(bad: str) -> None:
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda' or 'cuda:N'"):
        make_energy_source(bad)


def test_parse_device() -> None:
    assert parse_device("cpu") == ("cpu", 0)
    assert parse_device("cuda") == ("cuda", 0)
    assert parse_device("CUDA:3") == ("cuda", 3)


# ------------------------------------------------------------------------------- inventory


def test_inventory_lists_this_machine_with_its_energy_methods() -> None:
    inventory = read_inventory("bench-host", energy_source_factory=lambda device: PowerTraceSource(1.0, method="rapl"))
    assert inventory.host == "bench-host"
    assert inventory.cpu_cores >= 1 and inventory.ram_mb > 0 and inventory.cpu_model
    cpu = inventory.devices[0]
    assert (cpu.id, cpu.energy_method, cpu.cores) == ("cpu", "rapl", inventory.cpu_cores)
    assert "torch" in inventory.software and "python" in inventory.software


def test_inventory_with_the_real_probe_declares_the_estimate_here() -> None:
    inventory = read_inventory()
    assert inventory.host
    assert inventory.devices[0].energy_method in ("rapl", "estimate")


def gpu_server() -> HardwareInventory:
    return HardwareInventory(
        host="gpu-server",
        devices=[
            DeviceInfo(id="cpu", energy_method="estimate"),
            DeviceInfo(id="cuda:0", energy_method="nvml"),
            DeviceInfo(id="cuda:1", energy_method=""),  # e.g. a pre-Volta board
        ],
    )


@pytest.mark.parametrize(
    ("allowed", "kept"),
    [
        ([], ["cpu", "cuda:0"]),
        (["cuda"], ["cuda:0"]),
        (["cpu"], ["cpu"]),
        (["cuda:0", " CPU "], ["cpu", "cuda:0"]),
        (["GPU-Server"], ["cpu", "cuda:0"]),
        (["laptop"], []),
    ],
)
def test_allowed_devices_applies_the_users_list(allowed: list[str], kept: list[str]) -> None:
    got_kept, excluded = allowed_devices(gpu_server(), allowed)
    assert got_kept == kept
    excluded_ids = [line.split(": ", 1)[0] for line in excluded]
    assert sorted(got_kept + excluded_ids) == ["cpu", "cuda:0", "cuda:1"]


def test_allowed_devices_says_why() -> None:
    _, excluded = allowed_devices(gpu_server(), ["cuda"])
    assert "cpu: not in allowed_hardware ['cuda'] (host gpu-server)" in excluded
    assert any(line.startswith("cuda:1: ") and "NVML" in line for line in excluded)
