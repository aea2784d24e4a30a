"""The model catalogue: which models there are, what builds each, and what is published about them.

The catalogue is data (``catalogue.yaml``, format in ``docs/catalogue.md``): for each model its
family and size, the builder that makes it (as data: a zoo function, a transformers class with its
config, or a scikit-learn estimator with its parameters), published parameters and quality with
their source, licence and training recipe. ``load_catalogue`` validates it at the edge, so the rest of
the pipeline can trust every field; users add models with an extra YAML file of the same format
(``load_catalogue(extra=[...])`` or the environment variable ``SUSTAINML_CATALOGUE_EXTRA``).

The model provider proposes from it (``sustainml_nodes.model_provider.proposal``); a hardware node
reads it to build and profile the models it may be asked to measure; ``zoo`` builds an entry by name.

Typical use::

    entries = load_catalogue()
    entry = find(entries, "resnet18")
    summary(entry), to_candidate(entry, reason="my pick")    # a line to read; the message to send
"""

from __future__ import annotations

import functools
import math
import os
import re
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from sustainml.exceptions import InvalidProblem
from sustainml.task_types import METRICS, Metric
from sustainml.msg import ModelCandidate

from . import builder_message
from .architecture import ZOO_FUNCTIONS, Architecture, build_architecture, default_num_outputs, example_input
from .builders import SKLEARN, BuilderSpec, parse_builder
from .errors import CatalogueError, UnknownModel
from .tasks import INPUT_RANK, INPUT_SHAPE_FORM, MODALITY_OF_TASK, TASK_TYPES

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "EXTRA_CATALOGUE_ENV",
    "METRICS",
    "CatalogueEntry",
    "Metric",
    "PublishedQuality",
    "count_params",
    "default_catalogue",
    "find",
    "flops_per_sample",
    "load_catalogue",
    "summary",
    "to_candidate",
]

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")
EXTRA_CATALOGUE_ENV = "SUSTAINML_CATALOGUE_EXTRA"
"""Environment variable naming extra catalogue files (``os.pathsep``-separated) loaded after the bundled one."""

PARAMS_SCOPES = ("model", "backbone")
"""What a published parameter count covers: the whole model as built, or its pretrained backbone
without the task head the builder adds (``model.base_model`` of a transformers model)."""


@dataclass(frozen=True)
class PublishedQuality:
    """A quality figure as published: which metric, on which benchmark, according to whom."""

    metric: str
    value: float
    higher_is_better: bool
    benchmark: str
    source: str  # short citation used in reasons, e.g. "torchvision docs"
    source_url: str


@dataclass(frozen=True)
class CatalogueEntry:
    """One model of the catalogue, validated. See ``docs/catalogue.md`` for the fields and units.

    ``params`` is the published parameter count, or the count of the model as built where nothing is
    published (``params_published`` False) or ``None`` for a model whose size depends on the data
    (scikit-learn). ``quality`` is ``None`` where no figure on a named benchmark is published.
    """

    name: str
    display_name: str
    family: str
    size: str
    task_type: str
    modality: str
    builder: BuilderSpec
    input_shape: tuple[int, ...]
    num_outputs: int
    params: int | None
    params_published: bool
    params_scope: str
    published_gmacs: float | None
    quality: PublishedQuality | None
    licence: str
    default_epochs: int
    default_batch_size: int
    notes: str = ""
    source_file: str = ""

    @property
    def library(self) -> str:
        """What builds and runs it: "torch" or "sklearn"."""
        return self.builder.library

    @property
    def metric(self) -> Metric | None:
        return METRICS[self.quality.metric] if self.quality is not None else None


# ---------------------------------------------------------------------------------------------- loading

