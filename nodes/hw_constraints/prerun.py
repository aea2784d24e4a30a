"""The hardware node's first answer: every job's figures before anything is run.

A job is a candidate on a device (and, for int8 dynamic quantisation, a variant of it). Its estimate is
:mod:`.estimate`'s roofline from the model's profile and the device's calibration, corrected by what
earlier measurements on this device taught (:mod:`.learning`), and returned as an ordinary
``msg.JobMeasurement`` with ``basis = "estimated"``, its uncertainty and its assumptions, so that the rest
of the pipeline (footprints, ranking) treats it like any figure and says it is an estimate.

Models without a FLOP count (scikit-learn) start from :data:`SKLEARN_PRIOR`, a declared guess that the
same corrections soon replace with what this device measured for such models.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from sustainml import msg
from sustainml.energy import make_energy_source
from sustainml.energy_source import EnergySource
from sustainml.exceptions import MeasurementError
from sustainml.models.catalogue import CatalogueEntry
from sustainml.units import MS_PER_S
from sustainml.variants import variant_model_name

from .cache import CalibrationKey, MeasurementCache, calibration_for
from .candidate_model import CandidateModel, model_of_entry, resolve
from .estimate import (
    ESTIMATE_METHOD,
    DeviceCalibration,
    Estimate,
    ModelProfile,
    estimate_profile,
    profile_model,
)
from .learning import Correction, Observation, correction_for, family_key, kind_key

__all__ = ["SKLEARN_PRIOR", "RawFigures", "JobEstimate", "PreRunEstimator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawFigures:
    """One phase of an uncorrected estimate: what a measurement of the phase is compared with."""

    latency_ms: float  # per batch (inference) or per step (training)
    energy_j_per_sample: float  # active
    total_energy_j_per_sample: float  # idle included
    assumptions: str


#: The declared starting point for a scikit-learn model on a device nothing was measured on yet:
#: ``predict`` on one batch in about a millisecond, ``fit`` on the 2048 synthetic rows in about a
#: tenth of a second, at the calibration's active power. A guess (±UNLEARNED), not a figure.
SKLEARN_PRIOR = {"inference_ms": 1.0, "fit_ms": 100.0}
#: Its standard uncertainty in log space until corrected: scikit-learn models span three orders of
#: magnitude (a naive Bayes fit in milliseconds, a forest in seconds), so two of these are a factor of 20.
SKLEARN_PRIOR_UNCERTAINTY = 1.5


@dataclass
class JobEstimate:
    """A job's estimated measurement and the raw figures it was corrected from (for learning)."""

    measurement: msg.JobMeasurement
    raw_inference: RawFigures
    raw_training: RawFigures | None
    family: str  # learning.family_key
    library: str  # learning.kind_key
    relative_uncertainty: float
    builder: str = ""  # the model's fingerprint (CandidateModel.fingerprint): what it learns is the model's own


