"""What the hardware node needs to run a catalogue model: the module and data of the right shape."""

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Workload:
    """A built model with synthetic data of the shape its published figures refer to.

    ``inputs(n)`` makes a batch of ``n`` samples, ``targets(n)`` the labels a training step needs,
    and ``loss(outputs, targets)`` the training objective. All three are deterministic per call
    shape so that repeated measurements run the same kernels.
    """

    name: str
    module: torch.nn.Module
    inputs: Callable[[int], torch.Tensor]
    targets: Callable[[int], torch.Tensor]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
