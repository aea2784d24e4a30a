"""Carbon tracker node: measurements in, gCO2e per option out (logic in ``footprint.py``).

It fires once per hardware node's measurement of a task (one per host), keeping the encoded task and
the candidates for the task's lifetime."""

from dataclasses import dataclass
from typing import Any

from sustainml import msg, topics
from sustainml.exceptions import ConfigError
from sustainml.node import Input, TaskContext, TaskNode, run_node, task_key

from .footprint import compute_footprints


@dataclass
class CarbonTrackerParams:
    pue: float = 1.0   # data-centre power usage effectiveness applied to every option


class CarbonTracker(TaskNode):
    name = "carbon_tracker"
    Params = CarbonTrackerParams
    inputs = {
        "task": Input(topics.ENCODED_TASK, keep=True),
        "candidates": Input(topics.MODEL_CANDIDATES, keep=True),
        "measurement": Input(topics.HARDWARE_MEASUREMENT),
    }
    output = topics.CARBON_FOOTPRINT

    def on_configure(self) -> None:
        if self.params.pue < 1.0:
            raise ConfigError(f"pue={self.params.pue}: a PUE is at least 1.0 (1.0 = no facility overhead)")

    def fire_key(self, task_id: msg.TaskId, inputs: dict[str, Any]) -> Any:
        return (task_key(task_id), inputs["measurement"].host)

    def process(self, ctx: TaskContext, task: msg.EncodedTask, candidates: msg.ModelCandidates,
                measurement: msg.HardwareMeasurement) -> msg.CarbonFootprint:
        return compute_footprints(task, candidates, measurement, pue=self.params.pue)


def main(argv: list[str] | None = None) -> int:
    return run_node(CarbonTracker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
