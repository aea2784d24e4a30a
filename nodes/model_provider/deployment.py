"""Whether a model's weights fit where it must run: ``max_memory_mb`` and the ``deploy_target`` device class.

The weights are a lower bound of the memory a model needs (activations, the runtime and, for
training, gradients and optimiser state come on top; the hardware node measures the peak), so a
model whose fp32 weights alone exceed the budget is excluded for sure, with the figures. Device
classes and their memory for a model are the library's (``sustainml.deploy_targets``, which the task
encoder reads too), so that both nodes read a target the same way: a target's memory applies only
when ``max_memory_mb`` is 0, as in the encoder, which fills ``max_memory_mb`` from the target (a
partner's encoder may leave it to the provider) and lets a user's own figure win.

Units: MiB (2^20 bytes), as every ``_mb`` of the IDL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sustainml import units
from sustainml.deploy_targets import DEPLOY_TARGETS, DeployTarget
from sustainml.msg import TaskConstraints

__all__ = ["BYTES_PER_PARAM", "MemoryBudget", "memory_budget", "weights_mb"]

BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


def weights_mb(params: int, precision: str = "fp32") -> float:
    """Size of ``params`` weights in ``precision``. Units: MiB."""
    return units.bytes_to_mb(params * BYTES_PER_PARAM[precision])


@dataclass(frozen=True)
class MemoryBudget:
    """The memory limits of a task: ``max_memory_mb`` (0 = none) and its deploy target's, if known."""

    max_memory_mb: float
    deploy_target: str
    target: DeployTarget | None

    def _limits(self) -> list[tuple[float, str]]:
        limits = []
        if self.max_memory_mb:   # the user's (or the encoder's, from the target) figure wins
            limits.append((self.max_memory_mb, f"the max_memory_mb budget of {self.max_memory_mb:g} MiB"))
        elif self.target is not None and self.target.memory_mb > 0:
            limits.append((self.target.memory_mb, f"a {self.target.name} ({self.target.description}; about "
                                                  f"{self.target.memory_mb:g} MiB for a model)"))
        return limits

    def describe(self) -> str:
        return " and ".join(label for _, label in self._limits()) or "no memory limit"

    def check(self, params: int | None) -> tuple[str | None, str]:
        """(why a model of ``params`` weights is excluded, or None; what to say when it is kept)."""
        unknown_target = (
            f"deploy_target {self.deploy_target!r} is not a device class the provider knows "
            f"({', '.join(DEPLOY_TARGETS)}): not checked"
            if self.deploy_target and self.target is None else ""
        )
        limits = self._limits()
        if not limits:
            return None, unknown_target
        if params is None:
            note = "weights known only after fitting: memory not checked"
            return None, "; ".join(n for n in (note, unknown_target) if n)
        fp32, int8 = weights_mb(params), weights_mb(params, "int8")
        for limit, label in limits:
            if fp32 > limit:
                why = f"its fp32 weights alone take {fp32:.3g} MiB ({params:,} params × 4 bytes), over {label}"
                if int8 <= limit:
                    why += f"; int8 weights would take {int8:.3g} MiB"
                return why, ""
        note = f"fp32 weights of {fp32:.3g} MiB fit {self.describe()} (activations come on top)"
        return None, "; ".join(n for n in (note, unknown_target) if n)


def memory_budget(constraints: TaskConstraints) -> MemoryBudget:
    """The memory limits ``constraints`` set."""
    name = constraints.deploy_target.strip()
    return MemoryBudget(
        max_memory_mb=max(0.0, constraints.max_memory_mb),
        deploy_target=name,
        target=DEPLOY_TARGETS.get(name) if name else None,
    )
