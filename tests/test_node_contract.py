"""The TaskNode contract a partner writes against: process() is required, and its absence is said at
construction, before the node joins the bus, not at its first task."""

import pytest

from sustainml.node import TaskNode


def test_a_task_node_without_process_cannot_be_built():
    class Forgetful(TaskNode):
        name = "forgetful"

    with pytest.raises(TypeError, match="abstract method process"):
        Forgetful()
