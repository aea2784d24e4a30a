"""The measuring plan as plain logic: what is measured first, what never, and what a measurement costs."""

import math

import pytest

from sustainml_nodes.hw_constraints.plan import (
    BUILD_OVERHEAD_S,
    DOUBT_SIGMAS,
    PlanItem,
    make_plan,
    measuring_cost_s,
    repetitions_for,
)


def item(key: str, *, quality: float = 0.8, latency_ms: float = 10.0, lifetime_j: float = 100.0, u: float = 0.1,
         cost_s: float = 2.0, misses_quality: bool = False) -> PlanItem:
    return PlanItem(key=key, label=f"{key} on cpu", goodness=quality, latency_ms=latency_ms, lifetime_j=lifetime_j,
                    relative_uncertainty=u, cost_s=cost_s, misses_quality=misses_quality)


def test_an_option_beaten_beyond_doubt_is_never_measured_and_says_by_which():
    small = item("small", quality=0.9, latency_ms=5, lifetime_j=50)
    big = item("big", quality=0.85, latency_ms=50, lifetime_j=500)
    plan = make_plan([big, small])
    assert [i.key for i in plan.order] == ["small"]
    assert plan.skipped == {"big": "dominated by small on cpu beyond the estimates' uncertainty"}


def test_an_option_beaten_only_within_the_uncertainty_is_still_measured():
    small = item("small", quality=0.9, latency_ms=5, lifetime_j=50, u=0.6)
    big = item("big", quality=0.85, latency_ms=8, lifetime_j=80, u=0.6)   # factor 1.6 < e^(2·0.6·2)
    assert math.exp(2 * DOUBT_SIGMAS * 0.6) > 1.6
    plan = make_plan([big, small])
    assert {i.key for i in plan.order} == {"small", "big"} and not plan.skipped


def test_better_quality_is_never_dominated_however_costly():
    cheap = item("cheap", quality=0.7, latency_ms=1, lifetime_j=1)
    best = item("best", quality=0.95, latency_ms=500, lifetime_j=10_000)
    assert not make_plan([cheap, best]).skipped


def test_likely_winners_first_then_the_front_cheapest_first_then_options_outside_the_limits():
    winner = item("winner", quality=0.80, latency_ms=5, lifetime_j=100, cost_s=9)
    runner = item("runner", quality=0.80, latency_ms=4, lifetime_j=105, cost_s=8)      # could win too
    front = item("front", quality=0.95, latency_ms=20, lifetime_j=900, cost_s=3)       # better, costlier
    front_cheap = item("front_cheap", quality=0.96, latency_ms=30, lifetime_j=950, cost_s=1)
    too_slow = item("too_slow", quality=0.99, latency_ms=400, lifetime_j=2000, cost_s=0.5)
    plan = make_plan([too_slow, front, winner, front_cheap, runner], max_latency_ms=100)
    assert [i.key for i in plan.order] == ["winner", "runner", "front_cheap", "front", "too_slow"]
    assert plan.tier == {"winner": 0, "runner": 0, "front": 1, "front_cheap": 1, "too_slow": 2}


def test_a_published_quality_below_the_target_is_outside_the_limits_whatever_the_estimate():
    low = item("low", quality=0.5, misses_quality=True, lifetime_j=1, cost_s=0.1)
    ok = item("ok", quality=0.9, lifetime_j=1000, cost_s=5)
    assert [i.key for i in make_plan([low, ok]).order] == ["ok", "low"]


def test_a_slow_pass_gets_fewer_repetitions_and_one_warm_up():
    assert repetitions_for(0.001, 0.5, 5) == (2, 5)
    assert repetitions_for(0.22, 0.5, 5) == (1, 2)
    assert repetitions_for(3.0, 0.5, 5) == (1, 1)


def test_the_cost_of_a_measurement_grows_with_its_passes_and_phases():
    fast = measuring_cost_s(0.001, 0.002, target_s=0.5, idle_s=0.2, min_repetitions=5)
    assert fast == pytest.approx(BUILD_OVERHEAD_S + 0.2 + 2 * 0.001 + 0.5 + 2 * 0.002 + 0.5)
    slow = measuring_cost_s(3.0, 9.0, target_s=0.5, idle_s=0.2, min_repetitions=5)
    assert slow == pytest.approx(BUILD_OVERHEAD_S + 0.2 + (3.0 + 3.0) + (9.0 + 9.0))
    inference_only = measuring_cost_s(3.0, 0.0, target_s=0.5, idle_s=0.2, min_repetitions=5)
    assert inference_only == pytest.approx(slow - 18.0)
