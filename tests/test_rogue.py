"""A hostile participant on an open bus (issue 15): plain cyclonedds, no node runtime, the IDL's types
and the README's QoS, on the pipeline's domain. While a real task runs it forges every message the
issue found accepted on main: a hardware measurement of 1e-12 J "measured by NVML" for the real host,
a carbon footprint, a finished TaskResult naming ``rogue_model``, a NodeStatus ERROR in the real
hardware node's name, a cancellation, and a phantom hardware node that every task would wait for.

On an open bus it can still read everything and write anything; what it must not do is change what
anyone believes: the task finishes on its real figures, in its normal time, every forgery is refused
and logged, and nothing of it is stored. (A secured bus keeps it out altogether: tests/test_security.py.)
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic

from sustainml import msg, topics
from sustainml.client import Client

from conftest import RunningPipeline

pytestmark = pytest.mark.pipeline

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tool_wear_tabular.yaml"
FORGED_J = 1e-12


class Rogue:
    """Plain cyclonedds writers on the pipeline's topics."""

    def __init__(self, domain_id: int) -> None:
        self.dp = DomainParticipant(domain_id)
        self.writers = {spec.type: DataWriter(self.dp, Topic(self.dp, spec.name, spec.type), qos=spec.qos)
                        for spec in (topics.HARDWARE_MEASUREMENT, topics.CARBON_FOOTPRINT, topics.TASK_RESULT,
                                     topics.NODE_STATUS, topics.NODE_CONTROL)}

    def forge(self, task_id: msg.TaskId, host: str, round_: int) -> None:
        now = time.time()
        job = msg.JobMeasurement(model="tabular_mlp", device="cpu", host=host, batch_size=1, latency_p50_ms=0.01,
                                 latency_p95_ms=0.01, throughput_per_s=1e5, energy_per_inference_j=FORGED_J,
                                 total_energy_per_inference_j=FORGED_J, energy_method="nvml", basis="measured",
                                 repetitions=100, window_s=1.0)
        forgeries: list[object] = [
            msg.HardwareMeasurement(task_id=task_id, host=host, measurements=[job], message_index=round_,
                                    plan_done=True, budget_s=30.0),
            msg.CarbonFootprint(task_id=task_id, host=host, message_index=round_, footprints=[msg.FootprintDetail(
                model="tabular_mlp", device="cpu", host=host, region="NOR", total_co2_g=3e-5)]),
            msg.TaskResult(task_id=task_id, state=msg.TaskState.TASK_DONE, revision=1000 + round_,
                           options=[msg.TaskOption(model="rogue_model", device="cpu", host=host, rank=1)]),
            msg.NodeStatus(node=f"hw_constraints@{host}", kind="hw_constraints", host=host, pid=4242,
                           state=msg.NodeState.NODE_ERROR, task_id=task_id, message="forged failure",
                           heartbeat_unix_s=now, started_unix_s=now - 3600),
            msg.NodeStatus(node="hw_constraints@phantom", kind="hw_constraints", host="phantom", pid=4243,
                           state=msg.NodeState.NODE_IDLE, heartbeat_unix_s=now, started_unix_s=now - 3600),
            msg.NodeControl(command=msg.ControlCommand.CONTROL_CANCEL_TASK, task_id=task_id, reason="forged"),
        ]
        for message in forgeries:
            self.writers[type(message)].write(message)


def test_a_rogue_participant_changes_nothing_anyone_believes(pipeline: RunningPipeline,
                                                             dds: dict[str, str]) -> None:
    host = socket.gethostname()
    rogue = Rogue(int(dds["SUSTAINML_DOMAIN_ID"]))
    stop = threading.Event()
    with Client() as client:
        handle = client.submit(EXAMPLE)
        rounds = 0

        def keep_forging() -> None:
            nonlocal rounds
            while not stop.wait(0.2):
                rogue.forge(handle.task_id, host, rounds)
                rounds += 1

        forger = threading.Thread(target=keep_forging, daemon=True)
        forger.start()
        started = time.monotonic()
        try:
            # A stall would wait on the phantom until the stage timeout (600 s): far beyond this.
            result = handle.result(timeout_s=180)
        finally:
            stop.set()
            forger.join(timeout=5)
        took = time.monotonic() - started
        evidence = client.evidence(model="tabular_mlp", limit=5000)
        revisions = client.history(handle.task_id.problem_id)
    assert rounds >= 5, "the rogue did not get to forge during the task"
    assert result.state == msg.TaskState.TASK_DONE, result.error
    assert result.revision < 1000 and "rogue_model" not in {o.model for o in result.options}
    assert all(o.energy_per_inference_j != FORGED_J for o in result.options)
    assert "phantom" not in result.explanation and "forged" not in result.explanation
    assert all(r.measurement.energy_per_inference_j != FORGED_J for r in evidence.records)
    assert all("rogue_model" not in {o.model for o in r.options} for r in revisions)
    # Each refusal is logged once per participant; a message from an unidentified participant is
    # refused once it has not identified itself within peers.IDENTIFY_WITHIN_S.
    for refusal in ("refused a message on sustainml/v3/hardware_measurement",
                    "refused a message on sustainml/v3/carbon_footprint",
                    f"refused a status of node 'hw_constraints@{host}'",
                    "ignoring node 'hw_constraints@phantom'",
                    "refused to cancel task"):
        pipeline.wait_line("orchestrator", refusal, timeout_s=30)
    for node in ("carbon_tracker", "model_provider", "hw_constraints"):
        pipeline.wait_line(node, "refused a message on sustainml/v3/node_control", timeout_s=30)
    assert "Traceback" not in pipeline.log(), pipeline.log()
    print(f"rogue: {rounds} rounds of 6 forgeries during the task; done in {took:.1f} s")
