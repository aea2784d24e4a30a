"""Whom the nodes believe, as plain logic: node identities bound to the participants they come from
(sustainml.peers), figures checked for physical sense (sustainml.plausibility), and the orchestrator's
task book refusing impossible figures and cancellations by anyone but the submitter."""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path

import pytest

from sustainml import msg, topics
from sustainml.peers import Peers
from sustainml.plausibility import footprint_problems, measurement_problems
from sustainml_nodes.orchestrator.store import TaskStore
from sustainml_nodes.orchestrator.tasks import MISSING, TaskBook

from test_task_book import outputs, problem, results, status

REAL, ROGUE, ORCH = "participant-real", "participant-rogue", "participant-orchestrator"


def hw_status(node: str = "hw_constraints@vm", host: str = "vm", pid: int = 10) -> msg.NodeStatus:
    return status(node, "hw_constraints", host, pid=pid)


@pytest.fixture
def peers() -> Peers:
    p = Peers(own=ORCH, own_kind="orchestrator", admit=("orchestrator", "task_encoder", "hw_constraints@vm"))
    assert p.on_status(hw_status(), REAL, now=0.0)
    return p


def delivered(peers: Peers, topic: str, sender: str, now: float = 0.0) -> list[str]:
    got: list[str] = []
    peers.admit_message(topic, sender, lambda: got.append(sender), now=now)
    return got


def test_outputs_are_believed_only_from_a_node_of_the_producing_kind(peers: Peers) -> None:
    measurement = topics.HARDWARE_MEASUREMENT.name
    assert delivered(peers, measurement, REAL) == [REAL]
    assert delivered(peers, measurement, ORCH) == [ORCH]             # the orchestrator's own re-send
    assert delivered(peers, topics.TASK_RESULT.name, REAL) == []      # a hardware node writes no result
    assert delivered(peers, topics.CARBON_FOOTPRINT.name, REAL) == []
    assert peers.refused


def test_a_message_from_an_unidentified_participant_waits_for_its_first_heartbeat_then_is_refused(
        peers: Peers, caplog: pytest.LogCaptureFixture) -> None:
    got: list[str] = []
    topic = topics.ENCODED_TASK.name
    peers.admit_message(topic, "encoder-participant", lambda: got.append("first"), now=0.0)
    assert got == []                                                   # held: the output overtook the status
    assert peers.on_status(status("task_encoder", "task_encoder", "vm"), "encoder-participant", now=1.0)
    assert got == ["first"]                                            # released once identified
    peers.admit_message(topic, ROGUE, lambda: got.append("rogue"), now=1.0)
    with caplog.at_level(logging.WARNING):
        peers.expire(now=1.0 + peers.identify_within_s)
    assert got == ["first"] and "no admitted node" in caplog.text and ROGUE in caplog.text


def test_a_second_participant_cannot_take_a_live_nodes_name(peers: Peers, caplog: pytest.LogCaptureFixture) -> None:
    forged = hw_status(pid=666)
    forged.state = msg.NodeState.NODE_ERROR
    with caplog.at_level(logging.WARNING):
        assert not peers.on_status(forged, ROGUE, now=1.0)
    assert "held by participant" in caplog.text
    assert peers.kind_of(ROGUE) == ""
    assert delivered(peers, topics.HARDWARE_MEASUREMENT.name, ROGUE, now=1.0) == []
    # The real node heartbeats on; its restart (a new participant, the old one silent) takes the name.
    assert peers.on_status(hw_status(), REAL, now=2.0)
    assert not peers.on_status(hw_status(pid=11), "participant-restarted", now=2.0 + peers.stale_s - 0.5)
    assert peers.on_status(hw_status(pid=11), "participant-restarted", now=2.0 + peers.stale_s + 0.5)
    assert peers.kind_of(REAL) == "" and peers.kind_of("participant-restarted") == "hw_constraints"


def test_a_node_that_is_not_admitted_is_ignored(peers: Peers) -> None:
    assert not peers.on_status(hw_status("hw_constraints@phantom", "phantom"), ROGUE, now=0.0)
    assert peers.kind_of(ROGUE) == ""
    assert delivered(peers, topics.HARDWARE_MEASUREMENT.name, ROGUE) == []


def test_without_an_admission_list_only_the_orchestrator_called_orchestrator_is_believed() -> None:
    open_peers = Peers(own="me", admit=())
    assert open_peers.on_status(status("orchestrator", "orchestrator", "vm"), ORCH)
    assert not open_peers.on_status(status("orchestrator2", "orchestrator", "evil"), ROGUE)
    assert open_peers.kind_of(ORCH) == "orchestrator" and open_peers.kind_of(ROGUE) == ""


def test_admission_patterns() -> None:
    p = Peers(own="me", admit=("hw_constraints@gpu*", "orchestrator"))
    assert p.admitted("hw_constraints@gpu01") and not p.admitted("hw_constraints@laptop")


# -------------------------------------------------------------------- physical sense
def job(**fields: object) -> msg.JobMeasurement:
    base = dict(model="tabular_mlp", device="cuda:0", host="vm", latency_p50_ms=1.0, latency_p95_ms=1.2,
                throughput_per_s=1000.0, energy_per_inference_j=0.05, energy_method="nvml")
    base.update(fields)
    return msg.JobMeasurement(**base)   # type: ignore[arg-type]


