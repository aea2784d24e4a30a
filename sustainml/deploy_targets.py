"""The device classes a model may be served on ("on a Raspberry Pi"), with the memory and hardware each
implies.

The one definition, read by the task encoder (its words for each target, ``phrases``, live in its
``knowledge.yaml``, which names these targets) and the model provider (which models' weights fit), so
that both read a target the same way. Names are those of the IDL's ``TaskConstraints.deploy_target``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["DEPLOY_TARGETS", "DeployTarget"]


@dataclass(frozen=True)
class DeployTarget:
    """A device class and what it implies when a problem names it and no figure of its own.

    ``memory_mb`` is the budget for the model's peak memory that fills ``constraints.max_memory_mb``
    when the problem gives none (Units: MiB); ``hardware`` is the ``allowed_hardware`` it implies when
    the problem names none (empty: no restriction).
    """

    name: str
    description: str
    memory_mb: float
    hardware: tuple[str, ...]


DEPLOY_TARGETS: Mapping[str, DeployTarget] = MappingProxyType({t.name: t for t in (
    DeployTarget("raspberry_pi", "Raspberry Pi 4/5 class single-board computer, 4 Arm cores, 1-8 GB shared with the OS",
                 1024.0, ("cpu",)),
    DeployTarget("smartphone", "a mid-range phone, where an app's models share a few GB with everything else",
                 512.0, ("cpu",)),
    DeployTarget("microcontroller", "Cortex-M class microcontroller with about 256 KB of SRAM", 0.25, ("cpu",)),
    DeployTarget("jetson", "NVIDIA Jetson module, an Arm CPU and a small GPU sharing 4-8 GB",
                 2048.0, ()),   # it has a GPU: no CPU-only restriction implied
)})
"""Every deploy target, by name, in the order the encoder reads them."""
