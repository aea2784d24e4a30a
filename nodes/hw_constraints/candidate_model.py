"""What a hardware node builds for a candidate: the model its ``builder`` describes, not a catalogue name.

A candidate carries its builder as data (``ModelCandidate.builder``, read by
:mod:`sustainml.models.builder_message` through the same whitelist a catalogue file
passes), so this node measures models no catalogue of its own holds: a partner's provider, or one
started with another catalogue, may propose anything the three kinds of builder can make. A
candidate without a builder (``builder.kind`` empty: a provider older than the field) is built from
this node's catalogue by name when the name is there, and refused with the reason otherwise.

Everything stored about a model (measurements, profiles, what the estimator learned) keys on its
name *and* :attr:`CandidateModel.fingerprint`, so two models proposed under one name never share
figures. The candidate's own ``params`` and ``flops_per_sample`` are never used: this node counts
what it builds (a partner may leave them 0, unknown).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from sustainml import msg
from sustainml.exceptions import InvalidProblem, MeasurementError
from sustainml.models import builder_message, zoo
from sustainml.models.catalogue import CatalogueEntry
from sustainml.models.errors import InvalidBuilder, UnknownModel
from sustainml.models.workload import EstimatorWorkload, Workload

__all__ = ["CandidateModel", "UnbuildableCandidate", "model_of_entry", "resolve"]


class UnbuildableCandidate(MeasurementError):
    """Raised when a candidate's builder is malformed, off the whitelist or cannot build at the candidate's
    input shape, or when it has no builder and its name is not in this node's catalogue; the message
    names the candidate and the field at fault."""


@dataclass(frozen=True)
class CandidateModel:
    """A candidate as this node builds it: the architecture, the sample shape its figures refer to, and
    the fingerprint of its builder (:func:`builder_message.fingerprint`)."""

    arch: zoo.Architecture
    input_shape: tuple[int, ...]
    fingerprint: str
    from_catalogue: bool = False  # built from this node's catalogue by name (the candidate had no builder)

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def library(self) -> str:
        return self.arch.library

    def build(self) -> Workload:
        """The torch model, seeded, with synthetic data of ``input_shape``."""
        return zoo.build_architecture(self.arch, input_shape=self.input_shape)

    def build_estimator(self) -> EstimatorWorkload:
        """The scikit-learn estimator, unfitted and seeded, with synthetic data of ``input_shape``."""
        return zoo.build_estimator_architecture(self.arch, input_shape=self.input_shape)


def resolve(candidate: msg.ModelCandidate, entries: Iterable[CatalogueEntry] | None = None) -> CandidateModel:
    """The model ``candidate`` describes (module docstring); ``entries`` is the catalogue for candidates
    without a builder (default: the bundled one plus ``SUSTAINML_CATALOGUE_EXTRA``).

    Raises UnbuildableCandidate naming the candidate and the field (``builder.settings.d_layers``...)."""
    name = candidate.name
    if not candidate.builder.kind:
        try:
            arch = zoo.architecture(name, entries)
        except UnknownModel as e:
            raise UnbuildableCandidate(
                f"candidate {name!r} has no builder (ModelCandidate.builder.kind is empty) and this hardware "
                f"node's catalogue has no model of that name ({e}); a provider must fill builder with the kind "
                "(zoo, transformers, sklearn), name and settings that build it") from None
        shape = tuple(int(d) for d in candidate.input_shape) or arch.default_input_shape
        return _checked(CandidateModel(arch, shape, _fingerprint(arch), from_catalogue=True))
    try:
        spec = builder_message.from_message(candidate.builder, candidate.task_type)
        outputs = builder_message.num_outputs_of(candidate.builder, spec, candidate.task_type)
    except InvalidBuilder as e:
        raise UnbuildableCandidate(f"candidate {name!r}: {e}") from None
    if not candidate.input_shape:
        raise UnbuildableCandidate(f"candidate {name!r}: field 'input_shape': the per-sample shape the builder is "
                                   "built and measured at, e.g. [8] for 8 features; got none")
    arch = zoo.Architecture(name, candidate.task_type, tuple(int(d) for d in candidate.input_shape), outputs, spec)
    return _checked(CandidateModel(arch, arch.default_input_shape, _fingerprint(arch)))


def model_of_entry(entry: CatalogueEntry) -> CandidateModel:
    """A catalogue entry as this node builds it (what a provider proposing it asks for), unchecked: the
    catalogue checked it builds when it loaded."""
    arch = zoo.architecture_of(entry)
    return CandidateModel(arch, arch.default_input_shape, _fingerprint(arch), from_catalogue=True)


def _fingerprint(arch: zoo.Architecture) -> str:
    return builder_message.fingerprint(arch.builder, arch.task_type, arch.default_num_outputs)


def _checked(model: CandidateModel) -> CandidateModel:
    """``model`` once it is known to build at its shape (on the meta device, nothing allocated): a builder
    whose settings a class refuses fails here, naming them, not in the middle of a measurement."""
    try:
        _builds(model.arch, model.input_shape)
    except (InvalidProblem, TypeError, ValueError, RuntimeError, AttributeError, KeyError) as e:
        problem = " ".join(str(e).split())[:300]
        raise UnbuildableCandidate(
            f"candidate {model.name!r}: field 'builder.settings': {model.arch.builder.describe()} cannot be built "
            f"with them at input_shape {list(model.input_shape)}: {type(e).__name__}: {problem}") from None
    return model


@functools.lru_cache(maxsize=256)
def _builds(arch: zoo.Architecture, shape: tuple[int, ...]) -> None:
    if arch.library == "sklearn":
        zoo.build_estimator_architecture(arch, input_shape=shape)
        return
    with torch.device("meta"):
        zoo.build_architecture(arch, input_shape=shape)
