"""How well does the task encoder read descriptions? Labelled sets through the real ``encode()``.

    .venv/bin/python bench/encoder_accuracy.py            # about 15 s on 2 cores, most of it loading
    .venv/bin/python bench/encoder_accuracy.py --sets tests/data/encoder_descriptions.yaml -v

Each labelled description (``tests/data/encoder_descriptions*.yaml``) becomes a ``UserInput`` with
only ``text`` set and goes through ``encode()`` with the packaged all-MiniLM-L6-v2. Prints, per set:
task-type accuracy overall and per type, the misses (expected → read, with confidence), how well
the confidence is calibrated, the constraint extraction for the descriptions that state expected
constraints (every expected field right, and fields read from the words that were not expected),
and the time per description after the model is loaded.

The sets and the exemplars in ``knowledge.yaml`` must be disjoint (no labelled text among the
exemplars), or the accuracy would measure recall; the bench checks it and exits 1 when they are not.
``encoder_descriptions.yaml`` was written before the exemplars, and the scoring constants of
``task_reading`` were chosen on it; ``encoder_descriptions_holdout.yaml`` was written after, and
nothing was tuned on it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sustainml import msg  # noqa: E402
from sustainml.exceptions import InvalidProblem  # noqa: E402
from sustainml_nodes.task_encoder.encoding import CLEAR_CONFIDENCE, encode, load_knowledge, warm_up  # noqa: E402

DEFAULT_SETS = (
    ROOT / "tests" / "data" / "encoder_descriptions.yaml",
    ROOT / "tests" / "data" / "encoder_descriptions_holdout.yaml",
)
TARGET_ACCURACY = 0.9


@dataclass(frozen=True)
class Labelled:
    text: str
    task_type: str
    constraints: dict[str, Any] | None  # None: not checked; {}: the text states none


@dataclass
class Outcome:
    item: Labelled
    task_type: str
    confidence: float
    readings: list[str]
    seconds: float
    values: dict[str, Any] = field(default_factory=dict)  # expected field -> encoded value
    from_words: set[str] = field(default_factory=set)  # fields filled from the words of the text
    error: str = ""

    @property
    def hit(self) -> bool:
        return self.task_type == self.item.task_type


def load_set(path: Path) -> list[Labelled]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [Labelled(d["text"], d["task_type"], d.get("constraints")) for d in data["descriptions"]]


def run(item: Labelled) -> Outcome:
    started = time.perf_counter()
    try:
        task = encode(msg.UserInput(text=item.text))
    except InvalidProblem as e:
        return Outcome(item, "(refused)", 0.0, [], time.perf_counter() - started, error=str(e))
    seconds = time.perf_counter() - started
    outcome = Outcome(item, task.task_type, task.confidence, [r.task_type for r in task.readings], seconds)
    for path in item.constraints or {}:
        outcome.values[path] = _field(task, path)
    outcome.from_words = {f.field for f in task.findings if f.kind == "inferred" and "from the words" in f.message}
    return outcome


def _field(task: msg.EncodedTask, path: str) -> Any:
    value: Any = task
    for name in path.split("."):
        value = getattr(value, name)
    return value


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(float(expected), float(got), rel_tol=1e-6)
    return str(expected) == str(got)


def disjoint(items: Sequence[Labelled]) -> list[str]:
    """Labelled texts that appear among the exemplars (case and spacing ignored); empty = disjoint."""
    exemplars = {_plain(e) for t in load_knowledge().task_types.values() for e in t.exemplars}
    return [i.text for i in items if _plain(i.text) in exemplars]


def _plain(text: str) -> str:
    return " ".join(text.casefold().split())


def report(name: str, outcomes: list[Outcome], verbose: bool) -> None:
    n = len(outcomes)
    hits = sum(o.hit for o in outcomes)
    print(f"\n== {name}: {n} descriptions")
    print(f"task-type accuracy {hits}/{n} = {hits / n:.1%} (target >= {TARGET_ACCURACY:.0%}: "
          f"{'met' if hits / n >= TARGET_ACCURACY else 'NOT met'})")
    per_type = Counter(o.item.task_type for o in outcomes)
    per_hit = Counter(o.item.task_type for o in outcomes if o.hit)
    for task_type in sorted(per_type):
        k, m = per_hit[task_type], per_type[task_type]
        print(f"  {task_type:<24} {k:>3}/{m:<3} {k / m:.0%}")
    misses = [o for o in outcomes if not o.hit]
    if misses:
        print("misses (expected -> read, confidence; other readings):")
        for o in misses:
            others = ", ".join(o.readings[1:]) or "-"
            print(f"  {o.item.task_type} -> {o.task_type} ({o.confidence:.2f}; {others}): {o.item.text[:90]!r}"
                  + (f" [{o.error}]" if o.error else ""))
    clear = [o for o in outcomes if o.confidence >= CLEAR_CONFIDENCE]
    ambiguous = [o for o in outcomes if o.confidence < CLEAR_CONFIDENCE]
    among = sum(o.item.task_type in o.readings for o in ambiguous)
    print(f"calibration: mean confidence {statistics.fmean(o.confidence for o in outcomes):.2f} "
          f"(hits {_mean(o.confidence for o in outcomes if o.hit)}, misses {_mean(o.confidence for o in misses)}); "
          f"clear readings (>= {CLEAR_CONFIDENCE}) {len(clear)}, "
          f"right {_share(sum(o.hit for o in clear), len(clear))}; "
          f"ambiguous {len(ambiguous)}, right {_share(sum(o.hit for o in ambiguous), len(ambiguous))}, "
          f"expected type among their readings {_share(among, len(ambiguous))}")
    _report_constraints(outcomes, verbose)
    times_ms = sorted(o.seconds * 1e3 for o in outcomes)
    print(f"time per description: median {statistics.median(times_ms):.1f} ms, "
          f"mean {statistics.fmean(times_ms):.1f} ms, min {times_ms[0]:.1f} ms, max {times_ms[-1]:.1f} ms "
          f"(wall clock: a busy machine inflates all but the min)")
    if verbose:
        for o in outcomes:
            mark = "  " if o.hit else "XX"
            print(f"  {mark} {o.confidence:.2f} {o.task_type:<24} {o.item.text[:80]!r}")


def _report_constraints(outcomes: list[Outcome], verbose: bool) -> None:
    checked = [o for o in outcomes if o.item.constraints is not None]
    if not checked:
        return
    expected = right = spurious = whole = 0
    problems = []
    for o in checked:
        wanted = o.item.constraints or {}
        good = [p for p, v in wanted.items() if _same(v, o.values.get(p))]
        extra = sorted(o.from_words - set(wanted))
        expected += len(wanted)
        right += len(good)
        spurious += len(extra)
        whole += len(good) == len(wanted) and not extra
        for p, v in wanted.items():
            if p not in good:
                problems.append(f"  {p}: expected {v!r}, got {o.values.get(p)!r} in {o.item.text[:70]!r}")
        for p in extra:
            problems.append(f"  {p}: read from the words but not expected, in {o.item.text[:70]!r}")
    print(f"constraints: {len(checked)} descriptions state expected constraints; fields right {right}/{expected} "
          f"({_share(right, expected)}), spurious fields {spurious}, descriptions entirely right "
          f"{whole}/{len(checked)} ({_share(whole, len(checked))})")
    for line in problems:
        print(line)


def _mean(values: Any) -> str:
    values = list(values)
    return f"{statistics.fmean(values):.2f}" if values else "-"


def _share(k: int, n: int) -> str:
    return f"{k / n:.0%}" if n else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="*", type=Path, default=[p for p in DEFAULT_SETS if p.exists()],
                        help="labelled YAML files (default: the set and the holdout set in tests/data)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every description's reading")
    args = parser.parse_args(argv)

    load_s = warm_up()
    print(f"model and exemplars loaded in {load_s:.1f} s (all-MiniLM-L6-v2, packaged; nothing fetched)")
    exemplars = sum(len(t.exemplars) for t in load_knowledge().task_types.values())
    status = 0
    for path in args.sets:
        items = load_set(path)
        shared = disjoint(items)
        if shared:
            print(f"{path.name}: {len(shared)} labelled texts appear among the exemplars, so this set measures "
                  f"recall, not reading: {shared[:3]}")
            status = 1
        else:
            print(f"{path.name}: disjoint from the {exemplars} exemplars (no labelled text appears among them)")
        report(path.name, [run(item) for item in items], args.verbose)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
