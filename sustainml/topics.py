"""Every topic of the pipeline, listed in one place: name, message type and QoS profile.

Partners writing a node in another language read this table (README has it too): the type names
are those of ``idl/sustainml.idl``, module ``sustainml``; every name starts with ``sustainml/v3/``,
the IDL's interface version.
"""

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from cyclonedds.core import Qos

from . import msg, qos


class ServiceRequest(Protocol):
    """What every request type of the IDL carries: the id its replies echo."""

    request_id: str


class ServiceReply(Protocol):
    """What every reply type of the IDL carries: the request's id and, when it failed, one readable line."""

    request_id: str
    error: str


T = TypeVar("T")
ReqT = TypeVar("ReqT", bound=ServiceRequest)
RepT = TypeVar("RepT", bound=ServiceReply)

#: Every topic name starts with the interface version of ``idl/sustainml.idl`` (its ``VERSION``):
#: nodes built from different versions of the IDL never match one another.
PREFIX = f"sustainml/v{msg.VERSION}/"


@dataclass(frozen=True)
class TopicSpec(Generic[T]):
    """A topic: its DDS name, its message type and the QoS every reader and writer of it uses."""

    name: str
    type: type[T]
    qos: Qos
    doc: str = ""


@dataclass(frozen=True)
class ServiceSpec(Generic[ReqT, RepT]):
    """A request/reply service: two topics, ``sustainml/v3/rpc/NAME/request`` and ``.../reply``."""

    name: str
    request_type: type[ReqT]
    reply_type: type[RepT]
    doc: str = ""

    @property
    def request_topic(self) -> TopicSpec[ReqT]:
        return TopicSpec(f"{PREFIX}rpc/{self.name}/request", self.request_type, qos.EVENT)

    @property
    def reply_topic(self) -> TopicSpec[RepT]:
        return TopicSpec(f"{PREFIX}rpc/{self.name}/reply", self.reply_type, qos.EVENT)


USER_INPUT = TopicSpec(PREFIX + "user_input", msg.UserInput, qos.EVENT,
                       "a problem with its task id, published by the orchestrator")
ENCODED_TASK = TopicSpec(PREFIX + "encoded_task", msg.EncodedTask, qos.EVENT, "task encoder output")
MODEL_CANDIDATES = TopicSpec(PREFIX + "model_candidates", msg.ModelCandidates, qos.EVENT,
                             "model provider output")
HARDWARE_MEASUREMENT = TopicSpec(PREFIX + "hardware_measurement", msg.HardwareMeasurement, qos.EVENT,
                                 "hardware node output, one per host per task")
CARBON_FOOTPRINT = TopicSpec(PREFIX + "carbon_footprint", msg.CarbonFootprint, qos.EVENT,
                             "carbon tracker output, one per host per task")
HARDWARE_INVENTORY = TopicSpec(PREFIX + "hardware_inventory", msg.HardwareInventory, qos.STATE,
                               "each hardware node's machine, latest per host")
TASK_STATUS = TopicSpec(PREFIX + "task_status", msg.TaskStatus, qos.STATE,
                        "task lifecycle from the orchestrator, latest per task")
TASK_RESULT = TopicSpec(PREFIX + "task_result", msg.TaskResult, qos.STATE,
                        "the aggregated, ranked result, latest per task")
NODE_STATUS = TopicSpec(PREFIX + "node_status", msg.NodeStatus, qos.STATUS,
                        "heartbeat, state and progress of every node, with liveliness")
STAGE_RECORD = TopicSpec(PREFIX + "stage_record", msg.StageRecord, qos.EVENT,
                         "the energy of one stage of a user's own pipeline (sustainml.tracking)")
TRAINING_FORECAST = TopicSpec(PREFIX + "training_forecast", msg.TrainingForecast, qos.STATE,
                              "live training: energy so far and the predicted total, latest per run")
NODE_CONTROL = TopicSpec(PREFIX + "node_control", msg.NodeControl, qos.EVENT, "e.g. cancel a task")

SUBMIT = ServiceSpec("submit", msg.SubmitRequest, msg.SubmitReply, "orchestrator: start a task")
RESULTS = ServiceSpec("results", msg.ResultRequest, msg.ResultReply, "orchestrator: past results")
CATALOGUE = ServiceSpec("catalogue", msg.CatalogueRequest, msg.CatalogueReply, "model provider")
INVENTORY = ServiceSpec("inventory", msg.InventoryRequest, msg.InventoryReply, "every hardware node")
ENCODE = ServiceSpec("encode", msg.EncodeRequest, msg.EncodeReply, "task encoder, without a task")
EXPORT_ONNX = ServiceSpec("export_onnx", msg.OnnxRequest, msg.OnnxReply, "model provider: a model as ONNX")
EVIDENCE = ServiceSpec("evidence", msg.EvidenceRequest, msg.EvidenceReply,
                       "orchestrator: every measurement it keeps, with the notes on their options")
NOTE = ServiceSpec("note", msg.NoteRequest, msg.NoteReply, "orchestrator: attach a note to an option of a result")

ALL_TOPICS: tuple[TopicSpec[Any], ...] = (
    USER_INPUT, ENCODED_TASK, MODEL_CANDIDATES, HARDWARE_MEASUREMENT, CARBON_FOOTPRINT,
    HARDWARE_INVENTORY, TASK_STATUS, TASK_RESULT, NODE_STATUS, NODE_CONTROL, STAGE_RECORD, TRAINING_FORECAST,
)
ALL_SERVICES: tuple[ServiceSpec[Any, Any], ...] = (SUBMIT, RESULTS, CATALOGUE, INVENTORY, ENCODE, EXPORT_ONNX, EVIDENCE, NOTE)


def by_name(name: str) -> TopicSpec[Any]:
    """The topic called ``name`` (with or without the ``sustainml/v3/`` prefix), request/reply included."""
    every = list(ALL_TOPICS) + [t for s in ALL_SERVICES for t in (s.request_topic, s.reply_topic)]
    wanted = name if name.startswith(PREFIX) else PREFIX + name.removeprefix("sustainml/")
    for spec in every:
        if spec.name == wanted:
            return spec
    known = ", ".join(s.name for s in every)
    raise KeyError(f"no topic {name!r}; known topics: {known}")
