"""What our runtime costs on top of Cyclone DDS, measured side by side in one run.

    .venv/bin/python bench/dds_overhead.py            # 15-25 s on 2 cores
    .venv/bin/python bench/dds_overhead.py --round-trips 100 --tasks 3

(a) raw cyclonedds-python ping-pong between two processes, (a') the same ping-pong through
``sustainml.bus``, (b) the same payload relayed through two TaskNode processes of our runtime,
(c) whole tasks through the real pipeline with the hardware node's measurements cached. Absolute
times on a shared machine mean little; the ratios do.

Everything runs on a private DDS domain with a discovery tag carrying this process's id (as in
tests/conftest.py), so the bench never meets another run. It exits 1 when a message or a task is
lost or comes back wrong.

``bench/load.py`` imports the pipeline helpers from here (run from the repository root, or with
``bench/`` on the path, which ``python bench/load.py`` gives).
"""

import argparse
import faulthandler
import logging
import math
import multiprocessing as mp
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sustainml import msg, qos, topics  # noqa: E402
from sustainml.config import apply_dds_config, load_config  # noqa: E402
from sustainml.launch import Launcher, LaunchDescription, load_launch  # noqa: E402
from sustainml.node import Input, TaskContext, TaskNode, run_node  # noqa: E402
from sustainml.topics import TopicSpec  # noqa: E402

#: The small tabular problem of tests/test_pipeline.py; after its first run every measurement the
#: hardware node needs for it is cached.
TABULAR = {
    "text": "predict tool wear from CNC sensor data",
    "task_type": "tabular_regression",
    "dataset": {"num_samples": 20000, "num_features": 8},
    "usage": {"requests_per_day": 1000, "horizon_days": 30},
    "train_region": "DEU",
    "alternative_regions": ["FRA"],
}

# Bench-only topics, with the QoS of the pipeline's task data.
PING = TopicSpec("sustainml/bench/ping", msg.ModelCandidates, qos.EVENT, "bench: driver to relay A")
RELAY = TopicSpec("sustainml/bench/relay", msg.ModelCandidates, qos.EVENT, "bench: relay A to relay B")
PONG = TopicSpec("sustainml/bench/pong", msg.ModelCandidates, qos.EVENT, "bench: relay B to driver")

HOP_DEFINITIONS = """\
One-way hop: from a write in one process to the message in the code of the next process.
  raw   : driver -> echo -> driver, plain cyclonedds-python (WaitSet + take, no listener);
          hop = round trip / 2.
  bus   : the same ping-pong through sustainml.bus (Publisher, Subscription listener callback);
          hop = round trip / 2.
  nodes : driver -X-> relay A -Y-> relay B -Z-> driver, A and B TaskNode processes (input matching,
          worker thread, NodeStatus busy/idle writes, INFO log line per task); 3 DDS hops, 2 of them
          into a TaskNode; hop = round trip / 3.
  task  : Client.submit() to TaskHandle.result() of a whole task whose measurements are cached
          (submit service, encoder, provider, hardware node, carbon tracker, orchestrator, SQLite)."""


# -------------------------------------------------------------------- private domain, pipeline
def private_dds_env(store_dir: str, tag: str = "bench") -> dict[str, str]:
    """Put this process (and every child it starts) on a fresh DDS domain with a discovery tag that
    carries the process id, and point node stores at ``store_dir``. Returns the variables set."""
    pid = os.getpid()
    env = {
        "SUSTAINML_DOMAIN_ID": str(1 + random.Random(pid).randrange(230)),
        "SUSTAINML_DISCOVERY_TAG": f"{tag}-{pid}",
        "SUSTAINML_STORE_DIR": store_dir,
    }
    for name in ("CYCLONEDDS_URI", "SUSTAINML_DDS_CONFIG", "SUSTAINML_CONFIG"):
        os.environ.pop(name, None)
    os.environ.update(env)
    apply_dds_config(load_config())  # CYCLONEDDS_URI: the pipeline's loopback XML with our tag
    return env


def fast_pipeline() -> LaunchDescription:
    """launch/pipeline.yaml with the short measurement windows of tests/conftest.py."""
    description = load_launch(ROOT / "launch" / "pipeline.yaml")
    for node in description.nodes:
        if node.name == "hw_constraints":
            node.cmd += ["--param", "window_s=0.2", "--param", "train_batch_size=4"]
    return description


