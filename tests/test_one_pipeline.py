"""One pipeline per store (issue 15): the real `sustainml launch`, killed by SIGKILL with a task in
flight and started again on the same store, leaves no node behind and runs no task twice; a second
launch, orchestrator or hardware node on a store that a live one holds is refused with one line that
names the holder; nodes a dead launch left running are replaced, never doubled."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from sustainml import Client, msg, topics
from sustainml.bus import Participant
from sustainml.client import TaskHandle
from sustainml.exceptions import SustainMLError
from sustainml.launch import LAUNCH_LOCK
from sustainml.store_lock import StoreInUse, StoreLock
from sustainml_nodes.hw_constraints.cache import CACHE_FILE, MeasurementCache
from sustainml_nodes.orchestrator.store import TaskStore

from conftest import ROOT
from test_launcher_signals import PARTNER, Launched, survivors

#: A task small enough to run in seconds (the fault tests' problem).
PROBLEM = {"text": "predict tool wear", "task_type": "tabular_regression", "dataset": {"num_samples": 10},
           "train_region": "DEU"}
#: How soon after the launcher's SIGKILL its nodes must all be gone (Units: s): the guard's and the
#: nodes' own clean stop take a few seconds; the guard's SIGKILL comes after 8 s.
ORPHAN_BOUND_S = 15.0
NODES = ("orchestrator", "task_encoder", "model_provider", "hw_constraints", "carbon_tracker")
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
TASK_S = 240.0    # one small task, on the same machine
START_S = 420.0   # a whole pipeline's start on a busy 2-core machine (about 20 s on an idle one)


def fast_launch_file(tmp_path: Path) -> Path:
    """launch/pipeline.yaml with short measurement windows, as a file: `sustainml launch` reads it."""
    path = tmp_path / "pipeline.yaml"
    path.write_text("dds_config: loopback\nnodes:\n"
                    "  - node: orchestrator\n"
                    "  - node: task_encoder\n"
                    "  - node: model_provider\n"
                    "  - node: hw_constraints\n    params: {window_s: 0.2, train_batch_size: 4}\n"
                    "  - node: carbon_tracker\n")
    return path


def sustainml(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sustainml.cli", *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints on stderr, besides log records (a node logs what it saw
    on the bus while it started), and no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and not LOG_RECORD.match(line)]
    assert done.returncode != 0 and len(lines) == 1, f"expected one error line, got {done.returncode}:\n" \
                                                     f"{done.stdout}{done.stderr}"
    return lines[0]


class NodePids:
    """When each (node name, pid) announced itself on the bus: two pipelines show as two processes of one
    name announcing at the same time (a respawned node follows its predecessor, never overlaps it)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], list[float]] = {}   # first and last heartbeat (Units: s, monotonic)
        self._lock = threading.Lock()
        self.bus = Participant()
        self.bus.subscribe(topics.NODE_STATUS, self._on_status)

    def _on_status(self, status: msg.NodeStatus) -> None:
        if status.state != msg.NodeState.NODE_STOPPING:
            now = time.monotonic()
            with self._lock:
                self.seen.setdefault((status.node.split("@")[0], int(status.pid)), [now, now])[1] = now

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()

    def names(self) -> set[str]:
        return {name for name, _ in self.seen}

    def overlaps(self, margin_s: float = 3.0) -> list[tuple[str, int, int]]:
        """Names announced by two processes at once for more than ``margin_s`` (heartbeats are 1 s apart)."""
        with self._lock:
            spans = sorted(self.seen.items())
        return [(a, pid_a, pid_b) for (a, pid_a), (first_a, last_a) in spans for (b, pid_b), (first_b, last_b) in spans
                if a == b and pid_a < pid_b and min(last_a, last_b) - max(first_a, first_b) > margin_s]

    def close(self) -> None:
        self.bus.close()


def task_label(task_id: msg.TaskId) -> str:
    return f"{task_id.problem_id}/{task_id.iteration}"


