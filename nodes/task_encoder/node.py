"""Task encoder node: a problem description in, an encoded ML task out (logic in ``encoding.py``)."""

from sustainml import msg, topics
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .encoding import encode, require_complete, warm_up


class TaskEncoder(TaskNode):
    name = "task_encoder"
    inputs = {"problem": Input(topics.USER_INPUT)}
    output = topics.ENCODED_TASK

    def on_configure(self) -> None:
        self.log.info("sentence model and exemplars loaded in %.1f s", warm_up())
        self.create_service(topics.ENCODE, self._encode_only)

    def process(self, ctx: TaskContext, problem: msg.UserInput) -> msg.EncodedTask:
        task = encode(problem)
        require_complete(task)  # the pipeline prices the task: it needs a dataset size and a region
        return task

    def _encode_only(self, request: msg.EncodeRequest) -> msg.EncodeReply:
        """Encode without starting a task: clients ask this for suggestions while a user types, so a
        problem that is not complete yet is read, with findings saying what is missing."""
        return msg.EncodeReply(request_id=request.request_id, task=encode(request.problem))


def main(argv: list[str] | None = None) -> int:
    return run_node(TaskEncoder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
