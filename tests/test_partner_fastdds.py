"""A partner on another DDS vendor replaces a project node, from idl/sustainml.idl alone.

examples/partner_fastdds/partner_node.cpp is an eProsima Fast DDS 2.x program (Debian's
libfastrtps-dev 2.9, the line ROS 2 Humble ships). The test builds it as a partner would —
``fastddsgen`` on our IDL, no hand edits, then ``g++`` — and runs it in a real pipeline:

- as the model provider: the Python nodes (Cyclone DDS) take its candidates, a model that is in no
  catalogue, described as data in ``ModelCandidate.builder``, and the hardware node measures it;
- as a watcher: a Fast DDS subscriber that reads every task status and result the orchestrator
  publishes, and prints them.

Discovery: the nodes run without a Cyclone discovery tag (Cyclone's tag keeps out every participant
of another vendor), on a private domain id; the partner uses the loopback profile beside its source.
"""

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sustainml import Client, msg
from sustainml._idl import IDL_PATH
from sustainml.launch import NodeSpec

from conftest import ROOT, RunningPipeline, fast_pipeline

EXAMPLE = ROOT / "examples" / "partner_fastdds"
PROFILE = EXAMPLE / "loopback_profile.xml"
TIMEOUT_S = 60.0

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def partner_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """partner_node.cpp compiled against the C++ that fastddsgen makes of our IDL."""
    for tool, package in (("fastddsgen", "fastddsgen"), ("g++", "g++")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH (apt package {package}); cannot build the Fast DDS partner node")
    probe = subprocess.run(["g++", "-E", "-x", "c++", "-"], capture_output=True, text=True, timeout=60,
                           input="#include <fastdds/dds/domain/DomainParticipant.hpp>\n")
    if probe.returncode != 0:
        pytest.skip("Fast DDS headers (apt package libfastrtps-dev) not found")

    out = tmp_path_factory.mktemp("partner_fastdds")
    gen = out / "gen"
    gen.mkdir()
    steps = [
        ["fastddsgen", "-replace", "-d", str(gen), str(IDL_PATH)],
        ["g++", "-std=c++17", "-O1", "-Wall", "-o", str(out / "partner_node"), str(EXAMPLE / "partner_node.cpp"),
         str(gen / "sustainml.cxx"), str(gen / "sustainmlPubSubTypes.cxx"), "-I", str(gen),
         "-lfastrtps", "-lfastcdr"],
    ]
    for cmd in steps:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}"
        # fastddsgen reports some errors on stdout and still exits 0
        assert "ERROR" not in run.stdout, f"{' '.join(cmd)}:\n{run.stdout}"
    return out / "partner_node"


@pytest.fixture
def untagged(dds: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's private domain without the Cyclone discovery tag, which would keep Fast DDS out."""
    monkeypatch.delenv("SUSTAINML_DISCOVERY_TAG")
    return {key: value for key, value in dds.items() if key != "SUSTAINML_DISCOVERY_TAG"}


class PartnerProcess:
    """The Fast DDS program in one role, its output read line by line into ``lines``."""

    def __init__(self, binary: Path, role: str, log: Path) -> None:
        self.log = log
        env = {**os.environ, "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE)}
        with log.open("w") as out:
            self.proc = subprocess.Popen([str(binary), role], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, pattern: str, timeout_s: float = TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (found := re.search(pattern, self.output(), re.MULTILINE)) is None:
            assert self.proc.poll() is None, f"the partner exited ({self.proc.returncode}):\n{self.output()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout_s:g} s:\n{self.output()}")
            time.sleep(0.05)
        return found

    def stop(self) -> None:
        """SIGTERM, as a launcher does, and a clean exit."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=10) == 0, f"partner exited with {self.proc.returncode}:\n{self.output()}"
        assert "stopped" in self.output()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@contextmanager
def partner(binary: Path, role: str, log: Path) -> Iterator[PartnerProcess]:
    process = PartnerProcess(binary, role, log)
    try:
        process.wait_for("^ready$")
        yield process
    finally:
        process.kill()


def pipeline_with_partner(binary: Path) -> RunningPipeline:
    """launch/pipeline.yaml with the Fast DDS node in place of the model provider, as a partner's launch
    file would have it (``cmd:``); the launcher counts it ready from its NodeStatus on the bus."""
    description = fast_pipeline()
    description.nodes = [node for node in description.nodes if node.name != "model_provider"]
    description.nodes.append(NodeSpec("partner_fastdds", [str(binary), "model_provider"], respawn=False,
                                      env={"FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE)}))
    return RunningPipeline(description).start()


def wait_until(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s")
        time.sleep(0.05)


def test_fast_dds_model_provider_and_watcher_in_a_real_pipeline(untagged: dict[str, str], partner_binary: Path,
                                                                 tmp_path: Path) -> None:
    running = pipeline_with_partner(partner_binary)
    provider_pid = running.launcher.pid_of("partner_fastdds")
    try:
        with partner(partner_binary, "watch", tmp_path / "watch.log") as watcher, Client() as client:
            # The partner announces itself like any node: keyed, transient-local NodeStatus with a
            # liveliness lease, read by the orchestrator and by every client.
            wait_until(lambda: any(s.node == "partner_fastdds" for s in client.nodes(wait_s=0)),
                       "the partner's NodeStatus did not reach the client")
            [status] = [s for s in client.nodes(wait_s=0) if s.node == "partner_fastdds"]
            assert (status.kind, status.pid, status.state) == ("model_provider", provider_pid,
                                                               msg.NodeState.NODE_IDLE)

            task = client.submit(ROOT / "examples" / "tool_wear_tabular.yaml")
            result = task.result(timeout_s=300)
            assert result.state == msg.TaskState.TASK_DONE, result.error
            problem = f"{result.task_id.problem_id}/{result.task_id.iteration}"
            running.wait_line("partner_fastdds", f"answered {problem}: 1 candidate(s)")

            # The model is in no catalogue: the hardware node built it from ModelCandidate.builder
            # and measured it (declared how: no RAPL on a VM gives "estimate").
            options = [o for o in result.options if o.model == "fastdds_mlp"]
            assert options, [o.model for o in result.options]
            for option in options:
                assert option.energy_per_inference_j > 0 and option.latency_ms > 0
                assert option.energy_method in ("rapl", "nvml", "estimate")
                assert option.energy_per_inference_uncertainty_j > 0
            measured = [o for o in options if o.basis in ("measured", "reused")]
            assert measured, [(o.device, o.basis) for o in options]

            # The Fast DDS subscriber read the same result the Python client did.
            line = watcher.wait_for(rf"^result {problem} revision {result.revision} done options "
                                    rf"{len(result.options)} .*$").group(0)
            assert "| fastdds_mlp " in line
            watcher.wait_for(rf"^status {problem} done ")

            # Liveliness works across vendors: a partner killed outright is seen gone within its
            # 3 s lease (kept by its heartbeats, MANUAL_BY_TOPIC), with no NodeStatus saying so.
            os.kill(provider_pid, signal.SIGKILL)
            wait_until(lambda: all(s.node != "partner_fastdds" for s in client.nodes(wait_s=0)),
                       "the killed partner was not seen gone", timeout_s=15)
            watcher.stop()
    finally:
        running.stop()
    # A foreign vendor's builtin messages leave no trace in the nodes' logs.
    assert "deserialization failed" not in running.log()
    assert "incompatible" not in running.log().lower()
