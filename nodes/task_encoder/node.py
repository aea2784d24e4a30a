"""Task encoder node: a problem description in, an encoded ML task out (logic in ``encoding.py``; the
dataset a problem points to is profiled by the library's ``sustainml.datasets``).

The encoding runs in worker processes (``encode_pool.py``) with a time limit each, so that no input,
however large or pathological, holds the node: the node's own threads only check limits and wait."""

import os
from dataclasses import dataclass

from sustainml import msg, topics
from sustainml.datasets import DEFAULT_MAX_DATASET_MB
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .encode_pool import EncodePool, PoolSettings
from .encoding import check_problem


@dataclass
class TaskEncoderParams:
    data_dir: str = ""              # the only folder datasets are read from; "" = SUSTAINML_DATA_DIR or "."
    max_dataset_mb: float = DEFAULT_MAX_DATASET_MB   # the largest file (or image folder) profiled, MiB
    workers: int = 2                # encoder processes; one past its time limit is replaced, the others go on
    encode_timeout_s: float = 30.0  # the longest one encode may take, dataset profile included (Units: s)


class TaskEncoder(TaskNode):
    name = "task_encoder"
    Params = TaskEncoderParams
    inputs = {"problem": Input(topics.USER_INPUT)}
    output = topics.ENCODED_TASK

    def on_configure(self) -> None:
        data_dir = self.params.data_dir or os.environ.get("SUSTAINML_DATA_DIR", "") or "."
        self.pool = EncodePool(PoolSettings(
            data_dir=data_dir, max_dataset_mb=float(self.params.max_dataset_mb), workers=int(self.params.workers),
            timeout_s=float(self.params.encode_timeout_s)))
        self.log.info("datasets are read from %s (at most %g MiB)", os.path.abspath(data_dir),
                      self.params.max_dataset_mb)
        try:
            took = self.pool.start()
        except BaseException:
            self.pool.close()
            raise
        self.log.info("encoder worker ready (sentence model and exemplars loaded in %.1f s); %d worker(s), "
                      "%g s per encode at most", took, self.params.workers, self.params.encode_timeout_s)
        self.create_service(topics.ENCODE, self._encode_only)

    def on_shutdown(self) -> None:
        self.pool.close()

    def process(self, ctx: TaskContext, problem: msg.UserInput) -> msg.EncodedTask:
        check_problem(problem)   # here, so that a huge input is refused before it crosses to a worker
        # the pipeline prices the task: it needs a dataset size and a region (``complete``)
        return self.pool.encode(problem, complete=True, stopped=lambda: ctx.node.task_ended(ctx.task_id))

    def _encode_only(self, request: msg.EncodeRequest) -> msg.EncodeReply:
        """Encode without starting a task: clients ask this for suggestions while a user types, so a
        problem that is not complete yet is read, with findings saying what is missing."""
        check_problem(request.problem)
        task = self.pool.encode(request.problem, complete=False,
                                stopped=lambda: "was interrupted: the node is shutting down" if self.stopping else "")
        return msg.EncodeReply(request_id=request.request_id, task=task)


def main(argv: list[str] | None = None) -> int:
    return run_node(TaskEncoder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
