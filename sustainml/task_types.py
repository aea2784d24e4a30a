"""The task types the pipeline knows: the data modality of each, its quality metric and its input shape.

The one definition, read by the task encoder (its vocabulary in ``nodes/task_encoder/knowledge.yaml``
names these task types and metrics, and is refused at load time if it names another), the model
provider (its catalogue's entries are checked against them) and the web page (``/api/task_types``).
Names are those of the IDL's ``EncodedTask.task_type``, ``.modality`` and ``.metric``. A new task
type goes here first, then its words and exemplars into ``knowledge.yaml`` and its models into the
catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "IMAGE_CLASSIFICATION",
    "METRICS",
    "MODALITIES",
    "OBJECT_DETECTION",
    "TABULAR_CLASSIFICATION",
    "TABULAR_REGRESSION",
    "TASK_TYPES",
    "TEXT_CLASSIFICATION",
    "TEXT_GENERATION",
    "TIME_SERIES_FORECASTING",
    "Metric",
    "TaskType",
]


@dataclass(frozen=True)
class Metric:
    """A quality metric. A ``fraction`` metric takes values in (0, 1], never percentages (a
    quality_target of 90 is a mistake for 0.9); the others are in the units ``description`` gives.
    ``label`` is its short form in sentences ("69.8% top-1", "RMSE 0.459")."""

    name: str
    higher_is_better: bool
    fraction: bool
    description: str
    label: str

    def describe(self, value: float) -> str:
        return f"{value * 100:.1f}% {self.label}" if self.fraction else f"{self.label} {value:.3g}"

    def describe_change(self, change: float) -> str:
        """``-0.014`` → "-1.4 points of accuracy"; ``+4.8`` → "+4.8 perplexity"."""
        if self.fraction:
            return f"{change * 100:+.1f} points of {self.label}"
        return f"{change:+.3g} {self.label}"

    def describe_target(self, target: float) -> str:
        return f"{target * 100:g}%" if self.fraction else f"{self.label} {self.comparison} {target:g}"

    @property
    def comparison(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def meets(self, value: float, target: float) -> bool:
        """Whether ``value`` satisfies ``target``; a target of 0 means none."""
        if target == 0:
            return True
        return value >= target if self.higher_is_better else value <= target

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


@dataclass(frozen=True)
class TaskType:
    """A kind of ML task: the modality of its data, the metric its models' quality is published in,
    and what one sample looks like (``input_rank`` dimensions, written as ``input_shape_form``).
    ``token_input``: its models take integer token ids (int64), not real numbers."""

    name: str
    modality: str
    metric: Metric
    input_rank: int
    input_shape_form: str
    token_input: bool = False


MODALITIES: tuple[str, ...] = ("image", "tabular", "text", "time_series")

METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in (
    Metric("top1_accuracy", True, True, "share of samples whose most likely class is the right one", "top-1"),
    Metric("accuracy", True, True, "share of samples classified correctly", "accuracy"),
    Metric("box_map", True, True, "COCO box mean average precision over IoU 0.5:0.95", "box AP"),
    Metric("perplexity", False, False, "exponentiated mean negative log-likelihood per token on held-out text",
           "perplexity"),
    Metric("rmse", False, False, "root-mean-square error, in the units of the target", "RMSE"),
    # what ETTh1/ETTm1/Weather/Electricity long-horizon results publish, so catalogue figures compare
    Metric("mse", False, False, "mean squared error on the standardised (zero-mean, unit-variance) series", "MSE"),
)})
"""Every quality metric a task type or catalogue entry may name, by name."""

IMAGE_CLASSIFICATION = "image_classification"
OBJECT_DETECTION = "object_detection"
TEXT_CLASSIFICATION = "text_classification"
TEXT_GENERATION = "text_generation"
TABULAR_CLASSIFICATION = "tabular_classification"
TABULAR_REGRESSION = "tabular_regression"
TIME_SERIES_FORECASTING = "time_series_forecasting"

TASK_TYPES: Mapping[str, TaskType] = MappingProxyType({t.name: t for t in (
    TaskType(IMAGE_CLASSIFICATION, "image", METRICS["top1_accuracy"], 3,
             "[channels, height, width], e.g. [3, 224, 224]"),
    TaskType(OBJECT_DETECTION, "image", METRICS["box_map"], 3, "[channels, height, width], e.g. [3, 512, 688]"),
    TaskType(TEXT_CLASSIFICATION, "text", METRICS["accuracy"], 1, "[tokens], e.g. [128]", token_input=True),
    TaskType(TEXT_GENERATION, "text", METRICS["perplexity"], 1, "[prompt tokens], e.g. [128]", token_input=True),
    TaskType(TABULAR_CLASSIFICATION, "tabular", METRICS["accuracy"], 1, "[features], e.g. [14]"),
    TaskType(TABULAR_REGRESSION, "tabular", METRICS["rmse"], 1, "[features], e.g. [8]"),
    TaskType(TIME_SERIES_FORECASTING, "time_series", METRICS["mse"], 2, "[context length, channels], e.g. [336, 7]"),
)})
"""Every task type, by name, in the order the encoder and the page list them."""
