"""The provider's decision: which catalogue models fit a task, and why.

``propose`` filters the catalogue (``sustainml.models.catalogue``) for an ``EncodedTask`` (task type,
requested models, quality target, memory budget, deploy target) and says, for every model kept or
dropped, the reason in words a user can check against the cited source; each kept model carries its
greener variants.

Typical use::

    entries = load_catalogue()
    proposal = propose(task, entries)           # task: sustainml.msg.EncodedTask
    [c.name for c in proposal.candidates], proposal.excluded
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sustainml.exceptions import InvalidProblem, NoCandidates
from sustainml.models.catalogue import CatalogueEntry, find, flops_per_sample, summary, to_candidate
from sustainml.task_types import Metric
from sustainml.models.errors import UnknownModel
from sustainml.msg import EncodedTask, ModelCandidates

from . import deployment, greener

__all__ = ["propose"]


def _requested(task: EncodedTask, entries: Sequence[CatalogueEntry]) -> list[str]:
    """The task's candidate_models without repeats, each checked to be a catalogue name."""
    known = [e.name for e in entries]
    names = list(dict.fromkeys(task.candidate_models))
    for name in names:
        if name not in known:
            raise UnknownModel(name, known)
    return names


def _check_target(target: float, metric: Metric) -> None:
    if metric.fraction and target > 1:
        raise InvalidProblem(
            f"quality_target {target:g} for {metric.name} is above 1: {metric.name} is a fraction, "
            f"e.g. {target / 100:g} for {target:g}%"
        )


def _quality_verdict(entry: CatalogueEntry, task: EncodedTask, target: float) -> tuple[str | None, str]:
    """(why it is excluded, or None; what to say when kept) for the quality target."""
    metric, q = entry.metric, entry.quality
    if q is None or metric is None:
        if target:
            return "publishes no quality figure, so the quality target cannot be checked", ""
        return None, "quality unknown until you evaluate it"
    if target and task.metric and task.metric != metric.name:
        return f"publishes {metric.name}, not {task.metric}, so the quality target cannot be checked", ""
    if not metric.meets(q.value, target):
        return f"{metric.describe(q.value)} on {q.benchmark} misses the {metric.describe_target(target)} target", ""
    return None, f"meets the {metric.describe_target(target)} target" if target else "no quality target set"


_ON_FRONT, _DOMINATED, _NOT_COMPARED = 0, 1, 2   # ranking groups, best first


def _front_notes(kept: Sequence[CatalogueEntry]) -> dict[str, tuple[int, str]]:
    """For each kept model, whether another kept one is both better and cheaper on the same benchmark:
    its ranking group and the note that says so."""
    notes = {}
    for entry in kept:
        q, metric, flops = entry.quality, entry.metric, flops_per_sample(entry)
        if q is None or metric is None or not flops:
            notes[entry.name] = (_NOT_COMPARED, "not compared with the others (quality or FLOPs unknown)")
            continue
        better = [
            other for other in kept
            if other is not entry and other.quality is not None and other.quality.metric == q.metric
            and other.quality.benchmark == q.benchmark and (other_flops := flops_per_sample(other))
            and not metric.better(q.value, other.quality.value) and other_flops <= flops
            and (metric.better(other.quality.value, q.value) or other_flops < flops)
        ]  # fmt: skip
        if better:
            names = ", ".join(o.name for o in better)
            verb = "is" if len(better) == 1 else "are"
            notes[entry.name] = (_DOMINATED, f"dominated: {names} {verb} as good or better for fewer FLOPs")
        else:
            notes[entry.name] = (_ON_FRONT, "on the quality/compute front of its benchmark")
    return notes


def _rank_key(entry: CatalogueEntry, notes: Mapping[str, tuple[int, str]]) -> tuple[int, float]:
    """Front first, then dominated, then unknown; within each, fewer FLOPs first (the greener first)."""
    return notes[entry.name][0], flops_per_sample(entry) or math.inf


