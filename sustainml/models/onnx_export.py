"""Export a catalogue model to ONNX, so that a partner's hardware node without Python (C++ with ONNX
Runtime, an FPGA estimator) can run or estimate the very architecture the catalogue's figures refer to.

The graph is traced by torch's exporter (``torch.onnx.export``, the torch.export-based one that torch
recommends) from the zoo's builder with its seeded, untrained weights: the shapes, operators and
parameter count are the model's, the predictions are not. The batch dimension is dynamic unless a
batch size is given.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from sustainml.exceptions import InvalidProblem

from . import zoo
from .catalogue import CatalogueEntry
from .errors import LibraryMismatch

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxModel", "export_onnx"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class OnnxModel:
    """A serialised ONNX ModelProto and how to feed it: one input ``[batch, *input_shape]``."""

    name: str
    onnx: bytes
    input_shape: tuple[int, ...]
    input_dtype: str  # "float32" for images and features, "int64" for token ids
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME


def export_onnx(name: str, *, input_shape: tuple[int, ...] | None = None, batch_size: int = 0,
                entries: Iterable[CatalogueEntry] | None = None) -> OnnxModel:
    """The catalogue model ``name`` as ONNX; ``batch_size`` 0 leaves the batch dimension dynamic.
    ``entries`` is the catalogue to build from (None = the default one, with the user's extras).

    Raises ``UnknownModel`` for a name the catalogue lacks and ``InvalidProblem`` for a model that has
    no torch graph (a scikit-learn estimator) or that the exporter cannot trace.
    """
    try:
        workload = zoo.build(name, input_shape=input_shape, entries=entries)
    except LibraryMismatch as e:
        raise InvalidProblem(f"{name} is not a torch model, so it has no ONNX graph to export; "
                             "export it with its own library (e.g. skl2onnx for scikit-learn)") from e
    module = getattr(workload.module, "onnx_module", workload.module).eval()
    example = workload.inputs(max(batch_size, 2))  # 2: a batch of 1 would let the exporter fix the dimension
    dynamic = None if batch_size else ({0: torch.export.Dim("batch", min=1, max=4096)},)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), _quiet_exporter(), torch.no_grad():
            warnings.simplefilter("ignore")
            # torch types f as a path, but writes to a file object as its documentation says.
            torch.onnx.export(module, (example,), buffer,  # type: ignore[arg-type]
                              dynamo=True, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_shapes=dynamic, verbose=False)
    except Exception as e:  # the exporter raises many kinds (export, dispatch, onnxscript): one line for all
        reason = " ".join(str(e).split())[:200]
        raise InvalidProblem(f"{name} could not be exported to ONNX: {type(e).__name__}: {reason}") from e
    return OnnxModel(name=name, onnx=buffer.getvalue(), input_shape=tuple(example.shape[1:]),
                     input_dtype=str(example.dtype).removeprefix("torch."))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs its progress at INFO and its skipped torchvision ops at WARNING; a node's log
    wants neither."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
