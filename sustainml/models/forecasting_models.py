"""DLinear (Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?"), written as the
reference code builds it (cure-lab/LTSF-Linear, ``models/DLinear.py``).

A moving average splits each channel into trend and remainder; one linear layer maps each part's
look-back window to the horizon, and the two forecasts are summed. With ``individual=False`` (the
paper's default) the two layers are shared by all channels: ``2 × (L × H + H)`` parameters, 64,704 for
L = 336 and H = 96.
"""

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DLinear"]


class _MovingAverage(nn.Module):
    """Average over ``kernel_size`` steps, the series padded by repeating its first and last values."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, time, channels]
        front = x[:, :1].expand(-1, (self.kernel_size - 1) // 2, -1)
        end = x[:, -1:].expand(-1, (self.kernel_size - 1) // 2, -1)
        padded = torch.cat([front, x, end], dim=1)
        return F.avg_pool1d(padded.transpose(1, 2), self.kernel_size, stride=1).transpose(1, 2)


class DLinear(nn.Module):
    """Forecast ``[batch, context_length, channels]`` into ``[batch, horizon, channels]``."""

    def __init__(
        self, *, context_length: int, horizon: int, channels: int, kernel_size: int = 25, individual: bool = False
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number (the reference uses 25); got {kernel_size}")
        self.decompose = _MovingAverage(kernel_size)
        layers = channels if individual else 1
        self.seasonal = nn.ModuleList(nn.Linear(context_length, horizon) for _ in range(layers))
        self.trend = nn.ModuleList(nn.Linear(context_length, horizon) for _ in range(layers))
        self.individual = individual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trend = self.decompose(x)
        seasonal, trend = (x - trend).transpose(1, 2), trend.transpose(1, 2)  # [batch, channels, time]
        if self.individual:
            out = torch.stack(
                [s(seasonal[:, i]) + t(trend[:, i]) for i, (s, t) in enumerate(zip(self.seasonal, self.trend))],
                dim=1,
            )
        else:
            out = self.seasonal[0](seasonal) + self.trend[0](trend)
        return out.transpose(1, 2)
