"""Task encoder node: a problem description in, an encoded ML task out (logic in ``encoding.py``; the
dataset a problem points to is profiled by the library's ``sustainml.datasets``)."""

import os
from dataclasses import dataclass

from sustainml import msg, topics
from sustainml.datasets import DEFAULT_MAX_DATASET_MB, DataPolicy, profile_dataset
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .encoding import encode, require_complete, warm_up


@dataclass
class TaskEncoderParams:
    data_dir: str = ""              # the only folder datasets are read from; "" = SUSTAINML_DATA_DIR or "."
    max_dataset_mb: float = DEFAULT_MAX_DATASET_MB   # the largest file (or image folder) profiled, MiB


class TaskEncoder(TaskNode):
    name = "task_encoder"
    Params = TaskEncoderParams
    inputs = {"problem": Input(topics.USER_INPUT)}
    output = topics.ENCODED_TASK

    def on_configure(self) -> None:
        data_dir = self.params.data_dir or os.environ.get("SUSTAINML_DATA_DIR", "") or "."
        self.data = DataPolicy.from_params(data_dir, float(self.params.max_dataset_mb))
        self.log.info("datasets are read from %s (at most %g MiB)", self.data.root, self.params.max_dataset_mb)
        self.log.info("sentence model and exemplars loaded in %.1f s", warm_up())
        self.create_service(topics.ENCODE, self._encode_only)

    def process(self, ctx: TaskContext, problem: msg.UserInput) -> msg.EncodedTask:
        task = encode(problem, profile=self._profile(problem))
        require_complete(task)  # the pipeline prices the task: it needs a dataset size and a region
        return task

    def _encode_only(self, request: msg.EncodeRequest) -> msg.EncodeReply:
        """Encode without starting a task: clients ask this for suggestions while a user types, so a
        problem that is not complete yet is read, with findings saying what is missing."""
        problem = request.problem
        return msg.EncodeReply(request_id=request.request_id, task=encode(problem, profile=self._profile(problem)))

    def _profile(self, problem: msg.UserInput) -> msg.DatasetProfile | None:
        if not problem.dataset.path:
            return None
        return profile_dataset(problem.dataset.path, policy=self.data, target_column=problem.dataset.target_column)


def main(argv: list[str] | None = None) -> int:
    return run_node(TaskEncoder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