_ENTRY_FIELDS = {
    "name", "display_name", "family", "size", "task_type", "modality", "builder", "input_shape", "num_outputs",
    "params", "params_scope", "published_gmacs", "quality", "licence", "default_epochs", "default_batch_size",
    "notes",
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

    def require(self, field: str) -> Any:
        """The raw value of ``field``, which must be present (null allowed)."""
        if field not in self.raw:
            raise self.fail(field, "missing; every entry needs it (see docs/catalogue.md)")
        return self.raw[field]

    def text(self, field: str, *, optional: bool = False) -> str:
        if optional and self.raw.get(field) is None:
            return ""
        value = self.require(field)
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, "a non-empty string", value)
        return value.strip()

    def choice(self, field: str, choices: Iterable[str]) -> str:
        choices = list(choices)
        value = self.text(field)
        if value not in choices:
            raise self.error(field, f"one of {', '.join(choices)}", value)
        return value

    def positive_int(self, field: str) -> int:
        value = self.require(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(field, "a positive integer", value)
        return value

    def optional_positive_int(self, field: str, what: str) -> int | None:
        value = self.raw.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(field, what, value)
        return value

    def number(self, field: str, *, low: float, high: float = math.inf, what: str = "") -> float:
        value = self.require(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f"a number >= {low:g}"
            raise self.error(field, what or bounds, value)
        return float(value)

    def optional_number(self, field: str, *, low: float, what: str) -> float | None:
        return None if self.raw.get(field) is None else self.number(field, low=low, what=what)

    def flag(self, field: str) -> bool:
        value = self.require(field)
        if not isinstance(value, bool):
            raise self.error(field, "true or false", value)
        return value

    def shape(self, field: str, task_type: str) -> tuple[int, ...]:
        value = self.require(field)
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value)
        ):
            raise self.error(field, f"a list of positive integers, {INPUT_SHAPE_FORM[task_type]}", value)
        if len(value) != INPUT_RANK[task_type]:
            raise self.error(field, f"{INPUT_SHAPE_FORM[task_type]} for {task_type}", value)
        return tuple(value)


def _read_quality(path: Path, label: str, raw: object, fields: _FieldReader) -> PublishedQuality | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        expected = f"a mapping with {', '.join(sorted(_QUALITY_FIELDS))}, or null where nothing is published"
        raise fields.error("quality", expected, raw)
    q = _FieldReader(path, label, raw, _QUALITY_FIELDS, prefix="quality.")
    metric = METRICS[q.choice("metric", METRICS)]
    if metric.fraction:
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
    return PublishedQuality(
        metric=metric.name,
        value=value,
        higher_is_better=higher_is_better,
        benchmark=q.text("benchmark"),
        source=q.text("source"),
        source_url=source_url,
    )


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _read_entry(path: Path, index: int, raw: object) -> CatalogueEntry:
    label = f"#{index + 1}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: entry {label}: expected a mapping of fields, got {reprlib.repr(raw)}")
    if isinstance(raw.get("name"), str):
        label += f" ({raw['name']})"
    fields = _FieldReader(path, label, raw, _ENTRY_FIELDS)

    name = fields.text("name")
    if not _NAME.fullmatch(name):
        # "+" joins a model and its variant in measured names ("bert_base+int8-dynamic"), so a name
        # holding one would be joined to the wrong candidate downstream.
        raise fields.error("name", "letters, digits, '_', '-' and '.' (no '+' or spaces)", name)
    task_type = fields.choice("task_type", TASK_TYPES)
    modality = fields.choice("modality", sorted(set(MODALITY_OF_TASK.values())))
    if modality != MODALITY_OF_TASK[task_type]:
        expected = f"{MODALITY_OF_TASK[task_type]!r}, the modality of {task_type}"
        raise fields.error("modality", expected, modality)
    builder = parse_builder(fields.require("builder"), task_type, fields.fail, ZOO_FUNCTIONS)
    input_shape = fields.shape("input_shape", task_type)
    num_outputs = fields.optional_positive_int("num_outputs", "a positive integer (classes, targets or horizon)")
    if num_outputs is None:
        try:
            num_outputs = default_num_outputs(builder, task_type)
        except (TypeError, ValueError) as e:
            raise fields.fail("builder", f"its config cannot be built: {e}") from None
    quality = _read_quality(path, label, raw.get("quality"), fields)

    params_scope = fields.choice("params_scope", PARAMS_SCOPES) if "params_scope" in raw else "model"
    fields.require("params")  # null included: an entry says whether a count is published
    params = fields.optional_positive_int("params", "a positive integer (the published count), or null")
    published = params is not None
    if builder.library == SKLEARN:
        if params is not None:
            raise fields.error("params", "null for a scikit-learn model (its size depends on the data)", params)
    else:  # built once on the meta device: a config that cannot build fails here, not on a hardware node
        try:
            built = count_params(Architecture(name, task_type, input_shape, num_outputs, builder), params_scope)
        except (InvalidProblem, ValueError, TypeError, RuntimeError, AttributeError) as e:
            problem = " ".join(str(e).split())[:300]
            raise fields.fail("builder", f"{builder.describe()} cannot be built: {type(e).__name__}: {problem}") from None
        params = params if published else built  # nothing published: the count as built, said in the summary

    epochs = fields.positive_int("default_epochs")
    batch = raw.get("default_batch_size")
    if builder.library == SKLEARN and batch is None:
        batch = 0  # one fit sees all the rows: no batches
    else:
        batch = fields.positive_int("default_batch_size")

    return CatalogueEntry(
        name=name,
        display_name=fields.text("display_name"),
        family=fields.text("family"),
        size=fields.text("size", optional=True),
        task_type=task_type,
        modality=modality,
        builder=builder,
        input_shape=input_shape,
        num_outputs=num_outputs,
        params=params,
        params_published=published,
        params_scope=params_scope,
        published_gmacs=fields.optional_number("published_gmacs", low=1e-12, what="positive GMACs, or null"),
        quality=quality,
        licence=fields.text("licence"),
        default_epochs=epochs,
        default_batch_size=batch,
        notes=fields.text("notes", optional=True),
        source_file=str(path),
    )


