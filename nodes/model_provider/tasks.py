"""The task types the model provider knows, their data modality and what their models take as input.

Names are those of the IDL's ``EncodedTask.task_type`` and of the task encoder's ``knowledge.yaml``.
"""

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

IMAGE_CLASSIFICATION = "image_classification"
OBJECT_DETECTION = "object_detection"
TEXT_CLASSIFICATION = "text_classification"
TEXT_GENERATION = "text_generation"
TABULAR_CLASSIFICATION = "tabular_classification"
TABULAR_REGRESSION = "tabular_regression"
TIME_SERIES_FORECASTING = "time_series_forecasting"

MODALITY_OF_TASK: dict[str, str] = {
    IMAGE_CLASSIFICATION: "image",
    OBJECT_DETECTION: "image",
    TEXT_CLASSIFICATION: "text",
    TEXT_GENERATION: "text",
    TABULAR_CLASSIFICATION: "tabular",
    TABULAR_REGRESSION: "tabular",
    TIME_SERIES_FORECASTING: "time_series",
}
TASK_TYPES = tuple(MODALITY_OF_TASK)

#: Tasks whose models take integer token ids (int64), not real numbers.
TOKEN_INPUT_TASKS = frozenset({TEXT_CLASSIFICATION, TEXT_GENERATION})

#: One sample's shape per task, as a user should write ``input_shape``.
INPUT_SHAPE_FORM: dict[str, str] = {
    IMAGE_CLASSIFICATION: "[channels, height, width], e.g. [3, 224, 224]",
    OBJECT_DETECTION: "[channels, height, width], e.g. [3, 512, 688]",
    TEXT_CLASSIFICATION: "[tokens], e.g. [128]",
    TEXT_GENERATION: "[prompt tokens], e.g. [128]",
    TABULAR_CLASSIFICATION: "[features], e.g. [14]",
    TABULAR_REGRESSION: "[features], e.g. [8]",
    TIME_SERIES_FORECASTING: "[context length, channels], e.g. [336, 7]",
}

#: Dimensions of one sample per task.
INPUT_RANK: dict[str, int] = {
    IMAGE_CLASSIFICATION: 3,
    OBJECT_DETECTION: 3,
    TEXT_CLASSIFICATION: 1,
    TEXT_GENERATION: 1,
    TABULAR_CLASSIFICATION: 1,
    TABULAR_REGRESSION: 1,
    TIME_SERIES_FORECASTING: 2,
}
