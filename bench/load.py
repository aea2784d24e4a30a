"""Many clients at once: does every task get exactly one result, and how many tasks per second?

    .venv/bin/python bench/load.py                        # 10 clients x 100 tasks
    .venv/bin/python bench/load.py --clients 2 --tasks 5  # smoke run

Launches the real pipeline (``launch/pipeline.yaml``, short measurement windows) on a private DDS
domain, runs one task to fill the hardware node's measurement cache, then starts ``--clients``
client processes that each submit ``--tasks`` copies of the same small tabular problem (all
submissions first, then wait for every result). Every terminal TaskResult a client receives is
counted per task id. Exits 1 when a task is lost (no result within ``--result-timeout-s`` after
the last submission), answered twice (one task id for two submissions, or two different results
for one task), failed, or could not be submitted.

When no result comes for ``--stall-s`` the pipeline is taken as stalled: the clients stop, and
the Python and native stacks of every node are written to a file with py-spy (when installed), so
that a deadlock or a bottleneck can be read off them.
"""

import argparse
import faulthandler
import logging
import multiprocessing as mp
import os
import queue
import resource
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from dds_overhead import TABULAR, RunningPipeline, private_dds_env  # bench/ is on sys.path

from sustainml import Client, msg
from sustainml.exceptions import SustainMLError
from sustainml.node import TERMINAL, task_key

# A terminal result as a client saw it: (state name, finished_unix_s, error, number of options).
Seen = tuple[str, float, str, int]


