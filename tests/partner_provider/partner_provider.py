"""A partner's model provider written directly on the bus, as an outside partner would in Python: no
sustainml node runtime, no catalogue, only the IDL's types (``sustainml.msg``), the topic names and
QoS (``sustainml.topics``) and a DDS participant (``sustainml.bus``).

It answers every EncodedTask with one model of its own that no catalogue holds, ``partner_mlp``: the
zoo's tabular MLP with hidden layers [64, 32] and dropout 0.1, described as data in
``ModelCandidate.builder`` so that every hardware node can build and measure it. Its FLOPs and
parameters are left 0 (unknown): the hardware nodes count what they build. It announces itself on
``node_status`` (kind model_provider, its own pid) every second, and stops on SIGINT or SIGTERM.

    python partner_provider.py [NAME]
"""

import os
import queue
import signal
import sys
import threading
import time

from sustainml import msg, topics
from sustainml.bus import Participant

MODEL = "partner_mlp"
TASK_TYPES = ("tabular_regression", "tabular_classification")


def builder(num_outputs: int) -> msg.ModelBuilder:
    """tabular_mlp(d_layers=[64, 32], dropout=0.1): each setting typed by the sequence that holds it."""
    return msg.ModelBuilder(kind="zoo", name="tabular_mlp", num_outputs=num_outputs, settings=[
        msg.BuilderSetting(name="d_layers", is_list=True, integers=[64, 32]),
        msg.BuilderSetting(name="dropout", is_list=False, numbers=[0.1]),
    ])


def answer(task: msg.EncodedTask) -> msg.ModelCandidates:
    if task.task_type not in TASK_TYPES:
        return msg.ModelCandidates(task_id=task.task_id, excluded=[
            f"{MODEL}: this partner proposes models for {', '.join(TASK_TYPES)} only, not {task.task_type}"])
    features = list(task.dataset.input_shape) or [int(task.dataset.num_features) or 8]
    classify = task.task_type == "tabular_classification"
    candidate = msg.ModelCandidate(
        name=MODEL, family="MLP", task_type=task.task_type,
        params=0.0, flops_per_sample=0.0,          # unknown here: the hardware nodes count them
        input_shape=features,
        quality_metric=task.metric or ("accuracy" if classify else "rmse"),
        quality_value=0.9 if classify else 0.45, higher_is_better=classify,
        quality_benchmark="the partner's held-out runs", quality_source="partner's own validation (an assumption)",
        default_epochs=20, default_batch_size=64,
        reason="the partner's own model: a narrow MLP (64, 32) for numeric features",
        display_name="Partner MLP 64-32", licence="MIT", library="torch",
        builder=builder(2 if classify else 1))
    return msg.ModelCandidates(task_id=task.task_id, candidates=[candidate])


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "partner_provider"
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    tasks: "queue.Queue[msg.EncodedTask]" = queue.Queue()
    bus = Participant()   # domain, discovery and DDS configuration from the environment
    try:
        status = bus.publisher(topics.NODE_STATUS)
        candidates = bus.publisher(topics.MODEL_CANDIDATES)
        subscription = bus.subscribe(topics.ENCODED_TASK, tasks.put)
        started = time.time()

        def announce(state: msg.NodeState, message: str, task_id: msg.TaskId | None = None) -> None:
            status.publish(msg.NodeStatus(node=name, kind="model_provider", host=bus.host, pid=os.getpid(),
                                          state=state, task_id=task_id or msg.TaskId(), message=message,
                                          heartbeat_unix_s=time.time(), started_unix_s=started))

        announce(msg.NodeState.NODE_IDLE, "ready")
        print(f"{name} ready on the bus", flush=True)
        next_heartbeat = time.monotonic() + 1.0
        while not stop.is_set():
            try:
                task = tasks.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() >= next_heartbeat:
                    announce(msg.NodeState.NODE_IDLE, "ready")
                    next_heartbeat = time.monotonic() + 1.0
                continue
            reply = answer(task)
            candidates.publish(reply)
            announce(msg.NodeState.NODE_IDLE, "answered", task.task_id)
            print(f"answered {task.task_id.problem_id} {task.task_id.iteration}: "
                  f"{[c.name for c in reply.candidates]}", flush=True)
        del subscription
    finally:
        bus.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