class RunningPipeline:
    """The real pipeline under a Launcher in a background thread; node output kept, not printed."""

    def __init__(self, description: LaunchDescription | None = None) -> None:
        self.lines: list[tuple[str, str]] = []
        self.launcher = Launcher(description or fast_pipeline(), out=open(os.devnull, "w"),
                                 on_line=lambda name, line: self.lines.append((name, line)))
        self.thread = threading.Thread(target=self.launcher.run, name="launcher", daemon=True)

    def __enter__(self) -> "RunningPipeline":
        self.thread.start()
        deadline = time.monotonic() + 120.0
        while not self.launcher.all_ready():
            if self.launcher.error or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"pipeline did not start: {self.launcher.error or 'not ready in 120 s'}\n"
                                 + self.tail())
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.launcher.stop()
        self.thread.join(timeout=30)

    def tail(self, n: int = 40, containing: str = "") -> str:
        lines = [f"[{name}] {line}" for name, line in self.lines if containing in line]
        return "\n".join(lines[-n:])

    def dump_stacks(self) -> str:
        """Python and native stacks of every node (py-spy) in a file kept after the run, to read a
        stall off; returns one line saying where, and which nodes show the known deadlock."""
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
        if not spy:
            return "install py-spy to get the nodes' stacks"
        fd, path = tempfile.mkstemp(prefix="sustainml-stall-", suffix=".txt")
        blocked = []
        with os.fdopen(fd, "w") as out:
            for node in self.launcher.nodes:
                pid = self.launcher.pid_of(node.spec.name)
                try:
                    dump = subprocess.run([spy, "dump", "--native", "--pid", str(pid)],
                                          capture_output=True, text=True, timeout=60).stdout
                except (OSError, subprocess.TimeoutExpired) as e:
                    dump = f"py-spy failed: {e}"
                out.write(f"===== {node.spec.name} (pid {pid})\n{dump}\n")
                # A write holding the GIL, waiting for a listener that waits for the GIL (README).
                if "ddspy_write" in dump and "enter_listener_exclusive_access" in dump:
                    blocked.append(node.spec.name)
        found = f"; DDS write blocked on a running listener in: {', '.join(blocked)}" if blocked else ""
        return f"stacks of every node in {path}{found}"


# -------------------------------------------------------------------- figures
@dataclass
class Figures:
    """Latencies of one row of the table. Units: ms."""

    label: str
    samples_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def payload(iteration: int = 0) -> msg.ModelCandidates:
    """A ModelCandidates like the provider's answer to a tabular task: 3 candidates with reasons."""
    families = [("mlp", "MLP", 3.3e4), ("resnet_tabular", "ResNet", 1.2e5), ("ft_transformer", "FT-T", 9.0e5)]
    return msg.ModelCandidates(
        task_id=msg.TaskId(problem_id="bench-" + "0" * 26, iteration=iteration),
        candidates=[msg.ModelCandidate(
            name=name, family=family, task_type="tabular_regression", params=params,
            flops_per_sample=2 * params, input_shape=[8], quality_metric="rmse", quality_value=0.47,
            higher_is_better=False, quality_benchmark="California Housing",
            quality_source="Gorishniy et al. 2021, Revisiting Deep Learning Models for Tabular Data, "
                           "Table 2", default_epochs=100, default_batch_size=256,
            reason=f"{family}: a tabular regression model; {params:.0f} parameters, published RMSE 0.47 "
                   "on California Housing, within the requested quality target")
            for name, family, params in families],
        excluded=["catboost: not in the zoo (no torch implementation)"])


# -------------------------------------------------------------------- (a) raw cyclonedds-python
def _raw_entities(domain_id: int, read: TopicSpec, write: TopicSpec) -> tuple[Any, ...]:
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    dp = DomainParticipant(domain_id)
    reader = DataReader(dp, Topic(dp, read.name, read.type), qos=read.qos)
    writer = DataWriter(dp, Topic(dp, write.name, write.type), qos=write.qos)
    waitset = WaitSet(dp)
    waitset.attach(ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any))
    return dp, reader, writer, waitset


def _raw_echo(domain_id: int, stop: Any) -> None:
    """Echo every ping back as a pong (its own process)."""
    from cyclonedds.util import duration

    _dp, reader, writer, waitset = _raw_entities(domain_id, PING, PONG)
    while not stop.is_set():
        waitset.wait(duration(milliseconds=200))
        for sample in reader.take(N=64):
            writer.write(sample)


def _raw_take_one(reader: Any, waitset: Any, timeout_s: float) -> Any | None:
    from cyclonedds.util import duration

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples = reader.take(N=1)
        if samples:
            return samples[0]
        waitset.wait(duration(milliseconds=max(1, int(1000 * (deadline - time.monotonic())))))
    return None


