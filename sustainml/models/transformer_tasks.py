"""transformers models as plain modules: one tensor in, one tensor out, as the hardware node runs them.

The hardware node times ``module(inputs)`` in eval mode and ``loss(module(inputs), targets)`` in
training mode. transformers models take keyword arguments and return output objects, so each task
gets a thin wrapper here:

* ``SequenceClassifier``: token ids ``[n, tokens]`` → class logits ``[n, classes]``.
* ``GreedyGenerator``: in eval mode one *inference* is a real generation: the prompt ``[n, tokens]``
  is run once, then ``new_tokens`` tokens are chosen greedily one at a time with the KV cache, and the
  prompt plus the new tokens come back (``[n, tokens + new_tokens]``). In training mode it is the
  next-token language-model forward, logits ``[n, tokens, vocab]``.
* ``Detector``: images ``[n, 3, h, w]`` → per query the class logits and the box, concatenated
  (``[n, queries, classes + 4]``).
* ``Forecaster``: past values ``[n, context, channels]`` → forecast ``[n, horizon, channels]``.

Token models subclass ``TokenModel`` so that ``zoo.example_input`` knows to feed them integer ids.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from torch import nn

from .tasks import OBJECT_DETECTION, TEXT_CLASSIFICATION, TEXT_GENERATION, TIME_SERIES_FORECASTING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "DEFAULT_NEW_TOKENS",
    "TokenModel",
    "SequenceClassifier",
    "GreedyGenerator",
    "Detector",
    "Forecaster",
    "wrap",
]

DEFAULT_NEW_TOKENS = 32
"""Tokens one text-generation inference produces after the prompt."""


class TokenModel(nn.Module):
    """A module whose input is integer token ids below ``vocab_size``."""

    vocab_size: int

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.vocab_size = int(model.config.vocab_size)


class SequenceClassifier(TokenModel):
    """A ``...ForSequenceClassification`` model: token ids → class logits (no attention mask: no padding)."""

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits


class _NextTokenLogits(nn.Module):
    """The plain language-model forward, for exporters that cannot trace a generation loop."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits


class GreedyGenerator(TokenModel):
    """A causal language model that, in eval mode, generates ``new_tokens`` tokens greedily with its KV cache.

    There is no stopping at an end-of-sequence token, so every inference costs the same: the prompt's
    forward pass plus ``new_tokens - 1`` single-token passes over a growing cache.
    """

    def __init__(self, model: PreTrainedModel, new_tokens: int = DEFAULT_NEW_TOKENS):
        super().__init__(model)
        if new_tokens < 1:
            raise ValueError(f"new_tokens must be at least 1; got {new_tokens}")
        self.new_tokens = new_tokens
        # Like transformers' generate(), compute the vocabulary projection for the last position only.
        self._last_logits_only = "logits_to_keep" in inspect.signature(model.forward).parameters

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.model(input_ids=input_ids, use_cache=False).logits
        return self.generate(input_ids)

    def generate(self, input_ids: torch.Tensor) -> torch.Tensor:
        keep = {"logits_to_keep": 1} if self._last_logits_only else {}
        out = self.model(input_ids=input_ids, use_cache=True, **keep)
        token = out.logits[:, -1:].argmax(-1)
        tokens = [token]
        for _ in range(self.new_tokens - 1):
            out = self.model(input_ids=token, past_key_values=out.past_key_values, use_cache=True, **keep)
            token = out.logits[:, -1:].argmax(-1)
            tokens.append(token)
        return torch.cat([input_ids, *tokens], dim=1)

    @property
    def onnx_module(self) -> nn.Module:
        """The next-token forward (logits), which ONNX exporters can trace; generation stays in the runtime."""
        return _NextTokenLogits(self.model)


class Detector(nn.Module):
    """A ``...ForObjectDetection`` model: images → ``[n, queries, classes + 4]`` (class logits, then cx, cy, w, h)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)
        return torch.cat([out.logits, out.pred_boxes], dim=-1)


class Forecaster(nn.Module):
    """A ``...ForPrediction`` time-series model: past values → point forecast."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, past_values: torch.Tensor) -> torch.Tensor:
        return self.model(past_values=past_values).prediction_outputs


def wrap(task_type: str, model: PreTrainedModel) -> nn.Module:
    """``model`` as the plain module of ``task_type``; ValueError for a task with no wrapper."""
    wrappers = {
        TEXT_CLASSIFICATION: SequenceClassifier,
        TEXT_GENERATION: GreedyGenerator,
        OBJECT_DETECTION: Detector,
        TIME_SERIES_FORECASTING: Forecaster,
    }
    if task_type not in wrappers:
        raise ValueError(f"no transformers wrapper for {task_type}; the wrapped tasks are {', '.join(wrappers)}")
    return wrappers[task_type](model)
