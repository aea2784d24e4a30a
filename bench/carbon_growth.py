"""Where does the carbon tracker's memory go, per task? Runs the real carbon tracker node in this process
(tracemalloc on) on a private DDS domain and plays the pipeline around it: for each task the encoded
task, the candidates and a hardware node's three messages (estimates, a measurement, the final
figures), waits for the three footprints, then the task's terminal status, as the orchestrator sends
them. After ``--warmup`` tasks it takes a snapshot, runs ``--tasks`` more, and prints the growth per
task (Python heap, tracemalloc; and the process's RSS) with the allocation sites that grew most.

    .venv/bin/python bench/carbon_growth.py                     # 300 warm-up tasks, then 600
    .venv/bin/python bench/carbon_growth.py --warmup 50 --tasks 100
    .venv/bin/python bench/carbon_growth.py --remember-outputs 32   # the outputs kept for repeats, bounded low
"""

import argparse
import gc
import logging
import os
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))   # bench/
from dds_overhead import private_dds_env  # noqa: E402

from sustainml import msg, topics  # noqa: E402
from sustainml.bus import Participant  # noqa: E402
from sustainml.config import load_config  # noqa: E402

MODELS = ["linear_regression", "random_forest", "gradient_boosting", "mlp_small", "tabnet", "ft_transformer",
          "xgboost_like", "knn"]


def messages(problem_id: str) -> tuple[msg.EncodedTask, msg.ModelCandidates, list[msg.HardwareMeasurement]]:
    """One task as the carbon tracker hears it: 8 candidates on one CPU, three regions."""
    task_id = msg.TaskId(problem_id=problem_id, iteration=1)
    task = msg.EncodedTask(task_id=task_id, task_type="tabular_regression",
                           dataset=msg.DatasetInfo(num_samples=20_000, num_features=8),
                           usage=msg.UsageProfile(requests_per_day=1000, horizon_days=30),
                           train_region="DEU", alternative_regions=["FRA", "gcp:europe-west1"])
    candidates = msg.ModelCandidates(task_id=task_id, candidates=[
        msg.ModelCandidate(name=name, default_epochs=10) for name in MODELS])
    jobs = [msg.JobMeasurement(model=name, device="cpu", host="bench-host", energy_per_inference_j=0.01 * (i + 1),
                               energy_per_train_sample_j=0.1 * (i + 1), latency_p50_ms=1.0 + i, batch_size=1,
                               train_batch_size=32, train_step_ms=5.0, energy_method="rapl", basis="measured")
            for i, name in enumerate(MODELS)]
    hardware = [msg.HardwareMeasurement(task_id=task_id, host="bench-host", measurements=jobs, message_index=i,
                                        plan_done=i == 2) for i in range(3)]
    return task, candidates, hardware


class Driver:
    """Plays the orchestrator, the encoder, the provider and a hardware node for the carbon tracker."""

    def __init__(self) -> None:
        self.bus = Participant(load_config(), identity="orchestrator")   # it re-sends stage inputs: admitted to write them
        self.pub = {spec.type: self.bus.publisher(spec) for spec in (
            topics.ENCODED_TASK, topics.MODEL_CANDIDATES, topics.HARDWARE_MEASUREMENT, topics.TASK_STATUS)}
        self.footprints: dict[str, int] = {}
        self.cond = threading.Condition()
        self.bus.subscribe(topics.CARBON_FOOTPRINT, self._on_footprint)
        # Heartbeats as the orchestrator's: a node believes stage inputs only from a node it knows.
        self._status = self.bus.publisher(topics.NODE_STATUS)
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self) -> None:
        started = time.time()
        while not self._stop.is_set():
            self._status.publish(msg.NodeStatus(node="orchestrator", kind="orchestrator", host="bench",
                                                pid=os.getpid(), state=msg.NodeState.NODE_IDLE,
                                                heartbeat_unix_s=time.time(), started_unix_s=started))
            self._stop.wait(0.5)

    def close(self) -> None:
        self._stop.set()
        self.bus.close()

    def _on_footprint(self, footprint: msg.CarbonFootprint) -> None:
        with self.cond:
            key = footprint.task_id.problem_id
            self.footprints[key] = self.footprints.get(key, 0) + 1
            self.cond.notify_all()

    def run_task(self, timeout_s: float = 60.0) -> None:
        problem_id = uuid.uuid4().hex
        task, candidates, hardware = messages(problem_id)
        self.pub[msg.EncodedTask].publish(task)
        self.pub[msg.ModelCandidates].publish(candidates)
        for message in hardware:
            self.pub[msg.HardwareMeasurement].publish(message)
        with self.cond:
            if not self.cond.wait_for(lambda: self.footprints.get(problem_id, 0) >= 3, timeout=timeout_s):
                raise TimeoutError(f"no 3 footprints for {problem_id} in {timeout_s:g} s")
            del self.footprints[problem_id]
        self.pub[msg.TaskStatus].publish(msg.TaskStatus(task_id=task.task_id, state=msg.TaskState.TASK_DONE,
                                                        progress=100.0, updated_unix_s=time.time()))

    def wait_matched(self) -> None:
        for publisher in self.pub.values():
            publisher.wait_matched(10.0)
        time.sleep(1.5)   # the node has heard a heartbeat


