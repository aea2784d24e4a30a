"""What a problem may say about carbon, checked where it enters the pipeline.

The task encoder checks a problem's carbon fields (experiment runs, PUE, allowed regions, intensity
overrides) so that a bad value fails at the first node; the carbon tracker checks them again on what
reaches it. Both read the same rules here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sustainml import msg
from sustainml.exceptions import InvalidProblem, SustainMLError

from .intensity import resolve_region

__all__ = ["MAX_EXPERIMENT_RUNS", "MAX_INTENSITY_G_PER_KWH", "REGION_WILDCARDS", "check_carbon_fields"]

MAX_EXPERIMENT_RUNS = 100_000
# Units: g CO2e / kWh. Above any real grid (coal plants emit about 1,000): a typo, not a figure.
MAX_INTENSITY_G_PER_KWH = 2_000.0
REGION_WILDCARDS = ("*", "gcp:*", "aws:*", "azure:*")
"""``allowed_regions`` entries that stand for every region (of one provider), not a region to resolve."""


def check_carbon_fields(
    *,
    experiment_runs: int,
    allowed: Sequence[str],
    overrides: Sequence[msg.RegionFigure],
    pue: float,
) -> None:
    """Raise ``InvalidProblem`` (one line: the field, the value, what is right) for carbon inputs no
    real plan has. The task encoder calls it so a bad value fails at the first node."""
    if experiment_runs > MAX_EXPERIMENT_RUNS:
        raise InvalidProblem(
            f"experiment_runs is {experiment_runs}: give the training runs before the final one "
            f"(e.g. 20 for a search of 20 trials), at most {MAX_EXPERIMENT_RUNS}"
        )
    if pue != 0 and not (math.isfinite(pue) and pue >= 1.0):
        raise InvalidProblem(
            f"pue is {pue}: a data centre's power usage effectiveness is at least 1.0 "
            "(1.0 = no overhead, typical clouds 1.1-1.6); give 0 to use the published figure"
        )
    for i, text in enumerate(allowed):
        if text.strip().lower() in REGION_WILDCARDS:
            continue
        try:
            resolve_region(text)
        except SustainMLError as e:
            raise InvalidProblem(f"allowed_regions[{i}]: {e}") from e
    for i, figure in enumerate(overrides):
        value = float(figure.intensity_g_per_kwh)
        if not (math.isfinite(value) and 0 <= value <= MAX_INTENSITY_G_PER_KWH):
            raise InvalidProblem(
                f"intensity_overrides[{i}] ({figure.region!r}): {value} g CO2e/kWh is not a grid intensity; "
                f"give a number from 0 to {MAX_INTENSITY_G_PER_KWH:g} (coal power is about 1,000)"
            )
        try:
            resolve_region(figure.region)
        except SustainMLError as e:
            raise InvalidProblem(f"intensity_overrides[{i}]: {e}") from e
