"""The pre-run estimator learns from the measurements the pipeline makes.

Every measurement of a model on a device is compared with the raw estimate of the same configuration
(:mod:`.estimate`'s roofline, or :data:`SKLEARN_PRIOR` for models without a FLOP count): the ratio
measured / estimated, for latency and for energy, per phase (inference, training), is an
:class:`Observation`. The next estimate of a model on that device is multiplied by a
:class:`Correction` drawn from the closest observations there are:

1. the same model (measured before at another batch size, say): its own ratio;
2. else the models of its family (``ModelCandidate.family``: "ResNet", "BERT"...): their geometric mean;
3. else the models built by the same library (torch, scikit-learn): their geometric mean;
4. else no correction, with :data:`UNLEARNED_RELATIVE_UNCERTAINTY`.

Why by family: the roofline's error comes from what it ignores (kernel efficiency of an operator mix,
caches), and models of one family share their operator mix. The uncertainty of a corrected estimate
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
    "UNLEARNED_RELATIVE_UNCERTAINTY",
    "PHASES",
]

PHASES = ("inference", "training")

#: One standard uncertainty (of the logarithm, about a relative one) of an estimate nothing has
#: corrected yet: bench/estimator.py found the uncorrected roofline off by up to a factor of 3 on a
#: 2-core CPU (log 3 ≈ 1.1 is two of these).
UNLEARNED_RELATIVE_UNCERTAINTY = 0.6

# The least uncertainty a correction of each level claims, and how the level is described.
_FLOORS = {"model": 0.1, "family": 0.2, "library": 0.3}


@dataclass(frozen=True)
class Observation:
    """One measurement compared with the raw estimate of the same configuration on one device."""

    model: str  # the measured name, a variant included ("resnet18+int8-dynamic")
    family: str
    library: str  # "torch", "sklearn"; a variant's kind is part of its family ("ResNet+int8-dynamic")
    phase: str  # "inference" or "training"
    latency_ratio: float  # measured / estimated
    energy_ratio: float  # measured / estimated (active energy per sample)

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
    basis: str  # in words: "corrected by 4 measured BERT models on this device"
    observations: int  # how many observations it was drawn from

    @classmethod
    def none(cls) -> Correction:
        return cls(1.0, 1.0, UNLEARNED_RELATIVE_UNCERTAINTY, "not yet corrected by any measurement on this device", 0)


def _geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def _log_spread(values: list[float]) -> float:
    return statistics.stdev(math.log(v) for v in values) if len(values) >= 2 else 0.0


def correction_for(
    observations: Iterable[Observation], *, model: str, family: str, library: str, phase: str, exclude_model: bool = False
) -> Correction:
    """The correction of ``model`` (of ``family``, built by ``library``) in ``phase`` from the
    closest observations (module docstring). ``exclude_model`` leaves the model's own observations
    out, for a leave-one-out test of how well the estimator predicts a model never measured."""
    pool = [o for o in observations if o.phase == phase and not (exclude_model and o.model == model)]
    levels = (
        ("model", [o for o in pool if o.model == model], f"this model's earlier measurement on this device"),
        ("family", [o for o in pool if family and o.family == family], f"measured {family} models on this device"),
        ("library", [o for o in pool if o.library == library], f"measured {library} models on this device"),
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
        )
    return Correction.none()