def _snapshot() -> tracemalloc.Snapshot | None:
    return tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=300, help="tasks before the first snapshot")
    parser.add_argument("--tasks", type=int, default=600, help="tasks between the two snapshots")
    parser.add_argument("--top", type=int, default=12, help="allocation sites to print")
    parser.add_argument("--rss-only", action="store_true",
                        help="no tracemalloc (it costs time and memory of its own): the RSS growth only")
    parser.add_argument("--remember-outputs", type=int, default=0, metavar="N",
                        help="set the node's TaskNode.remember_outputs (outputs kept to answer a repeated "
                             "input) to N instead of its default, to see what that cache holds")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sustainml-carbon-growth-") as tmp:
        private_dds_env(tmp, tag="carbon-growth")
        if not args.rss_only:
            tracemalloc.start(8)
        from sustainml_nodes.carbon_tracker.node import CarbonTracker, CarbonTrackerParams

        if args.remember_outputs:
            CarbonTracker.remember_outputs = args.remember_outputs
        print(f"carbon tracker keeps the outputs of {CarbonTracker.remember_outputs} firings", flush=True)
        node = CarbonTracker(config=load_config(), params=CarbonTrackerParams())
        driver = Driver()
        process = psutil.Process(os.getpid())
        try:
            driver.wait_matched()
            driver.run_task(timeout_s=300.0)   # the first one imports what the footprints need
            start = time.monotonic()
            for i in range(args.warmup):
                driver.run_task()
                if i % 50 == 49:
                    print(f"  warm-up: {i + 1} tasks, {time.monotonic() - start:.0f} s", flush=True)
            time.sleep(1.0)   # the last terminal statuses reach the node
            gc.collect()
            before, rss_before = _snapshot(), process.memory_info().rss
            for i in range(args.tasks):
                driver.run_task()
                if i % 50 == 49:
                    print(f"  measured: {i + 1} tasks, {time.monotonic() - start:.0f} s", flush=True)
            time.sleep(1.0)
            gc.collect()
            after, rss_after = _snapshot(), process.memory_info().rss
            elapsed = time.monotonic() - start
        finally:
            node.shutdown()
            driver.close()

    print(f"{args.warmup} warm-up tasks, then {args.tasks} tasks ({(args.warmup + args.tasks) / elapsed:.2f} tasks/s)")
    print(f"RSS growth          {(rss_after - rss_before) / args.tasks / 1024:8.1f} KB per task  "
          f"({(rss_after - rss_before) / 1e6:.1f} MB; RSS now {rss_after / 1e6:.0f} MB)")
    if before is None or after is None:
        return 0
    stats = after.compare_to(before, "traceback")
    grown = sum(s.size_diff for s in stats)
    print(f"Python heap growth  {grown / args.tasks / 1024:8.1f} KB per task  ({grown / 1e6:.1f} MB)")
    print("grew most (size, count, where):")
    for stat in stats[: args.top]:
        if stat.size_diff <= 0:
            break
        frames = [f for f in stat.traceback if "sustainml" in f.filename or "nodes" in f.filename]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in (frames or list(stat.traceback))[:4])
        print(f"  {stat.size_diff / 1024:9.1f} KB {stat.count_diff:+7d}  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
