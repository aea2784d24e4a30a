"""The pre-run estimator learns from the measurements the pipeline makes.

Every measurement of a model on a device is compared with the raw estimate of the same configuration
(:mod:`.estimate`'s roofline, or :data:`SKLEARN_PRIOR` for models without a FLOP count): the ratio
measured / estimated, for latency and for energy, per phase (inference, training), is an
:class:`Observation`. The next estimate of a model on that device is multiplied by a
:class:`Correction` drawn from the closest observations there are:

1. the same model (its name and its builder's fingerprint: measured before at another batch size,
   say): its own ratio;
2. else the models of its family for the same kind of data ("ResNet (image)", "BERT (text)": a family
   name alone is not enough, the catalogue has a tabular ResNet too): their geometric mean;
3. else the models of its library for the same kind of data ("torch/image", "torch/text",
   "sklearn/tabular"): their geometric mean;
4. else the models of its library ("torch", "sklearn"): their geometric mean;
5. else no correction, with :data:`UNLEARNED_RELATIVE_UNCERTAINTY`.

Why by family: the roofline's error comes from what it ignores (kernel efficiency of an operator mix,
caches), and models of one family share their operator mix; convolutions, attention and small dense
layers each miss the roofline their own way, hence the level by kind of data before the library. The uncertainty of a corrected estimate
is the spread of the ratios it was drawn from (the standard deviation of their logarithms), never
below the floor of its level, so that a correction from one lucky model is not over-trusted.

Pure functions over plain values; the observations are kept in the measurement cache
(:meth:`.cache.MeasurementCache.observations`), per device, dtype, energy method and software.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Observation",
    "Correction",
    "correction_for",
    "family_key",
    "kind_key",
    "UNLEARNED_RELATIVE_UNCERTAINTY",
    "PHASES",
]

PHASES = ("inference", "training")

#: One standard uncertainty (of the logarithm, about a relative one) of an estimate nothing has
#: corrected yet: bench/estimator.py found the uncorrected roofline off by up to a factor of 3 on a
#: 2-core CPU (log 3 ≈ 1.1 is two of these).
UNLEARNED_RELATIVE_UNCERTAINTY = 0.6

# The least uncertainty a correction of each level claims.
_FLOORS = {"model": 0.1, "family": 0.2, "kind": 0.3, "library": 0.4}


def family_key(family: str, modality: str, variant: str = "") -> str:
    """The family an observation is pooled by: "ResNet (image)", "BERT+int8-dynamic (text)"."""
    return f"{family}{'+' + variant if variant else ''} ({modality or 'any'})"


def kind_key(library: str, modality: str) -> str:
    """The library and kind of data: "torch/image"; ``library_of`` takes the library back."""
    return f"{library or 'torch'}/{modality or 'any'}"


def _library_of(kind: str) -> str:
    return kind.split("/", 1)[0]


@dataclass(frozen=True)
class Observation:
    """One measurement compared with the raw estimate of the same configuration on one device."""

    model: str  # the measured name, a variant included ("resnet18+int8-dynamic")
    family: str  # family_key: "ResNet (image)", a variant's kind included ("ResNet+int8-dynamic (image)")
    library: str  # kind_key: the library and kind of data, "torch/image", "sklearn/tabular"
    phase: str  # "inference" or "training"
    latency_ratio: float  # measured / estimated
    energy_ratio: float  # measured / estimated (active energy per sample)
    builder: str = ""  # builder_message.fingerprint of the measured model; "" = unknown (an old observation)

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if not (self.latency_ratio > 0 and self.energy_ratio > 0):
            raise ValueError(f"ratios must be positive, got {self.latency_ratio} and {self.energy_ratio}")


@dataclass(frozen=True)
class Correction:
    """What to multiply a raw estimate by, and how far to trust the result."""

    latency_factor: float
    energy_factor: float
    relative_uncertainty: float  # one standard uncertainty of the corrected figures (log-space)
    basis: str  # in words: "corrected by 4 measured BERT (text) models on this device"
    observations: int  # how many observations it was drawn from
    level: str = "none"  # "model", "family", "kind", "library" or "none"

    @classmethod
    def none(cls) -> Correction:
        return cls(1.0, 1.0, UNLEARNED_RELATIVE_UNCERTAINTY, "not yet corrected by any measurement on this device", 0)


def _geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def _log_spread(values: list[float]) -> float:
    return statistics.stdev(math.log(v) for v in values) if len(values) >= 2 else 0.0


def correction_for(
    observations: Iterable[Observation], *, model: str, family: str, library: str, phase: str, builder: str = "",
    exclude_model: bool = False,
) -> Correction:
    """The correction of ``model`` (of ``family``, a :func:`family_key`, and ``library``, a
    :func:`kind_key`) in ``phase`` from the closest observations (module docstring). An observation is
    the model's own only when its ``builder`` fingerprint is the same: another model proposed under the
    same name teaches by its family, like any other. ``exclude_model``
    leaves the model's own observations out, for a leave-one-out test of how well the estimator
    predicts a model never measured."""
    pool = [o for o in observations if o.phase == phase and not (exclude_model and o.model == model)]
    levels = (
        ("model", [o for o in pool if o.model == model and o.builder == builder],
         "this model's earlier measurement on this device"),
        ("family", [o for o in pool if family and o.family == family], f"measured {family} models on this device"),
        ("kind", [o for o in pool if o.library == library], f"measured {library} models on this device"),
        ("library", [o for o in pool if _library_of(o.library) == _library_of(library)],
         f"measured {_library_of(library)} models on this device"),
    )
    for level, found, words in levels:
        if not found:
            continue
        latency = [o.latency_ratio for o in found]
        energy = [o.energy_ratio for o in found]
        spread = max(_log_spread(latency), _log_spread(energy))
        relative = max(_FLOORS[level], spread)
        count = f"{len(found)} " if level != "model" else ""
        return Correction(
            latency_factor=_geometric_mean(latency),
            energy_factor=_geometric_mean(energy),
            relative_uncertainty=relative,
            basis=f"corrected by {count}{words} (×{_geometric_mean(latency):.2g} latency)",
            observations=len(found),
            level=level,
        )
    return Correction.none()
