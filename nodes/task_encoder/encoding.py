"""Turn a user's problem into an encoded ML task, and reject problems no pipeline could answer.

``encode`` decides the task type (from ``task_type_hint``, else from cue words in the goal text, see
``knowledge.yaml``), looks up its modality and quality metric, validates the numbers and regions at
the edge so that later nodes can trust them, and copies the rest through. Its explanation says what was
inferred and why; its warnings list every assumption it made.

Errors are ``InvalidProblem`` with one line: the field, the value that came, and how to fix it.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import yaml

from sustainml import msg
from sustainml.exceptions import ConfigError, InvalidProblem, SustainMLError
from sustainml_nodes.carbon_tracker.intensity import RegionIntensity, resolve_region

__all__ = [
    "MAX_EPOCHS",
    "MIN_LATENCY_MS",
    "Knowledge",
    "MetricInfo",
    "TaskTypeInfo",
    "encode",
    "load_knowledge",
]

MAX_EPOCHS = 10_000
"""More planned epochs than this is taken for a typo, not a training plan."""

MIN_LATENCY_MS = 0.001
"""No model answers a request in under a microsecond; a smaller latency limit is a unit mistake."""

_CUDA_DEVICE = re.compile(r"cuda(:\d+)?")
_QUOTE_CHARS = 80


@dataclass(frozen=True)
class MetricInfo:
    """A quality metric; ``fraction`` metrics take values in (0, 1], never percentages."""

    name: str
    higher_is_better: bool
    fraction: bool
    description: str


@dataclass(frozen=True)
class TaskTypeInfo:
    """A task type the encoder can name; ``supported`` when the model catalogue has models for it."""

    name: str
    modality: str
    metric: MetricInfo
    supported: bool
    cues: tuple[str, ...]


@dataclass(frozen=True)
class Knowledge:
    """The content of ``knowledge.yaml``: task types, in file order, and the cue words of each modality."""

    task_types: Mapping[str, TaskTypeInfo]
    modality_cues: Mapping[str, tuple[str, ...]]

    @property
    def task_type_names(self) -> tuple[str, ...]:
        return tuple(self.task_types)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.modality_cues)


@dataclass(frozen=True)
class _Choice:
    """The task type chosen for a problem, how sure the encoder is (0..1) and why."""

    task_type: TaskTypeInfo
    confidence: float
    reason: str
    inferred: bool


def encode(problem: msg.UserInput, *, knowledge: Knowledge | None = None) -> msg.EncodedTask:
    """The encoded task of ``problem``; raises ``InvalidProblem`` saying what to fix."""
    if knowledge is None:
        knowledge = load_knowledge()
    _check_numbers(problem)
    choice = _choose_task_type(problem, knowledge)
    _check_quality_target(problem.constraints.quality_target, choice.task_type.metric)
    _check_usage(problem.usage)
    _check_dataset(problem.dataset)
    _check_epochs(problem.epochs)
    regions = _resolve_regions(problem)
    warnings = _assumptions(problem, choice, knowledge)

    task_type = choice.task_type
    return msg.EncodedTask(
        task_id=copy.deepcopy(problem.task_id),
        task_type=task_type.name,
        modality=task_type.modality,
        metric=task_type.metric.name,
        higher_is_better=task_type.metric.higher_is_better,
        confidence=choice.confidence,
        explanation=_explanation(choice, regions),
        warnings=warnings,
        dataset=copy.deepcopy(problem.dataset),
        constraints=copy.deepcopy(problem.constraints),
        usage=copy.deepcopy(problem.usage),
        epochs=problem.epochs,
        train_region=problem.train_region,
        inference_region=problem.inference_region,
        alternative_regions=list(problem.alternative_regions),
        allowed_hardware=list(problem.allowed_hardware),
        candidate_models=list(problem.candidate_models),
    )


# ---------------------------------------------------------------- knowledge


def load_knowledge(path: Path | str | None = None) -> Knowledge:
    """The task knowledge in ``path``, or in the ``knowledge.yaml`` shipped with this package.

    Raises ``ConfigError`` naming the file and the entry that is malformed.
    """
    if path is None:
        return _bundled_knowledge()
    return _parse_knowledge(Path(path).read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=1)
def _bundled_knowledge() -> Knowledge:
    resource = files(__package__).joinpath("knowledge.yaml")
    return _parse_knowledge(resource.read_text(encoding="utf-8"), str(resource))


def _parse_knowledge(text: str, origin: str) -> Knowledge:
    try:
        data = yaml.safe_load(text)
        metrics = {
            name: MetricInfo(
                name=name,
                higher_is_better=bool(entry["higher_is_better"]),
                fraction=bool(entry["fraction"]),
                description=str(entry.get("description", "")),
            )
            for name, entry in data["metrics"].items()
        }
        modality_cues = {name: tuple(entry["cues"]) for name, entry in data["modalities"].items()}
        task_types = {}
        for name, entry in data["task_types"].items():
            if entry["modality"] not in modality_cues:
                raise ConfigError(f"{origin}: task type {name} names unknown modality {entry['modality']!r}")
            if entry["metric"] not in metrics:
                raise ConfigError(f"{origin}: task type {name} names unknown metric {entry['metric']!r}")
            task_types[name] = TaskTypeInfo(
                name=name,
                modality=entry["modality"],
                metric=metrics[entry["metric"]],
                supported=bool(entry.get("supported", False)),
                cues=tuple(entry["cues"]),
            )
    except ConfigError:
        raise
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{origin}: malformed task knowledge ({type(e).__name__}: {e})") from e
    return Knowledge(task_types=task_types, modality_cues=modality_cues)


# ---------------------------------------------------------------- task type


def _choose_task_type(problem: msg.UserInput, knowledge: Knowledge) -> _Choice:
    modality = _modality_hint(problem.modality_hint, knowledge)
    hint = _name_form(problem.task_type_hint)
    if hint:
        if hint not in knowledge.task_types:
            raise InvalidProblem(
                f"task_type_hint {problem.task_type_hint!r} is not a known task type: "
                f"use one of {', '.join(knowledge.task_type_names)}"
            )
        return _Choice(knowledge.task_types[hint], 1.0, "given as task_type_hint", inferred=False)
    return _infer_task_type(problem, knowledge, modality)


def _modality_hint(hint: str, knowledge: Knowledge) -> str:
    modality = _name_form(hint)
    if modality and modality not in knowledge.modality_cues:
        raise InvalidProblem(
            f"modality_hint {hint!r} is not a known modality: use one of {', '.join(knowledge.modalities)}, "
            "or leave it empty to infer it"
        )
    return modality


def _infer_task_type(problem: msg.UserInput, knowledge: Knowledge, modality: str) -> _Choice:
    """The task type whose cues (its own and its modality's) the text matches most.

    Confidence = best / (best + runner-up) × best / (best + 1): it falls when another type scores
    close, and when the best rests on few cues (one cue alone gives at most 0.5).
    """
    text = " ".join(part for part in (problem.text, problem.dataset.description) if part.strip())
    words = _words(text)
    scored: list[tuple[int, TaskTypeInfo, list[str]]] = []
    for task_type in knowledge.task_types.values():
        if modality and task_type.modality != modality:
            continue
        cues = (*task_type.cues, *knowledge.modality_cues[task_type.modality])
        found = list(dict.fromkeys(cue for cue in cues if _contains(words, _words(cue))))
        scored.append((len(found), task_type, found))
    scored.sort(key=lambda s: s[0], reverse=True)

    names = ", ".join(knowledge.task_type_names)
    if not scored or scored[0][0] == 0:
        raise InvalidProblem(
            f"the task type could not be inferred from the text {_quote(text)}: "
            f"set task_type_hint to one of {names}"
        )
    best, task_type, found = scored[0]
    tied = [t.name for score, t, _ in scored if score == best]
    if len(tied) > 1:
        raise InvalidProblem(
            f"the text {_quote(text)} fits {', '.join(tied)} equally well: "
            f"set task_type_hint to the one you mean (known: {names})"
        )
    runner_up = scored[1][0] if len(scored) > 1 else 0
    confidence = round(best / (best + runner_up) * best / (best + 1), 2)
    reason = f"inferred from the words {', '.join(repr(c) for c in found)}"
    if runner_up:
        reason += f" (next best: {scored[1][1].name}, from {', '.join(repr(c) for c in scored[1][2])})"
    return _Choice(task_type, confidence, reason, inferred=True)


def _words(text: str) -> list[str]:
    """Lower-case words in singular, so "photos" matches the cue "photo" and "boxes" the cue "box"."""
    return [_singular(w) for w in re.findall(r"[a-z0-9]+", text.casefold())]


def _singular(word: str) -> str:
    """English plural rules, roughly; applied to cues and text alike, so a miss on an odd word is harmless."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def _name_form(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "...")


# ---------------------------------------------------------------- validation


def _check_numbers(problem: msg.UserInput) -> None:
    c, u = problem.constraints, problem.usage
    fields = {
        "constraints.quality_target": c.quality_target,
        "constraints.max_latency_ms": c.max_latency_ms,
        "constraints.max_train_hours": c.max_train_hours,
        "constraints.max_train_co2_g": c.max_train_co2_g,
        "constraints.max_memory_mb": c.max_memory_mb,
        "usage.requests_per_day": u.requests_per_day,
        "usage.horizon_days": u.horizon_days,
        "usage.batch_size": u.batch_size,
        "epochs": problem.epochs,
        "dataset.num_samples": problem.dataset.num_samples,
    }
    for name, value in fields.items():
        if not math.isfinite(value):
            raise InvalidProblem(f"{name} is {value}: give a finite number (0 = no limit / not given)")
        if value < 0:
            raise InvalidProblem(
                f"{name} is {value}, but it cannot be negative: give a value >= 0 (0 = no limit / not given)"
            )
    if 0 < c.max_latency_ms < MIN_LATENCY_MS:
        raise InvalidProblem(
            f"constraints.max_latency_ms is {c.max_latency_ms}, below {MIN_LATENCY_MS} ms, which no model "
            "can meet: give the limit in milliseconds (e.g. 50 for 50 ms), or 0 for no limit"
        )


def _check_quality_target(target: float, metric: MetricInfo) -> None:
    if target == 0 or not metric.fraction or 0 < target <= 1:
        return
    example = f"{target / 100:g}" if 1 < target <= 100 else "0.9"
    raise InvalidProblem(
        f"constraints.quality_target is {target:g}, but {metric.name} is a fraction in (0, 1]: "
        f"give a fraction such as {example}"
    )


def _check_usage(usage: msg.Usage) -> None:
    if usage.requests_per_day > 0 and usage.horizon_days == 0:
        raise InvalidProblem(
            f"usage.requests_per_day is {usage.requests_per_day:g} but usage.horizon_days is 0: set "
            "horizon_days to how many days the model will be served, or requests_per_day to 0 for no serving"
        )
    if usage.horizon_days > 0 and usage.requests_per_day == 0:
        raise InvalidProblem(
            f"usage.horizon_days is {usage.horizon_days:g} but usage.requests_per_day is 0: set "
            "requests_per_day to the requests expected per day, or horizon_days to 0 for no serving"
        )


def _check_dataset(dataset: msg.DatasetInfo) -> None:
    if dataset.num_samples == 0:
        raise InvalidProblem(
            "dataset.num_samples is 0 (unknown), but training energy needs it: "
            "set dataset.num_samples to the number of training samples"
        )


def _check_epochs(epochs: int) -> None:
    if epochs > MAX_EPOCHS:
        raise InvalidProblem(
            f"epochs is {epochs}, more than {MAX_EPOCHS}, which is not a plausible training plan: "
            "give the planned number of epochs (e.g. 90), or 0 for each model's catalogue recipe"
        )


@dataclass(frozen=True)
class _Regions:
    train: RegionIntensity
    inference: RegionIntensity | None
    alternatives: tuple[RegionIntensity, ...]


def _resolve_regions(problem: msg.UserInput) -> _Regions:
    inference = None
    if problem.inference_region.strip():
        inference = _region("inference_region", problem.inference_region)
    return _Regions(
        train=_region("train_region", problem.train_region),
        inference=inference,
        alternatives=tuple(
            _region(f"alternative_regions[{i}]", text) for i, text in enumerate(problem.alternative_regions)
        ),
    )


def _region(field_name: str, text: str) -> RegionIntensity:
    try:
        return resolve_region(text)
    except SustainMLError as e:  # UnknownRegion, or InvalidProblem for an empty region
        raise InvalidProblem(f"{field_name} {text!r}: {e}") from e


# ---------------------------------------------------------------- explanation


def _assumptions(problem: msg.UserInput, choice: _Choice, knowledge: Knowledge) -> list[str]:
    task_type = choice.task_type
    warnings = []
    if choice.inferred:
        warnings.append(
            f"task type {task_type.name} inferred from the text with confidence {choice.confidence:.2f}: "
            "set task_type_hint if it is wrong"
        )
    modality = _name_form(problem.modality_hint)
    if modality and modality != task_type.modality:
        warnings.append(
            f"modality_hint {problem.modality_hint!r} ignored: "
            f"{task_type.name} works on {task_type.modality} data"
        )
    if not task_type.supported:
        supported = ", ".join(t.name for t in knowledge.task_types.values() if t.supported)
        warnings.append(
            f"{task_type.name} is a known task type but the model catalogue has no models for it yet "
            f"(it has: {supported}): the model provider may propose none"
        )
    if not problem.inference_region.strip():
        warnings.append(
            "inference_region not given: the model is assumed to be served in "
            f"train_region {problem.train_region!r}"
        )
    if problem.epochs == 0:
        warnings.append("epochs not given: each candidate's catalogue training recipe is assumed")
    if problem.usage.requests_per_day == 0 and problem.usage.horizon_days == 0:
        warnings.append(
            "usage not given (requests_per_day and horizon_days are 0): serving emissions count as 0; "
            "set both to see the footprint of inference"
        )
    for entry in problem.allowed_hardware:
        if entry.strip().lower() != "cpu" and not _CUDA_DEVICE.fullmatch(entry.strip().lower()):
            warnings.append(
                f"allowed_hardware entry {entry!r} is taken as a host name (not 'cpu', 'cuda' or 'cuda:N')"
            )
    return warnings


def _explanation(choice: _Choice, regions: _Regions) -> str:
    task_type = choice.task_type
    direction = "higher" if task_type.metric.higher_is_better else "lower"
    parts = [
        f"Task type {task_type.name}, confidence {choice.confidence:.2f}, {choice.reason}.",
        f"It works on {task_type.modality} data; quality is measured as {task_type.metric.name} "
        f"({task_type.metric.description}; {direction} is better).",
        f"Training in {_describe(regions.train)}.",
        f"Serving in {_describe(regions.inference or regions.train)}.",
    ]
    if regions.alternatives:
        parts.append(f"Also compared: {'; '.join(_describe(r) for r in regions.alternatives)}.")
    return " ".join(parts)


def _describe(region: RegionIntensity) -> str:
    year = f", {region.year}" if region.year else ""
    return f"{region.name} [{region.code}] at {region.intensity_g_per_kwh:g} gCO2e/kWh{year}"
