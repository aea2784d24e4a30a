"""Grams of CO2e over the life of each measured option, in each region the task names.

For every measurement (a model on a device) and every serving region, one ``msg.FootprintDetail``:

- training (the final run): ``energy_per_train_sample_j`` × ``train_batch_size`` per step ×
  ``ceil(num_samples / train_batch_size)`` steps per epoch × epochs (the task's, else the candidate's
  ``default_epochs``), in kWh, × PUE; its CO2 at the intensity of ``train_region`` (or of the serving
  region when the task names no training region);
- experimentation: ``experiment_runs`` more training runs before the final one (a hyper-parameter
  search of N trials), each as expensive as the final run, in the training region;
- inference over the usage horizon: ``energy_per_inference_j`` × ``requests_per_day`` ×
  ``horizon_days``, in kWh, × PUE; its CO2 at the serving region's intensity;
- embodied: the device's manufacture (``reference.embodied_for``) amortised linearly over its
  lifetime, charged for the device time the option holds: training steps × ``train_step_ms``, and
  per request the batch latency / batch size;
- SCI per request = (E × I + M) / R with R = one request: the request's energy in kWh × PUE × the
  serving region's intensity, plus its embodied share M.

A request is one inference sample, the unit ``energy_per_inference_j`` is measured in. The energy is
the measurement's workload (active) share; the device's idle share is not attributed to the option.

PUE: the task's own figure wins, then the operator's (the node's ``pue`` parameter), then the figure
published for the region or its cloud provider, then a default; ``Footprint.pue_source`` says which.
Intensity: the user's own figure for a region (``intensity_overrides``) wins, then a live provider
when the operator configured one, then codecarbon's bundled data.

Uncertainty: ``total_co2_uncertainty_g`` and ``sci_uncertainty_g_per_request`` carry the energy
measurements' standard uncertainties (independent, added in quadrature); the intensity, PUE and
embodied figures are reference values without a stated uncertainty, and their sources and the
intensity's year travel with the result instead.

When training energy cannot be computed (``dataset.num_samples`` is 0, or there are no epochs to
multiply by), the training figures are 0 and a warning naming the reason is logged: the task
encoder rejects such tasks, so this only happens to tasks that bypassed it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sustainml import msg, units
from sustainml.carbon.inputs import REGION_WILDCARDS, check_carbon_fields
from sustainml.carbon.intensity import RegionIntensity, all_regions, resolve_region
from sustainml.exceptions import InvalidProblem
from sustainml.variants import split_model_name

from .reference import EmbodiedFigure, PueFigure, embodied_for, equivalents_of, pue_for

__all__ = [
    "CarbonSettings",
    "GREENER_REGION_COUNT",
    "RegionBook",
    "compute_footprints",
    "serving_regions",
]

_log = logging.getLogger(__name__)

GREENER_REGION_COUNT = 3
_S_PER_YEAR = 365.25 * 86_400.0

LiveLookup = Callable[[RegionIntensity], RegionIntensity | None]
"""Given a region from the data, the same region at a live intensity, or None to keep the data's."""


@dataclass(frozen=True)
class CarbonSettings:
    """How the operator set up the carbon tracker.

    ``pue``: the operator's PUE for every region (None = per region: published figure or default).
    ``live``: a live-intensity lookup (see ``live_intensity``), None = the bundled data only.
    ``embodied``: the embodied figure of a device, from its id and model name.
    """

    pue: float | None = None
    live: LiveLookup | None = None
    embodied: Callable[[str, str, int], EmbodiedFigure] = embodied_for


