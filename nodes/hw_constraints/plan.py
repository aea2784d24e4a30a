"""Which measurements to make for a task, in what order, within a budget of device time.

A hardware node first answers every job (a candidate on a device) from an estimate or a stored
measurement; then it measures. Measurements have a cost (seconds of the device) and a value to the
decision: a measurement that could change which option is recommended, or which options are on the
Pareto front of quality, energy and latency, is worth more than one of an option that is clearly
beaten. With each estimate's uncertainty the plan sorts the jobs into tiers:

0. **could be recommended**: possibly within the limits, and its lifetime energy at its optimistic
   end is no more than the pessimistic end of the best such option; most likely winner first;
1. **could be on the front**: the rest of the options possibly within the limits and not dominated;
   cheapest first, so that the budget measures as many as it can;
2. **outside the limits beyond doubt** (a published quality below the target, a latency above the
   limit even at its optimistic end): measured last, cheapest first;
3. **dominated beyond doubt** by another option (no better quality, and more energy and more latency
   even comparing its optimistic end with the other's pessimistic end): never measured; it stays an
   estimate and says which option dominates it.

"Beyond doubt" is :data:`DOUBT_SIGMAS` standard uncertainties, taken in log space (an estimate off by
a factor is as likely high as low). Pure functions over plain values; the node feeds them its
estimates (``node.py``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DOUBT_SIGMAS",
    "BUILD_OVERHEAD_S",
    "PlanItem",
    "Plan",
    "make_plan",
    "repetitions_for",
    "measuring_cost_s",
]

#: How many standard uncertainties apart two estimates must be for one to be beaten "beyond doubt".
DOUBT_SIGMAS = 2.0
#: Device time to build a model and its inputs before its first pass, assumed per job, Units: s.
BUILD_OVERHEAD_S = 0.5
#: The most passes a metered window asks for, and the fewest it needs for the usual statistics.
_MAX_WARMUP = 2


@dataclass(frozen=True)
class PlanItem:
    """What the plan knows of one job before measuring it, from its (corrected) estimate."""

    key: Hashable
    label: str  # "resnet18 on cpu"
    goodness: float  # published quality oriented so that larger is better; -inf when unknown
    latency_ms: float  # per request
    lifetime_j: float  # training (all runs) and serving over the horizon; or per request when no usage is known
    relative_uncertainty: float  # one standard uncertainty of latency and energy, log-space
    cost_s: float  # predicted device time to measure it
    misses_quality: bool = False  # its published quality misses the task's target (a certainty, not an estimate)

    def low(self, value: float) -> float:
        return value * math.exp(-DOUBT_SIGMAS * self.relative_uncertainty)

    def high(self, value: float) -> float:
        return value * math.exp(DOUBT_SIGMAS * self.relative_uncertainty)


@dataclass
class Plan:
    """The jobs to measure, most valuable first, and those never to measure with the reason."""

    order: list[PlanItem] = field(default_factory=list)
    skipped: dict[Hashable, str] = field(default_factory=dict)
    tier: dict[Hashable, int] = field(default_factory=dict)


def _outside_limits(item: PlanItem, max_latency_ms: float) -> bool:
    return item.misses_quality or (max_latency_ms > 0 and item.low(item.latency_ms) > max_latency_ms)


def _dominates(a: PlanItem, b: PlanItem) -> bool:
    """``a`` beats ``b`` beyond doubt: no worse quality, and less energy and latency even with ``a`` at its
    pessimistic end and ``b`` at its optimistic one."""
    return (
        a.goodness >= b.goodness
        and a.high(a.lifetime_j) < b.low(b.lifetime_j)
        and a.high(a.latency_ms) <= b.low(b.latency_ms)
    )


def make_plan(items: Sequence[PlanItem], *, max_latency_ms: float = 0.0) -> Plan:
    """Sort ``items`` into the tiers of the module docstring; ``max_latency_ms`` 0 = no limit."""
    plan = Plan()
    possible = [i for i in items if not _outside_limits(i, max_latency_ms)]
    best_high = min((i.high(i.lifetime_j) for i in possible), default=math.inf)
    tiers: dict[int, list[PlanItem]] = {0: [], 1: [], 2: []}
    for item in items:
        winner = next((other for other in possible if other is not item and _dominates(other, item)), None)
        if winner is not None:
            plan.skipped[item.key] = f"dominated by {winner.label} beyond the estimates' uncertainty"
            plan.tier[item.key] = 3
            continue
        if item in possible:
            tier = 0 if item.low(item.lifetime_j) <= best_high else 1
        else:
            tier = 2
        tiers[tier].append(item)
        plan.tier[item.key] = tier
    plan.order = (
        sorted(tiers[0], key=lambda i: (i.lifetime_j, i.cost_s, i.label))
        + sorted(tiers[1], key=lambda i: (i.cost_s, i.label))
        + sorted(tiers[2], key=lambda i: (i.cost_s, i.label))
    )
    return plan


def repetitions_for(pass_s: float, target_s: float, min_repetitions: int) -> tuple[int, int]:
    """``(warmup, repetitions)`` for a phase whose one pass takes about ``pass_s``: the usual
    ``(2, min_repetitions)`` while they fit in about twice the window; else fewer, down to one warm-up
    and one metered pass for a model whose single pass outlasts the window."""
    if pass_s * min_repetitions <= 2 * target_s:
        return _MAX_WARMUP, min_repetitions
    return 1, max(1, min(min_repetitions, math.floor(target_s / pass_s) if pass_s > 0 else min_repetitions))


def measuring_cost_s(
    inference_s: float, train_step_s: float, *, target_s: float, idle_s: float, min_repetitions: int
) -> float:
    """Predicted device time of one measurement: building, the idle baseline, and each phase's
    warm-up and metered window (``train_step_s`` 0 = no training phase). Units: s."""
    cost = BUILD_OVERHEAD_S + idle_s
    for pass_s in (inference_s, train_step_s):
        if pass_s <= 0:
            continue
        warmup, repetitions = repetitions_for(pass_s, target_s, min_repetitions)
        cost += warmup * pass_s + max(target_s, repetitions * pass_s)
    return cost
