"""The TaskNode contract a partner writes against: process() is required, and its absence is said at
construction, before the node joins the bus, not at its first task."""

import pytest

from sustainml import msg, topics
from sustainml.node import Input, TaskContext, TaskNode


def test_a_task_node_without_process_cannot_be_built():
    class Forgetful(TaskNode):
        name = "forgetful"

    with pytest.raises(TypeError, match="abstract method process"):
        Forgetful()


def test_a_process_that_cannot_take_its_inputs_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r"process\(ctx, tsk\) does not match inputs = \['task'\]"):
        class Misnamed(TaskNode):
            inputs = {"task": Input(topics.ENCODED_TASK)}

            def process(self, ctx: TaskContext, tsk: msg.EncodedTask) -> None:
                return None


def test_a_process_that_takes_its_inputs_by_name_or_as_keywords_is_accepted():
    class Named(TaskNode):
        inputs = {"task": Input(topics.ENCODED_TASK), "candidates": Input(topics.MODEL_CANDIDATES)}

        def process(self, ctx: TaskContext, candidates: msg.ModelCandidates, *, task: msg.EncodedTask,
                    note: str = "") -> None:
            return None

    class AnyNames(TaskNode):
        inputs = {"task": Input(topics.ENCODED_TASK)}

        def process(self, ctx: TaskContext, **inputs: object) -> None:
            return None
