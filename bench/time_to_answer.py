"""How soon does a user get a ranked answer, and how soon the final one? Seven task types, real pipeline.

    .venv/bin/python bench/time_to_answer.py                  # launch/pipeline.yaml as shipped, default budget
    .venv/bin/python bench/time_to_answer.py --budget 10      # a 10 s measurement budget per task

Launches the pipeline as ``sustainml demo`` does (``launch/pipeline.yaml``: its window, the hardware
node's default budget) on a private DDS domain with an empty store, so nothing is measured yet. Then:

- **cold**: the first task after launch (an image problem at its own batch size);
- **warm**: one realistic plain-language problem per task type, each with the catalogue's full
  candidate set (no ``models`` restriction), submitted one after the other;
- **iteration**: the tabular problem again with only its regions changed (answered from the stored
  measurements, no new measuring).

For each task: the time from submit to the first ranked answer (revision 1) and to the final one,
the budget and the final time over it, how many options are measured, reused or estimated, what
producing the answer cost (device seconds, joules), and for every option estimated in revision 1 and
measured by the end, the latency error of the estimate, (estimate − measured) / measured: its median
and worst per task. Times are wall-clock on a shared machine: read them as a whole run, side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

from dds_overhead import RunningPipeline, private_dds_env  # bench/ is on sys.path

from sustainml import Client, msg
from sustainml.launch import LaunchDescription, load_launch
from sustainml.node import TERMINAL
from sustainml_nodes.hw_constraints.node import HwParams

from dds_overhead import ROOT  # noqa: E402 - bench/ is on sys.path

PROBLEMS: dict[str, dict[str, object]] = {
    "image_classification": {
        "text": "classify photos of seabed organisms into 20 species, about 30,000 labelled photos, under 500 ms "
                "per image, trained in France, served in Germany, 5,000 requests a day for a year"},
    "object_detection": {
        "text": "spot cracks in drone photos of concrete bridges, about 8,000 images, under 100 ms per image, "
                "trained in Germany, served in Poland, 2,000 requests a day"},
    "text_classification": {
        "text": "sort customer support emails into 12 categories, 40,000 labelled emails, trained in Germany, "
                "3,000 requests a day for two years"},
    "text_generation": {
        "text": "generate short product descriptions from a few keywords, 50,000 examples, trained in Sweden, "
                "1,000 requests a day for a year"},
    "tabular_classification": {
        "text": "predict whether a loan applicant will default from 20 columns of application data, 100,000 "
                "rows, trained in Germany, 10,000 requests a day for two years"},
    "tabular_regression": {
        "text": "predict tool wear of CNC machines from sensor data, 20,000 rows, trained in Germany, "
                "100,000 requests a day for two years"},
    "time_series_forecasting": {
        "text": "forecast hourly electricity load for the next day from two years of history, 17,000 rows, "
                "trained in France, 500 requests a day for a year"},
}
COLD = ("cold (first task)", {**PROBLEMS["image_classification"], "usage": {"batch_size": 2}})


@dataclass
class Timing:
    label: str
    task_type: str = ""
    first_s: float = float("nan")
    final_s: float = float("nan")
    state: str = ""
    budget_s: float = 0.0
    revisions: int = 0
    bases: dict[str, int] = field(default_factory=dict)
    measuring_s: float = 0.0
    measuring_j: float = 0.0
    errors: list[float] = field(default_factory=list)  # latency (estimate - measured) / measured
    note: str = ""


def run_task(client: Client, label: str, problem: dict[str, object], *, budget_s: float, problem_id: str = "",
             timeout_s: float = 900.0) -> tuple[Timing, msg.TaskResult]:
    timing = Timing(label, budget_s=budget_s)
    started = time.monotonic()
    handle = client.submit(problem, problem_id=problem_id)
    first: msg.TaskResult | None = None
    final: msg.TaskResult | None = None
    for result in handle.revisions(timeout_s=timeout_s):
        now = time.monotonic() - started
        timing.revisions += 1
        if first is None and result.options:
            first, timing.first_s = result, now
        if result.state in TERMINAL:
            final, timing.final_s = result, now
    assert final is not None
    timing.state = final.state.name.removeprefix("TASK_").lower()
    timing.task_type = final.task_type
    timing.measuring_s, timing.measuring_j = final.measuring_s, final.measuring_energy_j
    timing.note = final.measuring_note or final.error
    for o in final.options:
        timing.bases[o.basis] = timing.bases.get(o.basis, 0) + 1
    if first is not None:
        estimated = {(o.model, o.device, o.host): o.latency_ms for o in first.options if o.basis == "estimated"}
        for o in final.options:
            before = estimated.get((o.model, o.device, o.host))
            if before and o.basis in ("measured", "measured-inference") and o.latency_ms > 0 and o.region == final.options[0].region:
                timing.errors.append((before - o.latency_ms) / o.latency_ms)
    return timing, final


def row(t: Timing) -> str:
    options = sum(t.bases.values())
    measured = t.bases.get("measured", 0) + t.bases.get("measured-inference", 0)
    over = f"{t.final_s / t.budget_s:5.2f}" if t.budget_s else "    -"
    errors = (f"{statistics.median(abs(e) for e in t.errors):6.0%} {max(t.errors, key=abs):+7.0%}"
              if t.errors else f"{'-':>6} {'-':>7}")
    return (f"{t.label:24} {t.first_s:7.1f} {t.final_s:7.1f} {t.budget_s:6.0f} {over} {t.state:6} "
            f"{measured:3}/{options:<3} {t.bases.get('reused', 0):3} {t.bases.get('estimated', 0):3} "
            f"{t.measuring_s:7.1f} {t.measuring_j:8.1f} {errors}")


HEADER = (f"{'task':24} {'first s':>7} {'final s':>7} {'budget':>6} {'final/budget':>5} {'state':6} "
          f"{'measured':>7} {'reused':>3} {'est':>3} {'device s':>7} {'J':>8} {'|err| med':>6} {'worst':>7}")


def _node_budget_s(description: LaunchDescription) -> float:
    """The hardware node's measurement budget in the launch file, else its parameter's default."""
    for node in description.nodes:
        if node.name.startswith("hw_constraints"):
            for i, arg in enumerate(node.cmd):
                if arg == "--param" and node.cmd[i + 1].startswith("budget_s="):
                    return float(node.cmd[i + 1].split("=", 1)[1])
    return HwParams().budget_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.0, help="measurement budget per task, s (0 = the node's default)")
    parser.add_argument("--only", nargs="*", help="task types to run (default: all seven)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one task")
    args = parser.parse_args()

    store = tempfile.mkdtemp(prefix="sustainml-time-to-answer-")
    private_dds_env(store, tag="time-to-answer")
    extra = {"measurement_budget_s": args.budget} if args.budget else {}
    timings: list[Timing] = []
    started = time.monotonic()
    description = load_launch(ROOT / "launch" / "pipeline.yaml")
    budget_s = args.budget or _node_budget_s(description)
    with RunningPipeline(description), Client() as client:
        print(f"pipeline ready in {time.monotonic() - started:.1f} s (store {store})", flush=True)
        print(HEADER, flush=True)
        timing, _ = run_task(client, COLD[0], {**COLD[1], **extra}, budget_s=budget_s, timeout_s=args.timeout)
        timings.append(timing)
        print(row(timing), flush=True)
        tabular: msg.TaskResult | None = None
        for task_type, problem in PROBLEMS.items():
            if args.only and task_type not in args.only:
                continue
            timing, result = run_task(client, task_type, {**problem, **extra}, budget_s=budget_s,
                                     timeout_s=args.timeout)
            if timing.task_type != task_type:
                timing.label += f" (read as {timing.task_type})"
            timings.append(timing)
            print(row(timing), flush=True)
            if task_type == "tabular_regression":
                tabular = result
        if tabular is not None:
            changed = {**PROBLEMS["tabular_regression"], **extra, "train_region": "NOR", "alternative_regions": ["SWE"]}
            timing, _ = run_task(client, "iteration: region only", changed, budget_s=budget_s,
                                 problem_id=tabular.task_id.problem_id, timeout_s=args.timeout)
            timings.append(timing)
            print(row(timing), flush=True)
    warm = [t for t in timings if t.label in PROBLEMS or t.label.split(" (read")[0] in PROBLEMS]
    errors = [e for t in warm for e in t.errors]
    print()
    print("columns: first/final s = seconds from submit to the first ranked answer and to the final one; "
          "final/budget = final time over the hardware node's measurement budget; measured/options, reused, "
          "est(imated) in the final answer; device s, J = what producing it cost; |err| = latency error of "
          "revision 1's estimates against the final measurements")
    if warm:
        firsts = [t.first_s for t in warm]
        print(f"warm, {len(warm)} task types: first answer median {statistics.median(firsts):.1f} s, worst "
              f"{max(firsts):.1f} s; final over budget worst {max(t.final_s / t.budget_s for t in warm if t.budget_s):.2f}; "
              f"states {sorted({t.state for t in warm})}")
    if errors:
        print(f"estimate vs measured latency over {len(errors)} options: median |error| "
              f"{statistics.median(abs(e) for e in errors):.0%}, worst {max(errors, key=abs):+.0%}")
    for t in timings:
        print(f"  {t.label}: {t.note}")
    return 0 if all(t.state == "done" for t in timings) else 1


if __name__ == "__main__":
    sys.exit(main())