def propose(task: EncodedTask, entries: Sequence[CatalogueEntry]) -> ModelCandidates:
    """The catalogue models that fit ``task``, ranked, each with its reason and its greener variants,
    and the dropped ones with theirs.

    Filters, in order: the task type; the task's ``candidate_models`` (names; empty = all); the
    quality target (0 = none), a floor for metrics where higher is better and a ceiling for error
    metrics; ``constraints.max_memory_mb`` and ``constraints.deploy_target`` against the size of the
    weights. Kept models are ranked: those on the quality/compute front of their benchmark first
    (no other kept model is as good for fewer FLOPs), then the dominated ones, then those whose
    quality is unknown; fewer FLOPs first within each group. Raises ``UnknownModel`` for a requested
    name the catalogue lacks, ``InvalidProblem`` for an impossible target and ``NoCandidates`` when
    nothing is left, naming what would have to change.
    """
    entries = list(entries)
    task_type = task.task_type
    of_type = [e for e in entries if e.task_type == task_type]
    if not of_type:
        covered = ", ".join(sorted({e.task_type for e in entries}))
        raise NoCandidates(
            f"no catalogue model does {task_type!r}; the catalogue covers {covered}. "
            "Describe the task as one of those, or add models for it to the catalogue."
        )

    excluded: list[str] = []
    pool = of_type
    requested = _requested(task, entries)
    if requested:
        for name in requested:
            other = find(entries, name)
            if other.task_type != task_type:
                excluded.append(f"{name}: built for {other.task_type}, the task is {task_type}")
        excluded += [
            f"{e.name}: not among the requested candidate_models" for e in of_type if e.name not in requested
        ]
        pool = [e for e in of_type if e.name in requested]
        if not pool:
            raise NoCandidates(
                f"none of the requested candidate_models ({', '.join(requested)}) is built for {task_type}; "
                f"the {task_type} models are {', '.join(e.name for e in of_type)}. "
                "Request some of those, or leave candidate_models empty."
            )

    target = task.constraints.quality_target
    if target < 0 or not math.isfinite(target):
        raise InvalidProblem(f"quality_target must be a finite number >= 0 (0 = none); got {target}")
    budget = deployment.memory_budget(task.constraints)
    kept: list[CatalogueEntry] = []
    verdicts: dict[str, list[str]] = {}
    comparable: list[CatalogueEntry] = []
    too_big: list[CatalogueEntry] = []  # good enough, but its weights do not fit
    for entry in pool:
        if entry.metric is not None:
            _check_target(target, entry.metric)
        quality_out, quality_note = _quality_verdict(entry, task, target)
        if entry.metric is not None and not (target and task.metric and task.metric != entry.metric.name):
            comparable.append(entry)
        memory_out, memory_note = budget.check(entry.params)
        if quality_out or memory_out:
            excluded.append(f"{entry.name}: {'; '.join(w for w in (quality_out, memory_out) if w)}")
            if memory_out and not quality_out:
                too_big.append(entry)
            continue
        kept.append(entry)
        verdicts[entry.name] = [n for n in (quality_note, memory_note) if n]

    if not kept:
        raise NoCandidates(_nothing_left(task, pool, comparable, too_big, budget, bool(requested), target))

    notes = _front_notes(kept)
    kept.sort(key=lambda e: _rank_key(e, notes))
    candidates = []
    for entry in kept:
        reason = "; ".join([summary(entry), *verdicts[entry.name], notes[entry.name][1]])
        candidates.append(to_candidate(entry, reason, greener.variants_for(entry, entries, flops_per_sample)))
    return ModelCandidates(task_id=task.task_id, candidates=candidates, excluded=excluded)


def _nothing_left(
    task: EncodedTask,
    pool: Sequence[CatalogueEntry],
    comparable: Sequence[CatalogueEntry],
    too_big: Sequence[CatalogueEntry],
    budget: deployment.MemoryBudget,
    requested: bool,
    target: float,
) -> str:
    """Why no model is left, and what would have to change."""
    which = "requested" if requested else "known"
    task_type = task.task_type
    if too_big or not target:
        sized = [(e.params, e) for e in pool if e.params]
        smallest = min(sized, key=lambda size_entry: size_entry[0], default=None)
        hint = (
            f"; the smallest is {smallest[1].name} with {deployment.weights_mb(smallest[0]):.3g} MiB of fp32 weights"
            if smallest else ""
        )
        return (
            f"no {which} {task_type} model fits {budget.describe()}{hint}. "
            "Raise max_memory_mb, choose a larger deploy_target, or add a smaller model to the catalogue."
        )
    if not comparable:
        published = ", ".join(sorted({e.quality.metric for e in pool if e.quality})) or "no quality figure"
        return (
            f"no {which} {task_type} model publishes {task.metric}; they publish {published}. "
            f"Set the metric to one of those, or quality_target to 0."
        )
    figures = [(e, e.metric, e.quality) for e in comparable if e.metric is not None and e.quality is not None]
    metric = figures[0][1]
    best, _, quality = (max if metric.higher_is_better else min)(figures, key=lambda figure: figure[2].value)
    return (
        f"no {which} {task_type} model reaches {metric.name} {metric.comparison} {target:g}; "
        f"the best is {best.name} at {quality.value:.3g} ({quality.source}). "
        f"{'Lower' if metric.higher_is_better else 'Raise'} quality_target."
    )