class PreRunEstimator:
    """Estimates jobs on this host's devices; learns from each measurement. Thread-safe.

    ``calibrate`` (once per device and dtype, kept in ``cache``) runs matrix products on the device:
    the time and energy it spends are returned by :meth:`take_spent` so that the task that caused it
    accounts for them."""

    def __init__(self, cache: MeasurementCache, *, host: str, precision: str, window_s: float) -> None:
        self.cache = cache
        self.host = host
        self.precision = precision
        self.window_s = window_s
        self._lock = threading.RLock()
        # Held while the device is metered (``metering``) and while profiling in the background: a
        # measurement must not share the process (and its energy meter) with other work.
        self._device_lock = threading.Lock()
        self._measurements_waiting = 0
        self._sources: dict[str, EnergySource] = {}
        self._calibrations: dict[str, DeviceCalibration] = {}
        self._profiles: dict[tuple[str, str, tuple[int, ...]], ModelProfile] = {}
        self._spent_s = 0.0
        self._spent_j = 0.0

    # ------------------------------------------------------------------ what a device and a model are
    def source(self, device: str) -> EnergySource:
        with self._lock:
            if device not in self._sources:
                self._sources[device] = make_energy_source(device)
            return self._sources[device]

    def calibration_key(self, device: str, device_name: str) -> CalibrationKey:
        return CalibrationKey.here(device=device, precision=self.precision, energy_method=self.source(device).method,
                                   device_name=device_name)

    def calibration(self, device: str) -> DeviceCalibration:
        """The device's calibration: from memory, the cache, or measured now (its cost kept for take_spent)."""
        with self._lock:
            if device not in self._calibrations:
                started = time.perf_counter()
                before = len(self._calibrations)
                calibration = calibration_for(device, self.precision, cache=self.cache, source=self.source(device),
                                              window_s=self.window_s)
                elapsed = time.perf_counter() - started
                if elapsed > 0.5 and before == len(self._calibrations):  # measured, not read from the cache
                    self._spent_s += elapsed
                    self._spent_j += (calibration.active_power_w + calibration.idle_power_w) * elapsed
                self._calibrations[device] = calibration
            return self._calibrations[device]

    @contextmanager
    def metering(self) -> Iterator[None]:
        """Hold the device for a measurement: background profiling waits (after the model it is at)."""
        with self._lock:
            self._measurements_waiting += 1
        try:
            with self._device_lock:
                yield
        finally:
            with self._lock:
                self._measurements_waiting -= 1

    def take_spent(self) -> tuple[float, float]:
        """Device time (s) and energy (J) spent calibrating since the last call."""
        with self._lock:
            spent = (self._spent_s, self._spent_j)
            self._spent_s = self._spent_j = 0.0
            return spent

    def profile(self, model: CandidateModel) -> ModelProfile:
        """What one forward pass of ``model`` on a sample of its input shape computes and moves: from
        memory, the store, or profiled now on the meta device (seconds for a generative model) and kept,
        keyed by its name and builder's fingerprint."""
        key = (model.name, model.fingerprint, model.input_shape)
        with self._lock:
            found = self._profiles.get(key) or self.cache.get_profile(*key)
            if found is not None:
                self._profiles[key] = found
                return found
        with torch.device("meta"):   # outside the lock: estimates of other models need not wait for it
            module = model.build().module
        found = profile_model(module, model.input_shape)
        with self._lock:
            self.cache.put_profile(*key, found)
            self._profiles[key] = found
        return found

    def profile_catalogue(self, entries: Iterable[CatalogueEntry], stop: threading.Event) -> None:
        """Profile every torch model of the catalogue at its own input shape ahead of the first task that
        proposes it (kept in the store: once per store and torch version), so that first answers do not
        wait for it. Stops early when ``stop`` is set."""
        started, count = time.perf_counter(), 0
        for entry in entries:
            if stop.is_set():
                return
            if entry.library != "torch":
                continue
            while self._measurements_waiting and not stop.is_set():
                time.sleep(0.05)   # a measurement goes first
            try:
                with self._device_lock:
                    self.profile(model_of_entry(entry))
                count += 1
            except Exception as e:  # noqa: BLE001 - a model that cannot be profiled is estimated when asked
                log.warning("cannot profile %s ahead of time: %s", entry.name, e)
        log.info("%d catalogue models profiled in %.1f s", count, time.perf_counter() - started)

    # ------------------------------------------------------------------ estimating
    def estimate(
        self, candidate: msg.ModelCandidate, device: str, device_name: str, *, batch_size: int, train_batch_size: int,
        variant: str = "", modality: str = "", model: CandidateModel | None = None,
    ) -> JobEstimate:
        """The job's figures before it runs, as a Measurement with basis "estimated". ``modality`` (the
        task's: image, text, tabular, time_series) groups what the estimator learned. ``model`` is what
        the candidate builds (:func:`.candidate_model.resolve` of it when not given).

        Raises MeasurementError when the model cannot be built or even profiled."""
        model = model or resolve(candidate)
        calibration = self.calibration(device)
        library = kind_key(model.library, modality)
        name = variant_model_name(candidate.name, variant) if variant else candidate.name
        family = family_key(candidate.family, modality, variant)
        try:
            raw_inference, raw_training = (
                self._sklearn_prior(calibration, batch_size, train_batch_size) if model.library == "sklearn"
                else self._roofline(model, calibration, batch_size, train_batch_size)
            )
        except (RuntimeError, NotImplementedError, ValueError) as e:
            raise MeasurementError(f"{name} on {device}: cannot estimate it: {e}") from e
        observations = self.cache.observations(self.calibration_key(device, device_name))
        infer = correction_for(observations, model=name, family=family, library=library, phase="inference",
                               builder=model.fingerprint)
        train = correction_for(observations, model=candidate.name, family=family_key(candidate.family, modality),
                               library=library, phase="training", builder=model.fingerprint)
        relative = math.hypot(max(infer.relative_uncertainty, train.relative_uncertainty),
                              calibration.relative_uncertainty)
        if model.library == "sklearn" and "none" in (infer.level, train.level):
            relative = max(relative, SKLEARN_PRIOR_UNCERTAINTY)
        measurement = self._measurement(name, device, batch_size, raw_inference, raw_training, infer, train,
                                        calibration, variant, relative,
                                        train_batch_size if raw_training is not None else 0)
        return JobEstimate(measurement, raw_inference, raw_training, family, library, relative, model.fingerprint)

    def _roofline(self, model: CandidateModel, calibration: DeviceCalibration, batch_size: int,
                  train_batch_size: int) -> tuple[RawFigures, RawFigures | None]:
        profile = self.profile(model)
        infer = _raw(estimate_profile(profile, batch_size, calibration), batch_size)
        train = (_raw(estimate_profile(profile, train_batch_size, calibration, train=True), train_batch_size)
                 if train_batch_size else None)
        return infer, train

    @staticmethod
    def _sklearn_prior(calibration: DeviceCalibration, batch_size: int,
                       train_samples: int) -> tuple[RawFigures, RawFigures | None]:
        power_w = calibration.active_power_w
        words = "a declared prior for scikit-learn models (no FLOP count): {what}, at the calibration's {p:.3g} W"

        def figures(ms: float, samples: int, what: str) -> RawFigures:
            return RawFigures(ms, power_w * ms / MS_PER_S / samples,
                              (power_w + calibration.idle_power_w) * ms / MS_PER_S / samples,
                              words.format(what=what, p=power_w))

        infer = figures(SKLEARN_PRIOR["inference_ms"], batch_size, f"{SKLEARN_PRIOR['inference_ms']:g} ms per predict")
        train = (figures(SKLEARN_PRIOR["fit_ms"], train_samples, f"{SKLEARN_PRIOR['fit_ms']:g} ms per fit of "
                         f"{train_samples} rows") if train_samples else None)
        return infer, train

    def _measurement(self, name: str, device: str, batch_size: int, raw_inference: RawFigures,
                     raw_training: RawFigures | None, infer: Correction, train: Correction,
                     calibration: DeviceCalibration, variant: str, relative: float,
                     train_batch: int) -> msg.JobMeasurement:
        latency_ms = raw_inference.latency_ms * infer.latency_factor
        energy_j = raw_inference.energy_j_per_sample * infer.energy_factor
        step_ms = raw_training.latency_ms * train.latency_factor if raw_training else 0.0
        train_j = raw_training.energy_j_per_sample * train.energy_factor if raw_training else 0.0
        corrections = infer.basis if infer.basis == train.basis else f"inference {infer.basis}; training {train.basis}"
        return msg.JobMeasurement(
            model=name,
            device=device,
            host=self.host,
            precision=variant or self.precision,
            batch_size=batch_size,
            latency_p50_ms=latency_ms,
            latency_p95_ms=latency_ms,
            throughput_per_s=batch_size / (latency_ms / MS_PER_S) if latency_ms > 0 else 0.0,
            energy_per_inference_j=energy_j,
            energy_per_inference_uncertainty_j=relative * energy_j,
            total_energy_per_inference_j=raw_inference.total_energy_j_per_sample * infer.energy_factor,
            train_batch_size=train_batch,
            train_step_ms=step_ms,
            energy_per_train_sample_j=train_j,
            energy_per_train_sample_uncertainty_j=relative * train_j,
            peak_memory_mb=0.0,   # not estimated: the memory limit is checked once it is measured
            active_power_w=calibration.active_power_w,
            idle_power_w=calibration.idle_power_w,
            window_s=0.0,
            repetitions=0,
            energy_method=ESTIMATE_METHOD,
            assumptions=f"pre-run estimate, nothing was run: {raw_inference.assumptions}; {corrections}; "
                        f"±{relative:.0%} (one standard uncertainty)",
            cached=False,
            basis="estimated",
            latency_p50_uncertainty_ms=relative * latency_ms,
        )

    # ------------------------------------------------------------------ learning
    def learn(self, estimate: JobEstimate, measured: msg.JobMeasurement, device_name: str) -> list[Observation]:
        """Keep how far ``estimate`` was from ``measured`` (per phase measured), for the next estimates."""
        key = self.calibration_key(measured.device, device_name)
        found: list[Observation] = []
        phases = [("inference", estimate.raw_inference, measured.latency_p50_ms, measured.energy_per_inference_j,
                   measured.model, estimate.family)]
        # A variant trains like its model (its training figures are its model's): only its inference teaches.
        if estimate.raw_training is not None and measured.train_step_ms > 0 and "+" not in measured.model:
            phases.append(("training", estimate.raw_training, measured.train_step_ms,
                           measured.energy_per_train_sample_j, measured.model, estimate.family))
        for phase, raw, latency_ms, energy_j, model, family in phases:
            if raw.latency_ms <= 0 or raw.energy_j_per_sample <= 0 or latency_ms <= 0 or energy_j <= 0:
                continue
            observation = Observation(model=model, family=family, library=estimate.library, phase=phase,
                                      latency_ratio=latency_ms / raw.latency_ms,
                                      energy_ratio=energy_j / raw.energy_j_per_sample, builder=estimate.builder)
            self.cache.put_observation(key, observation)
            found.append(observation)
        return found


def _raw(estimate: Estimate, samples: int) -> RawFigures:
    return RawFigures(estimate.latency_ms, estimate.energy_j_per_sample,
                      estimate.total_energy_j / samples, estimate.assumptions)
