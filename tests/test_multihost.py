"""Several machines, one task. Linux network namespaces stand in for the machines, joined by veth
pairs to a bridge; DDS multicast is off and each host finds the others through the unicast peers of
one Cyclone XML, named by the launch file each host runs (``tests/netns/``). The orchestrator, the
encoder, the model provider and the carbon tracker run on one host, a hardware node on each of two
others, and the client on the orchestrator's host, as a user there would run it.

Needs root and iproute2 (as in CI; ./install.sh installs iproute2); skipped with the reason otherwise.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sustainml.variants import split_model_name

from conftest import ROOT
from netns.hosts import NamespaceProcess, Network, render, render_dds_xml, unavailable_reason

SUSTAINML = [sys.executable, "-u", "-m", "sustainml.cli"]

pytestmark = pytest.mark.netns
ORCHESTRATOR_HOST = "orch"
HARDWARE_HOSTS = ("laptop", "server")
ORCHESTRATOR_NODES = ("orchestrator", "task_encoder", "model_provider", "carbon_tracker")
#: How long the orchestrator waits for a host that went down before marking it missing (its
#: ``node_down_grace_s``, 60 s by default): short, to keep the vanishing-host test quick.
GRACE_S = 2.0
LIVELINESS_LEASE_S = 3.0   # sustainml.qos.liveliness_lease_s: how soon a silent node is seen down

TABULAR = {
    "text": "predict tool wear from CNC sensor data",
    "task_type": "tabular_regression",
    "dataset": {"num_samples": 20000, "num_features": 8},
    "usage": {"requests_per_day": 1000, "horizon_days": 30},
    "train_region": "DEU",
    "models": ["tabular_mlp", "tabular_resnet"],
}


@pytest.fixture(scope="session")
def netns_available() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


@dataclass
class Lab:
    """The hosts of one test, their launchers, and a ``sustainml echo node_status`` on the
    orchestrator's host through which the test sees what a user there would see."""

    network: Network
    dds_xml: Path
    domain_id: int
    tmp_path: Path
    processes: list[NamespaceProcess] = field(default_factory=list)
    clients: list[subprocess.Popen] = field(default_factory=list)
    status: NamespaceProcess | None = None

    def runtime_args(self) -> list[str]:
        return ["--domain", str(self.domain_id), "--dds-config", str(self.dds_xml)]

    def launch(self, host: str, launch_file: Path) -> NamespaceProcess:
        """``sustainml launch FILE`` in the host's namespace."""
        launch = NamespaceProcess(self.network, host, [*SUSTAINML, "launch", str(launch_file)],
                                  label="sustainml launch", cwd=ROOT)
        self.processes.append(launch)
        return launch

    @staticmethod
    def wait_ready(launch: NamespaceProcess, nodes: tuple[str, ...], timeout_s: float = 90) -> None:
        for name in nodes:
            launch.wait_for(lambda lines: any(l.startswith(f"[{name}]") and " ready on " in l for l in lines),
                            timeout_s, f"'ready' line from node {name}")

    def watch_status(self) -> None:
        self.status = NamespaceProcess(
            self.network, ORCHESTRATOR_HOST,
            [*SUSTAINML, "echo", "node_status", "--timeout", "600", *self.runtime_args()],
            label="sustainml echo node_status", cwd=ROOT)
        self.processes.append(self.status)

    def wait_status(self, match: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> dict[str, Any]:
        """The first NodeStatus seen on the orchestrator's host that ``match``es."""
        status = self.status
        assert status is not None

        def heard() -> str:
            latest = {s["node"]: f'{s["node"]} ({s["state"]}, host {s["host"]})' for s in status.json_lines()}
            return (f"nodes heard on {ORCHESTRATOR_HOST}: {', '.join(sorted(latest.values())) or 'none'}\n"
                    + self.logs())

        return status.wait_for(lambda _lines: next((s for s in status.json_lines() if match(s)), None),
                               timeout_s, what, seen=heard)

    def submit(self, problem: dict[str, Any], timeout_s: float) -> subprocess.Popen:
        """``sustainml submit --json`` on the orchestrator's host, running in the background."""
        path = self.tmp_path / f"problem-{len(self.clients)}.yaml"
        path.write_text(json.dumps(problem))
        client = subprocess.Popen(
            self.network.command(ORCHESTRATOR_HOST, *SUSTAINML, "submit", str(path), "--json", "--quiet",
                                 "--timeout", str(timeout_s), *self.runtime_args()),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.clients.append(client)
        return client

    def result(self, client: subprocess.Popen, timeout_s: float) -> dict[str, Any]:
        """The TaskResult the client printed, as JSON; AssertionError with every host's log otherwise."""
        try:
            out, err = client.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            client.kill()
            out, err = client.communicate()
            raise AssertionError(f"no result within {timeout_s:g} s; stderr: {err}\n{self.logs()}") from None
        assert client.returncode == 0, f"submit exited {client.returncode}: {err}\n{out}\n{self.logs()}"
        return json.loads(out)

    def logs(self) -> str:
        """The launchers' recent output (the status echo is summarised where it matters)."""
        return "\n".join(f"--- {p.name}\n{p.log(60)}" for p in self.processes if p is not self.status)

    def close(self) -> None:
        """Stop the clients and launchers (the launchers stop their nodes), then kill whatever is
        left in the namespaces and delete them, even when a stop fails."""
        try:
            for client in self.clients:
                if client.poll() is None:
                    client.kill()
                    client.communicate(timeout=10)
            for process in reversed(self.processes):
                process.stop()
        finally:
            self.network.close()


@pytest.fixture
def lab(dds: dict[str, str], tmp_path: Path, netns_available: None) -> Iterator[Callable[..., Lab]]:
    """Starts the hosts: ``lab(window_s={"laptop": 0.2, "server": 0.2})`` gives each hardware
    host its measurement window. Processes and namespaces are gone after the test, pass or fail."""
    labs: list[Lab] = []

    def start(window_s: dict[str, float]) -> Lab:
        network = Network([ORCHESTRATOR_HOST, *HARDWARE_HOSTS])
        started = Lab(network, tmp_path / "cyclonedds.xml", int(dds["SUSTAINML_DOMAIN_ID"]), tmp_path)
        labs.append(started)
        network.create()
        render_dds_xml(started.dds_xml, network, tag=dds["SUSTAINML_DISCOVERY_TAG"])
        common = {"dds_config": started.dds_xml, "domain_id": started.domain_id}
        render("orchestrator_host.yaml.in", tmp_path / ORCHESTRATOR_HOST / "launch.yaml", **common,
               store_dir=tmp_path / ORCHESTRATOR_HOST / "store", node_down_grace_s=GRACE_S,
               admit=[f"hw_constraints@{host}" for host in HARDWARE_HOSTS])
        for host in HARDWARE_HOSTS:
            render("hardware_host.yaml.in", tmp_path / host / "launch.yaml", **common,
                   store_dir=tmp_path / host / "store", host=host, window_s=window_s[host])
        launches = {host: started.launch(host, tmp_path / host / "launch.yaml")
                    for host in (ORCHESTRATOR_HOST, *HARDWARE_HOSTS)}
        for host, launch in launches.items():
            started.wait_ready(launch, ORCHESTRATOR_NODES if host == ORCHESTRATOR_HOST else ("hw_constraints",))
        # Every hardware host is heard on the orchestrator's host before anything is submitted:
        # a task fans out to the hardware nodes the orchestrator knows when the candidates come.
        started.watch_status()
        for host in HARDWARE_HOSTS:
            status = started.wait_status(lambda s: s["node"] == f"hw_constraints@{host}", 30,
                                         f"status of hw_constraints@{host} across the bridge")
            assert status["host"] == host
        return started

    try:
        yield start
    finally:
        for started in labs:
            started.close()


def test_one_task_returns_measurements_from_every_host(lab):
    hosts = lab(window_s={"laptop": 0.2, "server": 0.2})
    result = hosts.result(hosts.submit(TABULAR, timeout_s=120), timeout_s=150)

    assert result["status"] == "done", result
    seen = {(split_model_name(o["model"])[0], o["host"]) for o in result["options"]}  # int8 variants too
    assert seen == {(m, h) for m in TABULAR["models"] for h in HARDWARE_HOSTS}, seen
    for option in result["options"]:
        assert option["device"] == "cpu" or option["device"].startswith("cuda")
        assert option["energy_per_inference_j"] > 0 and option["latency_ms"] > 0
    assert "missing" not in result["explanation"], result["explanation"]


def test_a_host_that_vanishes_mid_task_is_marked_missing_and_the_others_come_back(lab):
    # The server measures slowly (a long window per phase), so it is still busy when its cable is
    # pulled; the laptop answers in a few seconds.
    hosts = lab(window_s={"laptop": 0.2, "server": 3.0})
    client = hosts.submit(TABULAR, timeout_s=120)
    hosts.wait_status(lambda s: s["node"] == "hw_constraints@server" and s["state"] == "NODE_BUSY"
                      and bool(s["task_id"]["problem_id"]), 60, "hw_constraints@server measuring")
    hosts.network.cut("server")
    cut_at = time.monotonic()
    result = hosts.result(client, timeout_s=90)
    after_cut_s = time.monotonic() - cut_at

    assert result["status"] == "done", result
    assert {o["host"] for o in result["options"]} == {"laptop"}
    assert {split_model_name(o["model"])[0] for o in result["options"]} == set(TABULAR["models"])
    assert ("Results from server are missing: hw_constraints@server went down during the task and did "
            f"not come back within {GRACE_S:g} s") in result["explanation"], result["explanation"]
    # seen down within the liveliness lease, given up on after the grace period, then the result
    assert after_cut_s < LIVELINESS_LEASE_S + GRACE_S + 15, after_cut_s