def bench_raw(round_trips: int, warmup: int) -> Figures:
    domain_id = load_config().domain_id
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    echo = ctx.Process(target=_raw_echo, args=(domain_id, stop), name="raw-echo", daemon=True)
    echo.start()
    try:
        _dp, reader, writer, waitset = _raw_entities(domain_id, PONG, PING)
        deadline = time.monotonic() + 30.0
        while not (writer.get_matched_subscriptions() and reader.get_matched_publications()):
            if time.monotonic() > deadline or not echo.is_alive():
                raise SystemExit("raw echo process did not connect within 30 s")
            time.sleep(0.02)
        return Figures("raw cyclonedds", _ping_pong(
            lambda m: writer.write(m), lambda: _raw_take_one(reader, waitset, 5.0), round_trips, warmup,
            hops=2))
    finally:
        stop.set()
        echo.join(timeout=5)


def _ping_pong(send: Callable[[msg.ModelCandidates], None], receive: Callable[[], Any],
               round_trips: int, warmup: int, *, hops: int) -> list[float]:
    """One message in flight at a time; returns the one-way latency of each measured round trip
    (round trip / ``hops``). A lost or mismatched reply ends the bench with exit code 1."""
    template = payload()
    one_way_ms = []
    for i in range(1, warmup + round_trips + 1):
        template.task_id.iteration = i
        start = time.perf_counter()
        send(template)
        reply = receive()
        elapsed = time.perf_counter() - start
        if reply is None:
            raise SystemExit(f"LOST: no reply to message {i} within 5 s")
        if reply.task_id.iteration != i or len(reply.candidates) != len(template.candidates):
            raise SystemExit(f"WRONG REPLY: sent {i}, got {reply.task_id.iteration} "
                             f"with {len(reply.candidates)} candidates")
        if i > warmup:
            one_way_ms.append(1000.0 * elapsed / hops)
    return one_way_ms


# -------------------------------------------------------------------- (b) through our runtime
class _BusEcho:
    """The raw echo written with sustainml.bus: a Subscription callback that publishes the pong."""

    def __init__(self) -> None:
        from sustainml.bus import Participant

        self.bus = Participant()
        self.pong = self.bus.publisher(PONG)
        self.sub = self.bus.subscribe(PING, self.pong.publish)


def _bus_echo(stop: Any) -> None:
    echo = _BusEcho()
    stop.wait()
    echo.bus.close()


class RelayA(TaskNode):
    """Bench node: forwards each ping on the relay topic."""

    name = "bench_relay_a"
    inputs = {"candidates": Input(PING)}
    output = RELAY

    def process(self, ctx: TaskContext, candidates: msg.ModelCandidates) -> msg.ModelCandidates:
        return msg.ModelCandidates(task_id=candidates.task_id, candidates=candidates.candidates,
                                   excluded=candidates.excluded)


class RelayB(RelayA):
    """Bench node: forwards each relayed message as the pong."""

    name = "bench_relay_b"
    inputs = {"candidates": Input(RELAY)}
    output = PONG


def _run_relay(node_type: type[TaskNode], log_path: str) -> None:
    """A relay node's process: ``run_node`` as ``sustainml node`` runs it, its log to a file (the
    launcher reads node output through a pipe; the formatting cost stays)."""
    sys.stdout = sys.stderr = open(log_path, "a", buffering=1)
    run_node(node_type, [])


class _Driver:
    """The driver's end of a ping-pong through sustainml.bus: publish pings, queue the pongs."""

    def __init__(self) -> None:
        from sustainml.bus import Participant

        self.bus = Participant()
        self.ping = self.bus.publisher(PING)
        self.replies: queue.Queue[msg.ModelCandidates] = queue.Queue()
        self.sub = self.bus.subscribe(PONG, self.replies.put)
        self.ready: set[str] = set()
        self.status = self.bus.subscribe(topics.NODE_STATUS, self._on_status)

    def _on_status(self, status: msg.NodeStatus) -> None:
        if status.state in (msg.NodeState.NODE_IDLE, msg.NodeState.NODE_BUSY):
            self.ready.add(status.node)

    def wait(self, what: str, condition: Callable[[], bool], children: Sequence[Any]) -> None:
        deadline = time.monotonic() + 60.0
        while not condition():
            if time.monotonic() > deadline or not all(c.is_alive() for c in children):
                raise SystemExit(f"{what} did not connect within 60 s")
            time.sleep(0.02)

    def receive(self) -> msg.ModelCandidates | None:
        try:
            return self.replies.get(timeout=5.0)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.bus.close()


def bench_bus(round_trips: int, warmup: int) -> Figures:
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    echo = ctx.Process(target=_bus_echo, args=(stop,), name="bus-echo", daemon=True)
    echo.start()
    driver = _Driver()
    try:
        driver.wait("bus echo", lambda: driver.ping.matched() and driver.sub.matched(), [echo])
        return Figures("sustainml.bus", _ping_pong(driver.ping.publish, driver.receive,
                                                   round_trips, warmup, hops=2))
    finally:
        stop.set()
        echo.join(timeout=5)
        driver.close()


