"""Many clients at once: does every task get exactly one result, and how many tasks per second?

    .venv/bin/python bench/load.py                        # 10 clients x 100 tasks
    .venv/bin/python bench/load.py --clients 2 --tasks 5  # smoke run
    .venv/bin/python bench/load.py --clients 10 --tasks 1000   # 10,000 tasks (an hour or more on 2 cores)
    .venv/bin/python bench/load.py --clients 2 --tasks 50 --history-store 10000   # history at 10,000 tasks

Launches the real pipeline (``launch/pipeline.yaml``, short measurement windows) on a private DDS
domain, runs one task to fill the hardware node's measurement cache, then starts ``--clients``
client processes that each submit ``--tasks`` copies of the same small tabular problem (all
submissions first, then wait for every result). Every terminal TaskResult a client receives is
counted per task id. Exits 1 when a task is lost (no result within ``--result-timeout-s`` after
the last submission), answered twice (one task id for two submissions, or two different results
for one task), failed, or could not be submitted.

Growth: the resident memory (RSS) of every node after the warm-up task and after the load, per task
of the load, and the task store's size per task (the SQLite file and its WAL). History: once the load
is over, a fresh client times the first page of ``sustainml results`` (20 and 200 results), a page
from the middle of the store, and a walk over every page; ``--history-store N`` first fills the store
to N tasks with copies of the warm-up task (new ids, submitted before it), so that the history's
latency at 10,000 tasks is measured without running 10,000 tasks.

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
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import psutil
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


def node_rss_bytes(pipeline: RunningPipeline) -> dict[str, int]:
    """The resident memory of each node process now (psutil), 0 for one that is gone. Units: bytes."""
    rss = {}
    for node in pipeline.launcher.nodes:
        try:
            rss[node.spec.name] = psutil.Process(pipeline.launcher.pid_of(node.spec.name)).memory_info().rss
        except (psutil.Error, TypeError, ValueError):
            rss[node.spec.name] = 0
    return rss


def store_bytes(store_dir: str) -> tuple[int, int]:
    """The orchestrator's task store: its pages in use as a reader sees them (the write-ahead log's
    included), and the files on disk (the SQLite file and the log, which SQLite empties into the file
    every few MB but does not shrink). Units: bytes."""
    base = os.path.join(store_dir, "orchestrator.sqlite3")
    with sqlite3.connect(base, timeout=30) as db:
        (used,) = db.execute("SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(),"
                             " pragma_freelist_count(), pragma_page_size()").fetchone()
    on_disk = sum(os.path.getsize(base + suffix) for suffix in ("", "-wal") if os.path.exists(base + suffix))
    return int(used), on_disk


def store_tasks(store_dir: str) -> int:
    with sqlite3.connect(os.path.join(store_dir, "orchestrator.sqlite3"), timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])


def stored_result_bytes(store_dir: str) -> float:
    """The mean size of a stored result (CDR). Units: bytes."""
    with sqlite3.connect(os.path.join(store_dir, "orchestrator.sqlite3"), timeout=30) as db:
        return float(db.execute("SELECT IFNULL(AVG(length(result)), 0) FROM tasks").fetchone()[0])


def fill_store(store_dir: str, tasks: int) -> int:
    """Add copies of the oldest task (the warm-up task: its input and result blobs as stored, byte for
    byte, so a copy's result still names the warm-up task's id) under new problem ids, submitted one
    second apart before it, until the store holds ``tasks`` tasks; the running orchestrator reads them
    like any task (SQLite WAL: another process may write). Returns how many were added."""
    path = os.path.join(store_dir, "orchestrator.sqlite3")
    with sqlite3.connect(path, timeout=30) as db:
        have = int(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        row = db.execute("SELECT state, submitted_unix_s, user_input, result, error, failed_node FROM tasks"
                         " WHERE result IS NOT NULL ORDER BY submitted_unix_s LIMIT 1").fetchone()
        if row is None or have >= tasks:
            return 0
        state, first, user_input, result, error, failed_node = row
        added = tasks - have
        db.executemany(
            "INSERT INTO tasks (problem_id, iteration, state, stage, submitted_unix_s, updated_unix_s, user_input,"
            " result, error, failed_node) VALUES (?, 1, ?, '', ?, ?, ?, ?, ?, ?)",
            ((uuid.uuid4().hex, state, first - 1.0 - i, first - 1.0 - i, user_input, result, error, failed_node)
             for i in range(added)))
    return added


def time_history(repeats: int = 3) -> list[tuple[str, float, int]]:
    """(what, median seconds, results) of history requests from a fresh client, once it found the
    orchestrator: the newest page, a page from the middle of the store and the oldest one, then
    ``history(limit=1000)`` (timed once: several pages), and a walk over every page when the store
    holds at most 2,000 tasks."""
    figures = []
    with Client() as client:
        client.history_page(page_size=1, timeout_s=60)   # discovery, not timed

        def timed(label: str, call: Any, times: int = repeats) -> None:
            spent, count = [], 0
            for _ in range(times):
                start = time.perf_counter()
                count = call()
                spent.append(time.perf_counter() - start)
            figures.append((label, statistics.median(spent), count))

        def page(size: int, before: float = 0.0) -> int:
            return len(client.history_page(page_size=size, before_unix_s=before, timeout_s=120).results)

        total = store_tasks(os.environ["SUSTAINML_STORE_DIR"])
        middle, oldest = _nth_submission(total // 2), _nth_submission(max(0, total - 20))
        timed("newest page, 20 asked", lambda: page(20))
        timed("newest page, 200 asked", lambda: page(200))
        timed(f"page from task {total // 2:,}, 200 asked", lambda: page(200, middle))
        timed("oldest page, 20 asked", lambda: page(20, oldest))
        timed("history(limit=1000)", lambda: len(client.history(limit=1000, timeout_s=120)), times=1)
        if total <= 2000:
            timed(f"every page ({total:,} tasks)",
                  lambda: sum(len(p.results) for p in client.history_pages(page_size=200, timeout_s=120)), times=1)
    return figures


def _nth_submission(n: int) -> float:
    """The submission time of the ``n``-th newest task, read off the store file (0 = none)."""
    with sqlite3.connect(os.path.join(os.environ["SUSTAINML_STORE_DIR"], "orchestrator.sqlite3"), timeout=30) as db:
        row = db.execute("SELECT submitted_unix_s FROM tasks ORDER BY submitted_unix_s DESC LIMIT 1 OFFSET ?",
                         (n,)).fetchone()
    return float(row[0]) if row else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10, help="client processes")
    parser.add_argument("--tasks", type=int, default=100, help="tasks each client submits")
    parser.add_argument("--result-timeout-s", type=float, default=600.0,
                        help="how long a client waits for its results after its last submission")
    parser.add_argument("--stall-s", type=float, default=90.0,
                        help="give up when no result has come for this long")
    parser.add_argument("--history-store", type=int, default=0, metavar="N",
                        help="before timing the history, fill the store to N tasks with copies of the warm-up task")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    faulthandler.enable()
    total = args.clients * args.tasks

    with tempfile.TemporaryDirectory(prefix="sustainml-load-") as tmp:
        store_dir = os.path.join(tmp, "store")
        env = private_dds_env(store_dir, tag="load")
        print(f"DDS domain {env['SUSTAINML_DOMAIN_ID']}, tag {env['SUSTAINML_DISCOVERY_TAG']}; "
              f"{args.clients} clients x {args.tasks} tasks of a cached tabular problem")
        with RunningPipeline() as pipeline:
            with Client() as client:
                start = time.monotonic()
                client.submit(TABULAR, timeout_s=60).result(timeout_s=300)
                print(f"warm-up task (fills the measurement cache): {time.monotonic() - start:.1f} s")
            rss_before, store_before, tasks_before = node_rss_bytes(pipeline), store_bytes(store_dir), 1
            rss_peak = dict(rss_before)
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
                    rss_now = node_rss_bytes(pipeline)
                    rss_peak = {name: max(rss_peak.get(name, 0), rss) for name, rss in rss_now.items()}
                    print(f"  {time.time() - go_unix_s:5.0f} s: {results_done.value}/{total} results; RSS MB "
                          + ", ".join(f"{name} {rss / 1e6:.0f}" for name, rss in rss_now.items()))
            cpu_after = node_cpu_s(pipeline)
            time.sleep(2.0)   # the last results are stored
            rss_after, store_after, tasks_after = node_rss_bytes(pipeline), store_bytes(store_dir), store_tasks(store_dir)
            result_bytes = stored_result_bytes(store_dir)
            filled = fill_store(store_dir, args.history_store) if args.history_store else 0
            history = time_history()
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
    load_tasks = max(tasks_after - tasks_before, 1)
    print(f"RSS per node, MB (after the warm-up -> after {tasks_after - tasks_before:,} tasks, peak; growth per task):")
    for name in rss_before:
        print(f"  {name:<16} {rss_before[name] / 1e6:7.1f} -> {rss_after[name] / 1e6:7.1f} "
              f"(peak {max(rss_peak.get(name, 0), rss_after[name]) / 1e6:7.1f}); "
              f"{(rss_after[name] - rss_before[name]) / load_tasks / 1024:+7.1f} KB per task")
    print(f"task store             {store_after[0] / 1e6:.1f} MB in use ({store_after[1] / 1e6:.1f} MB on disk with "
          f"the WAL) for {tasks_after:,} tasks: {(store_after[0] - store_before[0]) / load_tasks / 1024:.1f} KB "
          f"per task (a stored result {result_bytes / 1024:.0f} KB; the rest its input, measurements, indexes)")
    print("history latency (median of 3, a fresh client)"
          + (f", the store filled to {tasks_after + filled:,} tasks:" if filled else ":"))
    for label, seconds, count in history:
        print(f"  {label:<36} {seconds * 1000:8.1f} ms  ({count:,} results)")
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
