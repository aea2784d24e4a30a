"""Model provider node: an encoded task in, candidate models out (logic in ``proposal.py``)."""

import threading
from dataclasses import dataclass

from sustainml import msg, topics
from sustainml.models.catalogue import flops_per_sample, load_catalogue, to_candidate
from sustainml.models.onnx_export import export_onnx
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .proposal import propose


@dataclass
class ModelProviderParams:
    catalogue: str = ""   # a catalogue YAML file; "" = the bundled catalogue


class ModelProvider(TaskNode):
    name = "model_provider"
    Params = ModelProviderParams
    inputs = {"task": Input(topics.ENCODED_TASK)}
    output = topics.MODEL_CANDIDATES

    def on_configure(self) -> None:
        # torch work of this process (FLOP counting under FlopCounterMode, ONNX export through the FX
        # exporter) one piece at a time. An export requested in the node's first seconds, while the
        # background count ran in another thread, failed now and then ("Failed to decompose the FX
        # graph"; seen twice, in CI and a test run, never alone); concurrent tracing is the suspect,
        # not proven, and serialising rules it out at the cost of an export waiting one count.
        self._torch_work = threading.Lock()
        self.entries = load_catalogue(self.params.catalogue or None)
        self.create_service(topics.CATALOGUE, self._catalogue)
        # One export at a time, and few replies remembered: a reply holds a whole model.
        self.create_service(topics.EXPORT_ONNX, self._export_onnx, workers=1, remember=4)

    def on_activate(self) -> None:
        # Count every entry's FLOPs now, in the background (seconds for a generative model), so that the
        # first task of each type gets its candidates at once.
        self.create_thread(self._count_flops, name="model_provider-flops")

    def _count_flops(self) -> None:
        for entry in self.entries:
            if self.stopping:
                return
            try:
                with self._torch_work:
                    flops_per_sample(entry)
            except Exception as e:  # noqa: BLE001 - counted (and reported) again when a task asks
                self.log.warning("cannot count the FLOPs of %s ahead of time: %s", entry.name, e)

    def process(self, ctx: TaskContext, task: msg.EncodedTask) -> msg.ModelCandidates:
        with self._torch_work:
            return propose(task, self.entries)

    def _catalogue(self, request: msg.CatalogueRequest) -> msg.CatalogueReply:
        entries = [e for e in self.entries if request.task_type in ("", e.task_type)]
        return msg.CatalogueReply(request_id=request.request_id,
                                  models=[to_candidate(e, reason="catalogue entry") for e in entries])

    def _export_onnx(self, request: msg.OnnxRequest) -> msg.OnnxReply:
        """A catalogue model as ONNX, for a partner's hardware node that does not run Python."""
        shape = tuple(int(d) for d in request.input_shape) or None
        with self._torch_work:
            exported = export_onnx(request.model, input_shape=shape, batch_size=int(request.batch_size),
                                   entries=self.entries)   # this node's catalogue, `catalogue` param included
        return msg.OnnxReply(request_id=request.request_id, model=exported.name, onnx=exported.onnx,
                             input_shape=list(exported.input_shape), input_name=exported.input_name,
                             output_name=exported.output_name)


def main(argv: list[str] | None = None) -> int:
    return run_node(ModelProvider, argv)


if __name__ == "__main__":
    raise SystemExit(main())
