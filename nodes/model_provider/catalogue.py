"""The model catalogue and the provider's decision: which models fit a task, and why.

The catalogue is data (``catalogue.yaml``): published parameters, quality and training recipe of
each model the zoo can build. ``load_catalogue`` validates it at the edge, so the rest of the
pipeline can trust every field; ``propose`` filters it for an ``EncodedTask`` and says, for every
model kept or dropped, the reason in words a user can check against the cited source.

Typical use::

    entries = load_catalogue()
    proposal = propose(task, entries)           # task: sustainml.msg.EncodedTask
    [c.name for c in proposal.candidates], proposal.excluded
"""

import functools
import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from sustainml.exceptions import InvalidProblem, NoCandidates
from sustainml.msg import EncodedTask, ModelCandidate, ModelCandidates

from . import zoo
from .errors import CatalogueError, UnknownModel

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "METRICS",
    "CatalogueEntry",
    "Metric",
    "PublishedQuality",
    "find",
    "flops_per_sample",
    "load_catalogue",
    "propose",
    "summary",
    "to_candidate",
]

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")

MODALITY_OF_TASK = {
    zoo.IMAGE_CLASSIFICATION: "image",
    zoo.TABULAR_REGRESSION: "tabular",
}


@dataclass(frozen=True)
class Metric:
    """How a quality metric compares and reads: accuracy is a fraction to maximise, RMSE an error."""

    name: str
    higher_is_better: bool
    is_fraction: bool  # stored as 0..1, shown as a percentage
    label: str  # as written in reasons: "69.8% top-1", "RMSE 0.459"

    def describe(self, value: float) -> str:
        return f"{value * 100:.1f}% {self.label}" if self.is_fraction else f"{self.label} {value:.3g}"

    def describe_target(self, target: float) -> str:
        return f"{target * 100:g}%" if self.is_fraction else f"{self.label} {self.comparison} {target:g}"

    @property
    def comparison(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def meets(self, value: float, target: float) -> bool:
        """Whether ``value`` satisfies ``target``; a target of 0 means none."""
        if target == 0:
            return True
        return value >= target if self.higher_is_better else value <= target


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("top1_accuracy", higher_is_better=True, is_fraction=True, label="top-1"),
        Metric("rmse", higher_is_better=False, is_fraction=False, label="RMSE"),
    )
}


@dataclass(frozen=True)
class PublishedQuality:
    """A quality figure as published: which metric, on which benchmark, according to whom."""

    metric: str
    value: float
    higher_is_better: bool
    benchmark: str
    source: str  # short citation used in reasons, e.g. "torchvision docs"
    source_url: str


HyperValue = bool | int | float | str | tuple[bool | int | float | str, ...]


@dataclass(frozen=True)
class CatalogueEntry:
    """One model of the catalogue, validated. See catalogue.yaml's header for units.

    ``hyperparameters`` is a tuple of (name, value) pairs so that entries stay hashable;
    ``dict(entry.hyperparameters)`` reads it as a mapping.
    """

    name: str
    display_name: str
    family: str
    task_type: str
    modality: str
    input_shape: tuple[int, ...]
    params: int
    published_gmacs: float | None
    quality: PublishedQuality
    licence: str
    default_epochs: int
    default_batch_size: int
    hyperparameters: tuple[tuple[str, HyperValue], ...] = ()
    notes: str = ""

    @property
    def metric(self) -> Metric:
        return METRICS[self.quality.metric]


# ---------------------------------------------------------------------------------------------- loading

_ENTRY_FIELDS = {
    "name", "display_name", "family", "task_type", "modality", "input_shape", "params", "published_gmacs",
    "quality", "licence", "default_epochs", "default_batch_size", "hyperparameters", "notes",
}  # fmt: skip
_QUALITY_FIELDS = {"metric", "value", "higher_is_better", "benchmark", "source", "source_url"}