def result_of(handle: TaskHandle, launched: Launched, timeout_s: float = TASK_S) -> msg.TaskResult:
    """The task's final result, or a failure that shows what the launch's nodes said meanwhile."""
    try:
        return handle.result(timeout_s=timeout_s)
    except SustainMLError as e:
        raise AssertionError(f"task {task_label(handle.task_id)}: {e}\n" + "".join(launched.lines[-80:])) from e


@pytest.mark.slow   # a holder process of its own: about 2 s
def test_a_second_holder_is_refused_naming_the_first_and_a_dead_one_never_blocks(tmp_path: Path):
    path = tmp_path / "orchestrator.sqlite3"
    with TaskStore(path, holder="orchestrator"):
        with pytest.raises(StoreInUse) as refused:
            TaskStore(path, holder="orchestrator_2")
        assert str(refused.value).startswith(f"task store {path} is in use by orchestrator (pid {os.getpid()} on host ")
        assert "one orchestrator per task store" in str(refused.value) and "\n" not in str(refused.value)
        with TaskStore(path) as reader:   # without holder: opened beside it, as before
            assert reader.unfinished() == []
    cache = tmp_path / CACHE_FILE
    with MeasurementCache(cache, holder="hw_constraints@a"):
        with pytest.raises(StoreInUse, match=f"measurement cache {cache} is in use by hw_constraints@a "):
            MeasurementCache(cache, holder="hw_constraints@b")
    # A holder killed by SIGKILL: the kernel dropped its lock, the next one takes it at once.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom sustainml.store_lock import StoreLock\n"
                               f"StoreLock({str(path)!r}, holder='doomed', what='store', hint='').acquire()\n"
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreInUse, match=f"in use by doomed \\(pid {holder.pid} "):
            TaskStore(path, holder="orchestrator")
    finally:
        holder.kill()
        holder.wait()
    with TaskStore(path, holder="orchestrator"):
        pass