class RegionBook:
    """Resolves region texts to intensities and PUEs for one task, the user's figures first.

    Built once per task so every footprint of the task sees the same figures (a live value read
    once, not per option).
    """

    def __init__(self, task: msg.EncodedTask, settings: CarbonSettings) -> None:
        self._settings = settings
        self._task_pue = float(task.pue)
        self._overrides: dict[str, RegionIntensity] = {}
        for figure in task.intensity_overrides:
            base = resolve_region(figure.region)
            self._overrides[base.code] = dataclasses.replace(
                base,
                intensity_g_per_kwh=float(figure.intensity_g_per_kwh),
                source=f"given by the user: {figure.source.strip() or 'no source stated'}",
                year=None,
            )
        self._cache: dict[str, RegionIntensity] = {}

    def region(self, text_or_region: str | RegionIntensity, *, live: bool = True) -> RegionIntensity:
        """The region at the figure this task uses: the user's, else a live reading (unless
        ``live`` is False: a scan over hundreds of candidate regions must not ask a service for
        each), else the data's."""
        base = resolve_region(text_or_region) if isinstance(text_or_region, str) else text_or_region
        if base.code in self._cache:
            return self._cache[base.code]
        figure = self._overrides.get(base.code) or (self._live(base) if live else None)
        if figure is None and not live:
            return base
        self._cache[base.code] = figure or base
        return self._cache[base.code]

    def _live(self, base: RegionIntensity) -> RegionIntensity | None:
        if self._settings.live is None:
            return None
        return self._settings.live(base)

    def pue(self, region: RegionIntensity) -> PueFigure:
        if self._task_pue > 0:
            return PueFigure(self._task_pue, "given by the user")
        if self._settings.pue is not None:
            return PueFigure(self._settings.pue, "set by the operator (carbon tracker parameter pue)")
        return pue_for(region)


@dataclass(frozen=True)
class _Phases:
    """Facility energy of one option's phases, PUE applied, and their standard uncertainties. Units: kWh."""

    run_kwh: float            # one training run
    run_kwh_u: float
    inference_kwh: float
    inference_kwh_u: float
    request_kwh: float
    request_kwh_u: float
    steps: int
    run_device_s: float       # device time of one training run. Units: s
    request_device_s: float   # device time one request holds. Units: s


@dataclass
class _Option:
    """What one measured option costs in one serving region; also used for its region alternatives."""

    training: float = 0.0
    experimentation: float = 0.0
    inference: float = 0.0
    embodied: float = 0.0
    uncertainty: float = 0.0

    @property
    def total(self) -> float:
        return self.training + self.experimentation + self.inference + self.embodied


def compute_footprints(
    task: msg.EncodedTask,
    candidates: msg.ModelCandidates,
    measurement: msg.HardwareMeasurement,
    *,
    settings: CarbonSettings | None = None,
    devices: dict[str, msg.DeviceInfo] | None = None,
) -> msg.CarbonFootprint:
    """One footprint per (measurement × serving region), in the order of ``serving_regions``.

    ``settings`` is how the operator set the tracker up (PUE, live intensity); ``devices`` maps a
    device id of the measuring host ("cuda:0") to its inventory entry (model name, cores), for its
    embodied figure.
    Raises ``InvalidProblem`` for inputs no real deployment has (negative usage, PUE below 1,
    negative energies) and ``UnknownRegion`` for a region the intensity data lacks.
    """
    settings = settings or CarbonSettings()
    _check_inputs(task, measurement, settings.pue)
    book = RegionBook(task, settings)
    regions = serving_regions(task, book)
    train_region = book.region(task.train_region) if task.train_region.strip() else None
    allowed = allowed_regions(task, regions[0], book) if regions else []
    default_epochs = {c.name: int(c.default_epochs) for c in candidates.candidates}
    if task.dataset.num_samples == 0 and measurement.measurements:
        _log.warning(
            "task %s: training footprints are 0 because dataset.num_samples is 0 (unknown)",
            _label(task.task_id),
        )
    known = devices or {}

    footprints = []
    for m in measurement.measurements:
        phases = _phases(task, m, _epochs(task, m, default_epochs))
        device = known.get(m.device, msg.DeviceInfo())
        embodied = settings.embodied(m.device, device.name, int(device.cores))
        for region in regions:
            train = train_region or region
            footprints.append(_footprint(task, m, measurement.host, phases, embodied, region, train, book, allowed))
    return msg.CarbonFootprint(
        task_id=task.task_id, host=measurement.host, footprints=footprints, message_index=measurement.message_index,
        measuring_energy_j=measurement.measuring_energy_j,
        measuring_co2_g=measuring_co2_g(task, measurement.measuring_energy_j, settings=settings))


