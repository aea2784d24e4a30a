"""Build any catalogue model by name, with synthetic data of the shape its published figures refer to.

The names are the catalogue's (``catalogue``); what builds them is ``architecture``, whose names this
module also gives (``zoo.Architecture``, ``zoo.build_architecture``, ``zoo.ZOO_FUNCTIONS``,
``zoo.example_input``), so that one import serves whoever builds models. The layers stay one-way:
``architecture`` knows no catalogue, the catalogue builds its entries with ``architecture`` to check
them, and this module looks names up in the catalogue.

Typical use::

    workload = build("resnet18")                  # a torch model: module, inputs, targets, loss
    loss = workload.loss(workload.module(workload.inputs(2)), workload.targets(2))
    estimator = build_estimator("random_forest_regressor")   # a scikit-learn model: estimator, data
    X, y = estimator.data(100)

Names resolve against the default catalogue (the bundled one plus ``SUSTAINML_CATALOGUE_EXTRA``) unless
``entries`` is given, e.g. a catalogue loaded with ``load_catalogue(extra=[...])``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .architecture import (
    ZOO_FUNCTIONS,
    Architecture,
    ZooFunction,
    build_architecture,
    build_estimator_architecture,
    default_num_outputs,
    example_input,
)
from .catalogue import CatalogueEntry, default_catalogue
from .errors import UnknownModel
from .tasks import IMAGE_CLASSIFICATION, TABULAR_REGRESSION
from .workload import EstimatorWorkload, Workload

__all__ = [
    "IMAGE_CLASSIFICATION",
    "TABULAR_REGRESSION",
    "Architecture",
    "ZooFunction",
    "ZOO_FUNCTIONS",
    "architecture",
    "architecture_of",
    "build",
    "build_architecture",
    "build_estimator",
    "build_estimator_architecture",
    "default_num_outputs",
    "example_input",
    "known_models",
]


def architecture_of(entry: CatalogueEntry) -> Architecture:
    """The zoo's view of a catalogue entry."""
    return Architecture(
        name=entry.name,
        task_type=entry.task_type,
        default_input_shape=entry.input_shape,
        default_num_outputs=entry.num_outputs,
        builder=entry.builder,
    )


def _entries(entries: Iterable[CatalogueEntry] | None) -> list[CatalogueEntry]:
    return list(entries) if entries is not None else default_catalogue()


def known_models(entries: Iterable[CatalogueEntry] | None = None) -> list[str]:
    """The names ``build`` and ``build_estimator`` accept, in catalogue order."""
    return [e.name for e in _entries(entries)]


def architecture(name: str, entries: Iterable[CatalogueEntry] | None = None) -> Architecture:
    """The zoo's description of ``name``; raises ``UnknownModel`` listing the known names."""
    known = _entries(entries)
    for entry in known:
        if entry.name == name:
            return architecture_of(entry)
    raise UnknownModel(name, [e.name for e in known], where="the model zoo")


def build(
    name: str,
    *,
    num_outputs: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    entries: Iterable[CatalogueEntry] | None = None,
) -> Workload:
    """Build the torch model ``name`` with seeded weights, plus seeded synthetic inputs, targets and its loss.

    ``num_outputs`` and ``input_shape`` (per sample) default to the catalogue entry's, the reference
    task's and the shape its published figures refer to; what is built, and the targets and loss per
    task, are :func:`build_architecture`'s. Raises ``UnknownModel`` for a name the catalogue lacks and
    ``LibraryMismatch`` for a scikit-learn model (``build_estimator`` builds those).
    """
    return build_architecture(architecture(name, entries), num_outputs=num_outputs, input_shape=input_shape)


def build_estimator(
    name: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_outputs: int | None = None,
    entries: Iterable[CatalogueEntry] | None = None,
) -> EstimatorWorkload:
    """Build the scikit-learn model ``name``, unfitted and seeded, with seeded synthetic data of its shape
    (see :func:`build_estimator_architecture`). Raises ``UnknownModel`` for a name the catalogue lacks
    and ``LibraryMismatch`` for a torch model (``build`` builds those).
    """
    return build_estimator_architecture(architecture(name, entries), input_shape=input_shape,
                                        num_outputs=num_outputs)