@pytest.mark.pipeline
@pytest.mark.timeout(1200)   # two starts of the whole pipeline and four tasks, on a busy machine
def test_sigkill_of_the_launcher_then_a_fresh_launch_leaves_no_orphan_and_runs_no_task_twice(dds, tmp_path: Path):
    launch_file = fast_launch_file(tmp_path)
    store = Path(dds["SUSTAINML_STORE_DIR"])
    watch = NodePids()
    first = Launched("launch", str(launch_file))
    third: Launched | None = None
    try:
        first.wait_for("] ready: ", count=len(NODES), timeout_s=START_S)
        nodes = first.descendants()
        orchestrator_pid = next(p.pid for p in nodes if p.cmdline()[-1:] == ["orchestrator"])
        with Client() as client:
            before = result_of(client.submit(PROBLEM), first)
            assert before.state == msg.TaskState.TASK_DONE

            # While it runs: a second launch on its store folder, a second orchestrator on its store.
            second = sustainml("launch", str(launch_file))
            assert error_line(second).startswith(f"sustainml launch: store folder {store} is in use by sustainml "
                                                 f"launch {launch_file} (pid {first.proc.pid} on host ")
            assert "started (pid" not in second.stdout
            orchestrator = sustainml("node", "orchestrator", "--name", "orchestrator_2")
            assert error_line(orchestrator).startswith(
                f"sustainml: task store {store / 'orchestrator.sqlite3'} is in use by orchestrator "
                f"(pid {orchestrator_pid} on host ")

            # SIGKILL with a task in flight: no handler runs; the guard and the parent-death signal act.
            in_flight = client.submit(PROBLEM)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=30)
            killed = time.monotonic()
            slow_to_stop = survivors(nodes, timeout_s=3.0)
            slow_names = [" ".join(p.cmdline()[-3:]) for p in slow_to_stop]
            left = survivors(slow_to_stop, timeout_s=ORPHAN_BOUND_S - 3.0)
            gone_after_s = time.monotonic() - killed
            for p in left:
                p.kill()
            assert not left, f"orphans {ORPHAN_BOUND_S:g} s after the launcher's SIGKILL: " \
                             f"{[(p.pid, p.cmdline()) for p in left]}"
            print(f"all {len(nodes)} processes of the killed launch gone {gone_after_s:.1f} s after its SIGKILL; "
                  f"still running after 3 s: {slow_names}")

            watch.reset()
            third = Launched("launch", str(launch_file))
            third.wait_for("] ready: ", count=len(NODES), timeout_s=START_S)
            assert not any("replaced the nodes" in line for line in third.lines)   # nothing was left to replace
            resumed = result_of(in_flight, third)
            later = [client.submit(PROBLEM) for _ in range(2)]
            results = [result_of(handle, third) for handle in later]
        assert resumed.state == msg.TaskState.TASK_DONE and all(r.state == msg.TaskState.TASK_DONE for r in results)
        third.proc.send_signal(signal.SIGINT)
        assert third.proc.wait(timeout=60) == 0, "".join(third.lines)

        # One pipeline on the bus: no node name announced by two processes at once since the relaunch.
        assert not watch.overlaps(), f"node names announced by two processes at once: {watch.overlaps()}"
        assert set(NODES) <= watch.names()
        # Each task once in the store, each done.
        with sqlite3.connect(store / "orchestrator.sqlite3") as db:
            rows = db.execute("SELECT problem_id, iteration, state, COUNT(*) FROM tasks "
                              "GROUP BY problem_id, iteration").fetchall()
        tasks = [before.task_id, resumed.task_id, *(r.task_id for r in results)]
        assert sorted((p, i) for p, i, _, _ in rows) == sorted((t.problem_id, t.iteration) for t in tasks)
        assert all(state == msg.TaskState.TASK_DONE.name and count == 1 for _, _, state, count in rows), rows
        # Each task submitted after the relaunch was processed once by each node that logs it.
        log = "".join(third.lines)
        for task_id in (r.task_id for r in results):
            for node in ("task_encoder", "model_provider"):
                done = sum(line.startswith(f"[{node}]") and f"task {task_label(task_id)} done" in line
                           for line in third.lines)
                assert done == 1, f"{node} processed {task_label(task_id)} {done} times:\n{log}"
        restarts = sum("restarted" in line for line in third.lines)
        assert restarts <= len(NODES), f"{restarts} 'restarted' lines:\n{log}"
    finally:
        watch.close()
        for launched in (first, third):
            if launched is not None:
                launched.kill()


STUBBORN = '''\
import signal, sys, time
marks = open(sys.argv[1], "a", buffering=1)
first = None
def on_term(signum, frame):
    # The launcher's death may deliver its SIGTERM more than once (once per thread of the launcher the
    # kernel hands the node to as they exit): ignore those, stop on one that comes later.
    global first
    marks.write("SIGTERM\\n")
    if first is None:
        first = time.monotonic()
    elif time.monotonic() - first > 2.0:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.1)
'''