class _FieldReader:
    """Reads the fields of one mapping of the catalogue, raising errors that name file, entry and field."""

    def __init__(self, path: Path, entry: str, raw: Mapping[str, Any], allowed: set[str], prefix: str = ""):
        self.path, self.entry, self.raw, self.prefix = path, entry, raw, prefix
        unknown = sorted(set(raw) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed))
            raise self.fail(unknown[0], f"unknown field (a typo?); the known fields are {known}")

    def fail(self, field: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.path}: entry {self.entry}, field '{self.prefix}{field}': {problem}")

    def error(self, field: str, expected: str, got: object) -> CatalogueError:
        return self.fail(field, f"expected {expected}, got {reprlib.repr(got)}")

    def _get(self, field: str) -> Any:
        if field not in self.raw:
            raise self.fail(field, "missing; every entry needs it (see the header of catalogue.yaml)")
        return self.raw[field]

    def text(self, field: str, *, optional: bool = False) -> str:
        if optional and self.raw.get(field) is None:
            return ""
        value = self._get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, "a non-empty string", value)
        return value.strip()

    def choice(self, field: str, choices: Iterable[str]) -> str:
        value = self.text(field)
        if value not in choices:
            raise self.error(field, f"one of {', '.join(choices)}", value)
        return value

    def positive_int(self, field: str) -> int:
        value = self._get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(field, "a positive integer", value)
        return value

    def number(self, field: str, *, low: float, high: float = math.inf, what: str = "") -> float:
        value = self._get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f"a number >= {low:g}"
            raise self.error(field, what or bounds, value)
        return float(value)

    def optional_number(self, field: str, *, low: float, what: str) -> float | None:
        return None if self.raw.get(field) is None else self.number(field, low=low, what=what)

    def flag(self, field: str) -> bool:
        value = self._get(field)
        if not isinstance(value, bool):
            raise self.error(field, "true or false", value)
        return value

    def shape(self, field: str) -> tuple[int, ...]:
        value = self._get(field)
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value)
        ):
            raise self.error(field, "a list of positive integers, e.g. [3, 224, 224]", value)
        return tuple(value)

    def hyperparameters(self, field: str) -> tuple[tuple[str, HyperValue], ...]:
        value = self.raw.get(field) or {}
        scalar = (bool, int, float, str)
        expected = "a mapping of names to numbers, strings, booleans or lists of them"
        if not isinstance(value, dict):
            raise self.error(field, expected, value)
        pairs: list[tuple[str, HyperValue]] = []
        for key, item in value.items():
            if isinstance(item, list) and all(isinstance(x, scalar) for x in item):
                item = tuple(item)
            elif not isinstance(item, scalar):
                raise self.error(f"{field}.{key}", expected, item)
            pairs.append((str(key), item))
        return tuple(pairs)


def _read_entry(path: Path, index: int, raw: object) -> CatalogueEntry:
    label = f"#{index + 1}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: entry {label}: expected a mapping of fields, got {reprlib.repr(raw)}")
    if isinstance(raw.get("name"), str):
        label += f" ({raw['name']})"
    fields = _FieldReader(path, label, raw, _ENTRY_FIELDS)

    name = fields.choice("name", zoo.known_models())
    task_type = fields.choice("task_type", MODALITY_OF_TASK)
    built_for = zoo.architecture(name).task_type
    if task_type != built_for:
        raise fields.error("task_type", f"{built_for!r}, the task the zoo's {name} is built for", task_type)
    modality = fields.choice("modality", sorted(set(MODALITY_OF_TASK.values())))
    if modality != MODALITY_OF_TASK[task_type]:
        expected = f"{MODALITY_OF_TASK[task_type]!r}, the modality of {task_type}"
        raise fields.error("modality", expected, modality)

    raw_quality = raw.get("quality")
    if not isinstance(raw_quality, dict):
        raise fields.error("quality", f"a mapping with {', '.join(sorted(_QUALITY_FIELDS))}", raw_quality)
    q = _FieldReader(path, label, raw_quality, _QUALITY_FIELDS, prefix="quality.")
    metric = METRICS[q.choice("metric", METRICS)]
    if metric.is_fraction:
        fraction = f"{metric.name} as a fraction 0..1, e.g. 0.69758 for 69.758%"
        value = q.number("value", low=0.0, high=1.0, what=fraction)
    else:
        value = q.number("value", low=0.0)
    higher_is_better = q.flag("higher_is_better")
    if higher_is_better != metric.higher_is_better:
        expected = f"{str(metric.higher_is_better).lower()} for {metric.name}"
        raise q.error("higher_is_better", expected, higher_is_better)
    source_url = q.text("source_url")
    if not source_url.startswith(("https://", "http://")):
        raise q.error("source_url", "an http(s) address of the source", source_url)
    quality = PublishedQuality(
        metric=metric.name,
        value=value,
        higher_is_better=higher_is_better,
        benchmark=q.text("benchmark"),
        source=q.text("source"),
        source_url=source_url,
    )

    return CatalogueEntry(
        name=name,
        display_name=fields.text("display_name"),
        family=fields.text("family"),
        task_type=task_type,
        modality=modality,
        input_shape=fields.shape("input_shape"),
        params=fields.positive_int("params"),
        published_gmacs=fields.optional_number("published_gmacs", low=1e-12, what="positive GMACs, or null"),
        quality=quality,
        licence=fields.text("licence"),
        default_epochs=fields.positive_int("default_epochs"),
        default_batch_size=fields.positive_int("default_batch_size"),
        hyperparameters=fields.hyperparameters("hyperparameters"),
        notes=fields.text("notes", optional=True),
    )