@pytest.mark.parametrize("fields, expected", [
    ({}, None),
    ({"energy_per_inference_j": 1e-12}, "no device computes on less than"),    # the forgery of the issue
    ({"energy_per_inference_j": 1e-12, "energy_method": "estimate"}, None),     # an estimate may be tiny
    ({"energy_per_inference_j": math.nan}, "not a finite number"),
    ({"energy_per_inference_j": math.inf}, "not a finite number"),
    ({"energy_per_inference_j": -0.01}, "is negative"),
    ({"latency_p50_ms": -1.0}, "is negative"),
    ({"energy_per_inference_j": 100.0}, "more than any device draws"),
    ({"active_power_w": 1e6}, "outside"),
    ({"latency_p50_ms": 5.0, "latency_p95_ms": 1.0}, "latency_p50_ms 5 > latency_p95_ms 1"),
])
def test_measurements_are_checked_for_physical_sense(fields: dict[str, object], expected: str | None) -> None:
    problems = measurement_problems(msg.HardwareMeasurement(host="vm", measurements=[job(**fields)]))
    if expected is None:
        assert problems == []
    else:
        assert problems and expected in problems[0]


def test_footprints_are_checked_for_physical_sense() -> None:
    good = msg.FootprintDetail(model="m", device="cpu", region="DEU", intensity_g_per_kwh=380, pue=1.5,
                               training_co2_g=1.0, inference_co2_g=2.0, total_co2_g=3.0,
                               greener_regions=[msg.Alternative(region="SWE", saving_g=-0.5)])
    assert footprint_problems(msg.CarbonFootprint(footprints=[good])) == []
    for field, value, expected in (("total_co2_g", math.nan, "not a finite"), ("pue", 40.0, "outside"),
                                   ("inference_co2_g", -2.0, "negative"), ("total_co2_g", 0.5, "exceed")):
        bad = msg.FootprintDetail(**{**vars(good), field: value})
        problems = footprint_problems(msg.CarbonFootprint(footprints=[bad]))
        assert problems and expected in problems[0], (field, problems)


# -------------------------------------------------------------------- the task book
@pytest.fixture
def book() -> TaskBook:
    b = TaskBook(TaskStore(":memory:"), stage_timeout_s=100, node_down_grace_s=10)
    for host in ("laptop", "gpu"):
        b.on_node_status(status(f"hw_constraints@{host}", "hw_constraints", host), 0.0)
    return b


def test_an_impossible_measurement_is_refused_stored_nowhere_and_its_host_given_up(
        book: TaskBook, caplog: pytest.LogCaptureFixture) -> None:
    task_id, _ = book.submit(problem(), "client-participant")
    encoded, candidates, m_laptop, f_laptop = outputs(task_id, "laptop")
    _, _, m_gpu, f_gpu = outputs(task_id, "gpu")
    book.on_encoded(encoded)
    book.on_candidates(candidates)
    m_gpu.measurements[0].energy_per_inference_j = math.nan
    m_gpu.measurements[0].basis = "measured"
    with caplog.at_level(logging.WARNING):
        book.on_measurement(m_gpu, node="hw_constraints@gpu")
    assert "hw_constraints@gpu sent an impossible measurement" in caplog.text
    task = book.tasks[(task_id.problem_id, task_id.iteration)]
    assert task.hosts["gpu"] == MISSING and "impossible" in task.missing["gpu"]
    assert book.store.evidence("", "", "", "").records == []             # nothing unchecked stored
    book.on_measurement(m_laptop, node="hw_constraints@laptop")
    done = results(book.on_footprint(f_laptop, node="carbon_tracker"))
    assert done and done[-1].state == msg.TaskState.TASK_DONE
    assert "Results from gpu are missing: hw_constraints@gpu sent an impossible measurement" in done[-1].explanation


def test_only_the_submitter_cancels_a_task(book: TaskBook, caplog: pytest.LogCaptureFixture) -> None:
    task_id, _ = book.submit(problem(), "client-participant")
    with caplog.at_level(logging.WARNING):
        assert book.cancel(task_id, "forged", "rogue-participant") == []
    assert "refused to cancel" in caplog.text
    assert (task_id.problem_id, task_id.iteration) in book.tasks
    cancelled = results(book.cancel(task_id, "changed my mind", "client-participant"))
    assert cancelled and cancelled[0].state == msg.TaskState.TASK_CANCELLED


def test_the_launcher_admits_the_names_its_nodes_announce() -> None:
    from sustainml.launch import NODE_KINDS, UNIQUE_PER_HOST, NodeSpec, load_launch
    from sustainml_nodes.hw_constraints.node import HardwareNode
    from sustainml_nodes.orchestrator.node import Orchestrator

    per_host = {kind for kind, module in NODE_KINDS.items()
                if any(getattr(cls, "unique_per_host", False) and getattr(cls, "name", "") == kind
                       for cls in vars(importlib.import_module(module)).values() if isinstance(cls, type))}
    assert per_host == set(UNIQUE_PER_HOST) and HardwareNode.unique_per_host and not Orchestrator.unique_per_host
    description = load_launch(Path(__file__).resolve().parent.parent / "launch" / "pipeline.yaml")
    description.nodes.append(NodeSpec("partner_c", ["partner"]))
    description.env["SUSTAINML_ADMIT"] = "hw_constraints@gpu01"
    assert description.admitted("vm").split(",") == [
        "hw_constraints@gpu01", "orchestrator", "task_encoder", "model_provider", "hw_constraints@vm",
        "carbon_tracker", "partner_c"]
    description.nodes[3].cmd += ["--param", "host=laptop"]
    assert "hw_constraints@laptop" in description.admitted("vm").split(",")