def _read_file(path: Path) -> list[CatalogueEntry]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read the catalogue ({e.strerror or e}); check the path") from e
    except yaml.YAMLError as e:
        raise CatalogueError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from e
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list) or not models:
        raise CatalogueError(
            f"{path}: expected a top-level 'models:' list with at least one entry, got {reprlib.repr(document)}"
        )
    return [_read_entry(path, i, raw) for i, raw in enumerate(models)]


def _extra_from_environment() -> list[Path]:
    value = os.environ.get(EXTRA_CATALOGUE_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


def load_catalogue(
    path: Path | str | None = None, extra: Iterable[Path | str] | None = None
) -> list[CatalogueEntry]:
    """Read and validate the catalogue, then each ``extra`` file of the same format, in order.

    ``path`` defaults to the bundled catalogue; ``extra`` defaults to the files named by the
    environment variable ``SUSTAINML_CATALOGUE_EXTRA`` (``os.pathsep``-separated; ``extra=[]`` reads
    none). Raises ``CatalogueError`` naming the file, the entry and the field that is wrong, and what
    was expected there, and for a name defined twice (in one file or across files); a catalogue
    that loads is one the provider can use without further checks.
    """
    files = [Path(path) if path is not None else DEFAULT_CATALOGUE_PATH]
    files += [Path(p) for p in (_extra_from_environment() if extra is None else extra)]
    entries: list[CatalogueEntry] = []
    seen: dict[str, Path] = {}
    for file in files:
        for i, entry in enumerate(_read_file(file)):
            if entry.name in seen:
                where = "earlier in this file" if seen[entry.name] == file else f"in {seen[entry.name]}"
                raise CatalogueError(
                    f"{file}: entry #{i + 1} ({entry.name}), field 'name': expected a unique name, "
                    f"got one already defined {where}; rename it"
                )
            seen[entry.name] = file
            entries.append(entry)
    return entries


@functools.lru_cache(maxsize=4)
def _default_catalogue(extra: str) -> tuple[CatalogueEntry, ...]:
    return tuple(load_catalogue())


def default_catalogue() -> list[CatalogueEntry]:
    """The bundled catalogue plus ``SUSTAINML_CATALOGUE_EXTRA``, loaded once per value of that variable."""
    return list(_default_catalogue(os.environ.get(EXTRA_CATALOGUE_ENV, "")))


def find(entries: Iterable[CatalogueEntry], name: str) -> CatalogueEntry:
    """The entry called ``name``; raises ``UnknownModel`` listing the names there are."""
    entries = list(entries)
    for entry in entries:
        if entry.name == name:
            return entry
    raise UnknownModel(name, [e.name for e in entries])


# ---------------------------------------------------------------------------------------------- figures


def count_params(arch: Architecture, scope: str = "model") -> int:
    """Parameters of ``arch`` as built (on the meta device: nothing allocated); ``scope`` as ``params_scope``."""
    with torch.device("meta"):
        module = build_architecture(arch).module
    if scope == "backbone":
        module = getattr(getattr(module, "model", module), "base_model", module)
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=None)
def _count_flops(arch: Architecture) -> float | None:
    # On the meta device nothing is allocated or computed: the counter only sees the operators.
    try:
        with torch.device("meta"):
            module = build_architecture(arch).module
        module.eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(example_input(module, arch.default_input_shape, device="meta"))
    except (RuntimeError, NotImplementedError):  # a model that reads its data (``.item()``) cannot run on meta
        return None
    return float(counter.get_total_flops())


