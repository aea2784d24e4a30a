"""How a hardware node answers one task: estimates at once, then measurements within a budget.

0. **What to build.** Each candidate's model is what its ``builder`` says (:mod:`.candidate_model`), not
   what a catalogue calls by its name; a candidate that cannot be built here is excluded with the field
   at fault, and the others are answered. Stored figures key on the builder's fingerprint too.
1. **First answer.** Every job (a candidate on an allowed device, and its int8 variant on the CPU) gets
   its figures at once: a stored measurement of the same configuration (basis "reused") or the
   pre-run estimate (:mod:`.prerun`, basis "estimated"). They go out as message 0.
2. **Measurements.** The plan (:mod:`.plan`) orders the jobs by their value to the decision. Each
   measurement that fits the budget left runs, with fewer passes for a slow model; one whose training
   would not fit is measured for inference only (basis "measured-inference", training from the
   estimate); one that fits in no way is left an estimate with the reason. Each measurement is
   published as it lands, stored, and teaches the estimator (:mod:`.learning`).
3. **Last message** (``plan_done``): every job's final figures, each estimate with why it was not
   measured, and what the task cost this host (``measuring_s``, ``measuring_energy_j``).

Between passes ``check`` runs: the task's end (done, failed, cancelled) or the budget's raises there,
so the node stops within one pass. Plain logic: the node (``node.py``) passes in the publisher, the
progress report and the task's cancellation check.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sustainml import msg
from sustainml.exceptions import MeasurementError
from sustainml.units import MS_PER_S
from sustainml.variants import variant_model_name

from .cache import MeasurementCache, MeasurementKey
from .candidate_model import CandidateModel, UnbuildableCandidate, resolve
from .measure import (
    DEFAULT_IDLE_S,
    ESTIMATOR_TRAIN_SAMPLES,
    INT8_DYNAMIC,
    MIN_REPETITIONS,
    WINDOW_COUNTER_UPDATES,
    measure,
    measure_estimator,
    with_training_of,
)
from .plan import PlanItem, make_plan, measuring_cost_s, repetitions_for
from .prerun import JobEstimate, PreRunEstimator

__all__ = ["Job", "Budget", "BudgetSpent", "MeasuringSettings", "TaskMeasuring", "BASIS_INFERENCE_ONLY"]

log = logging.getLogger(__name__)

#: The basis of a job whose inference was measured and whose training is the pre-run estimate.
BASIS_INFERENCE_ONLY = "measured-inference"
#: How often a long pass reports that it is still working (a changing message), Units: s.
PROGRESS_EVERY_S = 1.0


class BudgetSpent(Exception):
    """Raised inside a measurement when the task's device-time or energy budget runs out."""


@dataclass(frozen=True)
class Job:
    candidate: msg.ModelCandidate
    model: CandidateModel  # what the candidate's builder builds here
    device: str
    variant: str = ""

    @property
    def name(self) -> str:
        return variant_model_name(self.candidate.name, self.variant) if self.variant else self.candidate.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.device)

    @property
    def label(self) -> str:
        return f"{self.name} on {self.device}"

    @property
    def sklearn(self) -> bool:
        return self.model.library == "sklearn"


@dataclass
class Budget:
    """Device time and energy one task may spend on this host; what it has spent so far."""

    seconds: float
    joules: float = 0.0  # 0 = no energy limit
    spent_s: float = 0.0
    spent_j: float = 0.0

    @property
    def left_s(self) -> float:
        return max(0.0, self.seconds - self.spent_s)

    def spend(self, seconds: float, joules: float) -> None:
        self.spent_s += seconds
        self.spent_j += joules

    def overrun(self, running_s: float, running_j: float) -> str:
        """Why a measurement running for ``running_s`` must stop now, or ""."""
        if self.spent_s + running_s > self.seconds:
            return f"the {self.seconds:g} s budget of device time was spent"
        if self.joules > 0 and self.spent_j + running_j > self.joules:
            return f"the {self.joules:g} J energy budget was spent"
        return ""