def bench_nodes(round_trips: int, warmup: int, log_dir: str) -> Figures:
    ctx = mp.get_context("spawn")
    relays = [ctx.Process(target=_run_relay, args=(t, os.path.join(log_dir, f"{t.name}.log")),
                          name=t.name, daemon=True) for t in (RelayA, RelayB)]
    for relay in relays:
        relay.start()
    driver = _Driver()
    try:
        driver.wait("relay nodes", lambda: {RelayA.name, RelayB.name} <= driver.ready
                    and driver.ping.matched() and driver.sub.matched(), relays)
        return Figures("2 TaskNodes", _ping_pong(driver.ping.publish, driver.receive,
                                                 round_trips, warmup, hops=3))
    finally:
        for relay in relays:
            relay.terminate()   # SIGTERM: run_node shuts the node down cleanly
        for relay in relays:
            relay.join(timeout=10)
        driver.close()


# -------------------------------------------------------------------- (c) whole cached tasks
def bench_tasks(tasks: int, timeout_s: float) -> tuple[Figures, str]:
    """Latency of ``tasks`` cached tasks one after the other, and what went wrong ("" if nothing):
    the tasks measured before a failure still count."""
    from sustainml import Client
    from sustainml.exceptions import SustainMLError

    latencies_ms: list[float] = []
    with RunningPipeline() as pipeline, Client() as client:
        try:
            start = time.perf_counter()
            client.submit(TABULAR, timeout_s=60).result(timeout_s=300)
            print(f"  first task (measures, fills the cache): {time.perf_counter() - start:.1f} s")
            for _ in range(tasks):
                start = time.perf_counter()
                result = client.submit(TABULAR, timeout_s=timeout_s).result(timeout_s=timeout_s)
                if not result.options:
                    return Figures("cached task", latencies_ms), "WRONG RESULT: a task without options"
                latencies_ms.append(1000.0 * (time.perf_counter() - start))
        except SustainMLError as e:
            return Figures("cached task", latencies_ms), (
                f"TASK LOST after {len(latencies_ms)} measured: {e}\n{pipeline.dump_stacks()}")
    return Figures("cached task", latencies_ms), ""


# -------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=300, help="measured round trips per ping-pong")
    parser.add_argument("--warmup", type=int, default=50, help="round trips before measuring")
    parser.add_argument("--tasks", type=int, default=10, help="cached tasks measured end to end")
    parser.add_argument("--task-timeout-s", type=float, default=30.0,
                        help="a cached task (about 50 ms) that takes longer is lost")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    faulthandler.enable()

    with tempfile.TemporaryDirectory(prefix="sustainml-bench-") as tmp:
        env = private_dds_env(os.path.join(tmp, "store"))
        size = len(payload().serialize())
        print(f"DDS domain {env['SUSTAINML_DOMAIN_ID']}, tag {env['SUSTAINML_DISCOVERY_TAG']}; "
              f"payload ModelCandidates with 3 candidates, {size} bytes serialized (CDR)")
        print(HOP_DEFINITIONS)
        started = time.monotonic()
        print(f"(a) raw ping-pong, {args.round_trips} round trips after {args.warmup} ...")
        raw = bench_raw(args.round_trips, args.warmup)
        print("(a') sustainml.bus ping-pong ...")
        bus = bench_bus(args.round_trips, args.warmup)
        print("(b) through two TaskNodes ...")
        nodes = bench_nodes(args.round_trips, args.warmup, tmp)
        print(f"(c) whole pipeline: 1 task to warm the cache, then {args.tasks} ...")
        task, error = bench_tasks(args.tasks, args.task_timeout_s)
        elapsed = time.monotonic() - started

    print()
    print(f"{'one-way hop / task':<18} {'n':>4} {'median ms':>10} {'p99 ms':>9} "
          f"{'median / raw':>13} {'p99 / raw':>10}")
    for row in (raw, bus, nodes, task):
        if row.samples_ms:
            print(f"{row.label:<18} {len(row.samples_ms):>4} {row.median_ms:>10.3f} {row.p99_ms:>9.3f} "
                  f"{row.median_ms / raw.median_ms:>13.1f} {row.p99_ms / raw.p99_ms:>10.1f}")
    print(f"(ratios: a row's median over the raw one-way median, {raw.median_ms:.3f} ms, and its p99 "
          f"over the raw p99, {raw.p99_ms:.3f} ms; bench ran {elapsed:.0f} s)")
    if error:
        print(error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