def _architecture(entry: CatalogueEntry) -> Architecture:
    return Architecture(entry.name, entry.task_type, entry.input_shape, entry.num_outputs, entry.builder)


def flops_per_sample(entry: CatalogueEntry) -> float | None:
    """Forward-pass FLOPs for one sample of ``entry.input_shape``, counted by torch (one multiply-add = 2).

    Counted once per model and shape, because published GMACs are missing for some models and use
    differing conventions for others; one counter applied to all keeps them comparable. ``None`` for a
    scikit-learn model and for one whose forward pass cannot run on the meta device. For text
    generation one sample is one inference: the prompt and ``DEFAULT_NEW_TOKENS`` generated tokens.
    """
    if entry.library == SKLEARN:
        return None
    return _count_flops(_architecture(entry))


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
    q, metric = entry.quality, entry.metric
    quality = (
        f"{metric.describe(q.value)} on {q.benchmark} ({q.source})"
        if q is not None and metric is not None
        else "no published quality figure"
    )
    if entry.params is None:
        size = "size set by the data (scikit-learn)"
    else:
        size = _si(entry.params, "params", gap=" ") + ("" if entry.params_published else " (as built; none published)")
    flops = flops_per_sample(entry)
    compute = f"{_si(flops, 'FLOPs')}/sample" if flops else "FLOPs not counted"
    return f"{entry.display_name}: {quality}, {size}, {compute}"


def to_candidate(
    entry: CatalogueEntry, reason: str, variants: Sequence[Any] = ()
) -> ModelCandidate:
    """The catalogue entry as the message the pipeline passes on, with why it was proposed and what
    builds it (``builder``: any hardware node builds the model from it, catalogue or not).

    A model without a published quality figure has an empty ``quality_metric`` and a NaN
    ``quality_value``: unknown, not zero.
    """
    q = entry.quality
    return ModelCandidate(
        name=entry.name,
        family=entry.family,
        task_type=entry.task_type,
        params=float(entry.params or 0),
        flops_per_sample=flops_per_sample(entry) or 0.0,
        input_shape=list(entry.input_shape),
        quality_metric=q.metric if q else "",
        quality_value=q.value if q else math.nan,
        higher_is_better=q.higher_is_better if q else False,
        quality_benchmark=q.benchmark if q else "",
        quality_source=f"{q.source}, {q.source_url}" if q else "",
        default_epochs=entry.default_epochs,
        default_batch_size=entry.default_batch_size,
        reason=reason,
        display_name=entry.display_name,
        licence=entry.licence,
        library=entry.library,
        builder=builder_message.to_message(entry.builder, entry.num_outputs),
        variants=list(variants),
    )