def load_catalogue(path: Path | str | None = None) -> list[CatalogueEntry]:
    """Read and validate the catalogue (by default the one next to this module), in file order.

    Raises ``CatalogueError`` naming the file, the entry and the field that is wrong, and what
    was expected there; a catalogue that loads is one the provider can use without further checks.
    """
    path = Path(path) if path is not None else DEFAULT_CATALOGUE_PATH
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read the catalogue ({e.strerror or e}); check the path") from e
    except yaml.YAMLError as e:
        raise CatalogueError(f"{path}: not valid YAML: {e}") from e
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list) or not models:
        raise CatalogueError(
            f"{path}: expected a top-level 'models:' list with at least one entry, got {reprlib.repr(document)}"
        )

    entries = [_read_entry(path, i, raw) for i, raw in enumerate(models)]
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry.name in seen:
            raise CatalogueError(
                f"{path}: entry #{i + 1} ({entry.name}), field 'name': expected a unique name, got a duplicate"
            )
        seen.add(entry.name)
    return entries


def find(entries: Iterable[CatalogueEntry], name: str) -> CatalogueEntry:
    """The entry called ``name``; raises ``UnknownModel`` listing the names there are."""
    entries = list(entries)
    for entry in entries:
        if entry.name == name:
            return entry
    raise UnknownModel(name, [e.name for e in entries])


# ---------------------------------------------------------------------------------------------- figures


@functools.lru_cache(maxsize=None)
def _count_flops(name: str, input_shape: tuple[int, ...]) -> float:
    # On the meta device nothing is allocated or computed: the counter only sees the operators.
    with torch.device("meta"):
        module = zoo.build(name, input_shape=input_shape).module
    module.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.empty((1, *input_shape), device="meta"))
    return float(counter.get_total_flops())


def flops_per_sample(entry: CatalogueEntry) -> float:
    """Forward-pass FLOPs for one sample of ``entry.input_shape``, counted by torch (one multiply-add = 2).

    Counted once per model and shape, because published GMACs are missing for some models and
    use differing conventions for others; one counter applied to all keeps them comparable.
    """
    return _count_flops(entry.name, entry.input_shape)