def measuring_co2_g(task: msg.EncodedTask, energy_j: float, *, settings: CarbonSettings | None = None) -> float:
    """gCO2e of the energy a hardware node spent measuring for ``task`` (the answer's own footprint).

    Where that node runs is not known to the tracker, so the training region's intensity is taken (else
    the serving region's), at PUE 1 (the node's machine, not a data centre the user chose)."""
    if energy_j <= 0:
        return 0.0
    where = task.train_region.strip() or task.inference_region.strip()
    if not where:
        return 0.0
    region = RegionBook(task, settings or CarbonSettings()).region(where, live=False)
    return units.co2_g(units.j_to_kwh(energy_j), region.intensity_g_per_kwh)


def _footprint(
    task: msg.EncodedTask,
    m: msg.JobMeasurement,
    host: str,
    phases: _Phases,
    embodied: EmbodiedFigure,
    region: RegionIntensity,
    train: RegionIntensity,
    book: RegionBook,
    allowed: Sequence[RegionIntensity],
) -> msg.FootprintDetail:
    serve_pue, train_pue = book.pue(region), book.pue(train)
    here = _cost(task, phases, embodied, serve=region, serve_pue=serve_pue.pue, train=train, train_pue=train_pue.pue)
    runs = int(task.experiment_runs)
    request_embodied_g = phases.request_device_s * embodied.g_per_second
    sci = units.co2_g(phases.request_kwh, region.intensity_g_per_kwh, serve_pue.pue) + request_embodied_g
    return msg.FootprintDetail(
        model=m.model,
        device=m.device,
        host=m.host or host,
        region=region.code,
        intensity_g_per_kwh=region.intensity_g_per_kwh,
        train_region=train.code,
        train_intensity_g_per_kwh=train.intensity_g_per_kwh,
        intensity_source=_source_text(region, train),
        pue=serve_pue.pue,
        train_energy_kwh=phases.run_kwh * train_pue.pue,
        inference_energy_kwh=phases.inference_kwh * serve_pue.pue,
        training_co2_g=here.training,
        inference_co2_g=here.inference,
        total_co2_g=here.total,
        sci_g_per_request=sci,
        experiment_runs=runs,
        experimentation_energy_kwh=phases.run_kwh * train_pue.pue * runs,
        experimentation_co2_g=here.experimentation,
        train_steps=phases.steps,
        device_embodied_kg=embodied.embodied_kg,
        device_lifetime_years=embodied.lifetime_years,
        embodied_g_per_request=request_embodied_g,
        embodied_co2_g=here.embodied,
        embodied_source=embodied.source,
        pue_source=_pue_text(serve_pue, train_pue, region, train),
        intensity_year=region.year or 0,
        total_co2_uncertainty_g=here.uncertainty,
        sci_uncertainty_g_per_request=units.co2_g(phases.request_kwh_u, region.intensity_g_per_kwh, serve_pue.pue),
        greener_regions=_greener_regions(task, phases, embodied, here.total, region, allowed, book),
        equivalents=equivalents_of(here.total),
    )


def _cost(
    task: msg.EncodedTask,
    phases: _Phases,
    embodied: EmbodiedFigure,
    *,
    serve: RegionIntensity,
    serve_pue: float,
    train: RegionIntensity,
    train_pue: float,
) -> _Option:
    runs = int(task.experiment_runs)
    requests = task.usage.requests_per_day * task.usage.horizon_days
    run_g = units.co2_g(phases.run_kwh, train.intensity_g_per_kwh, train_pue)
    run_g_u = units.co2_g(phases.run_kwh_u, train.intensity_g_per_kwh, train_pue)
    inference_g = units.co2_g(phases.inference_kwh, serve.intensity_g_per_kwh, serve_pue)
    inference_g_u = units.co2_g(phases.inference_kwh_u, serve.intensity_g_per_kwh, serve_pue)
    device_s = phases.run_device_s * (runs + 1) + phases.request_device_s * requests
    # The runs of one plan share one measurement, so their errors add linearly, not in quadrature.
    return _Option(
        training=run_g,
        experimentation=run_g * runs,
        inference=inference_g,
        embodied=device_s * embodied.g_per_second,
        uncertainty=math.hypot(run_g_u * (runs + 1), inference_g_u),
    )


