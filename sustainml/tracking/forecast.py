"""Predict a training run's total energy from its first epochs, with a prediction interval.

Model: after a warm-up (the first epoch usually costs more: allocator and cache warm-up, data
loaders filling, kernel autotuning), the per-epoch energies ``E_i`` of one run are independent draws
from one normal distribution N(mu, sigma²): every epoch does the same work on the same data. From
the ``m`` steady epochs seen so far (mean ``Ē``, sample standard deviation ``s``), the energy of the
``R`` epochs still to come is predicted as ``R × Ē``, and the interval at ``level`` is

    R × Ē ± t_{(1 + level) / 2, m - 1} × s × sqrt(R + R² / m)

the textbook prediction interval for a sum of ``R`` future draws: ``R × sigma²`` is their own
variance, ``R² × sigma² / m`` that of ``R × Ē`` (the mean is itself estimated), and Student's t with
``m - 1`` degrees of freedom accounts for ``sigma`` being estimated from ``s``. With few epochs the
t quantile is large (6.3 for 90 % and one degree of freedom), which is the honest width of a guess
from two epochs. The predicted total adds the energy already spent (warm-up included); the remaining
energy's low end is clipped at 0, since an epoch cannot give energy back.

What the interval does not cover: the energy source's own calibration uncertainty (±30 % for the
CPU estimate, ±5 % for NVML), which moves the metered total and the prediction together; a run
whose epochs change cost on purpose (progressive resizing, a growing dataset, early layers
unfrozen later); and a machine whose load changes mid-run (other jobs sharing the cores and
caches). Those break the model's assumption and the interval then says nothing. Seen once while
recording the replay test's run (not kept): on this project's shared 2-core VM, with other test
suites starting mid-way, the 16-epoch run came to an *estimated* 137.8 J (the CPU estimate: no RAPL
there), outside the interval predicted after 5 epochs (111 to 130 J); the same run on the quiet VM
(tests/data/recorded_training_run.json, also the estimate) lands inside it, 0.5 % off.

The t quantile comes from SciPy, which scikit-learn (a dependency of this project) requires.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EnergyForecast", "predict_total", "check_plan", "min_epochs", "t_quantile", "DEFAULT_LEVEL", "DEFAULT_WARMUP_EPOCHS",
]

DEFAULT_LEVEL = 0.9
DEFAULT_WARMUP_EPOCHS = 1
# The spread of the per-epoch energy needs two steady epochs at least (one degree of freedom).
MIN_STEADY_EPOCHS = 2


@dataclass(frozen=True)
class EnergyForecast:
    """The predicted energy of a whole training run (Units: J, PUE not applied).

    ``low_j``/``high_j`` bound ``predicted_energy_j`` at ``level``; ``epochs_used`` steady epochs
    (after ``warmup_epochs``) gave the per-epoch mean and spread; ``note`` says how, in words.
    """

    epochs_done: int
    epochs_planned: int
    energy_so_far_j: float
    predicted_energy_j: float
    low_j: float
    high_j: float
    level: float
    warmup_epochs: int
    epochs_used: int
    per_epoch_energy_j: float
    per_epoch_spread_j: float
    note: str


def min_epochs(warmup_epochs: int = DEFAULT_WARMUP_EPOCHS) -> int:
    """How many epochs ``predict_total`` needs before it can predict: the warm-up plus two steady ones."""
    return warmup_epochs + MIN_STEADY_EPOCHS


def check_plan(planned_epochs: int, level: float, warmup_epochs: int) -> None:
    """Raise ValueError, saying what is right, for a training plan no forecast can be made for."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be a fraction between 0 and 1 (e.g. 0.9), got {level}")
    if planned_epochs < 1:
        raise ValueError(f"planned_epochs must be 1 or more, got {planned_epochs}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be 0 or more, got {warmup_epochs}")


def predict_total(
    epoch_energies_j: Sequence[float],
    planned_epochs: int,
    level: float = DEFAULT_LEVEL,
    *,
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
) -> EnergyForecast:
    """The total energy of ``planned_epochs`` epochs, predicted from the energies of those done so far.

    ``epoch_energies_j`` are the epochs done, in order (Units: J). The first ``warmup_epochs`` count
    in the energy spent but not in the per-epoch estimate. Raises ValueError with what is missing
    when there are fewer than ``min_epochs(warmup_epochs)`` epochs or an argument is out of range.
    """
    energies_j = [float(e) for e in epoch_energies_j]
    check_plan(planned_epochs, level, warmup_epochs)
    if any(not math.isfinite(e) or e < 0 for e in energies_j):
        raise ValueError(f"epoch energies must be finite and non-negative (J), got {energies_j}")
    needed = min_epochs(warmup_epochs)
    if len(energies_j) < needed:
        raise ValueError(
            f"{len(energies_j)} epochs are too few to predict from: need {needed} "
            f"({warmup_epochs} warm-up + {MIN_STEADY_EPOCHS} to measure the epoch-to-epoch spread)"
        )
    done = len(energies_j)
    so_far_j = math.fsum(energies_j)
    steady = energies_j[warmup_epochs:]
    m = len(steady)
    mean_j = statistics.fmean(steady)
    spread_j = statistics.stdev(steady)
    remaining = max(0, planned_epochs - done)
    if remaining == 0:
        return EnergyForecast(done, planned_epochs, so_far_j, so_far_j, so_far_j, so_far_j, level, warmup_epochs,
                              m, mean_j, spread_j, f"all {planned_epochs} planned epochs done: the total is what they drew")
    t = t_quantile((1.0 + level) / 2.0, m - 1)
    half_width_j = t * spread_j * math.sqrt(remaining + remaining**2 / m)
    remaining_j = remaining * mean_j
    warmup = f", the first {warmup_epochs} left out as warm-up" if warmup_epochs else ""
    note = (
        f"{remaining} remaining epochs x {mean_j:.4g} J (mean of {m} steady epochs{warmup}); "
        f"{level:.0%} interval from their spread ({spread_j:.3g} J, Student's t, {m - 1} d.o.f.); "
        "the energy source's own calibration uncertainty is not included"
    )
    return EnergyForecast(
        epochs_done=done,
        epochs_planned=planned_epochs,
        energy_so_far_j=so_far_j,
        predicted_energy_j=so_far_j + remaining_j,
        low_j=so_far_j + max(0.0, remaining_j - half_width_j),
        high_j=so_far_j + remaining_j + half_width_j,
        level=level,
        warmup_epochs=warmup_epochs,
        epochs_used=m,
        per_epoch_energy_j=mean_j,
        per_epoch_spread_j=spread_j,
        note=note,
    )


def t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` degrees of freedom.

    SciPy is imported on first use (about 0.7 s): a tracker calls this once before it starts
    metering a training, so that the import is not charged to the training's energy.
    """
    from scipy.special import stdtrit

    return float(stdtrit(dof, probability))