def _si(value: float, unit: str, *, gap: str = "") -> str:
    """Three significant digits and an SI prefix: ``_si(3.6e9, "FLOPs")`` is "3.6 GFLOPs"."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g} {prefix}{gap}{unit}"
    return f"{value:.3g} {unit}"


def summary(entry: CatalogueEntry) -> str:
    """One line a user can check against the source, e.g.
    "ResNet-18: 69.8% top-1 on ImageNet-1k val (torchvision docs), 11.7 M params, 3.63 GFLOPs/sample".
    """
    q = entry.quality
    return (
        f"{entry.display_name}: {entry.metric.describe(q.value)} on {q.benchmark} ({q.source}), "
        f"{_si(entry.params, 'params', gap=' ')}, {_si(flops_per_sample(entry), 'FLOPs')}/sample"
    )


def to_candidate(entry: CatalogueEntry, reason: str) -> ModelCandidate:
    """The catalogue entry as the message the pipeline passes on, with why it was proposed."""
    q = entry.quality
    return ModelCandidate(
        name=entry.name,
        family=entry.family,
        task_type=entry.task_type,
        params=float(entry.params),
        flops_per_sample=flops_per_sample(entry),
        input_shape=list(entry.input_shape),
        quality_metric=q.metric,
        quality_value=q.value,
        higher_is_better=q.higher_is_better,
        quality_benchmark=q.benchmark,
        quality_source=f"{q.source}, {q.source_url}",
        default_epochs=entry.default_epochs,
        default_batch_size=entry.default_batch_size,
        reason=reason,
    )


# ---------------------------------------------------------------------------------------------- proposing


def _requested(task: EncodedTask, entries: Sequence[CatalogueEntry]) -> list[str]:
    """The task's candidate_models without repeats, each checked to be a catalogue name."""
    known = [e.name for e in entries]
    names = list(dict.fromkeys(task.candidate_models))
    for name in names:
        if name not in known:
            raise UnknownModel(name, known)
    return names


def _check_target(target: float, metric: Metric) -> None:
    if metric.is_fraction and target > 1:
        raise InvalidProblem(
            f"quality_target {target:g} for {metric.name} is above 1: {metric.name} is a fraction, "
            f"e.g. {target / 100:g} for {target:g}%"
        )


def propose(task: EncodedTask, entries: Sequence[CatalogueEntry]) -> ModelCandidates:
    """The catalogue models that fit ``task``, each with its reason, and the dropped ones with theirs.

    Filters, in order: the task type; the task's ``candidate_models`` (names; empty = all); the
    quality target (0 = none), a floor for metrics where higher is better and a ceiling for
    error metrics. Raises ``UnknownModel`` for a requested name the catalogue lacks,
    ``InvalidProblem`` for an impossible target and ``NoCandidates`` when nothing is left.
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
    kept: list[CatalogueEntry] = []
    comparable: list[CatalogueEntry] = []
    for entry in pool:
        metric = entry.metric
        if target and task.metric and task.metric != metric.name:
            excluded.append(
                f"{entry.name}: publishes {metric.name}, not {task.metric}, "
                "so the quality target cannot be checked"
            )
            continue
        _check_target(target, metric)
        comparable.append(entry)
        if not metric.meets(entry.quality.value, target):
            excluded.append(
                f"{entry.name}: {metric.describe(entry.quality.value)} on {entry.quality.benchmark} "
                f"misses the {metric.describe_target(target)} target"
            )
            continue
        kept.append(entry)

    if not kept:
        which = "requested" if requested else "known"
        if not comparable:
            published = ", ".join(sorted({e.quality.metric for e in pool}))
            raise NoCandidates(
                f"no {which} {task_type} model publishes {task.metric}; they publish {published}. "
                f"Set the metric to one of those, or quality_target to 0."
            )
        metric = comparable[0].metric
        best = (max if metric.higher_is_better else min)(comparable, key=lambda e: e.quality.value)
        raise NoCandidates(
            f"no {which} {task_type} model reaches {metric.name} {metric.comparison} {target:g}; "
            f"the best is {best.name} at {best.quality.value:.3g} ({best.quality.source}). "
            f"{'Lower' if metric.higher_is_better else 'Raise'} quality_target."
        )

    candidates = []
    for entry in kept:
        verdict = (
            f"meets the {entry.metric.describe_target(target)} target" if target else "no quality target set"
        )
        candidates.append(to_candidate(entry, f"{summary(entry)}; {verdict}"))
    return ModelCandidates(task_id=task.task_id, candidates=candidates, excluded=excluded)