def run_client(index: int, tasks: int, result_timeout_s: float, ready: Any, go: Any, give_up: Any,
               results_done: Any, reports: Any) -> None:
    """One client process: submit every task, then wait for every result; report plain data."""
    faulthandler.enable()
    seen: dict[tuple[str, int], list[Seen]] = defaultdict(list)
    mine: set[tuple[str, int]] = set()
    lock = threading.Lock()

    def on_result(result: msg.TaskResult) -> None:
        if result.state not in TERMINAL:
            return
        key = task_key(result.task_id)
        with lock:
            seen[key].append((result.state.name, result.finished_unix_s, result.error, len(result.options)))
            if key in mine and len(seen[key]) == 1:
                with results_done.get_lock():
                    results_done.value += 1

    report: dict[str, Any] = {"index": index, "submitted": [], "submit_errors": []}
    with Client() as client:
        client.on_result(on_result)
        client.history(limit=1)   # the orchestrator is discovered and answers
        ready.put(index)
        go.wait()
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        report["first_submit_unix_s"] = time.time()
        for _ in range(tasks):
            if give_up.is_set():
                break
            try:
                handle = client.submit(TABULAR, timeout_s=30)
            except SustainMLError as e:
                report["submit_errors"].append(f"{type(e).__name__}: {e}")
                continue
            key = task_key(handle.task_id)
            report["submitted"].append(key)
            with lock:
                mine.add(key)
                if seen.get(key):   # the result came before submit() returned
                    with results_done.get_lock():
                        results_done.value += 1
        report["last_submit_unix_s"] = time.time()
        deadline = time.monotonic() + result_timeout_s
        while time.monotonic() < deadline and not give_up.is_set():
            with lock:
                if all(seen.get(k) for k in report["submitted"]):
                    break
            time.sleep(0.05)
        if not give_up.is_set():
            time.sleep(2.0)   # a second answer to any task would come now
        with lock:
            report["results"] = {k: list(seen.get(k, [])) for k in report["submitted"]}
            report["last_result_unix_s"] = max((s[1] for k in report["submitted"] for s in seen.get(k, [])),
                                               default=0.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = usage.ru_utime + usage.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime
    reports.put(report)


def node_cpu_s(pipeline: RunningPipeline) -> dict[str, float]:
    """CPU seconds (user + system) each node process has used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for node in pipeline.launcher.nodes:
        pid = pipeline.launcher.pid_of(node.spec.name)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu[node.spec.name] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            cpu[node.spec.name] = float("nan")
    return cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10, help="client processes")
    parser.add_argument("--tasks", type=int, default=100, help="tasks each client submits")
    parser.add_argument("--result-timeout-s", type=float, default=600.0,
                        help="how long a client waits for its results after its last submission")
    parser.add_argument("--stall-s", type=float, default=90.0,
                        help="give up when no result has come for this long")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    faulthandler.enable()
    total = args.clients * args.tasks

    with tempfile.TemporaryDirectory(prefix="sustainml-load-") as tmp:
        env = private_dds_env(os.path.join(tmp, "store"), tag="load")
        print(f"DDS domain {env['SUSTAINML_DOMAIN_ID']}, tag {env['SUSTAINML_DISCOVERY_TAG']}; "
              f"{args.clients} clients x {args.tasks} tasks of a cached tabular problem")
        with RunningPipeline() as pipeline:
            with Client() as client:
                start = time.monotonic()
                client.submit(TABULAR, timeout_s=60).result(timeout_s=300)
                print(f"warm-up task (fills the measurement cache): {time.monotonic() - start:.1f} s")
            ctx = mp.get_context("spawn")
            ready, reports, go, give_up = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
            results_done = ctx.Value("i", 0)
            clients = [ctx.Process(target=run_client, name=f"client-{i}", daemon=True,
                                   args=(i, args.tasks, args.result_timeout_s, ready, go, give_up,
                                         results_done, reports)) for i in range(args.clients)]
            for process in clients:
                process.start()
            for _ in clients:
                ready.get(timeout=120)
            cpu_before = node_cpu_s(pipeline)
            go_unix_s = time.time()
            go.set()
            collected: list[dict[str, Any]] = []
            last_print = last_change = time.monotonic()
            last_count, stall = 0, ""
            while len(collected) < len(clients):
                try:
                    collected.append(reports.get(timeout=1.0))
                except queue.Empty:
                    if not any(p.is_alive() for p in clients) and reports.empty():
                        break
                now = time.monotonic()
                if results_done.value != last_count:
                    last_count, last_change = results_done.value, now
                elif now - last_change > args.stall_s and not give_up.is_set():
                    print(f"  STALLED: no result for {args.stall_s:g} s at {last_count}/{total}; "
                          "stopping the clients")
                    stall = pipeline.dump_stacks()
                    give_up.set()
                if now - last_print >= 15.0:
                    last_print = now
                    print(f"  {time.time() - go_unix_s:5.0f} s: {results_done.value}/{total} results")
            cpu_after = node_cpu_s(pipeline)
            for process in clients:
                process.join(timeout=10)
            warnings = Counter(name for name, line in pipeline.lines
                               if " WARNING " in line or " ERROR " in line)
            examples = pipeline.tail(5, containing="WARNING")

    # ---------------------------------------------------------------- verdict
    crashed = len(clients) - len(collected)
    owners: dict[tuple[str, int], int] = Counter()
    lost, twice, failed, submit_errors = [], [], [], []
    for report in collected:
        submit_errors += report["submit_errors"]
        for key in report["submitted"]:
            owners[key] += 1
            results = report["results"][key]
            if not results:
                lost.append(key)
            elif len(set(results)) > 1:
                twice.append(key)
            if results and any(state != "TASK_DONE" or not options for state, _, _, options in results):
                failed.append((key, results[-1][2] or "done without options"))
    twice += [k for k, n in owners.items() if n > 1]
    received = sum(1 for r in collected for k in r["submitted"] if r["results"][k])
    first = min((r["first_submit_unix_s"] for r in collected), default=go_unix_s)
    last_submit = max((r["last_submit_unix_s"] for r in collected), default=go_unix_s)
    last_result = max((r["last_result_unix_s"] for r in collected), default=go_unix_s)
    elapsed = max(last_result - first, 1e-9)

    print()
    print(f"tasks submitted        {sum(len(r['submitted']) for r in collected)}/{total}"
          f"  (submission phase {last_submit - first:.1f} s)")
    print(f"results received       {received}  in {elapsed:.1f} s from the first submission")
    print(f"tasks per second       {received / elapsed:.2f}")
    print(f"lost (no result)       {len(lost)}")
    print(f"answered twice         {len(twice)}")
    print(f"failed / submit errors {len(failed)} / {len(submit_errors)}"
          + (f"   client processes that reported nothing: {crashed}" if crashed else ""))
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    client_cpu = sum(r["cpu_s"] for r in collected)
    print("CPU seconds during the load: "
          + ", ".join(f"{name} {s:.1f}" for name, s in sorted(cpu.items(), key=lambda kv: -kv[1]))
          + f", all clients {client_cpu:.1f} (wall {elapsed:.1f} s, {os.cpu_count()} cores)")
    if warnings:
        print("node warnings/errors: " + ", ".join(f"{n} {c}" for n, c in warnings.most_common()))
        print(examples)
    for key, error in failed[:3]:
        print(f"  failed {key[0]}/{key[1]}: {error}")
    for error in submit_errors[:3]:
        print(f"  submit error: {error}")
    if stall:
        print(f"stalled: {stall}")
    broken = lost or twice or failed or submit_errors or crashed or stall
    print("FAIL: broken invariant" if broken else "OK: every task answered exactly once")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
