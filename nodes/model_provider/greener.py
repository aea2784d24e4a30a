"""Greener variants of a candidate: a smaller size of its family, lower precision, int8 dynamic
quantisation, distillation to a named student, and training on less data, with early stopping or for
fewer epochs, each with its expected effect on quality and where that figure comes from.

The rules are data (``greener.yaml``); the smaller sizes come from the catalogue itself: another
entry of the same family and task, published on the same benchmark with the same metric, and
cheaper in FLOPs. Its quality difference is the difference of the two published figures (evidence:
both sources, not assumed); its energy factor the ratio of FLOPs per sample.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from sustainml.exceptions import ConfigError
from sustainml.models.architecture import Architecture, build_architecture
from sustainml.models.catalogue import CatalogueEntry
from sustainml.msg import GreenerVariant

__all__ = ["RULES_PATH", "Rules", "load_rules", "variants_for", "linear_share"]

RULES_PATH = Path(__file__).with_name("greener.yaml")

_VARIANT_FIELDS = ("quality_change", "quality_effect", "evidence", "assumed")


@dataclass(frozen=True)
class Rules:
    """``greener.yaml``, read: the parts of each rule a variant is made of."""

    precision: tuple[Mapping[str, Any], ...]
    int8_dynamic: Mapping[str, Any]
    distillation: tuple[Mapping[str, Any], ...]
    training: tuple[Mapping[str, Any], ...]


def _require(rule: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in rule]
    if missing:
        raise ConfigError(f"{RULES_PATH}: {where}: missing {', '.join(missing)}")


@functools.lru_cache(maxsize=1)
def load_rules(path: Path = RULES_PATH) -> Rules:
    """The variant rules; ``ConfigError`` naming the rule that lacks a field."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for i, rule in enumerate(data["precision"]):
        _require(rule, ("name", "description", *_VARIANT_FIELDS), f"precision #{i + 1}")
    int8 = data["int8_dynamic"]
    _require(int8, ("name", "min_linear_share", "description", "default"), "int8_dynamic")
    _require(int8["default"], _VARIANT_FIELDS, "int8_dynamic.default")
    for i, rule in enumerate(int8.get("published", [])):
        _require(rule, ("families", *_VARIANT_FIELDS), f"int8_dynamic.published #{i + 1}")
    for i, rule in enumerate(data["distillation"]):
        _require(rule, ("teacher", "student", *_VARIANT_FIELDS), f"distillation #{i + 1}")
    for i, rule in enumerate(data["training"]):
        _require(rule, ("kind", "name", "description", "libraries", "energy_factor", *_VARIANT_FIELDS),
                 f"training #{i + 1}")
    return Rules(
        precision=tuple(data["precision"]),
        int8_dynamic=int8,
        distillation=tuple(data["distillation"]),
        training=tuple(data["training"]),
    )


def _variant(kind: str, name: str, description: str, rule: Mapping[str, Any], energy_factor: float) -> GreenerVariant:
    return GreenerVariant(
        kind=kind,
        name=name,
        description=" ".join(description.split()),
        quality_change=float(rule["quality_change"]),
        quality_effect=" ".join(str(rule["quality_effect"]).split()),
        evidence=" ".join(str(rule["evidence"]).split()),
        assumed=bool(rule["assumed"]),
        energy_factor=float(energy_factor),
    )


@functools.lru_cache(maxsize=None)
def _linear_share(entry: CatalogueEntry) -> float:
    with torch.device("meta"):
        module = build_architecture(
            Architecture(entry.name, entry.task_type, entry.input_shape, entry.num_outputs, entry.builder)
        ).module
    return linear_share(module)


def linear_share(module: nn.Module) -> float:
    """Share of ``module``'s weights, embedding tables aside, that sit in ``nn.Linear`` layers.

    Dynamic int8 quantisation replaces the ``nn.Linear`` layers; embedding tables are looked up, not
    multiplied, so a small BERT whose vocabulary table outweighs its layers still does nearly all
    its arithmetic in linear layers.
    """

    def own(kind: type) -> dict[int, int]:
        return {id(p): p.numel() for m in module.modules() if isinstance(m, kind) for p in m.parameters(recurse=False)}

    embedding = own(nn.Embedding)  # an output layer tied to the embedding table is the table: not counted
    linear = sum(n for key, n in own(nn.Linear).items() if key not in embedding)
    total = sum(p.numel() for p in module.parameters()) - sum(embedding.values())
    return linear / total if total > 0 else 0.0


def _ratio(cheaper: float | None, dearer: float | None) -> float:
    return float(f"{cheaper / dearer:.3g}") if cheaper and dearer else 0.0  # three significant digits


def _smaller_sizes(
    entry: CatalogueEntry, entries: Iterable[CatalogueEntry], flops: Callable[[CatalogueEntry], float | None]
) -> list[GreenerVariant]:
    q, metric, own = entry.quality, entry.metric, flops(entry)
    if q is None or metric is None or not own:
        return []
    variants = []
    for other in entries:
        oq = other.quality
        if (
            other.name == entry.name or other.family != entry.family or other.task_type != entry.task_type
            or oq is None or oq.metric != q.metric or oq.benchmark != q.benchmark
        ):  # fmt: skip
            continue
        other_flops = flops(other)
        if not other_flops or other_flops >= own:
            continue
        change = oq.value - q.value
        variants.append(GreenerVariant(
            kind="smaller_size",
            name=other.name,
            description=f"{other.display_name}{f' ({other.size})' if other.size else ''} instead of "
                        f"{entry.display_name}: {other_flops / own:.2g}× the FLOPs per sample",
            quality_change=round(change, 6),
            quality_effect=f"{metric.describe_change(change)} on {q.benchmark} "
                           f"({metric.describe(oq.value)} vs {metric.describe(q.value)})",
            evidence=f"{q.source} ({q.source_url}); {oq.source} ({oq.source_url})",
            assumed=False,
            energy_factor=_ratio(other_flops, own),
        ))
    return sorted(variants, key=lambda v: v.energy_factor)


def variants_for(
    entry: CatalogueEntry, entries: Iterable[CatalogueEntry], flops: Callable[[CatalogueEntry], float | None]
) -> list[GreenerVariant]:
    """Every greener variant of ``entry`` the rules and the catalogue ``entries`` know of.

    ``flops`` gives an entry's FLOPs per sample (``catalogue.flops_per_sample``), for energy factors.
    """
    entries = list(entries)
    rules = load_rules()
    variants = _smaller_sizes(entry, entries, flops)
    by_name = {e.name: e for e in entries}

    for rule in rules.distillation:
        student = by_name.get(rule["student"])
        if rule["teacher"] == entry.name and student is not None:
            variants.append(_variant(
                "distillation", student.name,
                f"distil {entry.display_name} into {student.display_name}; training the student runs the teacher "
                f"on every batch, serving runs the student only",
                rule, _ratio(flops(student), flops(entry)),
            ))

    if entry.library == "torch":
        for rule in rules.precision:
            variants.append(_variant("precision", rule["name"], rule["description"], rule, 0.0))
        int8 = rules.int8_dynamic
        if _linear_share(entry) >= float(int8["min_linear_share"]):
            rule = next((r for r in int8.get("published", []) if entry.family in r["families"]), int8["default"])
            variants.append(_variant("quantization", int8["name"], int8["description"], rule, 0.0))

    for rule in rules.training:
        if entry.library in rule["libraries"]:
            variants.append(_variant(rule["kind"], rule["name"], rule["description"], rule, rule["energy_factor"]))
    return variants
