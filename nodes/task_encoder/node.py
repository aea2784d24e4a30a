"""Task encoder node: a problem description in, an encoded ML task out (logic in ``encoding.py``)."""

from sustainml import msg, topics
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .encoding import encode


class TaskEncoder(TaskNode):
    name = "task_encoder"
    inputs = {"problem": Input(topics.USER_INPUT)}
    output = topics.ENCODED_TASK

    def on_configure(self) -> None:
        self.create_service(topics.ENCODE, self._encode_only)

    def process(self, ctx: TaskContext, problem: msg.UserInput) -> msg.EncodedTask:
        return encode(problem)

    def _encode_only(self, request: msg.EncodeRequest) -> msg.EncodeReply:
        """Encode without starting a task: clients ask this for suggestions while a user types."""
        return msg.EncodeReply(request_id=request.request_id, task=encode(request.problem))


def main(argv: list[str] | None = None) -> int:
    return run_node(TaskEncoder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
