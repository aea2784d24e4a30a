"""What the hardware node needs to run a catalogue model: the module and data of the right shape."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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


@dataclass
class EstimatorWorkload:
    """A model that is not torch (a scikit-learn tree ensemble or linear model), run by its own library.

    ``estimator`` is unfitted; ``data(n)`` makes ``n`` seeded synthetic samples ``(X, y)`` of the
    reference shape, ``X`` float32 ``[n, features]`` and ``y`` class indices or float targets.
    The hardware node times ``fit`` for training and ``predict`` for inference.
    """

    name: str
    estimator: Any
    data: Callable[[int], tuple[np.ndarray, np.ndarray]]
