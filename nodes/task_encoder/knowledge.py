"""The task encoder's knowledge as typed values: task types, metrics, modalities and deploy targets.

What each task type, modality and metric is (modality and metric of a task type, higher-is-better,
fraction) is defined once in ``sustainml.task_types``, and each deploy target (its memory and hardware) in
``sustainml.deploy_targets``; the encoder's words for them (cues, exemplars,
phrases, model families) live in ``knowledge.yaml`` next to this module (or a file a caller names),
which names them. This module reads and checks that file, so that a malformed entry, or a task type,
modality, metric or deploy target the library does not define, is a ``ConfigError`` naming the file and
the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import yaml

from sustainml import task_types as defined
from sustainml.deploy_targets import DEPLOY_TARGETS
from sustainml.exceptions import ConfigError

__all__ = ["DeployTarget", "Knowledge", "MetricInfo", "TaskTypeInfo", "load_knowledge"]


@dataclass(frozen=True)
class MetricInfo:
    """A quality metric of ``sustainml.task_types``; ``fraction`` metrics take values in (0, 1], never
    percentages.

    ``phrases`` are the words a user writes for it ("top-1 accuracy", "mAP"), most specific first.
    """

    name: str
    higher_is_better: bool
    fraction: bool
    description: str
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskTypeInfo:
    """A task type of ``sustainml.task_types`` with the encoder's words for it; ``supported`` when the
    model catalogue has models for it.

    ``exemplars`` are short generic descriptions of the task that a user's text is compared with;
    ``cues`` are words that hint at it; ``families`` the model families that solve it.
    """

    name: str
    modality: str
    metric: MetricInfo
    supported: bool
    cues: tuple[str, ...]
    exemplars: tuple[str, ...] = ()
    families: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployTarget:
    """A device class of ``sustainml.deploy_targets`` with the encoder's words for it (``phrases``).

    Units: ``memory_mb`` in MiB. ``hardware`` is the allowed_hardware it implies ("cpu"), empty for none.
    """

    name: str
    phrases: tuple[str, ...]
    description: str
    memory_mb: float
    hardware: tuple[str, ...]


@dataclass(frozen=True)
class Knowledge:
    """The content of ``knowledge.yaml``: task types in file order, modality cues, metrics, deploy targets."""

    task_types: Mapping[str, TaskTypeInfo]
    modality_cues: Mapping[str, tuple[str, ...]]
    metrics: Mapping[str, MetricInfo]
    deploy_targets: Mapping[str, DeployTarget]
    ml_words: tuple[str, ...] = ()  # words that make a text ML-related though no task type's cue matches

    @property
    def task_type_names(self) -> tuple[str, ...]:
        return tuple(self.task_types)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.modality_cues)


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
        _check_names(origin, "metric", data["metrics"], defined.METRICS)
        _check_names(origin, "modality", data["modalities"], defined.MODALITIES, complete=True)
        _check_names(origin, "task type", data["task_types"], defined.TASK_TYPES, complete=True)
        phrases = {name: _strings((entry or {}).get("phrases", [])) for name, entry in data["metrics"].items()}
        metrics = {
            name: MetricInfo(
                name=name,
                higher_is_better=metric.higher_is_better,
                fraction=metric.fraction,
                description=metric.description,
                phrases=phrases.get(name, ()),
            )
            for name, metric in defined.METRICS.items()
        }
        modality_cues = {name: _strings(entry["cues"]) for name, entry in data["modalities"].items()}
        task_types = {}
        for name, entry in data["task_types"].items():
            task_type = defined.TASK_TYPES[name]
            task_types[name] = TaskTypeInfo(
                name=name,
                modality=task_type.modality,
                metric=metrics[task_type.metric.name],
                supported=bool(entry.get("supported", False)),
                cues=_strings(entry["cues"]),
                exemplars=_strings(entry.get("exemplars", [])),
                families=_strings(entry.get("families", [])),
            )
        targets = data.get("deploy_targets") or {}
        _check_names(origin, "deploy target", targets, DEPLOY_TARGETS, defined_in="sustainml/deploy_targets.py")
        deploy_targets = {
            name: DeployTarget(
                name=name,
                phrases=_strings(entry["phrases"]),
                description=DEPLOY_TARGETS[name].description,
                memory_mb=DEPLOY_TARGETS[name].memory_mb,
                hardware=DEPLOY_TARGETS[name].hardware,
            )
            for name, entry in targets.items()
        }
        ml_words = _strings(data.get("ml_words", []))
    except ConfigError:
        raise
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise ConfigError(f"{origin}: malformed task knowledge ({type(e).__name__}: {e})") from e
    return Knowledge(
        task_types=task_types,
        modality_cues=modality_cues,
        metrics=metrics,
        deploy_targets=deploy_targets,
        ml_words=ml_words,
    )


def _check_names(origin: str, kind: str, section: object, known: Iterable[str], *, complete: bool = False,
                 defined_in: str = "sustainml/task_types.py") -> None:
    """Raise ConfigError unless ``section`` (a mapping) names only what the library defines (in
    ``defined_in``; every one of it, when ``complete``)."""
    if not isinstance(section, Mapping):
        raise TypeError(f"expected the {kind}s by name, got {section!r}")
    known = list(known)
    unknown = [name for name in section if name not in known]
    if unknown:
        raise ConfigError(f"{origin}: {kind} {unknown[0]!r} is not defined in {defined_in} "
                          f"(it defines {', '.join(known)}); define it there first or correct the name")
    missing = [name for name in known if name not in section] if complete else []
    if missing:
        raise ConfigError(f"{origin}: no entry for {kind} {missing[0]!r} of {defined_in}; "
                          f"give its words here, or the encoder can never name it")


def _strings(items: object) -> tuple[str, ...]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise TypeError(f"expected a list of strings, got {items!r}")
    return tuple(items)
