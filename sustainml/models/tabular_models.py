"""The three deep tabular models of Gorishniy et al. 2021, "Revisiting Deep Learning Models for
Tabular Data" (NeurIPS 2021), written as their reference code builds them (yandex-research/rtdl,
``bin/mlp.py``, ``bin/resnet.py``, ``bin/ft_transformer.py``), for numeric features only.

The default configurations are the paper's tuned ones for California Housing
(``output/california_housing/<model>/tuned/0.toml``): the RMSE figures the catalogue quotes come
from those configurations, so measuring anything else would pair the wrong cost with the published
quality. With 8 features and 1 output the parameter counts equal the ``n_parameters`` the
reference runs recorded (94,045; 233,429; 2,463,247). Training details (AdamW, batch 256, early
stopping after 16 epochs without improvement) are the catalogue's business, not the module's.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "TabularMLPConfig",
    "TabularResNetConfig",
    "FTTransformerConfig",
    "TabularMLP",
    "TabularResNet",
    "FTTransformer",
]


@dataclass(frozen=True)
class TabularMLPConfig:
    """Linear-ReLU-Dropout layers then a linear head. Tuned on California Housing."""

    d_layers: tuple[int, ...] = (512, 174)
    dropout: float = 0.2913731727023163


@dataclass(frozen=True)
class TabularResNetConfig:
    """Residual blocks of BatchNorm, Linear, ReLU, Dropout, Linear, Dropout. Tuned on California Housing."""

    d: int = 75
    d_hidden_factor: float = 2.556748413716543
    n_layers: int = 8
    hidden_dropout: float = 0.2694634278997986
    residual_dropout: float = 0.0896738699587471

    @property
    def d_hidden(self) -> int:
        return int(self.d * self.d_hidden_factor)


@dataclass(frozen=True)
class FTTransformerConfig:
    """Feature Tokenizer + Transformer with ReGLU feed-forward blocks. Tuned on California Housing.

    The tuned configuration is post-normalised (``prenormalization=False``); the paper's default
    configuration (d_token 192, d_ffn_factor 4/3, prenormalised) is a different, smaller model.
    """

    d_token: int = 272
    n_layers: int = 3
    n_heads: int = 8
    d_ffn_factor: float = 2.342425545888827
    attention_dropout: float = 0.4518858598707761
    ffn_dropout: float = 0.1462394754853018
    residual_dropout: float = 0.0
    prenormalization: bool = False

    @property
    def d_ffn_hidden(self) -> int:
        return int(self.d_token * self.d_ffn_factor)


class TabularMLP(nn.Module):
    def __init__(self, *, n_features: int, num_outputs: int = 1, config: TabularMLPConfig = TabularMLPConfig()):
        super().__init__()
        widths = (n_features, *config.d_layers)
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(widths, widths[1:]))
        self.dropout = config.dropout
        self.head = nn.Linear(widths[-1], num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.dropout, self.training)
        return self.head(x)


class _ResidualBlock(nn.Module):
    def __init__(self, config: TabularResNetConfig):
        super().__init__()
        self.norm = nn.BatchNorm1d(config.d)
        self.linear0 = nn.Linear(config.d, config.d_hidden)
        self.linear1 = nn.Linear(config.d_hidden, config.d)
        self.hidden_dropout = config.hidden_dropout
        self.residual_dropout = config.residual_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.dropout(F.relu(self.linear0(self.norm(x))), self.hidden_dropout, self.training)
        z = F.dropout(self.linear1(z), self.residual_dropout, self.training)
        return x + z


class TabularResNet(nn.Module):
    def __init__(
        self, *, n_features: int, num_outputs: int = 1, config: TabularResNetConfig = TabularResNetConfig()
    ):
        super().__init__()
        self.first_layer = nn.Linear(n_features, config.d)
        self.layers = nn.Sequential(*(_ResidualBlock(config) for _ in range(config.n_layers)))
        self.last_normalization = nn.BatchNorm1d(config.d)
        self.head = nn.Linear(config.d, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.first_layer(x))
        return self.head(F.relu(self.last_normalization(x)))


class _FeatureTokenizer(nn.Module):
    """One d_token embedding per numeric feature, ``x_j * W_j + b_j``, after a [CLS] token.

    As in the reference code the [CLS] token is row 0 of ``weight`` applied to a constant 1, with
    no bias of its own.
    """

    def __init__(self, n_features: int, d_token: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features + 1, d_token))
        self.bias = nn.Parameter(torch.empty(n_features, d_token))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.bias, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.ones(len(x), 1, device=x.device, dtype=x.dtype), x], dim=1)
        tokens = self.weight[None] * x[:, :, None]
        bias = torch.cat([torch.zeros(1, self.bias.shape[1], device=x.device, dtype=x.dtype), self.bias])
        return tokens + bias[None]


class _MultiheadAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_token {d} is not divisible by n_heads {n_heads}; pick a multiple of n_heads")
        self.W_q = nn.Linear(d, d)
        self.W_k = nn.Linear(d, d)
        self.W_v = nn.Linear(d, d)
        self.W_out = nn.Linear(d, d)
        self.n_heads = n_heads
        self.dropout = dropout
        for linear in (self.W_q, self.W_k, self.W_v, self.W_out):  # "kaiming" initialisation: zero biases
            nn.init.zeros_(linear.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, d = x.shape
        return x.reshape(batch, tokens, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split_heads(t) for t in (self.W_q(x_q), self.W_k(x_kv), self.W_v(x_kv)))
        attention = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        attention = F.dropout(attention, self.dropout, self.training)
        x = (attention @ v).transpose(1, 2)
        return self.W_out(x.reshape(x.shape[0], x.shape[1], -1))


class _TransformerBlock(nn.Module):
    def __init__(self, config: FTTransformerConfig, *, first: bool):
        super().__init__()
        d = config.d_token
        self.attention = _MultiheadAttention(d, config.n_heads, config.attention_dropout)
        self.linear0 = nn.Linear(d, 2 * config.d_ffn_hidden)  # ReGLU: half gates the other half
        self.linear1 = nn.Linear(config.d_ffn_hidden, d)
        # A prenormalised first block takes the tokenizer's output without normalising it.
        self.norm0 = None if (config.prenormalization and first) else nn.LayerNorm(d)
        self.norm1 = nn.LayerNorm(d)
        self.prenormalization = config.prenormalization
        self.ffn_dropout = config.ffn_dropout
        self.residual_dropout = config.residual_dropout

    def _residual(
        self,
        x: torch.Tensor,
        norm: nn.LayerNorm | None,
        sublayer: Callable[[torch.Tensor], torch.Tensor],
        cls_only: bool,
    ) -> torch.Tensor:
        z = norm(x) if (self.prenormalization and norm is not None) else x
        z = sublayer(z)
        if cls_only:
            x = x[:, :1]
        x = x + F.dropout(z, self.residual_dropout, self.training)
        return x if (self.prenormalization or norm is None) else norm(x)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.linear0(x).chunk(2, dim=-1)
        return self.linear1(F.dropout(a * F.relu(b), self.ffn_dropout, self.training))

    def forward(self, x: torch.Tensor, *, cls_only: bool) -> torch.Tensor:
        # The last block only needs the [CLS] token's output, so it attends with that one query.
        attend = (lambda z: self.attention(z[:, :1], z)) if cls_only else (lambda z: self.attention(z, z))
        x = self._residual(x, self.norm0, attend, cls_only)
        return self._residual(x, self.norm1, self._feed_forward, False)


class FTTransformer(nn.Module):
    def __init__(
        self, *, n_features: int, num_outputs: int = 1, config: FTTransformerConfig = FTTransformerConfig()
    ):
        super().__init__()
        self.tokenizer = _FeatureTokenizer(n_features, config.d_token)
        self.blocks = nn.ModuleList(_TransformerBlock(config, first=i == 0) for i in range(config.n_layers))
        self.last_normalization = nn.LayerNorm(config.d_token) if config.prenormalization else None
        self.head = nn.Linear(config.d_token, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cls_only=i == len(self.blocks) - 1)
        x = x[:, 0]
        if self.last_normalization is not None:
            x = self.last_normalization(x)
        return self.head(F.relu(x))
