"""A partner writes a node in C from idl/sustainml.idl alone, and it talks to the Python pipeline.

tests/partner_c/partner_node.c is that node: a model provider that answers each EncodedTask with a
ModelCandidates. The test builds it the way a partner would (``idlc`` on our IDL, ``cc ... -lddsc``)
with Cyclone DDS C 0.10.2, runs it in the test's private DDS domain with the Cyclone XML the Python
side uses, and drives it through the real runtime, cyclonedds-python 11.0.1.
"""

import logging
import os
import queue
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sustainml import msg, topics
from sustainml._idl import IDL_PATH
from sustainml.bus import Gone, Participant
from sustainml.config import apply_dds_config, load_config

SOURCE = Path(__file__).resolve().parent / "partner_c" / "partner_node.c"
TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def partner_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """partner_node.c compiled against the C code idlc makes of our IDL."""
    for tool, package in (("idlc", "cyclonedds-tools"), ("cc", "gcc")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH (apt package {package}); cannot build the C partner node")
    probe = subprocess.run(["cc", "-E", "-x", "c", "-"], input="#include <dds/dds.h>\n",
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("Cyclone DDS C headers (dds/dds.h, apt package cyclonedds-dev) not found")

    out = tmp_path_factory.mktemp("partner_c")
    steps = [
        ["idlc", "-o", str(out), str(IDL_PATH)],
        ["cc", "-Wall", "-o", str(out / "partner_node"), str(SOURCE),
         str(out / "sustainml.c"), "-I", str(out), "-lddsc"],
    ]
    for cmd in steps:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}"
    return out / "partner_node"


def wait_for(condition: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {TIMEOUT_S:g} s; partner output:\n{log.read_text()}")
        time.sleep(0.02)


def next_matching(q: "queue.Queue[Any]", accept: Callable[[Any], bool], what: str, log: Path) -> Any:
    """The first message on ``q`` that ``accept`` takes, skipping the others."""
    deadline = time.monotonic() + TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = q.get(timeout=left)
        except queue.Empty:
            break
        if accept(message):
            return message
    raise AssertionError(f"no {what} within {TIMEOUT_S:g} s; partner output:\n{log.read_text()}")


@contextmanager
def partner_process(binary: Path, log: Path) -> Iterator[subprocess.Popen]:
    """The C node in this test's DDS domain, with the Cyclone XML the Python side uses; killed on the
    way out whatever happens."""
    config = load_config()
    apply_dds_config(config)  # sets CYCLONEDDS_URI: loopback, unicast peers, this test's discovery tag
    env = {**os.environ, "SUSTAINML_DOMAIN_ID": str(config.domain_id),
           "CYCLONEDDS_URI": os.environ["CYCLONEDDS_URI"]}
    with log.open("w") as out:
        proc = subprocess.Popen([str(binary)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def stop(proc: subprocess.Popen, log: Path) -> None:
    """SIGTERM, as a launcher does, and a clean exit."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, f"partner exited with {proc.returncode}:\n{log.read_text()}"
    assert "stopped" in log.read_text()


def test_c_partner_answers_encoded_tasks(dds: dict[str, str], partner_binary: Path, tmp_path: Path) -> None:
    log = tmp_path / "partner.log"
    with partner_process(partner_binary, log) as proc:
        bus = Participant()
        try:
            candidates: queue.Queue[msg.ModelCandidates] = queue.Queue()
            statuses: queue.Queue[msg.NodeStatus] = queue.Queue()
            # Keep the subscriptions referenced: a collected one frees the Python listener that
            # Cyclone still calls (a segfault in cyclonedds-python 11.0.1).
            subscriptions = [bus.subscribe(topics.MODEL_CANDIDATES, candidates.put),
                             bus.subscribe(topics.NODE_STATUS, statuses.put)]
            tasks = bus.publisher(topics.ENCODED_TASK)

            # Keyed, transient-local, with an enum: the partner's announcement reaches us even
            # though we may have subscribed after it was written.
            status = next_matching(statuses, lambda s: s.node == "partner_c", "partner_c's NodeStatus", log)
            assert status.kind == "model_provider"
            assert (status.state, status.pid) == (msg.NodeState.NODE_IDLE, proc.pid)

            # Volatile topic: a task written before the partner's reader has matched is lost.
            wait_for(lambda: tasks.matched() > 0, "the partner's EncodedTask reader did not match", log)

            for iteration, (task_type, metric, higher) in enumerate(
                    [("tabular_regression", "rmse", False), ("image_classification", "top1_accuracy", True)],
                    start=1):
                task = msg.EncodedTask(
                    task_id=msg.TaskId(problem_id=f"partner-{os.getpid()}", iteration=iteration),
                    task_type=task_type, metric=metric, higher_is_better=higher,
                    dataset=msg.DatasetInfo(input_shape=[8 * iteration]))
                tasks.publish(task)
                reply = next_matching(candidates, lambda r: r.task_id == task.task_id,
                                      f"ModelCandidates for {task.task_id}", log)
                assert reply.excluded == []
                [candidate] = reply.candidates
                assert candidate.name == "partner_linear"
                assert (candidate.task_type, candidate.quality_metric, candidate.higher_is_better) == \
                    (task_type, metric, higher)
                assert candidate.params == 9.0
                assert list(candidate.input_shape) == [8 * iteration]
            assert all(sub.matched() > 0 for sub in subscriptions)
        finally:
            bus.close()
        stop(proc, log)


def test_python_reader_survives_the_partner_leaving(dds: dict[str, str], partner_binary: Path,
                                                    tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """When a C 0.10.2 writer of a keyless appendable type leaves, the reader gets a key-only "no
    writers" sample (which cyclonedds-python 11.0.1 could not always decode: struct.error in
    DataReader.take). The subscription reports the departure and goes on: a partner that comes back
    is heard on the same reader, and nothing is logged as failed."""
    bus = Participant()
    try:
        candidates: queue.Queue[msg.ModelCandidates] = queue.Queue()
        gone: list[Gone] = []
        sub = bus.subscribe(topics.MODEL_CANDIDATES, candidates.put, on_gone=gone.append)
        tasks = bus.publisher(topics.ENCODED_TASK)
        for visit in (1, 2):
            log = tmp_path / f"partner-{visit}.log"
            with partner_process(partner_binary, log) as proc:
                wait_for(lambda: tasks.matched() > 0 and sub.matched() > 0, "the partner did not match", log)
                task_id = msg.TaskId(problem_id="leaving", iteration=visit)
                tasks.publish(msg.EncodedTask(task_id=task_id))
                next_matching(candidates, lambda r: r.task_id == task_id, f"ModelCandidates of visit {visit}", log)
                stop(proc, log)  # its writer unregisters the (single, keyless) instance we hold
                wait_for(lambda: sub.matched() == 0 and tasks.matched() == 0,
                         "the partner's writer was not seen leaving", log)
                wait_for(lambda: len(gone) == visit, "the subscription did not see the partner leave", log)
        # Nothing failed on the dispatcher thread (a failing take or callback is logged there, not raised).
        assert not [r for r in caplog.records if r.name.startswith("sustainml") and r.levelno >= logging.WARNING], \
            caplog.text
    finally:
        bus.close()
