"""One definition of task types and metrics (sustainml.task_types), and everything that reads it: the
model provider's view of it, its catalogue's metrics, the task encoder's knowledge and the web page."""

import json

from sustainml import task_types
from sustainml.models import tasks
from sustainml.models.catalogue import METRICS as CATALOGUE_METRICS
from sustainml.models.catalogue import default_catalogue
from sustainml_nodes.task_encoder.knowledge import load_knowledge

from conftest import WebProcess


def test_every_task_type_names_a_defined_modality_and_metric():
    assert list(task_types.TASK_TYPES)[0] == task_types.IMAGE_CLASSIFICATION
    for name, task_type in task_types.TASK_TYPES.items():
        assert task_type.name == name
        assert task_type.modality in task_types.MODALITIES
        assert task_types.METRICS[task_type.metric.name] is task_type.metric
        assert task_type.input_rank == task_type.input_shape_form.split("]")[0].count(",") + 1  # "[a, b], e.g."


def test_the_model_provider_reads_the_library():
    assert tasks.TASK_TYPES == tuple(task_types.TASK_TYPES)
    assert tasks.MODALITY_OF_TASK == {n: t.modality for n, t in task_types.TASK_TYPES.items()}
    assert tasks.TOKEN_INPUT_TASKS == {task_types.TEXT_CLASSIFICATION, task_types.TEXT_GENERATION}
    assert tasks.INPUT_RANK["time_series_forecasting"] == 2
    assert tasks.INPUT_SHAPE_FORM["image_classification"] == "[channels, height, width], e.g. [3, 224, 224]"


def test_the_catalogue_reads_the_library_metrics():
    assert CATALOGUE_METRICS is task_types.METRICS
    for entry in default_catalogue():
        assert entry.task_type in task_types.TASK_TYPES
        if entry.quality is not None:
            assert entry.quality.metric == task_types.TASK_TYPES[entry.task_type].metric.name, entry.name


def test_the_encoder_knows_words_for_every_task_type_and_nothing_else():
    knowledge = load_knowledge()
    assert tuple(knowledge.task_types) == tuple(task_types.TASK_TYPES)
    assert set(knowledge.metrics) == set(task_types.METRICS)
    assert all(t.exemplars and t.cues for t in knowledge.task_types.values())


def test_the_page_lists_the_library_task_types_with_no_pipeline_running(dds):
    web = WebProcess("--request-timeout", "2")
    try:
        status, _, body = web.request("/api/task_types")
    finally:
        web.stop()
    assert status == 200
    assert json.loads(body) == sorted(task_types.TASK_TYPES)
