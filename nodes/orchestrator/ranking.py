"""The orchestrator's decision support: join the nodes' outputs into options, check the user's
constraints, find the Pareto front of quality / gCO2e / latency, rank, and explain the result.

Pure functions over message types; nothing here knows DDS, so the ranking is tested with hand-built
messages. The entry point is :func:`build_options`; :func:`assess` returns the same options together
with the constraint misses behind each note, for :func:`missing_constraints_summary`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sustainml import msg
from sustainml.units import MS_PER_S, S_PER_HOUR
from sustainml.variants import find_candidate

__all__ = [
    "AssessedOption",
    "ConstraintMiss",
    "assess",
    "build_options",
    "explain",
    "missing_constraints_summary",
    "unmeetable_constraints",
]

ENERGY_ESTIMATE = "estimate"  # Measurement.energy_method of figures computed, not metered
ESTIMATED = "estimated"  # JobMeasurement.basis of a pre-run estimate: nothing was run

# Readable names of the fields of msg.TaskConstraints, for notes and summaries.
_CONSTRAINT_NAMES: dict[str, str] = {
    "quality_target": "quality target",
    "max_latency_ms": "latency limit",
    "max_memory_mb": "memory limit",
    "max_train_co2_g": "training CO2 limit",
    "max_train_hours": "training time limit",
}


@dataclass(frozen=True)
class ConstraintMiss:
    """One constraint an option does not meet.

    ``constraint`` is the field of ``msg.TaskConstraints`` ("max_latency_ms"); ``text`` the readable
    form that goes into the option's note ("latency 41 ms > 20 ms limit").
    """

    constraint: str
    text: str
    excess: float = 0.0  # how far off, as a ratio >= 1 (value / limit, or target / value); 0 = unknown

    def __str__(self) -> str:
        return self.text


@dataclass
class AssessedOption:
    """A ranked option with what its note was made from.

    ``complete`` is False when the option's measurement or catalogue entry never arrived: its
    quality or latency is then unknown, so it cannot meet the constraints nor join the front.
    """

    option: msg.TaskOption
    misses: list[ConstraintMiss] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    complete: bool = True


# ---------------------------------------------------------------------------------------- building


def build_options(
    encoded: msg.EncodedTask,
    candidates: msg.ModelCandidates,
    measurements: list[msg.HardwareMeasurement],
    footprints: list[msg.CarbonFootprint],
) -> list[msg.TaskOption]:
    """One ranked ``TaskOption`` per footprint (model × device × host × region), best first.

    See :func:`assess` for how options are joined, checked, put on the front and ranked.
    """
    return [assessed.option for assessed in assess(encoded, candidates, measurements, footprints)]


def assess(
    encoded: msg.EncodedTask,
    candidates: msg.ModelCandidates,
    measurements: list[msg.HardwareMeasurement],
    footprints: list[msg.CarbonFootprint],
) -> list[AssessedOption]:
    """Join, check, put on the Pareto front and rank every option; return them sorted by rank.

    Joining: each ``Footprint`` (model, device, host, region) is joined with the ``Measurement`` of
    the same model, device and host and with the ``ModelCandidate`` of the same model name. A host
    left empty in a footprint or measurement is the host of its enclosing message. When the same
    option arrives twice, the later footprint wins; when a model was measured twice on one device
    (two precisions), the first measurement wins, because a footprint cannot tell them apart.

    Latency: ``latency_ms`` is the per-request latency, taken as ``latency_p50_ms`` of the measured
    batch (the hardware node measures at the usage's batch size; a request served in a batch waits
    for the whole batch). It is the figure ``max_latency_ms`` is checked against.

    Constraints (0 = no limit for each): the candidate's quality against ``quality_target`` (a floor
    when higher is better, a ceiling otherwise; not checked when the candidate reports another
    metric than the task's), ``latency_ms`` against ``max_latency_ms``, ``peak_memory_mb`` against
    ``max_memory_mb``, ``training_co2_g`` against ``max_train_co2_g``, and the estimated training
    time against ``max_train_hours``: ``train_step_ms / train_batch_size × num_samples × epochs``
    with ``epochs = encoded.epochs or candidate.default_epochs``. The note names every constraint
    missed, then the assumptions behind the figures (an energy estimate, the training-time
    estimate, a constraint that could not be checked).

    Pareto front: an option is on the front when no other option is at least as good on all three
    of quality (per ``higher_is_better``), ``total_co2_g`` (lower) and ``latency_ms`` (lower) and
    strictly better on one. The front is computed among the options that meet the constraints; if
    none do, among all complete options. Options outside that set are never on the front.

    Rank (1 = recommended): options meeting the constraints first, then those on the front, then by
    ``total_co2_g`` ascending, ties by quality (better first), then latency; incomplete options go
    last within their group, and names break any remaining tie so that the order is stable.
    """

    measurement_by_key: dict[tuple[str, str, str], msg.JobMeasurement] = {}
    for hardware in measurements:
        for measurement in hardware.measurements:
            key = (measurement.model, measurement.device, measurement.host or hardware.host)
            if key not in measurement_by_key or (measurement_by_key[key].basis == ESTIMATED != measurement.basis):
                measurement_by_key[key] = measurement   # the first, or a measurement over an estimate

    footprint_by_key: dict[tuple[str, str, str, str], msg.FootprintDetail] = {}
    for carbon in footprints:
        for footprint in carbon.footprints:
            host = footprint.host or carbon.host
            footprint_by_key[(footprint.model, footprint.device, host, footprint.region)] = footprint

    assessed = [
        _assess_one(
            encoded,
            footprint,
            host,
            *find_candidate(candidates.candidates, model),
            measurement_by_key.get((model, device, host)),
        )
        for (model, device, host, _region), footprint in footprint_by_key.items()
    ]
    _add_alternatives(assessed)
    _mark_pareto(assessed)
    assessed.sort(key=_rank_key)
    for rank, item in enumerate(assessed, start=1):
        item.option.rank = rank
    return assessed


def _assess_one(
    encoded: msg.EncodedTask,
    footprint: msg.FootprintDetail,
    host: str,
    candidate: msg.ModelCandidate | None,
    variant: msg.GreenerVariant | None,
    measurement: msg.JobMeasurement | None,
) -> AssessedOption:
    option = msg.TaskOption(
        model=footprint.model,
        device=footprint.device,
        host=host,
        region=footprint.region,
        train_energy_kwh=footprint.train_energy_kwh,
        intensity_g_per_kwh=footprint.intensity_g_per_kwh,
        pue=footprint.pue,
        training_co2_g=footprint.training_co2_g,
        inference_co2_g=footprint.inference_co2_g,
        total_co2_g=footprint.total_co2_g,
        sci_g_per_request=footprint.sci_g_per_request,
        footprint=copy.deepcopy(footprint),
    )
    if candidate is not None:
        option.quality = msg.QualityFigure(
            metric=candidate.quality_metric or encoded.metric,
            value=candidate.quality_value + (variant.quality_change if variant else 0.0),
            higher_is_better=candidate.higher_is_better,
        )
    else:
        option.quality = msg.QualityFigure(metric=encoded.metric, higher_is_better=encoded.higher_is_better)
    if measurement is not None:
        option.latency_ms = measurement.latency_p50_ms
        option.energy_per_inference_j = measurement.energy_per_inference_j
        option.energy_per_inference_uncertainty_j = measurement.energy_per_inference_uncertainty_j
        option.energy_method = measurement.energy_method
        option.basis = measurement.basis or "measured"
        option.latency_uncertainty_ms = measurement.latency_p50_uncertainty_ms

    result = AssessedOption(option=option, complete=candidate is not None and measurement is not None)
    where = f"{footprint.model} on {footprint.device}" + (f" at {host}" if host else "")
    if measurement is None:
        result.assumptions.append(f"no measurement of {where}: latency, memory and training time unknown")
    if candidate is None:
        result.assumptions.append(f"{footprint.model} is not among the task's candidates: quality unknown")
    elif variant is not None:
        how = "assumed" if variant.assumed else "published"
        result.assumptions.append(
            f"{variant.name} variant of {candidate.name}: quality {variant.quality_effect} ({how}: {variant.evidence})"
        )

    constraints = encoded.constraints
    if candidate is not None:
        _check_quality(encoded, candidate, result)
    if measurement is not None:
        _check_measured(constraints, measurement, result)
    train_co2_g = footprint.training_co2_g + footprint.experimentation_co2_g
    if constraints.max_train_co2_g > 0 and train_co2_g > constraints.max_train_co2_g:
        runs = f" ({footprint.experiment_runs} experiment runs and the final one)" if footprint.experiment_runs else ""
        result.misses.append(
            ConstraintMiss(
                "max_train_co2_g",
                f"training{runs} {_num(train_co2_g)} g CO2e > {_num(constraints.max_train_co2_g)} g limit",
                train_co2_g / constraints.max_train_co2_g,
            )
        )
    if constraints.max_train_hours > 0:
        _check_train_hours(encoded, candidate, measurement, result)
    if measurement is not None:
        if measurement.basis == ESTIMATED:
            why = f" ({measurement.not_measured_reason})" if measurement.not_measured_reason else ""
            result.assumptions.append(f"not measured{why}: figures are the pre-run estimate: {measurement.assumptions}")
        elif measurement.energy_method == ENERGY_ESTIMATE:
            result.assumptions.append(
                "energy is an estimate" + (f": {measurement.assumptions}" if measurement.assumptions else "")
            )
        elif measurement.assumptions:
            result.assumptions.append(f"energy: {measurement.assumptions}")
        if measurement.cached:
            result.assumptions.append("measurement reused from an earlier task")

    option.meets_constraints = result.complete and not result.misses
    option.note = "; ".join([miss.text for miss in result.misses] + result.assumptions)
    return result


def _add_alternatives(assessed: list[AssessedOption]) -> None:
    """Each option's greener regions (from the carbon tracker), then the same model served in the
    same region on every other measured device that emits less, with the latency it would cost."""
    by_model_region: dict[tuple[str, str], list[msg.TaskOption]] = {}
    for item in assessed:
        by_model_region.setdefault((item.option.model, item.option.region), []).append(item.option)
    for item in assessed:
        option = item.option
        option.alternatives = list(option.footprint.greener_regions)
        others = [
            other
            for other in by_model_region[(option.model, option.region)]
            if (other.device, other.host) != (option.device, option.host) and other.total_co2_g < option.total_co2_g
        ]
        for other in sorted(others, key=lambda o: o.total_co2_g):
            slower = other.latency_ms - option.latency_ms if other.latency_ms and option.latency_ms else math.nan
            option.alternatives.append(
                msg.Alternative(
                    kind="device",
                    region=other.region,
                    device=other.device,
                    host=other.host,
                    intensity_g_per_kwh=other.intensity_g_per_kwh,
                    total_co2_g=other.total_co2_g,
                    saving_g=option.total_co2_g - other.total_co2_g,
                    latency_change_ms=slower,
                    note=f"{other.model} on {other.device}" + (f" at {other.host}" if other.host else "")
                    + ("" if math.isfinite(slower) else "; latency unknown"),
                )
            )


def _check_quality(encoded: msg.EncodedTask, candidate: msg.ModelCandidate, result: AssessedOption) -> None:
    target = encoded.constraints.quality_target
    if target == 0:
        return
    metric = candidate.quality_metric
    if encoded.metric and metric and metric != encoded.metric:
        result.assumptions.append(
            f"quality target not checked: {candidate.name} reports {metric}, the task asks for {encoded.metric}"
        )
        return
    value = result.option.quality.value  # a variant's expected quality, not its candidate's
    if math.isnan(value):
        result.misses.append(ConstraintMiss(
            "quality_target", f"quality unknown (no published {encoded.metric or 'quality'} figure), "
            f"so the {_num(target)} target cannot be confirmed"))
        return
    if candidate.higher_is_better and value < target:
        text = f"{metric or 'quality'} {_num(value)} < {_num(target)} target"
        excess = target / value if value > 0 else float("inf")
    elif not candidate.higher_is_better and value > target:
        text = f"{metric or 'quality'} {_num(value)} > {_num(target)} target"
        excess = value / target
    else:
        return
    result.misses.append(ConstraintMiss("quality_target", text, excess))


def _check_measured(constraints: msg.TaskConstraints, measurement: msg.JobMeasurement, result: AssessedOption) -> None:
    latency_ms = measurement.latency_p50_ms
    if constraints.max_latency_ms > 0 and latency_ms > constraints.max_latency_ms:
        result.misses.append(
            ConstraintMiss(
                "max_latency_ms", f"latency {_num(latency_ms)} ms > {_num(constraints.max_latency_ms)} ms limit",
                latency_ms / constraints.max_latency_ms,
            )
        )
    if constraints.max_memory_mb > 0:
        if measurement.peak_memory_mb <= 0:
            result.assumptions.append("memory limit not checked: peak memory not measured")
        elif measurement.peak_memory_mb > constraints.max_memory_mb:
            result.misses.append(
                ConstraintMiss(
                    "max_memory_mb",
                    f"peak memory {_num(measurement.peak_memory_mb)} MB > {_num(constraints.max_memory_mb)} MB limit",
                    measurement.peak_memory_mb / constraints.max_memory_mb,
                )
            )


def _check_train_hours(
    encoded: msg.EncodedTask,
    candidate: msg.ModelCandidate | None,
    measurement: msg.JobMeasurement | None,
    result: AssessedOption,
) -> None:
    if measurement is None:
        return  # already noted as missing
    epochs = encoded.epochs or (candidate.default_epochs if candidate is not None else 0)
    samples = encoded.dataset.num_samples
    unknown = [
        why
        for why, missing in (
            ("dataset size unknown", samples == 0),
            ("epochs unknown", epochs == 0),
            ("training step not measured", measurement.train_step_ms <= 0 or measurement.train_batch_size == 0),
        )
        if missing
    ]
    if unknown:
        result.assumptions.append("training time not checked: " + ", ".join(unknown))
        return
    train_hours = (
        measurement.train_step_ms / measurement.train_batch_size * samples * epochs / MS_PER_S / S_PER_HOUR
    )
    basis = (
        f"training ≈ {_num(train_hours)} h assumes {epochs} epochs × {samples:,} samples at "
        f"{_num(measurement.train_step_ms)} ms per {measurement.train_batch_size}-sample step"
    )
    limit = encoded.constraints.max_train_hours
    if train_hours > limit:
        result.misses.append(
            ConstraintMiss("max_train_hours", f"training ≈ {_num(train_hours)} h > {_num(limit)} h limit",
                           train_hours / limit)
        )
    result.assumptions.append(basis)


# ------------------------------------------------------------------------------ front and ranking


def _goodness(quality: msg.QualityFigure) -> float:
    """Quality oriented so that larger is better, whatever the metric; unknown (NaN: no published
    figure) is the worst, so it never wins on quality."""
    if math.isnan(quality.value):
        return -math.inf
    return quality.value if quality.higher_is_better else -quality.value


def _dominates(a: msg.TaskOption, b: msg.TaskOption) -> bool:
    qa, qb = _goodness(a.quality), _goodness(b.quality)
    no_worse = qa >= qb and a.total_co2_g <= b.total_co2_g and a.latency_ms <= b.latency_ms
    better = qa > qb or a.total_co2_g < b.total_co2_g or a.latency_ms < b.latency_ms
    return no_worse and better


def _mark_pareto(assessed: list[AssessedOption]) -> None:
    pool = [a.option for a in assessed if a.option.meets_constraints]
    if not pool:
        pool = [a.option for a in assessed if a.complete]
    for option in pool:
        option.pareto = not any(_dominates(other, option) for other in pool if other is not option)


def _rank_key(assessed: AssessedOption) -> tuple[object, ...]:
    option = assessed.option
    return (
        not option.meets_constraints,
        not option.pareto,
        not assessed.complete,
        option.total_co2_g,
        -_goodness(option.quality),
        option.latency_ms,
        option.model,
        option.device,
        option.host,
        option.region,
    )


# ------------------------------------------------------------------------------------ explaining


def explain(encoded: msg.EncodedTask, options: list[msg.TaskOption]) -> str:
    """A few readable sentences on the ranked ``options``: the recommendation and why, how many
    options met the constraints, the trade-off along the Pareto front, and which energy figures
    are estimates rather than measurements."""
    if not options:
        return "No option could be evaluated: no carbon footprints arrived for this task."
    ranked = sorted(options, key=lambda o: o.rank)
    best = ranked[0]
    label = _labeller(ranked)
    sentences = [_recommendation(best, label)]

    met = [o for o in ranked if o.meets_constraints]
    on_front = [o for o in ranked if o.pareto]
    if met:
        sentences.append(
            f"{len(met)} of {len(ranked)} options meet the constraints, {len(on_front)} of them on the "
            "Pareto front of quality, gCO2e and latency; among those it emits the least CO2e."
        )
    else:
        sentences.append(
            f"None of the {len(ranked)} options meets every constraint, so this is "
            + ("the greenest on the Pareto front of all of them" if best.pareto else "the first of them")
            + f" ({best.note or 'see its figures'})."
        )
    pool = "meeting the constraints" if met else "evaluated"
    sentences.extend(_trade_offs(best, [o for o in on_front if o is not best], label, encoded.metric, pool))

    sentences += _share_sentence(ranked, best, lambda o: o.basis == ESTIMATED, "figures are",
                                 "pre-run estimates", "latency and energy computed from the model's operations and "
                                 "this device's calibration, corrected by its earlier measurements, not measured")
    sentences += _share_sentence(ranked, best, lambda o: o.energy_method == ENERGY_ESTIMATE, "energy figures are",
                                 "labelled estimate", "they are computed from assumptions, not measurements")
    return " ".join(sentences)


def _share_sentence(ranked: list[msg.TaskOption], best: msg.TaskOption, which: Callable[[msg.TaskOption], bool],
                    what: str, label: str, why: str) -> list[str]:
    """"Its/Some {what} {label} (n of N options): {why}." for the options ``which`` picks, if any."""
    picked = [o for o in ranked if which(o)]
    if not picked:
        return []
    whose = "Its" if which(best) else "Some"
    return [f"{whose} {what} {label} ({len(picked)} of {len(ranked)} options): {why}."]


def unmeetable_constraints(assessed: Sequence[AssessedOption]) -> list[msg.Finding]:
    """The constraints that no evaluated option meets, each with the option that comes closest.

    These are contradictions in the problem as posed (a latency budget no candidate meets on the
    allowed hardware, a training CO2 budget below the cheapest candidate, ...): said, not dropped.
    """
    complete = [a for a in assessed if a.complete]
    if not complete:
        return []
    findings = []
    for name, label in _CONSTRAINT_NAMES.items():
        misses = [(miss, a.option) for a in complete for miss in a.misses if miss.constraint == name]
        if len({id(option) for _, option in misses}) < len(complete):
            continue  # some option meets it
        miss, option = min(misses, key=lambda m: m[0].excess or float("inf"))
        where = f"{option.model} on {option.device}" + (f" in {option.region}" if option.region else "")
        findings.append(msg.Finding(
            field=f"constraints.{name}", kind="contradiction",
            message=f"no option meets the {label}; the closest is {where}: {miss.text}. "
                    f"Loosen the {label}, or allow other hardware or models"))
    return findings


def missing_constraints_summary(assessed: Sequence[AssessedOption]) -> str:
    """Which constraints bind, and what loosening one alone would admit — the hint a user needs to
    iterate on a problem. Takes :func:`assess`'s output; "" when there is nothing to say."""
    if not assessed:
        return ""
    total = len(assessed)
    missed_by: dict[str, int] = {}
    only_miss: dict[str, int] = {}
    for item in assessed:
        names = {miss.constraint for miss in item.misses}
        for name in names:
            missed_by[name] = missed_by.get(name, 0) + 1
        if len(names) == 1 and item.complete:
            (name,) = names
            only_miss[name] = only_miss.get(name, 0) + 1
    if not missed_by:
        return f"All {total} options meet every constraint." if all(a.complete for a in assessed) else ""
    parts = [
        f"{_CONSTRAINT_NAMES.get(name, name)} missed by {count} of {total}"
        for name, count in sorted(missed_by.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    summary = "Constraints missed: " + ", ".join(parts) + "."
    if only_miss:
        name, count = max(only_miss.items(), key=lambda kv: (kv[1], kv[0]))
        summary += f" Loosening the {_CONSTRAINT_NAMES.get(name, name)} alone would admit {count} more option" + (
            "s." if count > 1 else "."
        )
    return summary


def _recommendation(best: msg.TaskOption, label: Callable[[msg.TaskOption], str]) -> str:
    known = best.quality.metric and not math.isnan(best.quality.value)
    quality = f"{best.quality.metric} {_num(best.quality.value)}" if known else "no published quality figure"
    f = best.footprint
    parts = [f"{_num(best.training_co2_g)} g to train", f"{_num(best.inference_co2_g)} g to serve over the horizon"]
    if f.experimentation_co2_g:
        parts.insert(0, f"{_num(f.experimentation_co2_g)} g for {f.experiment_runs} experiment runs")
    if f.embodied_co2_g:
        parts.append(f"{_num(f.embodied_co2_g)} g of the hardware's manufacture")
    return (
        f"Recommended: {label(best)}, with {quality}, {_num(best.total_co2_g)} g CO2e in total "
        f"({', '.join(parts)}) and {_num(best.latency_ms)} ms per request."
    )


def _trade_offs(
    best: msg.TaskOption,
    others_on_front: list[msg.TaskOption],
    label: Callable[[msg.TaskOption], str],
    task_metric: str,
    pool: str,
) -> list[str]:
    if not best.pareto:
        return []
    if not others_on_front:
        return [f"No other option {pool} is better on quality, gCO2e or latency."]
    sentences = []
    most_accurate = max(others_on_front, key=lambda o: (_goodness(o.quality), -o.total_co2_g))
    if _goodness(most_accurate.quality) > _goodness(best.quality) and not math.isnan(best.quality.value):
        metric = best.quality.metric or task_metric or "quality"
        sentences.append(
            f"Trade-off: {label(best)} emits {_co2_difference(best, most_accurate)} than {label(most_accurate)} "
            f"at {best.quality.value - most_accurate.quality.value:+.3g} {metric} "
            f"({_num(best.quality.value)} vs {_num(most_accurate.quality.value)})."
        )
    fastest = min(others_on_front, key=lambda o: (o.latency_ms, o.total_co2_g))
    if fastest is not most_accurate and fastest.latency_ms < best.latency_ms:
        sentences.append(
            f"For speed, {label(fastest)} answers in {_num(fastest.latency_ms)} ms instead of "
            f"{_num(best.latency_ms)} ms and emits {_co2_difference(fastest, best)} than the recommendation."
        )
    if not sentences:  # front members differ only in ways the two sentences above do not cover
        sentences.append(f"{len(others_on_front)} more options are on the front; see their notes.")
    return sentences


def _co2_difference(option: msg.TaskOption, reference: msg.TaskOption) -> str:
    delta = reference.total_co2_g - option.total_co2_g
    return f"{_num(abs(delta))} g CO2e {'less' if delta >= 0 else 'more'}"


def _labeller(options: Iterable[msg.TaskOption]) -> Callable[[msg.TaskOption], str]:
    """"resnet18 on cpu in FRA"; the host is named only when the options span several hosts."""
    several_hosts = len({o.host for o in options}) > 1

    def label(option: msg.TaskOption) -> str:
        host = f" of {option.host}" if several_hosts and option.host else ""
        region = f" in {option.region}" if option.region else ""
        return f"{option.model} on {option.device}{host}{region}"

    return label


def _num(value: float) -> str:
    """A figure with the precision a reader needs: 4,120 / 41.3 / 2.1 / 0.0042."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}".removesuffix(".0")
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if magnitude == 0:
        return "0"
    return f"{value:.2g}"