def _greener_regions(
    task: msg.EncodedTask,
    phases: _Phases,
    embodied: EmbodiedFigure,
    total_g: float,
    here: RegionIntensity,
    allowed: Sequence[RegionIntensity],
    book: RegionBook,
) -> list[msg.Alternative]:
    """The option moved, training and serving, to each allowed region; the greenest few that save."""
    moved = []
    for region in allowed:
        if region.code == here.code:
            continue
        pue = book.pue(region).pue
        cost = _cost(task, phases, embodied, serve=region, serve_pue=pue, train=region, train_pue=pue)
        if cost.total < total_g:
            moved.append((cost.total, region))
    moved.sort(key=lambda item: (item[0], item[1].code))
    return [
        msg.Alternative(
            kind="region",
            region=region.code,
            intensity_g_per_kwh=region.intensity_g_per_kwh,
            total_co2_g=co2,
            saving_g=total_g - co2,
            latency_change_ms=0.0,
            note=f"{region.name}: trained and served there, same hardware; network latency to it not included",
        )
        for co2, region in moved[:GREENER_REGION_COUNT]
    ]


def serving_regions(task: msg.EncodedTask, book: RegionBook | None = None) -> list[RegionIntensity]:
    """The task's serving region (``inference_region``, else ``train_region``), then its alternatives.

    Spellings of one region ("Germany", "DEU", "DE") count once, at their first place.
    """
    resolve = book.region if book is not None else resolve_region
    seen: dict[str, RegionIntensity] = {}
    for text in [task.inference_region or task.train_region, *task.alternative_regions]:
        region = resolve(text)
        seen.setdefault(region.code, region)
    return list(seen.values())


def allowed_regions(task: msg.EncodedTask, serving: RegionIntensity, book: RegionBook) -> list[RegionIntensity]:
    """Where the user allows the option to run: ``allowed_regions`` (wildcards expanded), else the
    ``alternative_regions``, else every region of the serving region's cloud provider, else (served
    in a country) every cloud region of the three providers: places where one can rent the hardware."""
    texts = list(task.allowed_regions) or list(task.alternative_regions)
    if not texts:
        provider, colon, _ = serving.code.partition(":")
        texts = [f"{provider}:*"] if colon else ["gcp:*", "aws:*", "azure:*"]
    found: dict[str, RegionIntensity] = {}
    for text in texts:
        for region in _expand(text):
            # A 0 in the data is a small grid with no fossil generation recorded that year (e.g. the
            # Central African Republic), not a data centre one can rent: it is not offered.
            if region.intensity_g_per_kwh > 0 or text.strip().lower() not in REGION_WILDCARDS:
                found.setdefault(region.code, book.region(region, live=text.strip().lower() not in REGION_WILDCARDS))
    return list(found.values())


def _expand(text: str) -> list[RegionIntensity]:
    pattern = text.strip().lower()
    if pattern == "*":
        return [r for r in all_regions() if ":" not in r.code]
    if pattern in REGION_WILDCARDS:
        return [r for r in all_regions() if r.code.startswith(pattern[:-1])]
    return [resolve_region(text)]


