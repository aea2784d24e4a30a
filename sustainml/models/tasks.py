"""The task types as the model-building modules use them, taken from ``sustainml.task_types`` (the one
definition of task types, their modality, metric and input shape): names, and per-name lookups."""

from sustainml.task_types import (
    IMAGE_CLASSIFICATION,
    OBJECT_DETECTION,
    TABULAR_CLASSIFICATION,
    TABULAR_REGRESSION,
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
    TIME_SERIES_FORECASTING,
)
from sustainml.task_types import TASK_TYPES as _DEFINED

__all__ = [
    "IMAGE_CLASSIFICATION",
    "OBJECT_DETECTION",
    "TEXT_CLASSIFICATION",
    "TEXT_GENERATION",
    "TABULAR_CLASSIFICATION",
    "TABULAR_REGRESSION",
    "TIME_SERIES_FORECASTING",
    "TASK_TYPES",
    "MODALITY_OF_TASK",
    "TOKEN_INPUT_TASKS",
    "INPUT_SHAPE_FORM",
    "INPUT_RANK",
]

TASK_TYPES: tuple[str, ...] = tuple(_DEFINED)
MODALITY_OF_TASK: dict[str, str] = {name: t.modality for name, t in _DEFINED.items()}

#: Tasks whose models take integer token ids (int64), not real numbers.
TOKEN_INPUT_TASKS = frozenset(name for name, t in _DEFINED.items() if t.token_input)

#: One sample's shape per task, as a user should write ``input_shape``.
INPUT_SHAPE_FORM: dict[str, str] = {name: t.input_shape_form for name, t in _DEFINED.items()}

#: Dimensions of one sample per task.
INPUT_RANK: dict[str, int] = {name: t.input_rank for name, t in _DEFINED.items()}
