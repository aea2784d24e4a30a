"""Grams of CO2e to train and to serve each measured option, in each region the task names.

For every measurement (a model on a device) and every serving region, one ``msg.Footprint``:

- training energy = ``energy_j_per_train_sample`` × ``dataset.num_samples`` × epochs (the task's, else
  the candidate's ``default_epochs``), in kWh, × PUE; its CO2 at the intensity of ``train_region`` (or
  of the serving region when the task names no training region);
- inference energy over the usage horizon = ``energy_j_per_inference`` × ``requests_per_day`` ×
  ``horizon_days``, in kWh, × PUE; its CO2 at the serving region's intensity;
- SCI per request = energy of one request in kWh × PUE × the serving region's intensity, in g.

A request is one inference sample, the unit ``energy_j_per_inference`` is measured in. The energy is
the measurement's workload (active) share; the device's idle share is not attributed to the option.

Embodied emissions (the M term of SCI = (E × I + M) / R: the hardware's manufacture, amortised over
its life) are not included yet, so every figure here is operational CO2 only.

When training energy cannot be computed (``dataset.num_samples`` is 0, or there are no epochs to
multiply by), the training figures are 0 and a warning naming the reason is logged: the task
encoder rejects such tasks, so this only happens to tasks that bypassed it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sustainml import msg, units
from sustainml.exceptions import InvalidProblem
from sustainml.variants import split_model_name

from .intensity import RegionIntensity, resolve_region

__all__ = ["compute_footprints", "serving_regions"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Energy:
    """Facility energy of one option, PUE applied. Units: kWh."""

    train_kwh: float
    inference_kwh: float
    request_kwh: float


def compute_footprints(
    task: msg.EncodedTask,
    candidates: msg.ModelCandidates,
    measurement: msg.HardwareMeasurement,
    *,
    pue: float = 1.0,
) -> msg.CarbonFootprint:
    """One footprint per (measurement × serving region), in the order of ``serving_regions``.

    ``pue`` is the data centre's power usage effectiveness (facility energy / IT energy, >= 1).
    Raises ``InvalidProblem`` for inputs no real deployment has (negative usage, PUE below 1,
    negative energies) and ``UnknownRegion`` for a region the intensity data lacks.
    """
    _check_inputs(task, measurement, pue)
    regions = serving_regions(task)
    train_region = resolve_region(task.train_region) if task.train_region.strip() else None
    default_epochs = {c.name: int(c.default_epochs) for c in candidates.candidates}
    if task.dataset.num_samples == 0 and measurement.measurements:
        _log.warning(
            "task %s: training footprints are 0 because dataset.num_samples is 0 (unknown)",
            _label(task.task_id),
        )

    footprints = []
    for m in measurement.measurements:
        energy = _energy(task, m, _epochs(task, m, default_epochs), pue)
        for region in regions:
            train = train_region or region
            co2_g_training = energy.train_kwh * train.intensity_g_per_kwh
            co2_g_inference = energy.inference_kwh * region.intensity_g_per_kwh
            footprints.append(
                msg.Footprint(
                    model=m.model,
                    device=m.device,
                    host=m.host or measurement.host,
                    region=region.code,
                    intensity_g_per_kwh=region.intensity_g_per_kwh,
                    train_region=train.code,
                    train_intensity_g_per_kwh=train.intensity_g_per_kwh,
                    intensity_source=_source_text(region, train),
                    pue=pue,
                    train_energy_kwh=energy.train_kwh,
                    inference_energy_kwh=energy.inference_kwh,
                    co2_g_training=co2_g_training,
                    co2_g_inference=co2_g_inference,
                    co2_g_total=co2_g_training + co2_g_inference,
                    sci_g_per_request=energy.request_kwh * region.intensity_g_per_kwh,
                )
            )
    return msg.CarbonFootprint(task_id=task.task_id, host=measurement.host, footprints=footprints)


def serving_regions(task: msg.EncodedTask) -> list[RegionIntensity]:
    """The task's serving region (``inference_region``, else ``train_region``), then its alternatives.

    Spellings of one region ("Germany", "DEU", "DE") count once, at their first place.
    """
    seen: dict[str, RegionIntensity] = {}
    for text in [task.inference_region or task.train_region, *task.alternative_regions]:
        region = resolve_region(text)
        seen.setdefault(region.code, region)
    return list(seen.values())


def _energy(task: msg.EncodedTask, m: msg.Measurement, epochs: int, pue: float) -> _Energy:
    train_j = m.energy_j_per_train_sample * task.dataset.num_samples * epochs
    inference_j = m.energy_j_per_inference * task.usage.requests_per_day * task.usage.horizon_days
    return _Energy(
        train_kwh=units.j_to_kwh(train_j) * pue,
        inference_kwh=units.j_to_kwh(inference_j) * pue,
        request_kwh=units.j_to_kwh(m.energy_j_per_inference) * pue,
    )


def _epochs(task: msg.EncodedTask, m: msg.Measurement, default_epochs: dict[str, int]) -> int:
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


def _check_inputs(task: msg.EncodedTask, measurement: msg.HardwareMeasurement, pue: float) -> None:
    if not (math.isfinite(pue) and pue >= 1.0):
        raise InvalidProblem(
            f"pue is {pue}, but a data centre's power usage effectiveness is at least 1.0 "
            "(1.0 = no overhead, typical clouds 1.1-1.6): give pue >= 1"
        )
    usage = task.usage
    for name, value in (("requests_per_day", usage.requests_per_day), ("horizon_days", usage.horizon_days)):
        if not (math.isfinite(value) and value >= 0):
            raise InvalidProblem(f"usage.{name} is {value}: give a number >= 0 (0 = no inference counted)")
    if task.epochs < 0:
        raise InvalidProblem(f"epochs is {task.epochs}: give a number of epochs >= 0 (0 = the recipe's)")
    for m in measurement.measurements:
        for name in ("energy_j_per_inference", "energy_j_per_train_sample"):
            value = getattr(m, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidProblem(
                    f"measurement of {m.model} on {m.device}: {name} is {value}; an energy is a number >= 0"
                )


def _label(task_id: msg.TaskId) -> str:
    return f"{task_id.problem_id or '?'}#{task_id.iteration}"