@dataclass(frozen=True)
class MeasuringSettings:
    window_s: float
    train_batch_size: int
    precision: str
    min_repetitions: int = MIN_REPETITIONS


@dataclass
class _State:
    """Each job's current figures and, for those not measured here, why."""

    figures: dict[tuple[str, str], msg.JobMeasurement] = field(default_factory=dict)
    estimates: dict[tuple[str, str], JobEstimate] = field(default_factory=dict)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)


class TaskMeasuring:
    """One task's answer on this host (module docstring). ``run()`` returns the last message; the
    earlier ones go out through ``publish`` as they are ready."""

    def __init__(
        self,
        *,
        task: msg.EncodedTask,
        candidates: msg.ModelCandidates,
        devices: list[str],
        excluded: list[str],
        inventory: msg.HardwareInventory,
        cache: MeasurementCache,
        estimator: PreRunEstimator,
        settings: MeasuringSettings,
        budget: Budget,
        publish: Callable[[msg.HardwareMeasurement], None],
        progress: Callable[[float, str], None],
        check: Callable[[], None],
    ) -> None:
        self.task = task
        self.candidates = candidates
        self.devices = devices
        self.inventory = inventory
        self.host = inventory.host
        self.cache = cache
        self.estimator = estimator
        self.settings = settings
        self.budget = budget
        self._publish = publish
        self._progress = progress
        self._check = check
        self._sequence = 0
        self._explored = False   # measured a job on an untaught device although it seemed not to fit
        self.state = _State(excluded=list(excluded))
        self.batch = int(task.usage.batch_size) or 1
        self.jobs: list[Job] = []
        for candidate in candidates.candidates:
            try:
                model = resolve(candidate)
            except UnbuildableCandidate as e:   # the provider's fault, said where the user reads it
                self.state.excluded.append(f"{candidate.name}: cannot be built on {self.host}: {e}")
                continue
            self.jobs += [job for device in devices for job in self._jobs(candidate, model, device)]

    # ------------------------------------------------------------------ the whole answer
    def run(self) -> msg.HardwareMeasurement:
        self._first_answer()
        to_measure = [job for job in self.jobs if job.key in self.state.estimates]
        if self.task.reuse_only:
            for job in to_measure:
                self.state.reasons[job.key] = ("nothing new measured for this task (reuse_only: an iteration that "
                                               "changed only usage, regions or limits, or a problem that asked so)")
        elif to_measure:
            self._publish_message([self.state.figures[j.key] for j in self.jobs if j.key in self.state.figures],
                                  plan_done=False)
            self._measure_in_order(to_measure)
        return self._last_message()

    def _first_answer(self) -> None:
        for i, job in enumerate(self.jobs):
            self._progress(0.0, f"estimating {job.label} ({i + 1}/{len(self.jobs)})")
            try:
                found = self.cache.get(self._key(job, train=not job.variant))
                if found is not None:
                    # Stored under the model's own name (a variant's too), maybe by another host on a
                    # shared store or an earlier name of this one: it is this job's figure here now.
                    found.model, found.host = job.name, self.host
                    self.state.figures[job.key] = found
                    continue
                estimate = self._estimate(job)
                partial = self.cache.get(self._key(job, train=False)) if not job.variant and not job.sklearn else None
                if partial is not None:  # inference measured earlier, training still an estimate
                    partial.model, partial.host = job.name, self.host
                    self.state.figures[job.key] = _with_estimated_training(partial, estimate.measurement)
                else:
                    self.state.figures[job.key] = estimate.measurement
                self.state.estimates[job.key] = estimate
            except MeasurementError as e:
                self.state.excluded.append(f"{job.label}: {e}")
        self._merge_variants()
        self._account_calibration()

    def _estimate(self, job: Job) -> JobEstimate:
        info = self._device(job.device)
        train_batch = 0 if job.variant else (ESTIMATOR_TRAIN_SAMPLES if job.sklearn else self.settings.train_batch_size)
        return self.estimator.estimate(job.candidate, job.device, info.name, batch_size=self.batch,
                                       train_batch_size=train_batch, variant=job.variant,
                                       modality=self.task.modality, model=job.model)

    def _measure_in_order(self, to_measure: list[Job]) -> None:
        """Measure the most valuable job that fits the budget left, learn from it, re-estimate the rest
        and plan again, until the budget or the plan is spent."""
        wanted = {job.key: job for job in to_measure}
        attempted: set[tuple[str, str]] = set()
        while True:
            items = [self._plan_item(job) for job in self.jobs if job.key in self.state.figures]
            plan = make_plan(items, max_latency_ms=self.task.constraints.max_latency_ms)
            for key in self.state.estimates:
                if self.state.reasons.get(key, "").startswith("dominated"):
                    del self.state.reasons[key]   # the last plan says which are dominated now
            self.state.reasons.update({k: why for k, why in plan.skipped.items() if k in self.state.estimates})
            order = [wanted[i.key] for i in plan.order
                     if i.key in wanted and i.key in self.state.estimates and i.key not in attempted]
            chosen = self._first_that_fits(order)
            if chosen is None:
                break
            job, train = chosen
            attempted.add(job.key)
            left = self.budget.left_s
            self._progress(100.0 * self.budget.spent_s / max(self.budget.seconds, 1e-9),
                           f"measuring {job.label} ({len(self.state.measured) + 1} measured so far, "
                           f"{left:.0f} s of budget left)")
            if not self._measure_one(job, self.state.estimates[job.key], train=train):
                break
        spent = self.budget.overrun(0.0, 0.0)
        for key in self.state.estimates:
            if key not in self.state.reasons:
                self.state.reasons[key] = f"not measured: {spent}" if spent else "not measured"

    def _first_that_fits(self, order: list[Job]) -> tuple[Job, bool] | None:
        """The first job of ``order`` whose measurement fits the budget left (``train`` False: only its
        inference fits); the ones that do not fit say so.

        On a device nothing was measured on yet, the estimates have nothing to stand on (a calibration
        made while the machine was busy can be off a hundredfold): if none seems to fit, the cheapest
        inference is measured all the same, stopped by the budget if the estimate was right, and what
        it teaches corrects every other estimate."""
        if self.budget.overrun(0.0, 0.0):
            return None
        left = self.budget.left_s
        for job in order:
            full_s, inference_s = self._costs(job, self.state.estimates[job.key])
            if full_s <= left:
                return job, True
            if inference_s <= left and not job.variant and not job.sklearn:
                return job, False
            self.state.reasons[job.key] = (f"not measured: it needs about {full_s:.3g} s of device time and "
                                           f"{left:.3g} s of the budget were left")
        untaught = [job for job in order if not self._learned(job.device)]
        if untaught and not self._explored:
            self._explored = True
            cheapest = min(untaught, key=lambda job: self._costs(job, self.state.estimates[job.key])[1])
            return cheapest, cheapest.sklearn   # a scikit-learn measurement is always fit and predict
        return None

    def _learned(self, device: str) -> bool:
        """Whether the estimator has learned anything on ``device`` yet."""
        return bool(self.cache.observations(self.estimator.calibration_key(device, self._device(device).name)))

    def _reestimate(self) -> list[tuple[str, str]]:
        """Estimate again every job still estimated, with what the last measurement taught; the keys
        whose figures changed."""
        changed = []
        for job in self.jobs:
            old = self.state.estimates.get(job.key)
            if old is None:
                continue
            try:
                fresh = self._estimate(job)
            except MeasurementError:
                continue
            self.state.estimates[job.key] = fresh
            figures = self.state.figures[job.key]
            if figures.basis == BASIS_INFERENCE_ONLY:
                self.state.figures[job.key] = _with_estimated_training(figures, fresh.measurement)
            else:
                self.state.figures[job.key] = fresh.measurement
            if fresh.measurement.latency_p50_ms != old.measurement.latency_p50_ms:
                changed.append(job.key)
        return changed

    def _measure_one(self, job: Job, estimate: JobEstimate, *, train: bool) -> bool:
        """Measure ``job``; False when the budget ran out during it (nothing more is measured)."""
        started = time.perf_counter()
        power_w = estimate.measurement.active_power_w + estimate.measurement.idle_power_w
        last_report = [started]

        def check() -> None:
            self._check()
            now = time.perf_counter()
            why = self.budget.overrun(now - started, (now - started) * power_w)
            if why:
                raise BudgetSpent(why)
            if now - last_report[0] >= PROGRESS_EVERY_S:
                last_report[0] = now
                self._progress(100.0 * min(1.0, (self.budget.spent_s + now - started) / max(self.budget.seconds, 1e-9)),
                               f"measuring {job.label}: {now - started:.0f} s in")

        try:
            with self.estimator.metering():
                started = time.perf_counter()   # a background profile may have held the device a moment
                measured = self._run_measure(job, estimate, train=train, check=check)
        except BudgetSpent as e:
            elapsed = time.perf_counter() - started
            self.budget.spend(elapsed, elapsed * power_w)
            self.state.reasons[job.key] = f"not measured: {e} during its measurement"
            return False
        except MeasurementError as e:
            elapsed = time.perf_counter() - started
            self.budget.spend(elapsed, elapsed * power_w)
            self.state.excluded.append(f"{job.label}: {e}")
            self.state.figures.pop(job.key, None)
            self.state.estimates.pop(job.key, None)
            return True
        self.budget.spend(measured.measuring_s, measured.measuring_energy_j)
        self.cache.put(self._key(job, train=train and not job.variant), measured)
        self.estimator.learn(estimate, measured, self._device(job.device).name)
        if not train and not job.variant:
            measured = _with_estimated_training(measured, estimate.measurement)
        measured.model, measured.host = job.name, self.host
        self.state.figures[job.key] = measured
        self.state.estimates.pop(job.key, None)
        self.state.reasons.pop(job.key, None)
        self.state.measured.append(job.label)
        changed = set(self._reestimate()) | set(self._merge_variants()) | {job.key}
        # The job's figures as kept (a variant with its model's training figures), and what they changed.
        self._publish_message([self.state.figures[k] for k in sorted(changed)], plan_done=False)
        return True

    def _run_measure(self, job: Job, estimate: JobEstimate, *, train: bool, check: Callable[[], None]) -> msg.JobMeasurement:
        window_s = self.settings.window_s
        m = estimate.measurement
        target_s = self._target_s(job.device)
        if job.sklearn:  # a slow fit is metered fewer times
            warmup, repetitions = repetitions_for(m.train_step_ms / MS_PER_S, target_s, self.settings.min_repetitions)
            return measure_estimator(job.model.build_estimator(), job.device,
                                     model_name=job.candidate.name, host=self.host, batch_size=self.batch,
                                     window_s=window_s, check=check, warmup=min(warmup, 1), min_repetitions=repetitions)
        passes = [m.latency_p50_ms / MS_PER_S] + ([m.train_step_ms / MS_PER_S] if train and m.train_step_ms else [])
        warmup, repetitions = min(repetitions_for(p, target_s, self.settings.min_repetitions) for p in passes)
        return measure(job.model.build(), job.device, model_name=job.candidate.name,
                       host=self.host, batch_size=self.batch,
                       train_batch_size=self.settings.train_batch_size if train and not job.variant else 0,
                       precision=self.settings.precision, window_s=window_s, warmup=warmup,
                       min_repetitions=repetitions, check=check, variant=job.variant,
                       source=self.estimator.source(job.device))

    # ------------------------------------------------------------------ figures and messages
    def _merge_variants(self) -> list[tuple[str, str]]:
        """Give each int8 variant its model's current training figures; the keys it changed."""
        changed = []
        for job in self.jobs:
            if not job.variant or job.key not in self.state.figures:
                continue
            base = self.state.figures.get((job.candidate.name, job.device))
            if base is None:
                continue
            merged = with_training_of(self.state.figures[job.key], base)
            merged.model, merged.host = job.name, self.host
            self.state.figures[job.key] = merged
            changed.append(job.key)
        return changed

    def _last_message(self) -> msg.HardwareMeasurement:
        self._merge_variants()
        figures = []
        for job in self.jobs:
            m = self.state.figures.get(job.key)
            if m is None:
                continue
            if job.key in self.state.estimates:
                m.not_measured_reason = self.state.reasons.get(job.key, "not measured")
            figures.append(m)
        if not figures and self.candidates.candidates and self.devices:
            raise MeasurementError("no candidate could be measured or estimated here: " + "; ".join(self.state.excluded))
        return self._message(figures, plan_done=True, note=self._plan_note())

    def _plan_note(self) -> str:
        reused = sum(1 for m in self.state.figures.values() if m.basis == "reused")
        estimated = len(self.state.estimates)
        parts = [f"{len(self.state.measured)} measured", f"{reused} reused", f"{estimated} left estimated"]
        dominated = sum(1 for k in self.state.estimates if self.state.reasons.get(k, "").startswith("dominated"))
        if dominated:
            parts.append(f"{dominated} of them dominated beyond doubt")
        return (f"{self.host}: " + ", ".join(parts) + f"; {self.budget.spent_s:.3g} s of the {self.budget.seconds:g} s "
                "device-time budget used")

    def _publish_message(self, figures: list[msg.JobMeasurement], *, plan_done: bool) -> None:
        self._publish(self._message(figures, plan_done=plan_done, note=""))

    def _message(self, figures: list[msg.JobMeasurement], *, plan_done: bool, note: str) -> msg.HardwareMeasurement:
        self._account_calibration()
        message = msg.HardwareMeasurement(
            task_id=self.task.task_id, host=self.host, measurements=[copy.deepcopy(m) for m in figures],
            excluded=list(self.state.excluded), message_index=self._sequence, plan_done=plan_done,
            budget_s=self.budget.seconds, measuring_s=self.budget.spent_s, measuring_energy_j=self.budget.spent_j,
            plan_note=note)
        self._sequence += 1
        return message

    def _account_calibration(self) -> None:
        seconds, joules = self.estimator.take_spent()
        self.budget.spend(seconds, joules)

    # ------------------------------------------------------------------ helpers
    def _jobs(self, candidate: msg.ModelCandidate, model: CandidateModel, device: str) -> list[Job]:
        """The candidate itself, plus its int8 dynamic quantisation variant on the CPU when it has one
        and this node measures in fp32 (int8 dynamic quantisation starts from fp32 weights)."""
        jobs = [Job(candidate, model, device)]
        if device == "cpu" and self.settings.precision == "fp32" and model.library == "torch" and any(
                v.name == INT8_DYNAMIC for v in candidate.variants):
            jobs.append(Job(candidate, model, device, INT8_DYNAMIC))
        return jobs

    def _device(self, device: str) -> msg.DeviceInfo:
        return next(d for d in self.inventory.devices if d.id == device)

    def _key(self, job: Job, *, train: bool) -> MeasurementKey:
        """What a measurement of ``job`` depends on, for the cache; ``train`` False = inference only."""
        info = self._device(job.device)
        train_batch = (ESTIMATOR_TRAIN_SAMPLES if job.sklearn else self.settings.train_batch_size) if train else 0
        return MeasurementKey.here(
            model=job.candidate.name, builder=job.model.fingerprint, input_shape=job.model.input_shape,
            batch_size=self.batch,
            train_batch_size=train_batch, precision=job.variant or ("fp32" if job.sklearn else self.settings.precision),
            device=job.device, device_name=info.name, energy_method=info.energy_method,
            window_s=self.settings.window_s)

    def _target_s(self, device: str) -> float:
        return max(self.settings.window_s, WINDOW_COUNTER_UPDATES * self.estimator.source(device).counter_resolution_s)

    def _costs(self, job: Job, estimate: JobEstimate) -> tuple[float, float]:
        """Predicted device time of the full measurement and of an inference-only one, at the pessimistic
        end of the estimate (one standard uncertainty up), Units: s."""
        m = estimate.measurement
        slow = 1.0 + estimate.relative_uncertainty
        target_s, idle_s = self._target_s(job.device), DEFAULT_IDLE_S
        inference_s = m.latency_p50_ms / MS_PER_S * slow
        train_s = m.train_step_ms / MS_PER_S * slow
        if job.sklearn:  # one fit and one predict window; a fit's step is the whole synthetic set
            return (measuring_cost_s(inference_s, train_s, target_s=target_s, idle_s=idle_s, min_repetitions=MIN_REPETITIONS),
                    measuring_cost_s(inference_s, 0.0, target_s=target_s, idle_s=idle_s, min_repetitions=MIN_REPETITIONS))
        repetitions = self.settings.min_repetitions
        return (measuring_cost_s(inference_s, 0.0 if job.variant else train_s, target_s=target_s, idle_s=idle_s,
                                 min_repetitions=repetitions),
                measuring_cost_s(inference_s, 0.0, target_s=target_s, idle_s=idle_s, min_repetitions=repetitions))

    def _plan_item(self, job: Job) -> PlanItem:
        m = self.state.figures[job.key]
        estimate = self.state.estimates.get(job.key)
        candidate = job.candidate
        variant = next((v for v in candidate.variants if v.name == job.variant), None) if job.variant else None
        quality = candidate.quality_value + (variant.quality_change if variant else 0.0)
        goodness = float("-inf") if quality != quality else (quality if candidate.higher_is_better else -quality)
        target = self.task.constraints.quality_target
        misses_quality = bool(target) and quality == quality and (
            quality < target if candidate.higher_is_better else quality > target)
        relative = (estimate.relative_uncertainty if estimate is not None
                    else (m.energy_per_inference_uncertainty_j / m.energy_per_inference_j
                          if m.energy_per_inference_j > 0 else 0.0))
        return PlanItem(
            key=job.key, label=job.label, goodness=goodness, latency_ms=m.latency_p50_ms,
            lifetime_j=self._lifetime_j(m, candidate), relative_uncertainty=relative,
            cost_s=self._costs(job, estimate)[0] if estimate is not None else 0.0, misses_quality=misses_quality)

    def _lifetime_j(self, m: msg.JobMeasurement, candidate: msg.ModelCandidate) -> float:
        """Training (every run) and serving energy over the horizon, as the carbon tracker counts them,
        without PUE and intensity (the same for every job of this host); per request if nothing is known."""
        epochs = int(self.task.epochs or candidate.default_epochs)
        runs = 1 + int(self.task.experiment_runs)
        training = m.energy_per_train_sample_j * int(self.task.dataset.num_samples) * epochs * runs
        serving = m.energy_per_inference_j * self.task.usage.requests_per_day * self.task.usage.horizon_days
        return training + serving or m.energy_per_inference_j


def _with_estimated_training(measured: msg.JobMeasurement, estimated: msg.JobMeasurement) -> msg.JobMeasurement:
    """An inference-only measurement completed with the estimate's training figures, and saying so."""
    merged = copy.deepcopy(measured)
    for name in ("train_batch_size", "train_step_ms", "energy_per_train_sample_j",
                 "energy_per_train_sample_uncertainty_j"):
        setattr(merged, name, getattr(estimated, name))
    merged.basis = BASIS_INFERENCE_ONLY
    merged.assumptions = "; ".join(p for p in (
        measured.assumptions, "inference measured; training not measured (it would not fit the budget): its "
        "figures are the pre-run estimate") if p)
    return merged