@pytest.mark.slow
def test_a_fresh_launch_replaces_the_nodes_a_dead_launch_left_running(dds, tmp_path: Path):
    """A launcher and its guard both killed (``kill -9`` of both): the parent-death signal alone stops a
    node that obeys SIGTERM; one that ignores its first SIGTERM survives, and the next launch on the
    store folder stops it before starting its own, saying so in one line."""
    stubborn, marks = tmp_path / "stubborn.py", tmp_path / "stubborn.marks"
    stubborn.write_text(STUBBORN)
    launch_file = tmp_path / "partners.yaml"
    launch_file.write_text(f"nodes:\n"
                           f"  - name: partner\n    cmd: [{sys.executable}, {PARTNER}, partner]\n"
                           f"  - name: stubborn\n    cmd: [{sys.executable}, {stubborn}, {marks}]\n")
    first = Launched("launch", str(launch_file))
    second: Launched | None = None
    try:
        first.wait_for("] ready: partner serves")
        first.wait_for("[stubborn] started (pid")
        processes = first.descendants()
        [guard] = [p for p in processes if any("launch_guard.py" in part for part in p.cmdline())]
        [partner] = [p for p in processes if str(PARTNER) in p.cmdline()]
        [left] = [p for p in processes if str(stubborn) in p.cmdline()]
        guard.kill()
        assert not survivors([guard], timeout_s=10)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=30)
        assert not survivors([partner], timeout_s=ORPHAN_BOUND_S), "the parent-death signal did not stop partner"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (marks.is_file() and marks.read_text()):
            time.sleep(0.05)
        time.sleep(2.5)   # past the stubborn node's window of ignored signals
        assert marks.read_text().startswith("SIGTERM\n") and left.is_running()   # it got the signal, ignored it

        second = Launched("launch", str(launch_file))
        second.wait_for("] ready: partner serves")
        replaced = [line for line in second.lines if "replaced" in line]
        assert len(replaced) == 1 and replaced[0].startswith(
            "[launch] replaced the nodes of an earlier launch on this store folder "
            f"(launcher pid {first.proc.pid}, gone) that were still running: stopped stubborn (pid {left.pid})"), \
            "".join(second.lines)
        print(replaced[0].rstrip(), f"(it got {marks.read_text().count('SIGTERM')} SIGTERMs in all)")
        assert "killed" not in replaced[0]   # it stopped on the launch's SIGTERM, within the grace period
        assert not survivors([left], timeout_s=1.0)
        assert second.lines.index(replaced[0]) < min(i for i, line in enumerate(second.lines) if "started (pid" in line)
        second.proc.send_signal(signal.SIGINT)
        assert second.proc.wait(timeout=60) == 0, "".join(second.lines)
        assert LAUNCH_LOCK in {p.name for p in Path(dds["SUSTAINML_STORE_DIR"]).iterdir()}
    finally:
        for launched in (first, second):
            if launched is not None:
                launched.kill()
        for p in psutil.process_iter(["cmdline"]):
            if str(stubborn) in (p.info["cmdline"] or []):
                p.kill()


@pytest.mark.slow
def test_a_launch_on_a_folder_another_launch_holds_is_refused_before_it_starts_anything(dds, tmp_path: Path):
    store = Path(dds["SUSTAINML_STORE_DIR"])
    lock = StoreLock(store, lock_file=store / LAUNCH_LOCK, holder="sustainml launch elsewhere.yaml",
                     what="store folder", hint="").acquire()
    try:
        launch_file = tmp_path / "one.yaml"
        launch_file.write_text(f"nodes:\n  - name: partner\n    cmd: [{sys.executable}, {PARTNER}, partner]\n")
        done = sustainml("launch", str(launch_file), timeout_s=60)
        assert error_line(done).startswith(f"sustainml launch: store folder {store} is in use by sustainml launch "
                                           f"elsewhere.yaml (pid {os.getpid()} on host ")
        assert "one launch per store folder" in done.stderr and done.stdout == ""
    finally:
        lock.release()


@pytest.mark.slow
def test_a_launch_on_another_store_folder_whose_node_names_are_alive_on_the_bus_is_refused(dds, tmp_path: Path):
    """Two store folders, one domain: the folder locks do not meet, the bus does. The second launch's
    orchestrator finds its name alive on the bus and refuses to start; its launcher gives up in one line."""
    launch_file = tmp_path / "orchestrator.yaml"
    launch_file.write_text("nodes:\n  - node: orchestrator\n")
    first = Launched("launch", str(launch_file))
    try:
        first.wait_for("] ready: orchestrator serves", timeout_s=START_S)
        other_store = tmp_path / "other_store"
        done = subprocess.run([sys.executable, "-m", "sustainml.cli", "launch", str(launch_file)], capture_output=True,
                              text=True, timeout=START_S, cwd=ROOT,
                              env={**os.environ, "SUSTAINML_STORE_DIR": str(other_store)})
        assert done.returncode == 1, done.stdout + done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("sustainml launch: node orchestrator could not start") \
            and "another node named 'orchestrator' already serves on this bus" in last, done.stdout + done.stderr
        assert "ready: orchestrator serves" not in done.stdout
        assert first.proc.poll() is None   # the first one serves on
    finally:
        first.kill()