def _phases(task: msg.EncodedTask, m: msg.JobMeasurement, epochs: int) -> _Phases:
    samples = int(task.dataset.num_samples)
    batch = int(m.train_batch_size)
    if batch > 0:
        steps = math.ceil(samples / batch) * epochs
        trained_samples = steps * batch  # the last batch of an epoch is counted full: it costs a step
    else:  # a measurement without a batch size: per sample, no step count
        steps = 0
        trained_samples = samples * epochs
    requests = task.usage.requests_per_day * task.usage.horizon_days
    per_request_s = _request_seconds(m)
    return _Phases(
        run_kwh=units.j_to_kwh(m.energy_per_train_sample_j * trained_samples),
        run_kwh_u=units.j_to_kwh(m.energy_per_train_sample_uncertainty_j * trained_samples),
        inference_kwh=units.j_to_kwh(m.energy_per_inference_j * requests),
        inference_kwh_u=units.j_to_kwh(m.energy_per_inference_uncertainty_j * requests),
        request_kwh=units.j_to_kwh(m.energy_per_inference_j),
        request_kwh_u=units.j_to_kwh(m.energy_per_inference_uncertainty_j),
        steps=steps,
        run_device_s=steps * m.train_step_ms / units.MS_PER_S,
        request_device_s=per_request_s,
    )


def _request_seconds(m: msg.JobMeasurement) -> float:
    """Device time one request (one sample) holds: the batch latency shared by its samples. Units: s."""
    if m.throughput_per_s > 0:
        return 1.0 / m.throughput_per_s
    if m.latency_p50_ms > 0:
        return m.latency_p50_ms / units.MS_PER_S / max(int(m.batch_size), 1)
    return 0.0


def _epochs(task: msg.EncodedTask, m: msg.JobMeasurement, default_epochs: dict[str, int]) -> int:
    """The task's epochs, else the candidate's recipe; 0 (with a warning) when neither says."""
    if task.epochs:
        return int(task.epochs)
    base, _variant = split_model_name(m.model)  # a measured variant trains like its candidate
    epochs = default_epochs.get(base, 0)
    if not epochs:
        why = "has no default_epochs" if base in default_epochs else "is not among the candidates"
        _log.warning(
            "task %s: training footprint of %s on %s is 0: the task sets no epochs and the model %s",
            _label(task.task_id),
            m.model,
            m.device,
            why,
        )
    return epochs


def _source_text(region: RegionIntensity, train: RegionIntensity) -> str:
    if region.source == train.source:
        return region.source
    return f"serving: {region.source}; training: {train.source}"


def _pue_text(serve: PueFigure, train: PueFigure, region: RegionIntensity, train_region: RegionIntensity) -> str:
    if serve == train:
        return f"PUE {serve.pue:g}: {serve.source}"
    return (
        f"serving ({region.code}) PUE {serve.pue:g}: {serve.source}; "
        f"training ({train_region.code}) PUE {train.pue:g}: {train.source}"
    )


def _check_inputs(task: msg.EncodedTask, measurement: msg.HardwareMeasurement, pue: float | None) -> None:
    if pue is not None and not (math.isfinite(pue) and pue >= 1.0):
        raise InvalidProblem(
            f"pue is {pue}, but a data centre's power usage effectiveness is at least 1.0 "
            "(1.0 = no overhead, typical clouds 1.1-1.6): give pue >= 1"
        )
    check_carbon_fields(
        experiment_runs=int(task.experiment_runs),
        allowed=task.allowed_regions,
        overrides=task.intensity_overrides,
        pue=float(task.pue),
    )
    usage = task.usage
    for name, value in (("requests_per_day", usage.requests_per_day), ("horizon_days", usage.horizon_days)):
        if not (math.isfinite(value) and value >= 0):
            raise InvalidProblem(f"usage.{name} is {value}: give a number >= 0 (0 = no inference counted)")
    if task.epochs < 0:
        raise InvalidProblem(f"epochs is {task.epochs}: give a number of epochs >= 0 (0 = the recipe's)")
    for m in measurement.measurements:
        for name in (
            "energy_per_inference_j",
            "energy_per_train_sample_j",
            "energy_per_inference_uncertainty_j",
            "energy_per_train_sample_uncertainty_j",
            "train_step_ms",
            "latency_p50_ms",
            "throughput_per_s",
        ):
            value = getattr(m, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidProblem(
                    f"measurement of {m.model} on {m.device}: {name} is {value}; it must be a number >= 0"
                )


def _label(task_id: msg.TaskId) -> str:
    return f"{task_id.problem_id or '?'}#{task_id.iteration}"
